// The launcher: folders mounted under their prefixes over one log, the
// prefix taken off before a folder sees a request, the delay control, and a
// graceful shutdown. Most tests mount small stand-in techniques, so they say
// exactly what a folder received; one suite mounts the real folders.
import { test, describe, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { createFixture } from '../shared/testing/fixture/server.ts';
import { rawRequest, startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { CreateTechnique, TechniqueContext } from '../shared/technique.ts';
import createLauncher, { FOLDERS, folders, launcherOf, loadFolders, type Folder } from './server.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));

/** A stand-in technique that records what it is given and answers with the URL it saw. */
function recorder() {
  const seen: string[] = [];
  const upgrades: string[] = [];
  const contexts: TechniqueContext[] = [];
  let shutdowns = 0;
  const create: CreateTechnique = (context) => {
    contexts.push(context);
    return {
      handle(req, res) {
        seen.push(req.url ?? '');
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`saw ${req.url}`);
      },
      upgrade(req, socket) {
        upgrades.push(req.url ?? '');
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${4 + (req.url ?? '').length}\r\nConnection: close\r\n\r\nsaw ${req.url}`);
      },
      shutdown() {
        shutdowns += 1;
      },
    };
  };
  return { create, seen, upgrades, contexts, shutdowns: () => shutdowns };
}

const get = (port: number, target: string, method = 'GET') =>
  rawRequest(port, `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);

const upgrade = (port: number, target: string) =>
  rawRequest(
    port,
    `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );

const setDelay = (server: RunningServer, body: string) =>
  fetch(new URL('control/delay', server.url), { method: 'POST', body });

describe('the launcher mounts each folder under its prefix', () => {
  const one = recorder();
  const fixtureFolders: Folder[] = [
    { name: 'one', create: one.create, client: false },
    { name: 'fixture', create: createFixture, client: true },
    { name: 'later', client: false, note: 'later/server.ts is not written yet' },
  ];
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(launcherOf(fixtureFolders));
  });
  after(() => server.close());

  test('a folder sees req.url with its prefix taken off, query kept', async () => {
    assert.equal((await get(server.port, '/one/a/b?since=3')).body, 'saw /a/b?since=3');
    assert.equal((await get(server.port, '/one/')).body, 'saw /');
    assert.deepEqual(one.seen.slice(-2), ['/a/b?since=3', '/']);
  });

  test('every folder is created once, with the launcher\'s own context: one log for all', async () => {
    assert.equal(one.contexts.length, 1);
    assert.equal(one.contexts[0]!.log, server.log);
    const viaFolder = await (await fetch(new URL('fixture/publish', server.url), { method: 'POST', body: 'a' })).json();
    const viaRoot = await (await fetch(new URL('publish', server.url), { method: 'POST', body: 'b' })).json();
    assert.deepEqual([viaFolder.text, viaRoot.text], ['a', 'b']);
    assert.equal(viaRoot.id, viaFolder.id + 1);
    assert.deepEqual(server.log.since(viaFolder.id - 1).map((m) => m.text), ['a', 'b']);
  });

  test('a folder serves its own page and script under its prefix', async () => {
    const page = await get(server.port, '/fixture/');
    assert.equal(page.status, 200);
    assert.match(page.body, /fixture page/);
    assert.equal((await get(server.port, '/fixture/browser.js')).status, 200);
  });

  test('/<folder> without its slash is redirected (308) to /<folder>/, query kept', async () => {
    const response = await get(server.port, '/one?x=1');
    assert.equal(response.status, 308);
    assert.equal(response.headers.location, '/one/?x=1');
    const head = await get(server.port, '/one', 'HEAD');
    assert.equal(head.status, 308);
    assert.equal(head.body, '');
  });

  test('a folder not written yet is a 404 that says so; other unknown paths are a 404', async () => {
    const later = await get(server.port, '/later/messages');
    assert.equal(later.status, 404);
    assert.match(later.body, /later\/server\.ts is not written yet/);
    for (const target of ['/nope', '/onex/a', '/%6fne/', '/control/nope']) {
      const response = await get(server.port, target);
      assert.equal(response.status, 404, target);
      assert.match(response.headers['content-type'] ?? '', /^text\/plain/);
    }
  });

  test('a path escaping the prefix meets the folder\'s own static gate', async () => {
    for (const target of ['/fixture/../server.ts', '/fixture/%2e%2e/server.ts', '/fixture/../../package.json']) {
      const response = await get(server.port, target);
      assert.ok(response.status >= 400 && response.status < 500, `${target}: ${response.status}`);
      assert.doesNotMatch(response.body, /import |"dependencies"/);
    }
  });

  test('an upgrade goes to its folder with the prefix taken off; elsewhere it is a 404', async () => {
    assert.equal((await upgrade(server.port, '/one/chat?since=2')).body, 'saw /chat?since=2');
    assert.equal(one.upgrades.at(-1), '/chat?since=2');
    for (const target of ['/chat', '/one', '/later/chat', '/fixture/chat']) {
      const response = await upgrade(server.port, target);
      assert.equal(response.status, 404, target);
    }
  });

  test('GET /control/techniques lists the folders, mounted or not, for the page', async () => {
    const list = await (await fetch(new URL('control/techniques', server.url))).json();
    assert.deepEqual(list, [
      { name: 'one', path: 'one/', mounted: true, client: false },
      { name: 'fixture', path: 'fixture/', mounted: true, client: true },
      { name: 'later', path: 'later/', mounted: false, client: false, note: 'later/server.ts is not written yet' },
    ]);
    assert.equal((await fetch(new URL('control/techniques', server.url), { method: 'POST', body: 'x' })).status, 405);
  });

  test('GET / is the comparison page, which loads its browser.js and stylesheets', async () => {
    const page = await get(server.port, '/');
    assert.equal(page.status, 200);
    assert.match(page.body, /<script type="module">[^]*\.\/browser\.js/);
    for (const file of ['/browser.js', '/style.css', '/compare.css']) {
      assert.equal((await get(server.port, file)).status, 200, file);
    }
    for (const target of ['/server.ts', '/routes.ts', '/../package.json', '/%2e%2e/launcher/server.ts', '/public/index.html']) {
      const response = await get(server.port, target);
      assert.ok(response.status >= 400 && response.status < 500, `${target}: ${response.status}`);
      assert.doesNotMatch(response.body, /import |"dependencies"/, target);
    }
  });
});

describe('the delay control slows every request to a folder', () => {
  const one = recorder();
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(launcherOf([{ name: 'one', create: one.create, client: false }]));
  });
  after(() => server.close());

  test('GET says the delay, POST sets it (ms as the body), 0 by default', async () => {
    assert.deepEqual(await (await fetch(new URL('control/delay', server.url))).json(), { delayMs: 0 });
    const response = await setDelay(server, '250\n');
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { delayMs: 250 });
    assert.deepEqual(await (await fetch(new URL('control/delay', server.url))).json(), { delayMs: 250 });
    await setDelay(server, '0');
  });

  test('a bad value is a 400 that says why, a huge body a 413, other methods a 405; the delay stays', async () => {
    await setDelay(server, '100');
    for (const body of ['', 'abc', '-1', '1.5', '1e3', '10001']) {
      const response = await setDelay(server, body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.match(await response.text(), /milliseconds|at most|Empty body/);
    }
    assert.equal((await setDelay(server, '1'.repeat(100))).status, 413);
    const put = await fetch(new URL('control/delay', server.url), { method: 'PUT', body: '5' });
    assert.equal(put.status, 405);
    assert.match(put.headers.get('allow') ?? '', /GET.*POST/);
    assert.deepEqual(await (await fetch(new URL('control/delay', server.url))).json(), { delayMs: 100 });
    await setDelay(server, '0');
  });

  test('a folder sees a request only once the delay has passed', async () => {
    await setDelay(server, '400');
    const before = one.seen.length;
    const started = Date.now();
    const pending = get(server.port, '/one/slow');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(one.seen.length, before, 'not yet handed on');
    assert.equal((await pending).body, 'saw /slow');
    assert.ok(Date.now() - started >= 350, `answered after ${Date.now() - started} ms`);
    await setDelay(server, '0');
  });

  test('upgrades wait out the delay too; the launcher\'s own routes do not', async () => {
    await setDelay(server, '400');
    let started = Date.now();
    assert.equal((await upgrade(server.port, '/one/chat')).body, 'saw /chat');
    assert.ok(Date.now() - started >= 350);
    started = Date.now();
    const [published, control] = await Promise.all([
      fetch(new URL('publish', server.url), { method: 'POST', body: 'quick' }),
      fetch(new URL('control/delay', server.url)),
    ]);
    assert.equal(published.status, 201);
    assert.equal(control.status, 200);
    // Generous: the point is "not 400 ms per request", not a timing.
    assert.ok(Date.now() - started < 2_000);
    await setDelay(server, '0');
  });

  test('a new delay applies to requests already waiting: 0 lets them through at once', async () => {
    await setDelay(server, '10000');
    const started = Date.now();
    const pending = get(server.port, '/one/waiting');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await setDelay(server, '0');
    assert.equal((await pending).body, 'saw /waiting');
    assert.ok(Date.now() - started < 5_000, 'did not wait out the old 10 s');
  });

  test('a client that goes away during the delay is forgotten: the folder never sees it', async () => {
    await setDelay(server, '300');
    const before = one.seen.length;
    const request = http.get(new URL('one/abandoned', server.url));
    request.on('error', () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    request.destroy();
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(one.seen.length, before);
    await setDelay(server, '0');
  });
});

/** Silences console.error for the rest of test `t`; returns the arguments of each call, as they come. */
function quietConsoleErrors(t: TestContext): unknown[][] {
  const errors: unknown[][] = [];
  t.mock.method(console, 'error', (...args: unknown[]) => void errors.push(args));
  return errors;
}

describe('the last nets', () => {
  test('a folder that throws while handling a delayed request gives a 500, and the server stays up', async (t) => {
    const throwing: CreateTechnique = () => ({
      handle() {
        throw new Error('a bug in a handler');
      },
      shutdown() {},
    });
    const server = await startTestServer(launcherOf([{ name: 'bad', create: throwing, client: false }]));
    const errors = quietConsoleErrors(t);
    try {
      await setDelay(server, '20');
      assert.equal((await get(server.port, '/bad/x')).status, 500);
      assert.match(String(errors.flat().join(' ')), /request failed/);
      assert.equal((await get(server.port, '/control/delay')).status, 200);
    } finally {
      await server.close();
    }
  });

  test('a folder that throws while handling an upgrade loses that connection, not the server', async (t) => {
    const throwing: CreateTechnique = () => ({
      handle: (_req, res) => res.end(),
      upgrade() {
        throw new Error('a bug in an upgrade');
      },
      shutdown() {},
    });
    const server = await startTestServer(launcherOf([{ name: 'bad', create: throwing, client: false }]));
    const errors = quietConsoleErrors(t);
    try {
      await setDelay(server, '20');
      await assert.rejects(upgrade(server.port, '/bad/chat'), /no HTTP response/);
      assert.match(String(errors.flat().join(' ')), /upgrade failed/);
      assert.equal((await get(server.port, '/control/delay')).status, 200);
    } finally {
      await server.close();
    }
  });

  test('after shutdown, a request still reaching the launcher (a busy keep-alive connection) is refused at once', async () => {
    const one = recorder();
    const server = await startTestServer(launcherOf([{ name: 'one', create: one.create, client: false }]));
    try {
      assert.equal((await get(server.port, '/one/first')).status, 200);
      // What lifecycle.ts does at shutdown, without closing the listener yet.
      server.technique.shutdown();
      const late = await get(server.port, '/one/second');
      assert.equal(late.status, 503);
      assert.deepEqual(one.seen, ['/first']);
    } finally {
      await server.close();
    }
  });

  test('a connection reset while an upgrade waits out the delay is dropped quietly', async () => {
    const one = recorder();
    const server = await startTestServer(launcherOf([{ name: 'one', create: one.create, client: false }]));
    await setDelay(server, '300');
    const socket = net.connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /one/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual(one.upgrades, [], 'never handed on');
    assert.equal((await get(server.port, '/control/delay')).status, 200, 'still up');
    await server.close();
  });
});

describe('graceful shutdown', () => {
  test('held exchanges end, delayed requests get 503, every folder\'s shutdown runs even if one throws', async () => {
    const one = recorder();
    const throwing: CreateTechnique = () => ({
      handle: (_req, res) => res.end(),
      shutdown() {
        throw new Error('a bug in a shutdown');
      },
    });
    const two = recorder();
    const server = await startTestServer(
      launcherOf([
        { name: 'one', create: one.create, client: false },
        { name: 'broken', create: throwing, client: false },
        { name: 'fixture', create: createFixture, client: true },
        { name: 'two', create: two.create, client: false },
      ]),
    );
    // A long-lived exchange in a folder, opened before the delay is set.
    const held = new Promise<string>((resolve, reject) => {
      http.get(new URL('fixture/hold', server.url), (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk)).on('end', () => resolve(body));
      }).on('error', reject);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await setDelay(server, '10000');
    const delayed = get(server.port, '/one/never');
    const delayedUpgrade = upgrade(server.port, '/one/chat');
    await new Promise((resolve) => setTimeout(resolve, 200));

    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    const started = Date.now();
    try {
      await server.close();
    } finally {
      console.error = original;
    }
    assert.ok(Date.now() - started < 2_000, 'closed within 2 s');
    assert.equal(await held, 'held\nbye\n');
    assert.equal((await delayed).status, 503);
    assert.equal((await delayedUpgrade).status, 503);
    assert.deepEqual(one.seen.filter((url) => url === '/never'), []);
    assert.equal(one.shutdowns(), 1);
    assert.equal(two.shutdowns(), 1, 'the folder after the broken one still shut down');
    assert.match(String(errors.flat().join(' ')), /broken: shutdown failed/);
  });
});

describe('loadFolders: mount what exists, say what does not', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'launcher-'));
    const write = (file: string, text: string) => {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    };
    write('good/server.ts', 'export default () => ({ handle() {}, shutdown() {} });\n');
    write('good/browser.ts', 'export {};\n');
    write('headless/server.ts', 'export default () => ({ handle() {}, shutdown() {} });\n');
    write('odd/server.ts', 'export default 42;\n');
    write('broken/server.ts', "throw new Error('half written\\nsecond line');\n");
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('each folder is mounted, or skipped with a one-line note', async () => {
    const found = await loadFolders(['good', 'headless', 'odd', 'broken', 'absent'], pathToFileURL(root + path.sep));
    const summary = found.map(({ name, create, client, note }) => ({ name, mounted: Boolean(create), client, note }));
    assert.deepEqual(summary, [
      { name: 'good', mounted: true, client: true, note: undefined },
      { name: 'headless', mounted: true, client: false, note: 'headless/browser.ts is not written yet' },
      { name: 'odd', mounted: false, client: false, note: 'odd/server.ts could not be loaded: it does not export a CreateTechnique as default' },
      { name: 'broken', mounted: false, client: false, note: 'broken/server.ts could not be loaded: half written' },
      { name: 'absent', mounted: false, client: false, note: 'absent/server.ts is not written yet' },
    ]);
  });
});

describe('the real launcher: every folder present, one log', () => {
  const present = folders.filter((folder) => folder.create).map((folder) => folder.name);
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createLauncher, { heartbeatMs: 60_000 });
  });
  after(() => server.close());

  test('it knows the five folders, in the page\'s order', () => {
    assert.deepEqual(folders.map((folder) => folder.name), [...FOLDERS]);
    console.log(`mounted: ${present.join(', ') || 'none'}; missing: ${FOLDERS.filter((name) => !present.includes(name)).join(', ') || 'none'}`);
  });

  test('each folder\'s page is served under its prefix', async () => {
    for (const { name } of folders.filter((folder) => folder.create && folder.client)) {
      const response = await get(server.port, `/${name}/`);
      assert.equal(response.status, 200, name);
      assert.match(response.body, /browser\.js/, name);
    }
  });

  test('a message published through any folder is one log\'s next id', async () => {
    const ids: number[] = [];
    for (const name of present) {
      const response = await fetch(new URL(`${name}/publish`, server.url), { method: 'POST', body: `via ${name}` });
      assert.equal(response.status, 201, name);
      ids.push(((await response.json()) as { id: number }).id);
    }
    assert.deepEqual(ids, ids.map((_, index) => ids[0]! + index));
    assert.equal(server.log.lastId, ids.at(-1));
  });

  test('what is published via /sse/publish is seen by every other folder\'s receiver', async () => {
    const text = `seen everywhere ${Date.now()}`;
    const via = present.includes('sse') ? 'sse/publish' : 'publish';
    const { id } = (await (await fetch(new URL(via, server.url), { method: 'POST', body: text })).json()) as { id: number };
    const since = id - 1;
    const receivers: Record<string, () => Promise<string>> = {
      'ajax-polling': async () => (await fetch(new URL(`ajax-polling/messages?since=${since}`, server.url))).text(),
      'long-polling': async () => {
        const response = await fetch(new URL(`long-polling/subscribe?since=${since}`, server.url));
        return `${response.status} ${await response.text()}`;
      },
      sse: () => readUntil(new URL(`sse/events?since=${since}`, server.url), text, { Accept: 'text/event-stream' }),
      'http-streaming': () => readUntil(new URL(`http-streaming/stream?since=${since}`, server.url), text),
      websocket: () => firstFrame(new URL(`websocket/chat?since=${since}`, server.url.replace('http', 'ws'))),
    };
    for (const name of present) {
      const received = await receivers[name]!();
      assert.ok(received.includes(JSON.stringify(text)), `${name} got ${received.slice(0, 200)}`);
    }
  });
});

/** Reads a streamed response until it holds `text`, then lets go of it. */
async function readUntil(url: URL, text: string, headers: Record<string, string> = {}): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5_000);
  let seen = '';
  try {
    const response = await fetch(url, { headers, signal: controller.signal });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += decoder.decode(value, { stream: true });
      if (seen.includes(JSON.stringify(text))) break;
    }
  } catch {
    // aborted: return what came
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return seen;
}

/** Opens a WebSocket and resolves with its first text message. */
function firstFrame(url: URL): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once('message', (data) => {
      socket.close();
      resolve(String(data));
    });
    socket.once('error', reject);
  });
}

describe('npm start: the launcher as a process', () => {
  test('it prints its URL, serves the page, and exits 0 on SIGTERM within 2 s', async () => {
    const child = spawn(process.execPath, [TSX, 'launcher/server.ts'], { cwd: ROOT, env: { ...process.env, HOST: '127.0.0.1', PORT: '0' } });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await waitFor(() => /http:\/\/127\.0\.0\.1:\d+\//.test(stdout), 15_000, 'the printed URL');
    const url = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(stdout)!;
    assert.notEqual(url[1], '0');
    const page = await fetch(url[0]);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /side by side/);
    const started = Date.now();
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(Date.now() - started < 2_000);
  });

  test('SIGTERM with clients of every folder connected: each is ended cleanly, exit 0 within 2 s', async () => {
    const present = folders.filter((folder) => folder.create).map((folder) => folder.name);
    const child = spawn(process.execPath, [TSX, 'launcher/server.ts'], { cwd: ROOT, env: { ...process.env, HOST: '127.0.0.1', PORT: '0' } });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await waitFor(() => /http:\/\/127\.0\.0\.1:\d+\//.test(stdout), 15_000, 'the printed URL');
    const base = /http:\/\/127\.0\.0\.1:\d+\//.exec(stdout)![0];
    const { id } = (await (await fetch(new URL('publish', base), { method: 'POST', body: 'x' })).json()) as { id: number };

    // What each long-lived exchange ends as: a held poll answered, a stream ended, a socket closed 1001.
    const endings: Promise<string>[] = [];
    if (present.includes('long-polling')) {
      endings.push(fetch(new URL(`long-polling/subscribe?since=${id}`, base)).then((r) => `long-polling ${r.status}`));
    }
    for (const [name, target, headers] of [
      ['sse', `sse/events?since=${id}`, { Accept: 'text/event-stream' }],
      ['http-streaming', `http-streaming/stream?since=${id}`, {}],
    ] as const) {
      if (!present.includes(name)) continue;
      const response = await fetch(new URL(target, base), { headers });
      endings.push(response.text().then(() => `${name} ended`, () => `${name} cut`));
    }
    if (present.includes('websocket')) {
      const socket = new WebSocket(new URL(`websocket/chat?since=${id}`, base.replace('http', 'ws')));
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      endings.push(new Promise((resolve) => socket.once('close', (code) => resolve(`websocket ${code}`))));
    }
    await new Promise((resolve) => setTimeout(resolve, 300)); // the long-poll reaches the server and is held

    const started = Date.now();
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(Date.now() - started < 2_000, `exited after ${Date.now() - started} ms`);
    const expected = { 'long-polling': 'long-polling 204', sse: 'sse ended', 'http-streaming': 'http-streaming ended', websocket: 'websocket 1001' };
    assert.deepEqual(
      (await Promise.all(endings)).sort(),
      present.filter((name) => name in expected).map((name) => expected[name as keyof typeof expected]).sort(),
    );
  });

  test('a bad environment value stops start-up with one line naming it', async () => {
    const child = spawn(process.execPath, [TSX, 'launcher/server.ts'], { cwd: ROOT, env: { ...process.env, PORT: '80a' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.notEqual(code, 0);
    assert.equal(stdout, '');
    assert.match(stderr, /^PORT: expected [^\n]*$/m);
    assert.doesNotMatch(stderr, /at .*\.ts:\d+/);
  });
});
