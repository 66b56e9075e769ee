// What is specific to HTTP streaming (the shared contract is in test/contract.test.ts):
// the two bodies, heartbeats, replay, shutdown, the slow-reader cut-off, no leaks,
// and no loss when readers come and go with `since`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startTestServer, rawRequest, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { Config } from '../shared/config.ts';
import createHttpStreaming, { HIGH_WATER_BYTES, largestChunkBytes, type HttpStreaming } from './server.ts';
import { HEARTBEAT_HEADER, NdjsonDecoder, parseLine } from './ndjson.ts';
import { FRAME_PADDING_BYTES, FRAME_TAIL } from './forever-frame.ts';

/** A Node reader of /stream: every line, as it arrives. */
class StreamReader {
  readonly lines: string[] = [];
  readonly request: http.ClientRequest;
  response: http.IncomingMessage | undefined;
  ended = false;
  closed = false;
  readonly #decoder = new NdjsonDecoder();

  constructor(url: string) {
    this.request = http.get(url, (response) => {
      this.response = response;
      response.on('data', (chunk: Buffer) => this.lines.push(...this.#decoder.push(chunk)));
      response.on('end', () => (this.ended = true));
      response.on('close', () => (this.closed = true));
      response.on('error', () => {});
    });
    this.request.on('error', () => (this.closed = true));
  }

  /** Ids of the message lines so far. */
  get ids(): number[] {
    return this.lines.flatMap((line) => {
      const parsed = parseLine(line);
      return parsed.kind === 'message' ? [parsed.message.id] : [];
    });
  }

  get heartbeats(): number {
    return this.lines.filter((line) => line === '').length;
  }

  destroy(): void {
    this.request.destroy();
  }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function withServer(config: Partial<Config>, body: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = await startTestServer(createHttpStreaming, config);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

const streams = (server: RunningServer): number => (server.technique as HttpStreaming).streamCount;

describe('GET /stream: NDJSON over one chunked response', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createHttpStreaming, { heartbeatMs: 60_000 });
  });
  after(() => server.close());

  test('answers 200 chunked application/x-ndjson with the anti-buffering headers, at once', async () => {
    const reader = new StreamReader(new URL('stream', server.url).href);
    await waitFor(() => reader.response !== undefined, 5_000, 'headers');
    const headers = reader.response!.headers;
    assert.equal(reader.response!.statusCode, 200);
    assert.equal(headers['content-type'], 'application/x-ndjson');
    assert.equal(headers['transfer-encoding'], 'chunked');
    assert.equal(headers['content-length'], undefined);
    assert.equal(headers['cache-control'], 'no-cache, no-transform');
    assert.equal(headers['x-accel-buffering'], 'no');
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers[HEARTBEAT_HEADER.toLowerCase()], '60000', 'the heartbeat interval, for the client watchdog');
    reader.destroy();
  });

  test('replays the messages after `since`, then goes live, one JSON per line', async () => {
    const first = server.log.lastId;
    for (const text of ['one', 'two', 'three']) server.log.publish(text);
    const reader = new StreamReader(new URL(`stream?since=${first + 1}`, server.url).href);
    await waitFor(() => reader.ids.length === 2, 5_000, 'replay');
    assert.deepEqual(reader.ids, [first + 2, first + 3]);
    const response = await fetch(new URL('publish', server.url), { method: 'POST', body: 'four\nlines' });
    assert.equal(response.status, 201);
    await waitFor(() => reader.ids.length === 3, 5_000, 'live message');
    assert.deepEqual(JSON.parse(reader.lines.at(-1)!), { ...(await response.json()) });
    reader.destroy();
  });

  test('without `since`, a first connection gets the whole backlog', async () => {
    const reader = new StreamReader(new URL('stream', server.url).href);
    await waitFor(() => reader.ids.length === server.log.lastId, 5_000, 'backlog');
    assert.deepEqual(reader.ids, range(1, server.log.lastId));
    reader.destroy();
  });

  test('a malformed since is 400, other methods 405, and neither opens a stream', async () => {
    for (const target of ['/stream?since=-1', '/stream?since=abc', '/stream?since=1&since=2', '/iframe?since=1.5']) {
      const response = await rawRequest(server.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(response.status, 400, target);
      assert.match(response.body, /since/);
    }
    const post = await rawRequest(server.port, 'POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    assert.equal(post.status, 405);
    assert.match(post.headers['allow'] ?? '', /GET/);
    await waitFor(() => streams(server) === 0, 5_000, 'no stream left');
  });

  test('HEAD gives the headers and no body, and leaves nothing open', async () => {
    const response = await rawRequest(server.port, 'HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-type'], 'application/x-ndjson');
    assert.equal(response.body, '');
    await waitFor(() => streams(server) === 0, 5_000, 'no stream left');
  });
});

