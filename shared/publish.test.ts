// POST /publish through the fixture technique: the body limits of body.ts and
// the route of publish.ts, over real sockets.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startTestServer, rawRequest } from './testing/server.ts';
import { createFixture } from './testing/fixture/server.ts';
import type { RunningServer } from './lifecycle.ts';

const LIMIT = 16;

describe('POST /publish', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createFixture, { maxMessageBytes: LIMIT });
  });
  after(() => server.close());

  const post = (body: BodyInit, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(new URL('publish', server.url), { method: 'POST', body, headers });

  test('a text body is published and answered 201 with the message JSON', async () => {
    const before = server.log.lastId;
    const response = await post('hello, 세계');
    assert.equal(response.status, 201);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const message = await response.json();
    assert.equal(message.id, before + 1);
    assert.equal(message.text, 'hello, 세계');
    assert.equal(server.log.lastId, before + 1);
  });

  test('any content type is taken as raw UTF-8 text', async () => {
    const response = await post('{"not":"parsed"}', { 'Content-Type': 'application/json' });
    assert.equal((await response.json()).text, '{"not":"parsed"}');
  });

  test('a body of exactly MAX_MESSAGE_BYTES is accepted', async () => {
    const response = await post('x'.repeat(LIMIT));
    assert.equal(response.status, 201);
  });

  test('an empty body is 400 and publishes nothing', async () => {
    const before = server.log.lastId;
    const response = await post('');
    assert.equal(response.status, 400);
    assert.match(await response.text(), /empty/i);
    assert.equal(server.log.lastId, before);
  });

  test('bytes that are not UTF-8 are 400 and publish nothing', async () => {
    const before = server.log.lastId;
    for (const bytes of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98]]) {
      const response = await post(new Uint8Array(bytes));
      assert.equal(response.status, 400, `bytes ${bytes}`);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      assert.match(await response.text(), /UTF-8/);
    }
    assert.equal(server.log.lastId, before);
  });

  test('a multi-byte character split across TCP chunks is fine', async () => {
    const response = await rawRequest(
      server.port,
      Buffer.concat([
        Buffer.from(`POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n`),
        Buffer.from('😀'),
      ]),
    );
    assert.equal(response.status, 201);
  });

  test('a Content-Length over the limit is 413 before any of the body is read', async () => {
    const before = server.log.lastId;
    // Only the headers are sent: the answer must not wait for the body.
    const response = await rawRequest(
      server.port,
      `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n`,
    );
    assert.equal(response.status, 413);
    assert.match(response.body, /limit is 16 bytes/);
    assert.equal(response.headers.connection, 'close');
    assert.equal(server.log.lastId, before);
  });

  test('a chunked body that grows past the limit is 413, the connection is closed, nothing published', async () => {
    const before = server.log.lastId;
    const socket = net.connect(server.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (chunk) => received.push(chunk));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    socket.write('POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    socket.write('a\r\n0123456789\r\n');
    socket.write('a\r\n0123456789\r\n');
    // The server has refused; more body keeps coming but is not read.
    const more = setInterval(() => socket.writable && socket.write('400\r\n' + 'x'.repeat(1024) + '\r\n'), 5);
    await closed;
    clearInterval(more);
    const text = Buffer.concat(received).toString();
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.equal(server.log.lastId, before);
  });

  test('Expect: 100-continue with a body over the limit is refused before the body is sent', async () => {
    const response = await rawRequest(
      server.port,
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n',
    );
    assert.equal(response.status, 413);
    assert.doesNotMatch(response.raw, /100 Continue/);
  });

  test('Expect: 100-continue with a body within the limit is invited and published', async () => {
    const response = await rawRequest(
      server.port,
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nok',
    );
    assert.match(response.raw, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
  });

  test('a request pipelined behind a refused body has no effect (its answer could never be sent)', async () => {
    const before = server.log.lastId;
    const response = await rawRequest(
      server.port,
      `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: ${LIMIT + 1}\r\n\r\n${'x'.repeat(LIMIT + 1)}` +
        'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz',
    );
    assert.equal(response.status, 413);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(server.log.lastId, before);
    assert.equal((await post('fresh connection')).status, 201);
  });

  test('a client that goes away mid-body publishes nothing and the server carries on', async () => {
    const before = server.log.lastId;
    const socket = net.connect(server.port, '127.0.0.1');
    socket.write('POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
    await new Promise((resolve) => setTimeout(resolve, 30));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(server.log.lastId, before);
    assert.equal((await post('after')).status, 201);
  });

  test('other methods are 405 with Allow: POST', async () => {
    const response = await fetch(new URL('publish', server.url), { method: 'PUT', body: 'x' });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'POST');
    const get = await fetch(new URL('publish', server.url));
    assert.equal(get.status, 405);
  });

  test('a handler that throws answers 500 with a short text and the server carries on', async (t) => {
    t.mock.method(console, 'error', () => {});
    const response = await fetch(new URL('throw', server.url));
    assert.equal(response.status, 500);
    assert.equal(await response.text(), 'Internal server error\n');
    assert.equal((await post('still here')).status, 201);
  });
});
