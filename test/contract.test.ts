// The part of ../shared/CONTRACT.md that every technique folder shares, checked
// the same way for each: the chat's publish endpoint, the page and its script,
// static files that never leak anything, 404/405, and the folder running as a
// process (env errors, the printed URL, graceful exit). What differs per
// technique is tested next to its server.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTestServer, rawRequest } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { CreateTechnique } from '../shared/technique.ts';

export const FOLDERS = ['ajax-polling', 'long-polling', 'sse', 'http-streaming', 'websocket'] as const;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));
const LIMIT = 16;

function run(args: string[], env: Record<string, string>): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; kill: (signal: NodeJS.Signals) => void; stdout: () => string } {
  const child = spawn(process.execPath, [TSX, ...args], { cwd: ROOT, env: { ...process.env, NODE_V8_COVERAGE: '', HOST: '127.0.0.1', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, stdout, stderr })),
  );
  return { done, kill: (signal) => child.kill(signal), stdout: () => stdout };
}

for (const folder of FOLDERS) {
  const serverFile = `${ROOT}${folder}/server.ts`;
  const missing = existsSync(serverFile) ? false : `${folder}/server.ts is not written yet`;

  describe(`${folder}: the shared contract`, { skip: missing }, () => {
    let server: RunningServer;
    before(async () => {
      const module = (await import(`../${folder}/server.ts`)) as { default: CreateTechnique };
      server = await startTestServer(module.default, { maxMessageBytes: LIMIT });
    });
    after(() => server.close());

    const get = (target: string, method = 'GET') =>
      rawRequest(server.port, `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);

    test('GET / is the page, which loads browser.js', async () => {
      const response = await get('/');
      assert.equal(response.status, 200);
      assert.match(response.headers['content-type'] ?? '', /^text\/html/);
      assert.match(response.body, /<script[^>]*>[^]*browser\.js/);
    });

    test('GET /browser.js is browser.ts compiled, as text/javascript', async () => {
      const response = await get('/browser.js');
      assert.equal(response.status, 200);
      assert.match(response.headers['content-type'] ?? '', /^text\/javascript/);
      assert.doesNotMatch(response.body, /^import /m);
    });

    test('server sources and anything outside the public root are never served', async () => {
      for (const target of ['/server.ts', '/browser.ts', '/../server.ts', '/%2e%2e/server.ts', '/..%2fserver.ts',
        `/../${folder}/server.ts`, '/../package.json', '/%2e%2e/%2e%2e/package.json', '/..\\server.ts', '/%00', '//evil.example/..']) {
        const response = await get(target);
        assert.ok(response.status >= 400 && response.status < 500, `${target}: ${response.status}`);
        assert.doesNotMatch(response.raw, /import |"dependencies"|^Location:/m, target);
      }
      assert.equal((await get('/')).status, 200, 'still up');
    });

    test('an unknown path is 404 with a short plain-text body', async () => {
      const response = await get('/no/such/thing');
      assert.equal(response.status, 404);
      assert.match(response.headers['content-type'] ?? '', /^text\/plain/);
      assert.ok(response.body.length > 0 && response.body.length < 200);
    });

    test('POST /publish publishes the raw text and answers 2xx with the message JSON', async () => {
      const before = server.log.lastId;
      const response = await fetch(new URL('publish', server.url), { method: 'POST', body: '<b>hi</b>' });
      assert.ok(response.status >= 200 && response.status < 300);
      const message = await response.json();
      assert.deepEqual([message.id, message.text], [before + 1, '<b>hi</b>']);
    });

    test('POST /publish refuses empty (400), too large (413) and non-UTF-8 (400) bodies, publishing nothing', async () => {
      const before = server.log.lastId;
      const post = (body: BodyInit) => fetch(new URL('publish', server.url), { method: 'POST', body });
      assert.equal((await post('')).status, 400);
      assert.equal((await post('x'.repeat(LIMIT + 1))).status, 413);
      assert.equal((await post(new Uint8Array([0xc3, 0x28]))).status, 400);
      assert.equal(server.log.lastId, before);
    });

    test('other methods on /publish are 405 with Allow', async () => {
      const response = await get('/publish');
      assert.equal(response.status, 405);
      assert.match(response.headers.allow ?? '', /POST/);
    });

    test('importing the module has no side effects: the process exits by itself, silent', async () => {
      const { code, stdout } = await run(['--eval', `import('./${folder}/server.ts')`], {}).done;
      assert.equal(code, 0);
      assert.equal(stdout, '');
    });

    test('run alone, it prints its URL with the real port and exits 0 on SIGTERM within 2 s', async () => {
      const child = run([`${folder}/server.ts`], { PORT: '0' });
      const deadline = Date.now() + 10_000;
      let match: RegExpExecArray | null = null;
      while (!(match = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(child.stdout())) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(match, 'printed its URL');
      assert.notEqual(match[1], '0');
      assert.equal((await fetch(match[0])).status, 200);
      const started = Date.now();
      child.kill('SIGTERM');
      const { code } = await child.done;
      assert.equal(code, 0);
      assert.ok(Date.now() - started < 2_000);
    });

    test('a bad environment value stops start-up with one line naming it', async () => {
      const { code, stdout, stderr } = await run([`${folder}/server.ts`], { PORT: '0', HEARTBEAT_MS: 'soon' }).done;
      assert.notEqual(code, 0);
      assert.equal(stdout, '');
      assert.match(stderr.trim(), /^HEARTBEAT_MS: expected [^\n]*$/);
    });
  });
}