describe('heartbeats', () => {
  test('an empty line every HEARTBEAT_MS on /stream, and p(null) in the frame', async () => {
    await withServer({ heartbeatMs: 40 }, async (server) => {
      const reader = new StreamReader(new URL('stream', server.url).href);
      await waitFor(() => reader.heartbeats >= 3, 10_000, 'three heartbeats');
      assert.deepEqual(reader.ids, [], 'heartbeats are not messages');
      reader.destroy();

      let frame = '';
      const request = http.get(new URL('iframe', server.url), (response) => response.on('data', (chunk) => (frame += chunk)));
      request.on('error', () => {});
      await waitFor(() => frame.split('p(null)').length - 1 >= 3, 10_000, 'frame heartbeats');
      request.destroy();
    });
  });
});

describe('GET /iframe: the forever frame', () => {
  const HOSTILE = ['</script><script>parent.pwned=1</script>', '<!--<script>', 'a\u2028b\u2029c', '<img src=x onerror=alert(1)>&amp;'];

  test('streams one nonce-carrying script per message, escaped, after a padded head', async () => {
    await withServer({ heartbeatMs: 60_000 }, async (server) => {
      const published = HOSTILE.map((text) => server.log.publish(text));
      let body = '';
      let headers: http.IncomingHttpHeaders = {};
      const request = http.get(new URL('iframe', server.url), (response) => {
        headers = response.headers;
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
      });
      request.on('error', () => {});
      await waitFor(() => body.split('<script').length - 1 === 2 + HOSTILE.length, 5_000, 'replayed chunks');

      assert.equal(headers['content-type'], 'text/html; charset=utf-8');
      assert.equal(headers['cache-control'], 'no-cache, no-transform');
      assert.equal(headers['x-frame-options'], 'SAMEORIGIN');
      const policy = String(headers['content-security-policy']);
      const nonce = /'nonce-([^']+)'/.exec(policy)?.[1];
      assert.ok(nonce, policy);
      assert.match(policy, /default-src 'none'.*frame-ancestors 'self'/);

      const hello = 'p(null, {"heartbeatMs":60000})</script>\n'; // the frame's Heartbeat-Ms
      const head = body.slice(0, body.indexOf(hello) + hello.length);
      assert.ok(body.includes(hello), 'the hello carries the heartbeat interval');
      assert.ok(Buffer.byteLength(head) >= FRAME_PADDING_BYTES, 'padded before the first call');
      const calls = body.slice(head.length).split('\n').filter(Boolean);
      assert.equal(calls.length, HOSTILE.length);
      calls.forEach((chunk, i) => {
        const match = /^<script nonce="([^"]+)">p\((.*)\)<\/script>$/.exec(chunk);
        assert.ok(match, chunk);
        assert.equal(match[1], nonce);
        assert.doesNotMatch(match[2]!, /[<>&\u2028\u2029]/);
        assert.deepEqual(JSON.parse(match[2]!), published[i]);
      });
      // Only our own script elements end: one </script> per <script.
      assert.equal(body.split('</script>').length, body.split('<script').length);
      request.destroy();
    });
  });

  test('each frame gets its own nonce', async () => {
    await withServer({}, async (server) => {
      const nonces = await Promise.all(
        [1, 2].map(
          () =>
            new Promise<string>((resolve) => {
              const request = http.get(new URL('iframe', server.url), (response) => {
                resolve(String(response.headers['content-security-policy']));
                request.destroy();
              });
              request.on('error', () => {});
            }),
        ),
      );
      assert.notEqual(nonces[0], nonces[1]);
    });
  });
});

describe('shutdown', () => {
  test('ends every stream cleanly: the frame gets its tail, both get the final zero-size chunk', async () => {
    const server = await startTestServer(createHttpStreaming, { heartbeatMs: 60_000 });
    server.log.publish('before shutdown');
    const stream = new StreamReader(new URL('stream', server.url).href);
    let frame = '';
    let frameEnded = false;
    http.get(new URL('iframe', server.url), (response) => {
      response.on('data', (chunk) => (frame += chunk));
      response.on('end', () => (frameEnded = true));
    });
    await waitFor(() => stream.ids.length === 1 && frame.includes('before shutdown'), 5_000, 'both open');
    assert.equal(streams(server), 2);

    await server.close();
    await waitFor(() => stream.ended && frameEnded, 5_000, 'both ended');
    assert.ok(frame.endsWith(FRAME_TAIL));
    assert.equal(streams(server), 0);
    assert.equal(server.log.subscriberCount, 0);
  });
});

