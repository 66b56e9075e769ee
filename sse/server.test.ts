// GET /events against CONTRACT.md's sse row and issue 5, read two independent
// ways: the raw bytes through our own WHATWG parser (event-stream.ts), and the
// npm `eventsource` client, which implements the same spec on its own.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { EventSource } from 'eventsource';
import { startTestServer, rawRequest, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import { MessageLog } from '../shared/message-log.ts';
import type { CreateTechnique } from '../shared/technique.ts';
import { EventStreamParser, formatEvent, type ParsedEvent } from './event-stream.ts';
import createSse, { largestEventBytes, PING_INTERVAL_MS, RETRY_MS, type SseTechnique } from './server.ts';

const TIMEOUT = 15_000;

/** One GET /events read through EventStreamParser. */
interface RawStream {
  response: Promise<http.IncomingMessage>;
  raw: () => string;
  events: ParsedEvent[];
  comments: string[];
  retries: number[];
  /** Ids of the chat messages received, in arrival order. */
  ids: () => number[];
  lastEventId: () => string;
  /** Resolves 'end' for a clean end of the response, 'aborted' for a cut. */
  done: Promise<'end' | 'aborted'>;
  close: () => void;
}

function openStream(port: number, { path = '/events', headers = {} as Record<string, string> } = {}): RawStream {
  const events: ParsedEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  let raw = '';
  const parser = new EventStreamParser({
    onEvent: (event) => events.push(event),
    onComment: (text) => comments.push(text),
    onRetry: (ms) => retries.push(ms),
  });
  const request = http.get({
    host: '127.0.0.1',
    port,
    path,
    agent: false,
    headers: { Accept: 'text/event-stream', ...headers },
  });
  let settle: (how: 'end' | 'aborted') => void = () => {};
  const done = new Promise<'end' | 'aborted'>((resolve) => (settle = resolve));
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    request.on('error', (error) => {
      reject(error);
      settle('aborted');
    });
    request.on('response', (res) => {
      resolve(res);
      res.on('data', (chunk: Buffer) => {
        raw += chunk.toString('utf8');
        parser.feed(chunk);
      });
      res.on('end', () => settle(res.complete ? 'end' : 'aborted'));
      res.on('aborted', () => settle('aborted'));
      res.on('error', () => settle('aborted'));
      res.on('close', () => settle(res.complete ? 'end' : 'aborted'));
    });
  });
  response.catch(() => {});
  return {
    response,
    raw: () => raw,
    events,
    comments,
    retries,
    ids: () => events.filter((event) => event.type === 'message').map((event) => (JSON.parse(event.data) as { id: number }).id),
    lastEventId: () => parser.lastEventId,
    done,
    close: () => request.destroy(),
  };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function technique(server: RunningServer): SseTechnique {
  return server.technique as SseTechnique;
}

