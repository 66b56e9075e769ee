// The poll loop of browser.ts, run in Node against the real server (wrapped by
// instrumented.ts to delay, fail and count), with a fake page for
// document.hidden / navigator.onLine / the wake-up events. What only a real
// browser can show (the page, text-not-HTML) is in chromium.test.ts.
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { ChatMessage } from '../shared/browser/messages.ts';
import type { ConnectionState } from '../shared/browser/client.ts';
import { createClient, intervalFromQuery, MIN_INTERVAL_MS, type PageSignals, type PollingOptions } from './browser.ts';
import { instrument, type Instrument } from './instrumented.ts';

class FakePage implements PageSignals {
  isHidden = false;
  isOnline = true;
  wakers = new Set<() => void>();
  hidden = (): boolean => this.isHidden;
  online = (): boolean => this.isOnline;
  onWake = (wake: () => void): (() => void) => {
    this.wakers.add(wake);
    return () => this.wakers.delete(wake);
  };
  wake(): void {
    for (const wake of this.wakers) wake();
  }
}

class Recorder {
  messages: ChatMessage[] = [];
  gaps: [number, number][] = [];
  states: [ConnectionState, string | undefined][] = [];
  requests = 0;
  bytes = 0;
  message = (message: ChatMessage): void => void this.messages.push(message);
  gap = (missed: number, after: number): void => void this.gaps.push([missed, after]);
  state = (state: ConnectionState, detail?: string): void => void this.states.push([state, detail]);
  request = (): void => void this.requests++;
  bytesReceived = (count: number): void => void (this.bytes += count);
  get ids(): number[] {
    return this.messages.map((message) => message.id);
  }
  get lastState(): ConnectionState | undefined {
    return this.states.at(-1)?.[0];
  }
}

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function setUp(
  options: PollingOptions = {},
  config: { backlog?: number } = {},
): Promise<{ server: RunningServer; wire: Instrument; page: FakePage; seen: Recorder; client: ReturnType<typeof createClient> }> {
  const wire = instrument();
  const server = await startTestServer(wire.create, config);
  cleanup.push(() => server.close());
  const page = new FakePage();
  const seen = new Recorder();
  const client = createClient(
    new URL(server.url),
    { message: seen.message, gap: seen.gap, state: seen.state, request: seen.request, bytes: seen.bytesReceived },
    { intervalMs: 20, maxBackoffMs: 200, page, ...options },
  );
  cleanup.push(() => client.stop());
  return { server, wire, page, seen, client };
}

describe('ajax-polling client: the poll loop', () => {
  test('delivers the backlog, then each new message once, in order, asking since the last id', async () => {
    const { server, wire, seen, client } = await setUp();
    server.log.publish('one');
    server.log.publish('two');
    client.start();
    await waitFor(() => seen.ids.length === 2, 5_000, 'the backlog');
    assert.equal(seen.lastState, 'open');
    server.log.publish('three');
    await waitFor(() => seen.ids.length === 3, 5_000, 'the new message');
    assert.deepEqual(seen.ids, [1, 2, 3]);
    assert.equal(client.lastId, 3);
    assert.deepEqual(seen.messages.map((message) => message.text), ['one', 'two', 'three']);
    assert.equal(wire.polls[0]!.since, '0');
    assert.ok(wire.polls.some((poll) => poll.since === '2'), 'asked since=2 after receiving 1 and 2');
    assert.deepEqual(seen.gaps, []);
  });

  test('nothing new: the requests carry the last ETag and are answered 304, with no body', async () => {
    const { server, wire, seen, client } = await setUp();
    server.log.publish('hello');
    client.start();
    await waitFor(() => wire.polls.filter((poll) => poll.status === 304).length >= 3, 5_000, 'three 304s');
    const conditional = wire.polls.filter((poll) => poll.ifNoneMatch !== undefined);
    assert.ok(conditional.length >= 3);
    // A validator belongs to one URL: the tag of the answer to since=0 is not
    // sent with since=1.
    assert.equal(wire.polls[1]!.since, '1');
    assert.equal(wire.polls[1]!.ifNoneMatch, undefined);
    assert.ok(seen.requests >= wire.polls.filter((poll) => poll.status !== undefined).length);
    const bytesBefore = seen.bytes;
    const polls = wire.polls.length;
    await waitFor(() => wire.polls.length >= polls + 3 && wire.polls.at(-2)!.status === 304, 5_000, 'more 304s');
    assert.equal(seen.bytes, bytesBefore, 'a 304 has no body');
    assert.deepEqual(seen.ids, [1]);
  });

  test('a slow server: never more than one request in flight', async () => {
    const { wire, client } = await setUp({ intervalMs: 5 });
    wire.delayMs = 150;
    client.start();
    await waitFor(() => wire.polls.filter((poll) => poll.status !== undefined).length >= 4, 10_000, 'four answers');
    assert.equal(wire.maxInFlight, 1);
  });

  test('the client reports a gap when the backlog no longer holds what it missed', async () => {
    const { server, seen, client } = await setUp({}, { backlog: 2 });
    for (let n = 1; n <= 5; n++) server.log.publish(`m${n}`);
    client.start();
    await waitFor(() => seen.ids.length === 2, 5_000, 'what the backlog holds');
    assert.deepEqual(seen.ids, [4, 5]);
    assert.deepEqual(seen.gaps, [[3, 0]]);
  });

  test('starting from options.since asks only for what is newer', async () => {
    const { server, wire, seen, client } = await setUp({ since: 2 });
    for (let n = 1; n <= 3; n++) server.log.publish(`m${n}`);
    client.start();
    await waitFor(() => seen.ids.length === 1, 5_000, 'message 3');
    assert.equal(wire.polls[0]!.since, '2');
    assert.deepEqual(seen.ids, [3]);
  });
});