/** A reader of /iframe: the ids of the messages the frame calls p() with, as they arrive. */
class FrameReader {
  body = '';
  closed = false;
  readonly request: http.ClientRequest;

  constructor(url: string) {
    this.request = http.get(url, (response) => {
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (this.body += chunk));
      response.on('close', () => (this.closed = true));
      response.on('error', () => {});
    });
    this.request.on('error', () => (this.closed = true));
  }

  get ids(): number[] {
    return [...this.body.matchAll(/p\(\{"id":(\d+),/g)].map((match) => Number(match[1]));
  }
}

/**
 * A reader that never reads: after the first bytes its socket is paused, so the
 * kernel buffers fill and then Node's queue (res.writableLength) grows.
 */
function stalledReader(port: number, target: string): { started: () => boolean; closed: () => boolean; socket: net.Socket } {
  const socket = net.connect(port, '127.0.0.1');
  let started = false;
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
  socket.once('data', () => {
    socket.pause();
    started = true;
  });
  return { started: () => started, closed: () => closed, socket };
}

describe('a replay larger than the socket takes at once', () => {
  // The audit's case: 1000 × 1500 B under the default MAX_MESSAGE_BYTES and
  // BACKLOG is 1.5 MB written in one go, far past Node's 16 KiB high-water mark.
  // Paced by 'drain', a reader that reads gets all of it and stays open.
  for (const [what, config, count, size] of [
    ['default settings, 1000 × 1500 B', {}, 1000, 1500],
    ['MAX_MESSAGE_BYTES=100, 1000 × 60 B', { maxMessageBytes: 100 }, 1000, 60],
  ] as const) {
    test(`${what}: a reader that reads gets the whole replay, then live messages, on both bodies`, async () => {
      await withServer(config, async (server) => {
        for (let i = 0; i < count; i++) server.log.publish('r'.repeat(size));
        const stream = new StreamReader(new URL('stream', server.url).href);
        const frame = new FrameReader(new URL('iframe', server.url).href);
        await waitFor(() => (stream.ids.length === count && frame.ids.length === count) || stream.closed || frame.closed, 20_000, 'the replay');
        assert.equal(stream.closed, false, `/stream cut after ${stream.ids.length} messages`);
        assert.equal(frame.closed, false, `/iframe cut after ${frame.ids.length} messages`);
        assert.deepEqual(stream.ids, range(1, count));
        assert.deepEqual(frame.ids, range(1, count));

        const live = server.log.publish('live').id;
        await waitFor(() => stream.ids.at(-1) === live && frame.ids.at(-1) === live, 5_000, 'a live message');
        assert.equal(streams(server), 2);
        assert.equal(server.log.subscriberCount, 2, 'both went live');
        stream.destroy();
        frame.request.destroy();
      });
    });
  }

  test('a replay that gets no drain for a heartbeat is cut as stuck, and leaves nothing behind', async () => {
    const maxMessageBytes = 1024;
    await withServer({ heartbeatMs: 300, maxMessageBytes, backlog: 20_000 }, async (server) => {
      // 20 MB: more than loopback's kernel buffers absorb for a socket nobody reads.
      for (let i = 0; i < 20_000; i++) server.log.publish('y'.repeat(maxMessageBytes));
      const stuck = stalledReader(server.port, '/stream');
      await waitFor(() => stuck.started(), 5_000, 'the stream opened');
      await waitFor(() => streams(server) === 0, 10_000, 'cut');
      // Nothing was published meanwhile, so only the stall timer can have cut it.
      assert.equal(server.log.subscriberCount, 0);
      stuck.socket.resume();
      await waitFor(() => stuck.closed(), 10_000, 'socket closed');
    });
  });
});

describe('a slow live reader', () => {
  test('is cut off past the high-water mark of unsent bytes, while a reading one gets everything', async () => {
    const maxMessageBytes = 16 * 1024;
    await withServer({ heartbeatMs: 60_000, maxMessageBytes }, async (server) => {
      const slow = stalledReader(server.port, '/stream');
      const fast = new StreamReader(new URL('stream', server.url).href);
      await waitFor(() => streams(server) === 2 && slow.started(), 5_000, 'both readers open');

      // Publish until the slow one is cut: kernel buffers (a few MiB on loopback)
      // plus the high-water mark. Bounded, so a missing cut-off fails the test.
      const text = 'x'.repeat(maxMessageBytes);
      const highWater = HIGH_WATER_BYTES + largestChunkBytes(maxMessageBytes);
      let published = 0;
      while (streams(server) === 2 && published < 4_000) {
        server.log.publish(text);
        published++;
        if (published % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(streams(server), 1, `slow reader still open after ${published} messages`);
      assert.ok(published * maxMessageBytes > highWater, 'not before the high-water mark');
      slow.socket.resume(); // it reads again, and finds the connection closed
      await waitFor(() => slow.closed(), 10_000, 'slow socket closed');
      assert.equal(server.log.subscriberCount, 1);

      await waitFor(() => fast.ids.length === published, 20_000, 'fast reader got everything');
      assert.deepEqual(fast.ids, range(1, published));
      fast.destroy();
    });
  });

  test('a tiny MAX_MESSAGE_BYTES does not shrink the mark: a live burst past 16 messages cuts nobody', async () => {
    await withServer({ heartbeatMs: 60_000, maxMessageBytes: 100 }, async (server) => {
      const reader = new StreamReader(new URL('stream', server.url).href);
      await waitFor(() => streams(server) === 1 && server.log.subscriberCount === 1, 5_000, 'live');
      // 3000 × 60 B in one tick: 180 KB, far past 16 × 100 B, far below 1 MiB.
      for (let i = 0; i < 3_000; i++) server.log.publish('z'.repeat(60));
      await waitFor(() => reader.ids.length === 3_000 || reader.closed, 10_000, 'the burst');
      assert.deepEqual(reader.ids, range(1, 3_000));
      assert.equal(reader.closed, false);
      reader.destroy();
    });
  });
});

describe('no leaks', () => {
  test('a reader that disconnects is forgotten at once: its subscription and heartbeat go with it', async () => {
    await withServer({ heartbeatMs: 20 }, async (server) => {
      for (let round = 0; round < 3; round++) {
        const readers = Array.from({ length: 20 }, (_, i) => new StreamReader(new URL(i % 2 ? 'stream' : 'iframe', server.url).href));
        await waitFor(() => streams(server) === 20, 5_000, 'all open');
        assert.equal(server.log.subscriberCount, 20);
        for (const reader of readers) reader.destroy();
        await waitFor(() => streams(server) === 0 && server.log.subscriberCount === 0, 5_000, 'all forgotten');
      }
      // A heartbeat timer left behind would keep writing, and keep the runner alive.
      server.log.publish('after');
    });
  });

  test('one heartbeat timer however many streams are open, and none once all are closed', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    await withServer({ heartbeatMs: 40 }, async (server) => {
      const baseline = timers();
      const readers = Array.from({ length: 5 }, (_, i) => new StreamReader(new URL(i % 2 ? 'stream' : 'iframe', server.url).href));
      await waitFor(() => streams(server) === 5, 5_000, 'all open');
      const heartbeats = (reader: StreamReader, i: number): number =>
        i % 2 ? reader.heartbeats : reader.lines.filter((line) => line.includes('p(null)')).length;
      await waitFor(() => readers.every((reader, i) => heartbeats(reader, i) >= 2), 10_000, 'two heartbeats on every stream');
      assert.ok(timers() <= baseline + 1, `one sweep, not ${timers() - baseline} timers`);
      for (const reader of readers) reader.destroy();
      await waitFor(() => streams(server) === 0, 5_000, 'all closed');
      assert.ok(timers() <= baseline, 'no timer left once nothing is open');
    });
  });
});

describe('churn', () => {
  test('readers that keep dropping and reconnecting with since=last id miss nothing and get nothing twice', async () => {
    await withServer({ heartbeatMs: 60_000, backlog: 10_000 }, async (server) => {
      const TOTAL = 400;
      const READERS = 6;
      let publishing = true;
      const publisher = (async () => {
        for (let i = 1; i <= TOTAL; i++) {
          server.log.publish(`message ${i}`);
          if (i % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
        }
        publishing = false;
      })();

      const runReader = async (seed: number): Promise<number[]> => {
        const received: number[] = [];
        let connections = 0;
        while (received.length < TOTAL && connections < 500) {
          connections++;
          const since = received.at(-1) ?? 0;
          const reader = new StreamReader(new URL(`stream?since=${since}`, server.url).href);
          // Drop after a few messages (or at once), like a flaky network.
          const want = (seed * 7 + connections * 13) % 23;
          await waitFor(() => reader.ids.length >= want || (!publishing && reader.ids.length + since >= TOTAL) || reader.closed, 10_000, 'some messages');
          reader.destroy();
          received.push(...reader.ids);
        }
        return received;
      };
      const results = await Promise.all(range(1, READERS).map(runReader));
      await publisher;
      for (const received of results) assert.deepEqual(received, range(1, TOTAL));
      await waitFor(() => streams(server) === 0 && server.log.subscriberCount === 0, 5_000, 'all forgotten');
    });
  });
});