describe('GET /events: the stream', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createSse, { heartbeatMs: 100 });
  });
  after(() => server.close());

  test('headers come at once, before any message: text/event-stream, no-cache, no buffering, not compressed', async () => {
    const stream = openStream(server.port);
    const response = await stream.response;
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'text/event-stream');
    assert.match(response.headers['cache-control'] ?? '', /no-cache/);
    assert.match(response.headers['cache-control'] ?? '', /no-transform/);
    assert.equal(response.headers['x-accel-buffering'], 'no');
    assert.equal(response.headers['content-encoding'], undefined);
    assert.equal(response.headers['content-length'], undefined);
    stream.close();
  });

  test('the first bytes are the retry: field, in a block of its own', async () => {
    const stream = openStream(server.port);
    await waitFor(() => stream.raw().length >= 12, TIMEOUT, 'the first bytes');
    assert.ok(stream.raw().startsWith(`retry: ${RETRY_MS}\n\n`), JSON.stringify(stream.raw().slice(0, 40)));
    assert.deepEqual(stream.retries, [RETRY_MS]);
    stream.close();
  });

  test('each message is `id: <id>` + `data: <message JSON>`, replayed then live', async () => {
    const first = server.log.publish('before');
    const stream = openStream(server.port, { path: `/events?since=${first.id - 1}` });
    await waitFor(() => stream.ids().length === 1, TIMEOUT, 'the replay');
    const second = server.log.publish('multi\nline\r\n<b>é😀</b>');
    await waitFor(() => stream.ids().length === 2, TIMEOUT, 'the live message');
    for (const message of [first, second]) {
      assert.ok(stream.raw().includes(`id: ${message.id}\ndata: ${JSON.stringify(message)}\n\n`), `bytes of #${message.id}`);
    }
    const chat = stream.events.filter((event) => event.type === 'message');
    assert.deepEqual(chat.map((event) => JSON.parse(event.data)), [first, second]);
    assert.deepEqual(chat.map((event) => event.lastEventId), [String(first.id), String(second.id)]);
    stream.close();
  });

  test('the documents\' ping: `event: ping` with {"time": …} at once, and it does not move Last-Event-ID', async () => {
    const stream = openStream(server.port, { path: `/events?since=${server.log.lastId}` });
    await waitFor(() => stream.events.some((event) => event.type === 'ping'), TIMEOUT, 'a ping');
    const ping = stream.events.find((event) => event.type === 'ping')!;
    const { time } = JSON.parse(ping.data) as { time: string };
    assert.ok(Math.abs(Date.parse(time) - Date.now()) < 60_000, time);
    assert.equal(ping.lastEventId, '');
    assert.ok(PING_INTERVAL_MS >= 1_000, 'a ping is a clock tick, not a heartbeat');
    stream.close();
  });

  test('a comment line every HEARTBEAT_MS', async () => {
    const stream = openStream(server.port, { path: `/events?since=${server.log.lastId}` });
    await waitFor(() => stream.comments.length >= 2, TIMEOUT, 'two heartbeats');
    assert.deepEqual(new Set(stream.comments), new Set(['keep-alive']));
    assert.match(stream.raw(), /\n: keep-alive\n/);
    stream.close();
  });

  test('one sweep keeps every open stream alive: two timers however many streams, none once all are closed', async () => {
    await waitFor(() => technique(server).openStreams === 0, TIMEOUT, 'earlier streams to go');
    const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    const baseline = timers();
    const streams = Array.from({ length: 5 }, () => openStream(server.port, { path: `/events?since=${server.log.lastId}` }));
    try {
      await waitFor(() => streams.every((stream) => stream.comments.length >= 2), TIMEOUT, 'two heartbeats on every stream');
      assert.ok(timers() <= baseline + 2, `the heartbeat and the ping sweep only, not ${timers() - baseline} timers`);
    } finally {
      for (const stream of streams) stream.close();
    }
    await waitFor(() => technique(server).openStreams === 0, TIMEOUT, 'every stream to go');
    assert.ok(timers() <= baseline, 'no timer left once nothing is open');
  });

  test('closing the connection removes the subscriber at once', async () => {
    await waitFor(() => technique(server).openStreams === 0, TIMEOUT, 'earlier streams to go');
    const subscribers = server.log.subscriberCount;
    const stream = openStream(server.port);
    await waitFor(() => technique(server).openStreams === 1 && server.log.subscriberCount === subscribers + 1, TIMEOUT, 'the stream');
    stream.close();
    await waitFor(() => technique(server).openStreams === 0 && server.log.subscriberCount === subscribers, TIMEOUT, 'the teardown');
  });

  test('HEAD /events answers the headers and holds nothing open; POST /events is 405', async () => {
    const head = await rawRequest(server.port, 'HEAD /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], 'text/event-stream');
    assert.equal(head.body, '');
    const post = await rawRequest(server.port, 'POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    assert.equal(post.status, 405);
    assert.match(post.headers.allow ?? '', /GET/);
    await waitFor(() => technique(server).openStreams === 0, TIMEOUT, 'nothing open');
  });
});

