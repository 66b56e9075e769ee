// browser.ts's client run in Node against the real server: the npm
// `eventsource` package stands in for the browser's EventSource (same WHATWG
// algorithm: automatic reconnects with Last-Event-ID, CLOSED after a non-200),
// and a fake document/window/navigator carries the wake-up signals. What only
// a real browser shows (the page, text-not-HTML, a server restart) is in
// chromium.test.ts.
import { test, describe, afterEach, before } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { EventSource } from 'eventsource';
import { startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { TechniqueContext } from '../shared/technique.ts';
import type { ChatMessage } from '../shared/browser/messages.ts';
import type { ConnectionState } from '../shared/browser/client.ts';
import createSse from './server.ts';
import { createClient, parsePing, type SseClientOptions } from './browser.ts';

const TIMEOUT = 10_000;

/** The browser globals browser.ts touches, faked just enough. */
const page = {
  document: Object.assign(new EventTarget(), { visibilityState: 'visible' }),
  window: new EventTarget(),
  navigator: { onLine: true },
};

before(() => {
  Object.assign(globalThis, { EventSource, document: page.document, window: page.window });
  Object.defineProperty(globalThis, 'navigator', { value: page.navigator, configurable: true, writable: true });
});

class Recorder {
  messages: ChatMessage[] = [];
  gaps: [number, number][] = [];
  states: [ConnectionState, string | undefined][] = [];
  pings: string[] = [];
  requests = 0;
  bytes = 0;
  observer = {
    message: (message: ChatMessage) => void this.messages.push(message),
    gap: (missed: number, after: number) => void this.gaps.push([missed, after]),
    state: (state: ConnectionState, detail?: string) => void this.states.push([state, detail]),
    request: () => void this.requests++,
    bytes: (count: number) => void (this.bytes += count),
  };
  get ids(): number[] {
    return this.messages.map((message) => message.id);
  }
  get lastState(): ConnectionState | undefined {
    return this.states.at(-1)?.[0];
  }
}

/** The real technique, with a switch to refuse /events (as a proxy's 503 would) and a record of what was asked. */
interface Wire {
  refuse: number;
  asked: { url: string; lastEventId: string | undefined }[];
  sockets: Set<Socket>;
}

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
  page.navigator.onLine = true;
});

async function setUp(options: SseClientOptions = {}, config: { backlog?: number } = {}) {
  const wire: Wire = { refuse: 0, asked: [], sockets: new Set() };
  const create = (context: TechniqueContext) => {
    const sse = createSse(context);
    return {
      ...sse,
      handle: (req: Parameters<typeof sse.handle>[0], res: Parameters<typeof sse.handle>[1]) => {
        if (req.url?.startsWith('/events')) {
          wire.asked.push({ url: req.url, lastEventId: req.headers['last-event-id'] as string | undefined });
          if (wire.refuse > 0) {
            wire.refuse--;
            res.writeHead(503, { 'Content-Type': 'text/plain' }).end('down for a moment\n');
            return;
          }
        }
        sse.handle(req, res);
      },
    };
  };
  const server: RunningServer = await startTestServer(create, config);
  server.server.on('connection', (socket) => {
    wire.sockets.add(socket);
    socket.on('close', () => wire.sockets.delete(socket));
  });
  cleanup.push(() => server.close());
  const seen = new Recorder();
  const client = createClient(new URL(server.url), seen.observer, {
    onPing: (time) => seen.pings.push(time),
    backoff: { initialMs: 20, maxMs: 100 },
    ...options,
  });
  cleanup.push(() => client.stop());
  return { server, wire, seen, client };
}

describe('sse client: receiving', () => {
  test('the backlog, then live messages, once each and in order; pings; requests and bytes counted', async () => {
    const { server, wire, seen, client } = await setUp();
    server.log.publish('one');
    server.log.publish('two');
    client.start();
    client.start(); // twice is harmless
    await waitFor(() => seen.ids.length === 2 && seen.pings.length >= 1, TIMEOUT, 'the backlog and a ping');
    assert.equal(seen.lastState, 'open');
    server.log.publish('three');
    await waitFor(() => seen.ids.length === 3, TIMEOUT, 'the live message');
    assert.deepEqual(seen.messages.map((message) => message.text), ['one', 'two', 'three']);
    assert.equal(client.lastId, 3);
    assert.equal(wire.asked[0]!.url, '/events', 'a first connection asks for the whole backlog');
    assert.equal(seen.requests, 1);
    assert.ok(seen.bytes > 3 * '{"id":1,"text":"one","time":0}'.length, `${seen.bytes} bytes`);
    assert.ok(!Number.isNaN(Date.parse(seen.pings[0]!)));
    assert.deepEqual(seen.gaps, []);
  });

  test('a gap is reported when the backlog no longer holds what was missed', async () => {
    const { server, seen, client } = await setUp({}, { backlog: 2 });
    for (let n = 1; n <= 5; n++) server.log.publish(`m${n}`);
    client.start();
    await waitFor(() => seen.ids.length === 2, TIMEOUT, 'what the backlog holds');
    assert.deepEqual(seen.ids, [4, 5]);
    assert.deepEqual(seen.gaps, [[3, 0]]);
  });

  test('options.since starts after that id, sent as ?since=', async () => {
    const { server, wire, seen, client } = await setUp({ since: 2 });
    for (let n = 1; n <= 3; n++) server.log.publish(`m${n}`);
    client.start();
    await waitFor(() => seen.ids.length === 1, TIMEOUT, 'message 3');
    assert.equal(wire.asked[0]!.url, '/events?since=2');
    assert.deepEqual(seen.ids, [3]);
  });

  test('data that is not a message or a ping is ignored', () => {
    assert.equal(parsePing('{"time":"12:00"}'), '12:00');
    for (const data of ['', 'not json', 'null', '{"time":5}', '[]']) assert.equal(parsePing(data), undefined, data);
  });
});

