import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nodeStatic from 'node-static';
import { safeStaticPath } from './static.ts';
import { HttpError } from './http.ts';
import { startTestServer, rawRequest } from './testing/server.ts';
import { createFixture } from './testing/fixture/server.ts';
import type { RunningServer } from './lifecycle.ts';

const ROOT = fileURLToPath(new URL('./testing/fixture/public', import.meta.url));

/** Every way we know of to ask for something outside the root, as raw request targets. */
const ATTACKS = [
  '/../public-secret/secret.txt', // CVE-2023-26111: the sibling whose name starts with the root's
  '/%2e%2e/public-secret/secret.txt',
  '/%2E%2E/public-secret/secret.txt',
  '/.%2e/public-secret/secret.txt',
  '/..%2fpublic-secret%2fsecret.txt',
  '/%2e%2e%2fpublic-secret%2fsecret.txt',
  '/..\\public-secret\\secret.txt',
  '/%5c..%5cpublic-secret%5csecret.txt',
  '/../server.ts',
  '/../../../package.json',
  '/./file.txt',
  '/%00',
  '/file.txt%00.html',
  '/file.txt\u0000',
  '//evil.example/..',
  '//evil.example/%2e%2e',
  '/%ff',
  '/%c0%ae%c0%ae/public-secret/secret.txt',
  '/%',
  '/file.txt%23.html',
  'http://localhost/../public-secret/secret.txt',
  '*',
];

describe('safeStaticPath', () => {
  test('a plain path comes back decoded', () => {
    assert.equal(safeStaticPath('/file.txt?x=1', ROOT), '/file.txt');
    assert.equal(safeStaticPath('/a%20b.txt', ROOT), '/a b.txt');
    assert.equal(safeStaticPath('/', ROOT), '/');
    assert.equal(safeStaticPath('/dir/', ROOT), '/dir/');
  });

  for (const attack of ATTACKS) {
    test(`refuses ${JSON.stringify(attack)} with 400`, () => {
      assert.throws(() => safeStaticPath(attack, ROOT), (error: unknown) => error instanceof HttpError && error.status === 400);
    });
  }
});

describe('static files behind the gate, over a raw socket', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createFixture);
  });
  after(() => server.close());

  const get = (target: string, method = 'GET') =>
    rawRequest(server.port, `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);

  test('GET / is the folder\'s index.html', async () => {
    const response = await get('/');
    assert.equal(response.status, 200);
    assert.match(response.headers['content-type'] ?? '', /^text\/html/);
    assert.match(response.body, /fixture page/);
  });

  test('a file of the public root is served, and the shared root fills in', async () => {
    assert.equal((await get('/file.txt')).body, 'public file\n');
    const css = await get('/style.css');
    assert.equal(css.status, 200);
    assert.match(css.headers['content-type'] ?? '', /^text\/css/);
  });

  test('HEAD gets the headers without a body', async () => {
    const response = await get('/file.txt', 'HEAD');
    assert.equal(response.status, 200);
    assert.equal(response.body, '');
  });

  test('a missing file is 404 with a short plain-text body', async () => {
    const response = await get('/nope.txt');
    assert.equal(response.status, 404);
    assert.match(response.headers['content-type'] ?? '', /^text\/plain/);
    assert.equal(response.body, 'Not found\n');
  });

  test('server sources are not reachable', async () => {
    for (const target of ['/server.ts', '/browser.ts', '/../server.ts']) {
      const response = await get(target);
      assert.ok(response.status === 404 || response.status === 400, `${target}: ${response.status}`);
      assert.doesNotMatch(response.body, /createFixture/);
    }
  });

  test('methods other than GET and HEAD are 405 with Allow on a file that exists', async () => {
    for (const target of ['/file.txt', '/', '/style.css']) {
      const response = await rawRequest(server.port, `DELETE ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(response.status, 405, target);
      assert.equal(response.headers.allow, 'GET, HEAD');
    }
  });

  test('and 404 on a path that does not exist, or that the gate refuses', async () => {
    for (const target of ['/nope', '/publish/', '/../public-secret/secret.txt']) {
      const response = await rawRequest(server.port, `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      assert.equal(response.status, 404, target);
    }
  });

  test('a Range header is ignored rather than half-honoured', async () => {
    const response = await rawRequest(server.port, 'GET /file.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0\r\nConnection: close\r\n\r\n');
    assert.equal(response.status, 200);
    assert.equal(response.body, 'public file\n');
  });

  for (const attack of ATTACKS) {
    test(`${JSON.stringify(attack)} serves nothing from outside the root, and the server still answers`, async () => {
      const response = await get(attack);
      assert.ok(response.status >= 400 && response.status < 500, `status ${response.status}`);
      assert.doesNotMatch(response.raw, /SECRET|createFixture|"name": "server-push"/);
      assert.doesNotMatch(response.raw, /^Location:/im, 'no redirect');
      assert.equal((await get('/file.txt')).status, 200, 'the server is still up');
    });
  }
});

describe('node-static 0.7.11 without the gate (why the gate exists)', () => {
  test('it serves a file from a sibling directory whose name starts with the root\'s (CVE-2023-26111)', async () => {
    const files = new nodeStatic.Server(ROOT);
    const bare = http.createServer((req, res) => files.serve(req, res, (error) => error && res.writeHead(404).end()));
    await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = bare.address() as { port: number };
      const response = await rawRequest(port, 'GET /../public-secret/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal(response.status, 200);
      assert.match(response.body, /SECRET/);
      assert.equal(path.basename(ROOT), 'public');
    } finally {
      bare.closeAllConnections();
      await new Promise((resolve) => bare.close(resolve));
    }
  });
});