describe('ajax-polling client: failures', () => {
  test('errors back off (retrying, with the reason), then it recovers and delivers', async () => {
    const { server, wire, seen, client } = await setUp({ random: () => 0.5 });
    let failures = 3;
    wire.fail = () => (failures-- > 0 ? { status: 500, body: 'boom' } : undefined);
    server.log.publish('after the outage');
    client.start();
    await waitFor(() => seen.ids.length === 1, 10_000, 'recovery');
    const retrying = seen.states.filter(([state]) => state === 'retrying');
    assert.equal(retrying.length, 3);
    assert.match(retrying[0]![1] ?? '', /^HTTP 500; next try in \d+ s$/);
    assert.equal(seen.lastState, 'open');
  });

  test('Retry-After (seconds) lengthens the wait', async () => {
    const { wire, seen, client } = await setUp();
    let failures = 1;
    wire.fail = () => (failures-- > 0 ? { status: 503, headers: { 'Retry-After': '60' } } : undefined);
    client.start();
    await waitFor(() => seen.lastState === 'retrying', 5_000, 'retrying');
    assert.match(seen.states.at(-1)![1] ?? '', /HTTP 503; next try in 60 s/);
  });

  test('an answer that is not a JSON array of messages is an error, not a crash', async () => {
    const { wire, seen, client } = await setUp();
    let failures = 1;
    wire.fail = () => (failures-- > 0 ? { status: 200, body: '{"not":"a list"}' } : undefined);
    client.start();
    await waitFor(() => seen.lastState === 'retrying', 5_000, 'retrying');
    assert.match(seen.states.at(-1)![1] ?? '', /not a JSON array of messages/);
    await waitFor(() => seen.lastState === 'open', 5_000, 'open again');
  });

  test('a request that hangs is given up after requestTimeoutMs', async () => {
    const { wire, seen, client } = await setUp({ requestTimeoutMs: 50 });
    wire.delayMs = 1_000;
    client.start();
    await waitFor(() => seen.lastState === 'retrying', 5_000, 'retrying');
    assert.match(seen.states.at(-1)![1] ?? '', /no answer in time/);
    wire.delayMs = 0;
    await waitFor(() => seen.lastState === 'open', 5_000, 'open again');
  });

  test('cut() drops the request in flight like a network failure; the loop recovers', async () => {
    const { server, wire, seen, client } = await setUp();
    wire.delayMs = 300;
    client.start();
    await waitFor(() => wire.inFlight === 1, 5_000, 'a request in flight');
    client.cut();
    await waitFor(() => seen.lastState === 'retrying', 5_000, 'retrying');
    assert.match(seen.states.at(-1)![1] ?? '', /connection cut/);
    wire.delayMs = 0;
    server.log.publish('still here');
    await waitFor(() => seen.ids.length === 1, 5_000, 'the message after the cut');
    client.cut(); // nothing in flight: harmless
  });

  test('offline: no server and navigator.onLine false shows "offline"; online wakes it at once', async () => {
    const { server, page, seen, client } = await setUp({ maxBackoffMs: 60_000, intervalMs: 30_000 });
    await server.close();
    page.isOnline = false;
    client.start();
    await waitFor(() => seen.lastState === 'offline', 5_000, 'offline');
    assert.match(seen.states.at(-1)![1] ?? '', /next try in \d+ s/);
    // The network is back (a server on the same port is not guaranteed, so
    // just check that the wake-up polls at once instead of after 15-30 s).
    const requests = seen.requests;
    page.isOnline = true;
    page.wake();
    await waitFor(() => seen.requests === requests + 1, 5_000, 'an immediate poll');
  });
});

