import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { startServer, isEntryPoint, SHUTDOWN_GRACE_MS, type RunningServer } from './lifecycle.ts';
import type { CreateTechnique } from './technique.ts';
import { createFixture } from './testing/fixture/server.ts';
import { startTestServer, rawRequest } from './testing/server.ts';

const FIXTURE = fileURLToPath(new URL('./testing/fixture/server.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));

/** Runs the fixture as its own process, the way `npx tsx <folder>/server.ts` does. */
function runFixture(env: Record<string, string>, ipc = false): ChildProcess {
  return spawn(process.execPath, [TSX, FIXTURE], {
    env: { ...process.env, HOST: '127.0.0.1', ...env },
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
}

function output(child: ChildProcess): { stdout: () => string; stderr: () => string } {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return { stdout: () => stdout, stderr: () => stderr };
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

async function listeningUrl(child: ChildProcess): Promise<string> {
  let seen = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      seen += chunk;
      const match = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(seen);
      if (match) resolve(match[0]);
    });
    child.once('exit', () => reject(new Error(`exited before listening: ${seen}`)));
  });
}

/** Opens a request that the fixture holds until shutdown; resolves with its whole body. */
function hold(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(new URL('hold', url), (res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve(body));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe('running a folder as a process', () => {
  test('PORT=0 prints one line with the URL and the real port', async () => {
    const child = runFixture({ PORT: '0' });
    const url = await listeningUrl(child);
    assert.notEqual(new URL(url).port, '0');
    assert.equal((await fetch(new URL('file.txt', url))).status, 200);
    child.kill('SIGTERM');
    assert.deepEqual(await exited(child), { code: 0, signal: null });
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} ends held exchanges and exits 0 within 2 seconds`, async () => {
      const child = runFixture({ PORT: '0' });
      const url = await listeningUrl(child);
      const held = hold(url);
      // A keep-alive connection with nothing in flight must not delay the exit either.
      const agent = new http.Agent({ keepAlive: true });
      await new Promise((resolve) => http.get(new URL('file.txt', url), { agent }, (res) => res.resume().on('end', resolve)));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      child.kill(signal);
      assert.equal(await held, 'held\nbye\n');
      assert.deepEqual(await exited(child), { code: 0, signal: null });
      assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
      agent.destroy();
    });
  }

  test("the IPC message 'shutdown' (as in the long-polling document) shuts down gracefully", async () => {
    const child = runFixture({ PORT: '0' }, true);
    const url = await listeningUrl(child);
    const held = hold(url);
    await new Promise((resolve) => setTimeout(resolve, 50));
    child.send('shutdown');
    assert.equal(await held, 'held\nbye\n');
    assert.equal((await exited(child)).code, 0);
  });

  for (const [name, value] of [
    ['PORT', 'eighty'],
    ['BACKLOG', '0'],
    ['ALLOWED_ORIGINS', 'not-an-origin'],
  ]) {
    test(`${name}=${value} stops start-up with one line naming ${name} and a non-zero exit`, async () => {
      const child = runFixture({ PORT: '0', [name!]: value! });
      const out = output(child);
      const { code } = await exited(child);
      assert.notEqual(code, 0);
      assert.equal(out.stdout(), '', 'never listened');
      const lines = out.stderr().split('\n').filter((line) => line && !line.startsWith('npm warn'));
      assert.equal(lines.length, 1, out.stderr());
      assert.match(lines[0]!, new RegExp(`^${name}: expected `));
    });
  }

  test('a host that is not this machine\'s stops start-up with one line naming HOST', async () => {
    const child = runFixture({ PORT: '0', HOST: '192.0.2.1' });
    const out = output(child);
    assert.equal((await exited(child)).code, 1);
    assert.match(out.stderr(), /^HOST: cannot listen \(.*EADDRNOTAVAIL.*\)\n$/);
  });

  test('a port in use stops start-up with one line', async () => {
    const taken = await startTestServer(createFixture);
    try {
      const child = runFixture({ PORT: String(taken.port) });
      const out = output(child);
      const { code } = await exited(child);
      assert.equal(code, 1);
      assert.match(out.stderr(), /^PORT: cannot listen \(.*EADDRINUSE.*\)\n$/);
    } finally {
      await taken.close();
    }
  });
});

describe('startServer', () => {
  test('close() cuts what a technique did not end, after the grace period', async () => {
    const stubborn = () => ({
      handle: (_req: http.IncomingMessage, res: http.ServerResponse) => void res.writeHead(200).write('never ends'),
      shutdown: () => {},
    });
    const server = await startServer(stubborn, { env: {}, config: { port: 0 } });
    const request = new Promise<void>((resolve) => {
      http.get(server.url, (res) => res.on('data', () => {}).on('close', resolve)).on('error', () => resolve());
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await server.close();
    await request;
    const took = Date.now() - started;
    assert.ok(took >= SHUTDOWN_GRACE_MS - 50 && took < 2_000, `took ${took} ms`);
  });

  test('close() twice is one shutdown', async () => {
    let shutdowns = 0;
    const server = await startServer(() => ({ handle: () => {}, shutdown: () => void shutdowns++ }), {
      env: {},
      config: { port: 0 },
    });
    await Promise.all([server.close(), server.close()]);
    assert.equal(shutdowns, 1);
  });

  test('a technique without upgrade() answers an upgrade request as the plain request it also is', async () => {
    const server = await startTestServer(createFixture);
    try {
      const raw = await rawRequest(
        server.port,
        'GET /file.txt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n',
      );
      assert.equal(raw.status, 200);
      assert.equal(raw.body, 'public file\n');
    } finally {
      await server.close();
    }
  });

  describe('a technique that speaks WebSocket', () => {
    // The fixture plus an upgrade() that answers 101 and says which path it took.
    const withUpgrade: CreateTechnique = (context) => ({
      ...createFixture(context),
      upgrade: (req, socket) => void socket.end(`HTTP/1.1 101 Switching Protocols\r\nX-Path: ${req.url}\r\n\r\n`),
    });
    let server: RunningServer;
    before(async () => {
      server = await startTestServer(withUpgrade);
    });
    after(() => server.close());

    test('gets the WebSocket upgrades', async () => {
      const raw = await rawRequest(server.port, 'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n');
      assert.equal(raw.status, 101);
      assert.equal(raw.headers['x-path'], '/chat');
    });

    test('while another Upgrade (h2c, as curl --http2 sends) is answered as plain HTTP/1.1, body and all', async () => {
      const before = server.log.lastId;
      const raw = await rawRequest(
        server.port,
        'POST /publish HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n' +
          'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello',
      );
      assert.equal(raw.status, 201);
      assert.equal(JSON.parse(raw.body).text, 'hello');
      assert.equal(server.log.lastId, before + 1);
    });

    test('and the connection stays usable for the next request', async () => {
      const raw = await rawRequest(
        server.port,
        'GET /file.txt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n' +
          'GET /file.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      );
      assert.equal(raw.raw.match(/HTTP\/1\.1 200 OK/g)?.length, 2);
    });
  });

  test('CONNECT is answered 405 instead of a dropped socket', async () => {
    const server = await startTestServer(createFixture);
    try {
      const raw = await rawRequest(server.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
      assert.equal(raw.status, 405);
      assert.match(raw.body, /CONNECT/);
    } finally {
      await server.close();
    }
  });

  for (const [what, request, status] of [
    ['a malformed request line', 'NOT HTTP AT ALL\r\n\r\n', 400],
    ['a bad header', 'GET / HTTP/1.1\r\nHost x\r\n\r\n', 400],
    ['headers over 16 KiB', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ] as const) {
    test(`${what} is answered ${status} with a short plain-text body`, async () => {
      const server = await startTestServer(createFixture);
      try {
        const response = await rawRequest(server.port, request);
        assert.equal(response.status, status);
        assert.match(response.headers['content-type'] ?? '', /^text\/plain/);
        assert.ok(response.body.length > 0);
        assert.equal((await fetch(new URL('file.txt', server.url))).status, 200);
      } finally {
        await server.close();
      }
    });
  }

  test('a throwing handler is answered 500 and a throwing shutdown is logged', async (t) => {
    const logged = t.mock.method(console, 'error', () => {});
    const server = await startServer(
      () => ({
        handle: () => {
          throw new Error('bug');
        },
        shutdown: () => {
          throw new Error('bug at shutdown');
        },
      }),
      { env: {}, config: { port: 0 } },
    );
    assert.equal((await fetch(server.url)).status, 500);
    await server.close();
    assert.equal(logged.mock.callCount(), 2);
  });

  test('an IPv6 host is written in brackets in the URL', async (t) => {
    const server = await startServer(createFixture, { env: {}, config: { port: 0, host: '::1' } }).catch(() => undefined);
    if (!server) return t.skip('no IPv6 loopback on this machine');
    assert.match(server.url, /^http:\/\/\[::1\]:\d+\/$/);
    await server.close();
  });

  test('isEntryPoint is false for an imported module', () => {
    assert.equal(isEntryPoint(import.meta.url.replace('lifecycle.test', 'lifecycle')), false);
    assert.equal(isEntryPoint('file:///does/not/exist.ts'), false);
  });
});
