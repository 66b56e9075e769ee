// The long-polling client, run in Node against the real server and against a
// scripted one: the documents' status table (502/504 → at once, other errors →
// after 1 s, then backing off; RetryPolicy's delays as a table), network errors,
// cut(), wake-ups, the poll deadline, stop(), and no message lost while clients
// are cut at random. The page (SubscribePane,
// PublishForm) is tested in Chromium: page.test.ts.
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { getEventListeners, setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { Config } from '../shared/config.ts';
import type { ClientObserver, PushClient } from '../shared/browser/client.ts';
import createLongPolling, { type LongPolling } from './server.ts';
import { classify, createClient, RetryPolicy, IMMEDIATE_GATEWAY_RETRIES, type LongPollingOptions } from './browser.ts';

// The little of the page the client touches: onWake's listeners and navigator.onLine.
const page = {
  document: Object.assign(new EventTarget(), { visibilityState: 'visible' }),
  window: new EventTarget(),
  navigator: { onLine: true },
};
before(() => {
  Object.assign(globalThis, page);
  setMaxListeners(100, page.document, page.window); // one pair per client, several clients per test
});

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function start(config: Partial<Config> = {}): Promise<RunningServer & { technique: LongPolling }> {
  const server = await startTestServer(createLongPolling, config);
  cleanups.push(() => server.close());
  return server as RunningServer & { technique: LongPolling };
}

/** An observer that writes down everything, as lines. */
function recorder(): ClientObserver & { log: string[]; ids: number[]; requests: number; received: number } {
  const observer = {
    log: [] as string[],
    ids: [] as number[],
    requests: 0,
    received: 0,
    message: (message: { id: number }) => {
      observer.ids.push(message.id);
      observer.log.push(`message ${message.id}`);
    },
    gap: (missed: number, afterId: number) => void observer.log.push(`gap ${missed} after ${afterId}`),
    state: (state: string, detail?: string) => void observer.log.push(detail ? `${state}: ${detail}` : state),
    request: () => void observer.requests++,
    bytes: (count: number) => void (observer.received += count),
  };
  return observer;
}

function client(base: string, observer: ClientObserver, options: LongPollingOptions = {}): PushClient {
  const created = createClient(new URL(base), observer, options);
  cleanups.push(() => created.stop());
  created.start();
  return created;
}

/**
 * A server that answers each poll from a script, then holds the rest until
 * closed; it writes down the `since` of every request.
 */
async function scripted(answers: { status: number; body?: string }[]): Promise<{ url: string; since: string[] }> {
  const since: string[] = [];
  const server = http.createServer((req, res) => {
    since.push(new URL(req.url ?? '/', 'http://x').searchParams.get('since') ?? '');
    const answer = answers.shift();
    if (answer) res.writeHead(answer.status, { 'Content-Type': 'text/plain' }).end(answer.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, since };
}

const SLOW: LongPollingOptions = { backoff: { initialMs: 60_000 } }; // a back-off would outlast the test
const FAST: LongPollingOptions = { backoff: { initialMs: 10, maxMs: 40 } };

describe('classify(): the documents\' status table', () => {
  const message = JSON.stringify([{ id: 1, text: 'hi' }]);
  for (const [status, statusText, body, expected] of [
    [200, 'OK', message, { kind: 'messages', messages: [{ id: 1, text: 'hi' }] }],
    [200, 'OK', '[]', { kind: 'again' }],
    [204, 'No Content', '', { kind: 'again' }],
    [502, 'Bad Gateway', '', { kind: 'gateway', detail: '502 Bad Gateway' }],
    [504, 'Gateway Timeout', '', { kind: 'gateway', detail: '504 Gateway Timeout' }],
    [500, 'Internal Server Error', 'boom', { kind: 'error', detail: '500 Internal Server Error' }],
    [400, '', 'since must be…', { kind: 'error', detail: '400' }],
    [404, 'Not Found', 'Not found', { kind: 'error', detail: '404 Not Found' }],
    [401, 'Unauthorized', '', { kind: 'error', detail: '401 Unauthorized' }],
    [429, 'Too Many Requests', '', { kind: 'error', detail: '429 Too Many Requests' }],
    [503, 'Service Unavailable', '', { kind: 'error', detail: '503 Service Unavailable' }],
    [304, 'Not Modified', '', { kind: 'error', detail: '304 Not Modified' }],
    [200, 'OK', '<html>', { kind: 'error', detail: '200 OK, but not a list of messages' }],
    [200, 'OK', '[{"id":"1"}]', { kind: 'error', detail: '200 OK, but not a list of messages' }],
  ] as const) {
    test(`${status} ${JSON.stringify(body)} → ${expected.kind}`, () => {
      assert.deepEqual(classify(status, statusText, body), expected);
    });
  }
});

describe('RetryPolicy: the delay before the next request', () => {
  /** Delays after each outcome, with jitter at its least (0) or its most (1). */
  function delays(kinds: Parameters<RetryPolicy['delayAfter']>[0][], random: number, options = {}): number[] {
    const policy = new RetryPolicy({ random: () => random, ...options });
    return kinds.map((kind) => policy.delayAfter(kind));
  }

  test('204 and messages: at once, always', () => {
    assert.deepEqual(delays(['again', 'messages', 'again', 'again'], 1), [0, 0, 0, 0]);
  });

  test(`502/504: at once ${IMMEDIATE_GATEWAY_RETRIES} times in a row, then backing off from 1 s`, () => {
    const kinds = Array<'gateway'>(6).fill('gateway');
    assert.deepEqual(delays(kinds, 0), [0, 0, 0, 1_000, 2_000, 4_000]);
    assert.deepEqual(delays(kinds, 1), [0, 0, 0, 1_250, 2_500, 5_000]);
  });

  test('a success or another error starts the count of 502/504 in a row again', () => {
    const kinds = ['gateway', 'gateway', 'gateway', 'again', 'gateway', 'gateway', 'gateway', 'gateway'] as const;
    assert.deepEqual(delays([...kinds], 0), [0, 0, 0, 0, 0, 0, 0, 1_000]);
    assert.deepEqual(delays(['gateway', 'gateway', 'gateway', 'error', 'gateway'], 0), [0, 0, 0, 1_000, 0]);
  });

  test('any other status or a network error: 1 s the first time (never less), doubling, capped, jitter only adds', () => {
    const kinds = ['error', 'network', 'error', 'error', 'error', 'error', 'error', 'error'] as const;
    assert.deepEqual(delays([...kinds], 0), [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.deepEqual(delays([...kinds], 1), [1_250, 2_500, 5_000, 10_000, 20_000, 37_500, 37_500, 37_500]);
    assert.deepEqual(delays(['error', 'error'], 0.5, { initialMs: 10, maxMs: 15 }), [11, 15 + 2]);
  });

  test('the sequence of the Chromium test: 502 ×3, 500 ×2, 404, then answers', () => {
    const kinds = ['gateway', 'gateway', 'gateway', 'error', 'error', 'error', 'again', 'error'] as const;
    assert.deepEqual(delays([...kinds], 0), [0, 0, 0, 1_000, 2_000, 4_000, 0, 1_000]);
  });

  test('a wake-up or a poll past its deadline: at once, and the back-off goes on', () => {
    assert.deepEqual(delays(['error', 'restart', 'error', 'restart', 'gateway'], 0), [1_000, 0, 2_000, 0, 0]);
  });

  test('real jitter: the first retry is drawn from [1000, 1250] ms', () => {
    const first = Array.from({ length: 200 }, () => new RetryPolicy().delayAfter('network'));
    assert.ok(first.every((delay) => delay >= 1_000 && delay <= 1_250), String(first));
    assert.ok(new Set(first).size > 10, 'jittered');
  });
});

describe('createClient against the long-polling server', () => {
  test('gets the backlog, then each new message, asking again with since = the last id', async () => {
    const server = await start();
    server.log.publish('one');
    server.log.publish('two');
    const observer = recorder();
    const subscriber = client(server.url, observer);
    await waitFor(() => observer.ids.length === 2, 5_000, 'the backlog');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'the next poll to be held');
    server.log.publish('three');
    await waitFor(() => observer.ids.length === 3, 5_000, 'the live message');
    assert.deepEqual(observer.log.slice(0, 5), ['connecting', 'message 1', 'message 2', 'open', 'message 3']);
    assert.equal(subscriber.lastId, 3);
    assert.ok(observer.requests >= 3 && observer.received > 0);
  });

  test('reports a gap when the backlog no longer holds what it missed', async () => {
    const server = await start({ backlog: 2 });
    for (let i = 1; i <= 4; i++) server.log.publish(`m${i}`);
    const observer = recorder();
    client(server.url, observer);
    await waitFor(() => observer.ids.length === 2, 5_000, 'the backlog');
    assert.deepEqual(observer.log.slice(1, 4), ['gap 2 after 0', 'message 3', 'message 4']);
  });

  test('starts after options.since', async () => {
    const server = await start();
    for (let i = 1; i <= 3; i++) server.log.publish(`m${i}`);
    const observer = recorder();
    client(server.url, observer, { since: 2 });
    await waitFor(() => observer.ids.length === 1, 5_000, 'the message after 2');
    assert.deepEqual(observer.ids, [3]);
  });

  test('cut() drops the poll like a network failure; the client comes back and misses nothing', async () => {
    const server = await start();
    const observer = recorder();
    const subscriber = client(server.url, observer, FAST);
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'a held poll');
    subscriber.cut();
    server.log.publish('while away');
    await waitFor(() => observer.ids.length === 1, 5_000, 'the message published while away');
    assert.ok(observer.log.includes('retrying: connection cut'), observer.log.join(', '));
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'one held poll again');
    subscriber.cut();
    subscriber.cut(); // twice: harmless
  });

  test('a poll unanswered past pollDeadlineMs is given up and asked again', async () => {
    const server = await start({ pollTimeoutMs: 60_000 });
    const observer = recorder();
    client(server.url, observer, { pollDeadlineMs: 100 });
    await waitFor(() => observer.requests >= 3, 10_000, 'polls sent again');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'the abandoned polls dropped by the server');
    assert.ok(!observer.log.some((line) => line.startsWith('retrying')), 'not an error');
  });

  test('the page becoming visible again sends a fresh poll at once', async () => {
    const server = await start();
    const observer = recorder();
    client(server.url, observer);
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'a held poll');
    const requests = observer.requests;
    page.document.dispatchEvent(new Event('visibilitychange'));
    await waitFor(() => observer.requests === requests + 1, 5_000, 'a fresh poll');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'the old poll dropped');
  });

  test('stop() ends the loop and the held poll; start() resumes after the last id', async () => {
    const server = await start();
    server.log.publish('one');
    const observer = recorder();
    const listeners = (): number => getEventListeners(page.window, 'online').length;
    const initial = listeners();
    const subscriber = client(server.url, observer);
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'a held poll');
    assert.equal(listeners(), initial + 1);
    subscriber.stop();
    subscriber.stop(); // twice: harmless
    assert.equal(observer.log.at(-1), 'closed');
    assert.equal(listeners(), initial, 'wake-up listeners removed');
    await waitFor(() => server.technique.heldCount === 0, 5_000, 'the poll dropped');
    const requests = observer.requests;
    server.log.publish('two');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(observer.requests, requests, 'no request after stop()');
    subscriber.start();
    subscriber.start(); // twice: one loop
    await waitFor(() => observer.ids.length === 2, 5_000, 'the message published while stopped');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'one held poll');
    assert.deepEqual(observer.ids, [1, 2]);
  });
});