describe('ajax-polling client: the page', () => {
  test('hidden: the next poll waits hiddenIntervalMs; shown again: it polls at once', async () => {
    const { server, wire, page, seen, client } = await setUp({ hiddenIntervalMs: 60_000 });
    page.isHidden = true;
    client.start();
    await waitFor(() => seen.lastState === 'open', 5_000, 'first answer');
    await new Promise((resolve) => setTimeout(resolve, 300)); // fifteen ordinary intervals
    assert.equal(wire.polls.length, 1, 'no second poll while hidden');
    server.log.publish('while you were away');
    page.isHidden = false;
    page.wake();
    await waitFor(() => seen.ids.length === 1, 5_000, 'the message, at once');
  });

  test('errors while hidden wait at least the hidden interval', async () => {
    const { wire, page, seen, client } = await setUp({ hiddenIntervalMs: 45_000 });
    wire.fail = () => ({ status: 500 });
    page.isHidden = true;
    client.start();
    await waitFor(() => seen.lastState === 'retrying', 5_000, 'retrying');
    assert.match(seen.states.at(-1)![1] ?? '', /next try in 45 s/);
  });

  test('a wake-up while a request is in flight starts no second one', async () => {
    const { wire, page, client } = await setUp();
    wire.delayMs = 200;
    client.start();
    await waitFor(() => wire.inFlight === 1, 5_000, 'a request in flight');
    page.wake();
    page.wake();
    await waitFor(() => wire.polls.filter((poll) => poll.status !== undefined).length >= 2, 5_000, 'two answers');
    assert.equal(wire.maxInFlight, 1);
  });

  test('stop() aborts the request in flight, says "closed", and polls no more; start() twice is one loop', async () => {
    const { wire, page, seen, client } = await setUp();
    wire.delayMs = 200;
    client.start();
    client.start();
    await waitFor(() => wire.inFlight === 1, 5_000, 'a request in flight');
    client.stop();
    client.stop();
    assert.equal(seen.lastState, 'closed');
    assert.equal(page.wakers.size, 0, 'wake-up listeners removed');
    const polls = wire.polls.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(wire.polls.length, polls);
    assert.equal(seen.states.filter(([state]) => state === 'retrying').length, 0, 'an abort by stop() is no error');
    page.wake(); // a stale wake-up after stop does nothing
    assert.equal(wire.polls.length, polls);
  });
});

test('stop() from inside the observer ends the loop: "closed" stays the last state', async () => {
  const { server, wire, seen } = await setUp();
  server.log.publish('last words');
  const client = createClient(
    new URL(server.url),
    {
      message: (message) => {
        seen.message(message);
        client.stop();
      },
      gap: seen.gap,
      state: seen.state,
    },
    { intervalMs: 20, page: new FakePage() },
  );
  client.start();
  await waitFor(() => seen.ids.length === 1, 5_000, 'the message');
  const polls = wire.polls.length;
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(seen.lastState, 'closed');
  assert.equal(wire.polls.length, polls, 'no poll after stop()');
});

describe('intervalFromQuery', () => {
  test('reads ?interval=ms, with a floor; anything else is the default', () => {
    assert.equal(intervalFromQuery('?interval=250'), 250);
    assert.equal(intervalFromQuery('?interval=1'), MIN_INTERVAL_MS);
    for (const search of ['', '?interval=', '?interval=abc', '?interval=-5', '?interval=1e3', '?interval=99999999']) {
      assert.equal(intervalFromQuery(search), undefined, search);
    }
  });
});