describe('sse client: failures', () => {
  test('a dropped connection: the EventSource reconnects by itself with Last-Event-ID; nothing lost or doubled', async () => {
    const { server, wire, seen, client } = await setUp();
    server.log.publish('one');
    client.start();
    await waitFor(() => seen.ids.length === 1, TIMEOUT, 'the first message');
    for (const socket of wire.sockets) socket.destroy();
    await waitFor(() => seen.lastState === 'retrying', TIMEOUT, 'retrying');
    assert.match(seen.states.at(-1)![1] ?? '', /reconnects by itself/);
    server.log.publish('two');
    await waitFor(() => seen.ids.length === 2 && seen.lastState === 'open', TIMEOUT, 'the resume');
    assert.deepEqual(seen.ids, [1, 2]);
    assert.equal(wire.asked.at(-1)!.lastEventId, '1');
  });

  test('a non-200 answer: the EventSource gives up (CLOSED); the client reopens with ?since= after a back-off', async () => {
    const { server, wire, seen, client } = await setUp();
    server.log.publish('one');
    client.start();
    await waitFor(() => seen.ids.length === 1, TIMEOUT, 'the first message');
    wire.refuse = 2;
    for (const socket of wire.sockets) socket.destroy();
    server.log.publish('two');
    await waitFor(() => seen.ids.length === 2, TIMEOUT, 'the message after the refusals');
    const refusals = seen.states.filter(([state, detail]) => state === 'retrying' && /refused/.test(detail ?? ''));
    assert.ok(refusals.length >= 1, JSON.stringify(seen.states));
    assert.match(refusals[0]![1]!, /again in \d+ s/);
    assert.equal(wire.asked.at(-1)!.url, '/events?since=1', 'a new EventSource says where it was in the URL');
    assert.equal(seen.lastState, 'open');
    assert.deepEqual(seen.ids, [1, 2]);
  });

  test('waking up (tab visible again) reopens a closed stream at once instead of waiting out the back-off', async () => {
    const { server, wire, seen, client } = await setUp({ backoff: { initialMs: 60_000, maxMs: 60_000 } });
    wire.refuse = 1;
    client.start();
    await waitFor(() => seen.lastState === 'retrying', TIMEOUT, 'the refusal');
    server.log.publish('hello');
    page.document.dispatchEvent(new Event('visibilitychange'));
    await waitFor(() => seen.ids.length === 1 && seen.lastState === 'open', TIMEOUT, 'the reopen');
  });

  test('offline: a refusal while navigator.onLine is false shows "offline"; `online` reopens it', async () => {
    const { server, wire, seen, client } = await setUp({ backoff: { initialMs: 60_000, maxMs: 60_000 } });
    wire.refuse = 1;
    page.navigator.onLine = false;
    client.start();
    await waitFor(() => seen.lastState === 'offline', TIMEOUT, 'offline');
    page.navigator.onLine = true;
    server.log.publish('back');
    page.window.dispatchEvent(new Event('online'));
    await waitFor(() => seen.ids.length === 1 && seen.lastState === 'open', TIMEOUT, 'the reopen');
  });

  test('cut() drops the stream like a network failure and the client comes back by itself; stop() ends it all', async () => {
    const { server, wire, seen, client } = await setUp();
    server.log.publish('one');
    client.start();
    await waitFor(() => seen.ids.length === 1 && seen.lastState === 'open', TIMEOUT, 'open');
    client.cut();
    assert.equal(seen.lastState, 'retrying');
    assert.match(seen.states.at(-1)![1] ?? '', /connection cut/);
    server.log.publish('two');
    await waitFor(() => seen.ids.length === 2 && seen.lastState === 'open', TIMEOUT, 'back');
    assert.equal(wire.asked.at(-1)!.url, '/events?since=1');
    page.document.dispatchEvent(new Event('visibilitychange')); // open: waking changes nothing
    client.stop();
    assert.equal(seen.lastState, 'closed');
    const asked = wire.asked.length;
    client.cut(); // after stop: harmless
    page.window.dispatchEvent(new Event('online')); // no longer listening
    server.log.publish('three');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(wire.asked.length, asked);
    assert.deepEqual(seen.ids, [1, 2]);
    await waitFor(() => server.log.subscriberCount === 0, TIMEOUT, 'the server to let go');
  });
});