describe('createClient and HTTP errors', () => {
  test('502 once: reconnects at once, without a back-off', async () => {
    const server = await scripted([{ status: 502 }, { status: 200, body: '[{"id":1,"text":"a"}]' }]);
    const observer = recorder();
    client(server.url, observer, SLOW);
    await waitFor(() => observer.ids.length === 1 && server.since.length === 3, 5_000, 'the message after the 502, and the next poll');
    assert.deepEqual(observer.log, ['connecting', 'connecting: 502 Bad Gateway', 'message 1', 'open']);
    assert.deepEqual(server.since.slice(0, 3), ['0', '0', '1']);
  });

  test(`502/504 again and again: at once ${IMMEDIATE_GATEWAY_RETRIES} times, then backs off (a proxy whose server is down); coming online retries at once`, async () => {
    const server = await scripted([{ status: 502 }, { status: 504 }, { status: 502 }, { status: 504 }, { status: 204 }]);
    const observer = recorder();
    client(server.url, observer, SLOW); // any back-off before the 4th request would outlast the test
    await waitFor(() => observer.log.includes('retrying: 504 Gateway Timeout'), 5_000, 'a back-off');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(server.since.length, 4, 'waiting, not spinning');
    assert.ok(!observer.log.slice(0, -1).some((line) => line.startsWith('retrying')), observer.log.join(', '));
    page.window.dispatchEvent(new Event('online'));
    await waitFor(() => observer.log.at(-1) === 'open', 5_000, 'the 204 after waking up');
    assert.deepEqual(observer.log.slice(-2), ['connecting', 'open']);
  });

  test('another error is retried after 1 s the first time, not earlier (default back-off)', async () => {
    const arrivals: number[] = [];
    const server = http.createServer((_request, res) => {
      arrivals.push(performance.now());
      if (arrivals.length === 1) res.writeHead(404).end('Not found');
      else if (arrivals.length === 2) res.writeHead(204).end();
      // later polls are held until the server closes
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    });
    const observer = recorder();
    client(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, observer);
    await waitFor(() => arrivals.length >= 3, 10_000, 'the retry after the 404, then the next poll');
    assert.ok(arrivals[1]! - arrivals[0]! >= 950, `retried after ${Math.round(arrivals[1]! - arrivals[0]!)} ms`);
    assert.ok(arrivals[2]! - arrivals[1]! < 900, 'the 204 is followed at once');
    assert.deepEqual(observer.log, ['connecting', 'retrying: 404 Not Found', 'connecting', 'open']);
  });

  test('no status ends the loop: 404, 410, 401, 403, 429, 503, 501… each is shown and retried', async () => {
    const statuses = [404, 410, 400, 401, 403, 405, 408, 413, 429, 500, 501, 503, 505, 418];
    const server = await scripted([...statuses.map((status) => ({ status })), { status: 200, body: '[{"id":1,"text":"a"}]' }]);
    const observer = recorder();
    client(server.url, observer, FAST);
    await waitFor(() => observer.ids.length === 1, 10_000, 'the message after every error');
    const shown = observer.log.filter((line) => line.startsWith('retrying: ')).map((line) => Number(line.slice(10, 13)));
    assert.deepEqual(shown, statuses);
  });

  test('another status: shown, then asked again after a delay; so is a 200 that is not a message list', async () => {
    const server = await scripted([
      { status: 500, body: 'boom' },
      { status: 200, body: 'not json' },
      { status: 200, body: '[{"id":1,"text":"a"}]' },
    ]);
    const observer = recorder();
    client(server.url, observer, FAST);
    await waitFor(() => observer.ids.length === 1, 5_000, 'the message after the errors');
    assert.deepEqual(observer.log, [
      'connecting',
      'retrying: 500 Internal Server Error',
      'connecting',
      'retrying: 200 OK, but not a list of messages',
      'connecting',
      'message 1',
      'open',
    ]);
  });

  test('a network error (fetch throws) is retried with a back-off, and says "offline" when the browser does', async () => {
    const closed = await scripted([]);
    const port = new URL(closed.url).port;
    await cleanups.pop()!(); // close it: nothing listens on that port now
    page.navigator.onLine = false;
    try {
      const observer = recorder();
      client(`http://127.0.0.1:${port}/`, observer, FAST);
      await waitFor(() => observer.requests >= 3, 5_000, 'retries');
      assert.equal(observer.log[1], 'offline: fetch failed');
    } finally {
      page.navigator.onLine = true;
    }
    const observer = recorder();
    client(`http://127.0.0.1:${port}/`, observer, FAST);
    await waitFor(() => observer.requests >= 2, 5_000, 'a retry');
    assert.equal(observer.log[1], 'retrying: fetch failed');
  });
});

describe('no message is lost by clients cut at random', () => {
  test('every client shows every id once, in order, with no gap', async () => {
    const server = await start({ pollTimeoutMs: 200 });
    const MESSAGES = 100;
    const observers = Array.from({ length: 10 }, () => recorder());
    const clients = observers.map((observer) => client(server.url, observer, FAST));
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    for (let i = 1; i <= MESSAGES; i++) {
      server.log.publish(`message ${i}`);
      if (Math.random() < 0.3) clients[Math.floor(Math.random() * clients.length)]!.cut();
      await pause(Math.random() * 10);
    }
    await waitFor(() => observers.every((observer) => observer.ids.length >= MESSAGES), 30_000, 'every message everywhere');
    const expected = Array.from({ length: MESSAGES }, (_, i) => i + 1);
    for (const observer of observers) {
      assert.deepEqual(observer.ids, expected);
      assert.ok(!observer.log.some((line) => line.startsWith('gap')));
    }
    assert.ok(observers.some((observer) => observer.log.includes('retrying: connection cut')), 'some were cut');
  });
});
