// GET /messages?since=N as the contract's ajax-polling row says: an answer at
// once, ETag on every answer, 304 when If-None-Match matches, no-cache, 400 on
// a bad cursor, and what the backlog still holds when since is older. (The
// shared routes are tested for every folder in ../test/contract.test.ts.)
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestServer, rawRequest } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import { MessageLog } from '../shared/message-log.ts';
import createAjaxPolling from './server.ts';

interface Poll {
  status: number;
  etag: string | null;
  cacheControl: string | null;
  contentType: string | null;
  body: string;
}

async function poll(server: RunningServer, query: string, headers: Record<string, string> = {}): Promise<Poll> {
  const response = await fetch(new URL(`messages${query}`, server.url), { headers });
  return {
    status: response.status,
    etag: response.headers.get('etag'),
    cacheControl: response.headers.get('cache-control'),
    contentType: response.headers.get('content-type'),
    body: await response.text(),
  };
}

const ids = (body: string): number[] => (JSON.parse(body) as { id: number }[]).map((message) => message.id);

describe('ajax-polling: GET /messages', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createAjaxPolling, { maxMessageBytes: 16 });
  });
  after(() => server.close());

  test('answers [] at once when there is nothing, with an ETag and Cache-Control: no-cache', async () => {
    const answer = await poll(server, '?since=0');
    assert.equal(answer.status, 200);
    assert.equal(answer.body, '[]');
    assert.match(answer.contentType ?? '', /^application\/json/);
    assert.equal(answer.cacheControl, 'no-cache');
    assert.match(answer.etag ?? '', /^"[^"]+"$/, 'a strong entity tag');
  });

  test('since=N means "messages with id greater than N"; missing means 0', async () => {
    for (const text of ['one', 'two', 'three']) server.log.publish(text);
    assert.deepEqual(ids((await poll(server, '')).body), [1, 2, 3]);
    assert.deepEqual(ids((await poll(server, '?since=0')).body), [1, 2, 3]);
    assert.deepEqual(ids((await poll(server, '?since=1')).body), [2, 3]);
    assert.deepEqual(ids((await poll(server, '?since=3')).body), []);
    assert.deepEqual(ids((await poll(server, '?since=99')).body), [], 'an id from the future: nothing newer');
    const [message] = JSON.parse((await poll(server, '?since=2')).body) as { id: number; text: string }[];
    assert.deepEqual([message?.id, message?.text], [3, 'three']);
  });

  test('304 round trip: the ETag sent back gets 304 with no body until something is published', async () => {
    const first = await poll(server, '?since=1');
    assert.equal(first.status, 200);
    const again = await poll(server, '?since=1', { 'If-None-Match': first.etag! });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
    assert.equal(again.etag, first.etag, 'a 304 carries the ETag the 200 would have (RFC 9110 §15.4.5)');
    assert.equal(again.cacheControl, 'no-cache');

    const published = server.log.publish('news');
    const changed = await poll(server, '?since=1', { 'If-None-Match': first.etag! });
    assert.equal(changed.status, 200);
    assert.notEqual(changed.etag, first.etag);
    assert.deepEqual(ids(changed.body).at(-1), published.id);
    assert.equal((await poll(server, '?since=1', { 'If-None-Match': changed.etag! })).status, 304);
  });

  test('an empty answer validates too: a client that is up to date polls with 304s', async () => {
    const since = `?since=${server.log.lastId}`;
    const empty = await poll(server, since);
    assert.equal(empty.body, '[]');
    assert.equal((await poll(server, since, { 'If-None-Match': empty.etag! })).status, 304);
    server.log.publish('wake up');
    const news = await poll(server, since, { 'If-None-Match': empty.etag! });
    assert.equal(news.status, 200);
    assert.deepEqual(ids(news.body), [server.log.lastId]);
  });

  test('If-None-Match uses weak comparison, accepts lists and "*"; another tag gets 200', async () => {
    const { etag } = await poll(server, '?since=0');
    assert.equal((await poll(server, '?since=0', { 'If-None-Match': `W/${etag}` })).status, 304);
    assert.equal((await poll(server, '?since=0', { 'If-None-Match': `"other", ${etag}` })).status, 304);
    assert.equal((await poll(server, '?since=0', { 'If-None-Match': '*' })).status, 304);
    assert.equal((await poll(server, '?since=0', { 'If-None-Match': '"other"' })).status, 200);
    assert.equal((await poll(server, '?since=0', { 'If-None-Match': 'not a tag' })).status, 200);
  });

  test('a tag from one since never hides messages from another since', async () => {
    const upToDate = await poll(server, `?since=${server.log.lastId}`);
    const behind = await poll(server, '?since=1', { 'If-None-Match': upToDate.etag! });
    assert.equal(behind.status, 200);
    assert.ok(ids(behind.body).length > 0);
  });

  test('HEAD gets the same headers and no body; other methods get 405 with Allow', async () => {
    const get = await poll(server, '?since=0');
    const head = await fetch(new URL('messages?since=0', server.url), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('etag'), get.etag);
    assert.equal(await head.text(), '');
    const post = await fetch(new URL('messages', server.url), { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });

  test('a since that is not a non-negative integer is 400 with a plain-text reason, even with If-None-Match', async () => {
    for (const query of ['?since=-1', '?since=abc', '?since=1.5', '?since=', '?since=1e3', '?since=01',
      '?since=99999999999999999999', '?since=1&since=2', '?since=%201']) {
      const answer = await poll(server, query, { 'If-None-Match': '*' });
      assert.equal(answer.status, 400, query);
      assert.match(answer.contentType ?? '', /^text\/plain/, query);
      assert.match(answer.body, /since must be a non-negative integer/, query);
    }
  });

  test('the poll route answers before handle() returns (no promise per request), its 400 included', async () => {
    // handle() called by hand on a plain node:http server, so the test sees
    // whether the answer was already ended when handle() came back.
    const technique = createAjaxPolling({ log: server.log, config: server.config });
    const endedOnReturn: boolean[] = [];
    const plain = createServer((req, res) => {
      technique.handle(req, res);
      endedOnReturn.push(res.writableEnded);
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = plain.address() as AddressInfo;
      const first = await fetch(`http://127.0.0.1:${port}/messages?since=0`);
      await first.text();
      const etag = first.headers.get('etag') ?? '';
      const again = await fetch(`http://127.0.0.1:${port}/messages?since=0`, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304);
      assert.equal(again.headers.get('etag'), etag);
      const bad = await fetch(`http://127.0.0.1:${port}/messages?since=x`);
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), /since must be a non-negative integer/);
      assert.deepEqual(endedOnReturn, [true, true, true]);
    } finally {
      await new Promise((resolve) => plain.close(resolve));
      plain.closeAllConnections();
    }
  });

  test('a 304 carries ETag and Cache-Control, no body and no framing (RFC 9110 §15.4.5)', async () => {
    const { etag } = await poll(server, '?since=0');
    const answer = await rawRequest(
      server.port,
      `GET /messages?since=0 HTTP/1.1\r\nHost: x\r\nIf-None-Match: ${etag}\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(answer.status, 304);
    assert.equal(answer.headers['etag'], etag);
    assert.equal(answer.headers['cache-control'], 'no-cache');
    assert.equal(answer.headers['content-length'], undefined);
    assert.equal(answer.headers['transfer-encoding'], undefined);
    assert.equal(answer.headers['content-type'], undefined);
    assert.equal(answer.body, '');
  });

  test('a raw request with a bad cursor is answered 400 and the server keeps serving', async () => {
    const answer = await rawRequest(server.port, 'GET /messages?since=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(answer.status, 400);
    assert.equal((await poll(server, '?since=0')).status, 200);
  });

  test('refused publishes (empty, too large, not UTF-8) never show up in a poll', async () => {
    const since = `?since=${server.log.lastId}`;
    const post = (body: BodyInit) => fetch(new URL('publish', server.url), { method: 'POST', body });
    assert.equal((await post('')).status, 400);
    assert.equal((await post('x'.repeat(17))).status, 413);
    assert.equal((await post(new Uint8Array([0xff, 0xfe]))).status, 400);
    assert.equal((await poll(server, since)).body, '[]');
  });
});

describe('ajax-polling: a since older than the backlog', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createAjaxPolling, { backlog: 3 });
  });
  after(() => server.close());

  test('replays what the backlog still holds, and the ids show the gap', async () => {
    for (let n = 1; n <= 5; n++) server.log.publish(`m${n}`);
    assert.deepEqual(ids((await poll(server, '?since=0')).body), [3, 4, 5]);
    assert.deepEqual(ids((await poll(server, '?since=1')).body), [3, 4, 5]);
    assert.deepEqual(ids((await poll(server, '?since=3')).body), [4, 5]);
  });

  test('the same bytes get the same tag, whatever since asked for them', async () => {
    const a = await poll(server, '?since=0');
    const b = await poll(server, '?since=2');
    assert.equal(a.body, b.body);
    assert.equal(a.etag, b.etag);
    assert.equal((await poll(server, '?since=1', { 'If-None-Match': a.etag! })).status, 304);
  });

  test('the backlog rolling over changes the tag for an old since', async () => {
    const before = await poll(server, '?since=0');
    server.log.publish('m6');
    const after = await poll(server, '?since=0', { 'If-None-Match': before.etag! });
    assert.equal(after.status, 200);
    assert.deepEqual(ids(after.body), [4, 5, 6]);
  });
});

test('a restarted server (a new log, ids again from 1) never validates an old tag', async () => {
  const first = await startTestServer(createAjaxPolling, {}, new MessageLog(10));
  first.log.publish('before the restart');
  const old = await poll(first, '?since=0');
  await first.close();

  const second = await startTestServer(createAjaxPolling, {}, new MessageLog(10));
  try {
    second.log.publish('after the restart');
    const answer = await poll(second, '?since=0', { 'If-None-Match': old.etag! });
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body)[0].text, 'after the restart');
  } finally {
    await second.close();
  }
});