describe('GET /events: where it resumes', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createSse);
    for (const text of ['one', 'two', 'three', 'four', 'five']) server.log.publish(text);
  });
  after(() => server.close());

  const idsFrom = async (options: Parameters<typeof openStream>[1], count: number): Promise<number[]> => {
    const stream = openStream(server.port, options);
    await waitFor(() => stream.ids().length >= count, TIMEOUT, `${count} messages`);
    stream.close();
    return stream.ids();
  };

  test('no cursor: the whole backlog', async () => {
    assert.deepEqual(await idsFrom({}, 5), [1, 2, 3, 4, 5]);
  });

  test('Last-Event-ID: N replays the messages after N, then goes live', async () => {
    const stream = openStream(server.port, { headers: { 'Last-Event-ID': '3' } });
    await waitFor(() => stream.ids().length === 2, TIMEOUT, 'the replay');
    const live = server.log.publish('six');
    await waitFor(() => stream.ids().length === 3, TIMEOUT, 'the live message');
    assert.deepEqual(stream.ids(), [4, 5, live.id]);
    stream.close();
  });

  test('?since=N replays the messages after N', async () => {
    assert.deepEqual(await idsFrom({ path: '/events?since=2' }, 4), [3, 4, 5, 6]);
  });

  test('Last-Event-ID wins over since when both are sent (it is the newer position)', async () => {
    assert.deepEqual(await idsFrom({ path: '/events?since=1', headers: { 'Last-Event-ID': '4' } }, 2), [5, 6]);
  });

  test('an empty Last-Event-ID counts as absent', async () => {
    assert.deepEqual(await idsFrom({ path: '/events?since=5', headers: { 'Last-Event-ID': '' } }, 1), [6]);
  });

  test('a malformed Last-Event-ID or since is a 400 with a one-line reason', async () => {
    const ask = (target: string, extra = ''): ReturnType<typeof rawRequest> =>
      rawRequest(server.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n${extra}Connection: close\r\n\r\n`);
    for (const id of ['abc', '-1', '1.5', '1e3', '0x10', '99999999999999999999']) {
      const response = await ask('/events', `Last-Event-ID: ${id}\r\n`);
      assert.equal(response.status, 400, id);
      assert.match(response.body, /Last-Event-ID/);
    }
    const twice = await ask('/events', 'Last-Event-ID: 1\r\nLast-Event-ID: 2\r\n');
    assert.equal(twice.status, 400, 'a repeated header');
    for (const target of ['/events?since=x', '/events?since=-1', '/events?since=1&since=2']) {
      assert.equal((await ask(target)).status, 400, target);
    }
    assert.equal((await ask('/events?since=x', 'Last-Event-ID: 2\r\n')).status, 400, 'a malformed since even beside a good id');
  });
});

describe('GET /events: who may have a stream (Accept, RFC 9110 §12.5.1)', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createSse);
  });
  after(() => server.close());

  const status = async (accept: string | undefined): Promise<number> => {
    const stream = openStream(server.port, { headers: accept === undefined ? {} : { Accept: accept } });
    if (accept === undefined) {
      // openStream always sends Accept; this one goes without.
      stream.close();
      const request = http.get({ host: '127.0.0.1', port: server.port, path: '/events', agent: false });
      const response = await new Promise<http.IncomingMessage>((resolve) => request.on('response', resolve));
      request.destroy();
      return response.statusCode!;
    }
    const response = await stream.response;
    stream.close();
    return response.statusCode!;
  };

  test('a request that does not accept text/event-stream is 406, in plain text', async () => {
    for (const accept of ['application/json', 'text/html', 'text/event-stream;q=0']) {
      assert.equal(await status(accept), 406, accept);
    }
    const response = await rawRequest(server.port, 'GET /events HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n');
    assert.match(response.headers['content-type'] ?? '', /^text\/plain/);
    assert.match(response.body, /text\/event-stream/);
  });

  test('EventSource\'s Accept, curl\'s */*, text/* and no Accept at all get the stream', async () => {
    for (const accept of ['text/event-stream', '*/*', 'text/*', 'text/html, */*;q=0.8', undefined]) {
      assert.equal(await status(accept), 200, String(accept));
    }
    await waitFor(() => technique(server).openStreams === 0, TIMEOUT, 'every stream closed');
  });
});

describe('GET /events: a reader that does not keep up', () => {
  const MAX = 1_000;
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createSse, { maxMessageBytes: MAX, heartbeatMs: 300, backlog: 20_000 });
  });
  after(() => server.close());

  /** A raw socket that sends the request and then reads nothing until told to. */
  function stuckReader(headers = ''): { socket: net.Socket; received: () => Buffer; closed: Promise<void> } {
    const socket = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.write(`GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n${headers}\r\n`);
    socket.pause();
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    return { socket, received: () => Buffer.concat(chunks), closed };
  }

  /** Chat ids in a raw HTTP/1.1 chunked response, read with our parser (chunk headers just make noise lines). */
  function idsIn(bytes: Buffer): number[] {
    const ids: number[] = [];
    const body = bytes.subarray(bytes.indexOf('\r\n\r\n') + 4).toString('latin1').replace(/\r\n[0-9a-f]+\r\n/g, '');
    new EventStreamParser({
      onEvent: (event) => {
        if (event.type === 'message') ids.push((JSON.parse(event.data) as { id: number }).id);
      },
    }).feed(Buffer.from(body, 'latin1'));
    return ids;
  }

  test('a live reader that reads nothing is cut past the high-water mark, and resumes from its last id', async () => {
    const start = server.log.lastId;
    const reader = stuckReader(`Last-Event-ID: ${start}\r\n`);
    await waitFor(() => technique(server).openStreams === 1, TIMEOUT, 'the stream to open');
    const text = 'x'.repeat(MAX - 50);
    let published = 0;
    // Bounded: kernel buffers on loopback hold a few MB; 20 000 × ~1 KB is far beyond.
    while (technique(server).openStreams > 0 && published < 20_000) {
      server.log.publish(text);
      published++;
      if (published % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(technique(server).openStreams, 0, `cut after ${published} messages`);
    assert.equal(server.log.subscriberCount, 0);
    assert.ok(published < 20_000);

    // What reached the socket before the cut is a clean prefix; the rest comes on resume.
    reader.socket.resume();
    await reader.closed;
    const got = idsIn(reader.received());
    assert.ok(got.length < published, `${got.length} of ${published} before the cut`);
    assert.deepEqual(got, range(start + 1, start + got.length));
    const last = got.at(-1) ?? start;
    const resumed = openStream(server.port, { headers: { 'Last-Event-ID': String(last) } });
    await waitFor(() => resumed.ids().length === server.log.lastId - last, TIMEOUT, 'the rest');
    assert.deepEqual(resumed.ids(), range(last + 1, server.log.lastId));
    resumed.close();
  });

  test('the largest event a message can make (all control characters, escaped by JSON) is within largestEventBytes', () => {
    const message = { id: Number.MAX_SAFE_INTEGER, text: '\u0001'.repeat(MAX), time: Date.now() };
    const event = formatEvent({ id: message.id, data: JSON.stringify(message) });
    assert.ok(Buffer.byteLength(event) <= largestEventBytes(MAX), `${Buffer.byteLength(event)} bytes`);
  });

  test('a replay is paced by the socket: a large backlog reaches a healthy reader whole, never cut', async () => {
    const from = server.log.lastId;
    for (let i = 0; i < 3_000; i++) server.log.publish('y'.repeat(MAX - 50)); // ~3 MB, 60× the high-water mark
    const stream = openStream(server.port, { headers: { 'Last-Event-ID': String(from) } });
    await waitFor(() => stream.ids().length === 3_000, TIMEOUT * 2, 'the whole backlog');
    assert.deepEqual(stream.ids(), range(from + 1, from + 3_000));
    stream.close();
  });

  test('a replay to a reader that takes nothing for a whole heartbeat interval is cut', async () => {
    // ~15 MB: more than the kernel's socket buffers on loopback take from a reader that reads nothing (~4 MB here).
    const from = server.log.lastId;
    for (let i = 0; i < 15_000; i++) server.log.publish('z'.repeat(MAX - 50));
    const reader = stuckReader(`Last-Event-ID: ${from}\r\n`);
    await waitFor(() => technique(server).openStreams === 1, TIMEOUT, 'the stream to open');
    await waitFor(() => technique(server).openStreams === 0, TIMEOUT, 'the cut');
    assert.equal(server.log.subscriberCount, 0, 'it never went live');
    reader.socket.destroy();
  });
});

describe('GET /events: connections come and go', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createSse, { heartbeatMs: 50 });
  });
  after(() => server.close());

  test('no leak after 200 disconnects: no stream, subscriber or connection is left', async () => {
    for (let batch = 0; batch < 10; batch++) {
      const streams = range(1, 20).map(() => openStream(server.port));
      await waitFor(() => streams.every((stream) => stream.retries.length === 1), TIMEOUT, 'the batch to open');
      server.log.publish(`batch ${batch}`);
      for (const stream of streams) stream.close();
    }
    await waitFor(() => technique(server).openStreams === 0 && server.log.subscriberCount === 0, TIMEOUT, 'every teardown');
    const connections = (): Promise<number> => new Promise((resolve, reject) =>
      server.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
    const deadline = Date.now() + TIMEOUT;
    while ((await connections()) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(await connections(), 0);
  });

  test('no loss under churn: readers that drop and come back with Last-Event-ID get every id once, in order', async () => {
    const TOTAL = 400;
    const first = server.log.lastId + 1;
    let publishing = true;
    const reader = async (seed: number): Promise<number[]> => {
      const ids: number[] = [];
      let lastEventId = String(first - 1);
      let rounds = 0;
      while (rounds++ < 1_000) {
        const stream = openStream(server.port, { headers: { 'Last-Event-ID': lastEventId } });
        // Drop after a few messages (a different few for each reader and round), or at the end.
        const take = 1 + ((seed * 7 + rounds * 13) % 17);
        await waitFor(() => stream.ids().length >= take || (!publishing && ids.length + stream.ids().length >= TOTAL), TIMEOUT, 'messages');
        stream.close();
        ids.push(...stream.ids());
        if (stream.lastEventId() !== '') lastEventId = stream.lastEventId();
        if (!publishing && ids.length >= TOTAL) break;
      }
      return ids;
    };
    const readers = [1, 2, 3, 4].map(reader);
    for (let i = 0; i < TOTAL; i++) {
      server.log.publish(`churn ${i}`);
      if (i % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    publishing = false;
    for (const ids of await Promise.all(readers)) assert.deepEqual(ids, range(first, first + TOTAL - 1));
  });

  test('graceful shutdown ends every stream cleanly, saying why', async () => {
    const own = await startTestServer(createSse);
    const streams = range(1, 3).map(() => openStream(own.port));
    await waitFor(() => streams.every((stream) => stream.retries.length === 1), TIMEOUT, 'the streams');
    await own.close();
    for (const stream of streams) {
      assert.equal(await stream.done, 'end');
      assert.match(stream.raw(), /: server shutting down\n$/);
    }
    assert.equal(technique(own).openStreams, 0);
    assert.equal(own.log.subscriberCount, 0);
  });
});

describe('GET /events read by the npm eventsource client (an independent WHATWG implementation)', () => {
  test('onmessage gets the chat, addEventListener("ping") the clock, and a cut stream resumes by Last-Event-ID', async () => {
    const server = await startTestServer(createSse);
    const sockets = new Set<net.Socket>();
    server.server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    const source = new EventSource(new URL('events', server.url));
    const ids: number[] = [];
    const pings: string[] = [];
    let opens = 0;
    source.onopen = () => opens++;
    source.onmessage = (event) => ids.push((JSON.parse(event.data as string) as { id: number }).id);
    source.addEventListener('ping', (event) => pings.push((JSON.parse(event.data as string) as { time: string }).time));
    try {
      server.log.publish('one');
      await waitFor(() => ids.length === 1 && pings.length >= 1, TIMEOUT, 'a message and a ping');
      // The network drops: the client waits `retry` ms and reconnects with Last-Event-ID: 1.
      for (const socket of sockets) socket.destroy();
      server.log.publish('two');
      server.log.publish('three');
      await waitFor(() => ids.length === 3, TIMEOUT, 'the replay after the drop');
      assert.deepEqual(ids, [1, 2, 3]);
      assert.ok(opens >= 2, 'it reconnected');
    } finally {
      source.close();
      await server.close();
    }
  });

  test('after a server restart on the same port (same log), it resumes and gets what was published meanwhile', async () => {
    const log = new MessageLog(100);
    let server = await startTestServer(createSse, {}, log);
    const port = server.port;
    const source = new EventSource(new URL('events', server.url));
    const ids: number[] = [];
    source.onmessage = (event) => ids.push((JSON.parse(event.data as string) as { id: number }).id);
    try {
      log.publish('before');
      await waitFor(() => ids.length === 1, TIMEOUT, 'the first message');
      await server.close();
      log.publish('while down 1');
      log.publish('while down 2');
      server = await startTestServer(createSse, { port }, log);
      log.publish('after');
      await waitFor(() => ids.length === 4, TIMEOUT * 2, 'everything');
      assert.deepEqual(ids, [1, 2, 3, 4]);
    } finally {
      source.close();
      await server.close();
    }
  });

  test('churn: clients whose connections are cut at random keep every id once, in order', async () => {
    const server = await startTestServer(createSse);
    const sockets: net.Socket[] = [];
    server.server.on('connection', (socket) => sockets.push(socket));
    const clients = range(1, 3).map(() => {
      const ids: number[] = [];
      const source = new EventSource(new URL('events', server.url));
      source.onmessage = (event) => ids.push((JSON.parse(event.data as string) as { id: number }).id);
      return { source, ids };
    });
    const TOTAL = 150;
    try {
      for (let i = 1; i <= TOTAL; i++) {
        server.log.publish(`m${i}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
        // Every 30 messages, the network drops one of the connections.
        if (i % 30 === 0) sockets.filter((socket) => !socket.destroyed)[i % 3]?.destroy();
      }
      await waitFor(() => clients.every((client) => client.ids.length >= TOTAL), TIMEOUT * 2, 'every message');
      for (const client of clients) assert.deepEqual(client.ids, range(1, TOTAL));
    } finally {
      for (const client of clients) client.source.close();
      await server.close();
    }
  });
});

// Keep the import honest: the default export is the technique factory.
const _typed: CreateTechnique = createSse;
void _typed;
