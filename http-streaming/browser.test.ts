// The browser client in Node: the fetch reader and the reconnect loop against
// the real server (Node has fetch and ReadableStream), the XHR and iframe
// readers against small fakes of XMLHttpRequest and the DOM that behave as the
// specs say (abort() fires readystatechange synchronously; a frame's `load`
// comes when its document ends). Chromium runs the real ones: chromium.test.ts.
import { test, describe, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import { Backoff } from '../shared/browser/backoff.ts';
import type { ClientObserver, ConnectionState, PushClient } from '../shared/browser/client.ts';
import type { ChatMessage } from '../shared/browser/messages.ts';
import createHttpStreaming from './server.ts';
import { FRAME_CALLBACK } from './forever-frame.ts';
import {
  createClient,
  parseHeartbeatMs,
  readerFromQuery,
  readWithIframe,
  readWithXhr,
  StreamingClient,
  WATCHDOG_MS,
  watchdogFor,
  type ReaderEvents,
} from './browser.ts';

// ---- The few browser globals the client touches --------------------------------

class FakeIframe extends EventTarget {
  hidden = false;
  title = '';
  tabIndex = 0;
  src = '';
  removed = false;
  readonly contentWindow = { name: 'frame window' };
  remove(): void {
    this.removed = true;
  }
}

const fakeWindow = new EventTarget() as EventTarget & Record<string, unknown>;
const fakeDocument = Object.assign(new EventTarget(), {
  visibilityState: 'visible',
  readyState: 'complete',
  frames: [] as FakeIframe[],
  createElement(tag: string) {
    assert.equal(tag, 'iframe');
    return new FakeIframe();
  },
  body: {
    append(frame: FakeIframe) {
      fakeDocument.frames.push(frame);
    },
  },
});
const fakeNavigator = { onLine: true };
Object.assign(globalThis, { window: fakeWindow, document: fakeDocument, navigator: fakeNavigator });

/** XMLHttpRequest as far as the reader uses it, driven by the test. */
class FakeXhr {
  static instances: FakeXhr[] = [];
  readyState = 0;
  status = 0;
  responseText = '';
  url = '';
  requestHeaders: Record<string, string> = {};
  aborted = false;
  onreadystatechange: (() => void) | null = null;
  responseHeaders: Record<string, string> = {};
  constructor() {
    FakeXhr.instances.push(this);
  }
  open(method: string, url: URL): void {
    assert.equal(method, 'GET');
    this.url = url.href;
    this.readyState = 1;
  }
  setRequestHeader(name: string, value: string): void {
    this.requestHeaders[name] = value;
  }
  send(): void {}
  getResponseHeader(name: string): string | null {
    return this.readyState >= 2 ? (this.responseHeaders[name.toLowerCase()] ?? null) : null;
  }
  /** XHR §4.5.9: abort() runs the request-error steps (state DONE, readystatechange) synchronously. */
  abort(): void {
    this.aborted = true;
    if (this.readyState >= 1 && this.readyState < 4) {
      this.readyState = 4;
      this.status = 0;
      this.onreadystatechange?.();
    }
    this.readyState = 0;
  }
  headers(status: number, headers: Record<string, string> = {}): void {
    this.readyState = 2;
    this.status = status;
    this.responseHeaders = headers;
    this.onreadystatechange?.();
  }
  receive(text: string): void {
    this.readyState = 3;
    this.responseText += text;
    this.onreadystatechange?.();
  }
  finish(text = ''): void {
    this.responseText += text;
    this.readyState = 4;
    this.onreadystatechange?.();
  }
}
Object.assign(globalThis, { XMLHttpRequest: FakeXhr });

// ---- Helpers ----------------------------------------------------------------------

interface Recorder extends ClientObserver {
  messages: ChatMessage[];
  gaps: [number, number][];
  states: { state: ConnectionState; detail?: string }[];
  requestCount: number;
  byteCount: number;
  readonly state_: ConnectionState | undefined;
}

function recorder(): Recorder {
  const r: Recorder = {
    messages: [],
    gaps: [],
    states: [],
    requestCount: 0,
    byteCount: 0,
    get state_() {
      return r.states.at(-1)?.state;
    },
    message: (message) => r.messages.push(message),
    gap: (missed, after) => r.gaps.push([missed, after]),
    state: (state, detail) => r.states.push({ state, detail }),
    request: () => r.requestCount++,
    bytes: (count) => (r.byteCount += count),
  };
  return r;
}

function eventsRecorder(): ReaderEvents & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    open: (heartbeatMs) => log.push(heartbeatMs === undefined ? 'open' : `open ${heartbeatMs}`),
    message: (message) => log.push(`message ${message.id} ${message.text}`),
    alive: (bytes) => log.push(`alive ${bytes}`),
  };
}

// A test that fails half-way must not leave a client reconnecting forever (the runner would never exit).
let clients: PushClient[] = [];
afterEach(() => {
  for (const client of clients) client.stop();
  clients = [];
});
function track<T extends PushClient>(client: T): T {
  clients.push(client);
  return client;
}

const ids = (r: Recorder): number[] => r.messages.map((message) => message.id);
const fastBackoff = (): Backoff => new Backoff({ initialMs: 20, maxMs: 100 });

/**
 * A server that answers every request with `body` (and ends), to feed the
 * reader bad streams; or, with `hang`, writes it and then stays silent for good
 * (a dead connection that looks alive). Counts the requests.
 */
async function cannedServer(
  body: string,
  status = 200,
  { headers = {}, hang = false }: { headers?: Record<string, string>; hang?: boolean } = {},
): Promise<{ url: URL; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = http.createServer((_, res) => {
    requests++;
    res.writeHead(status, { 'Content-Type': 'application/x-ndjson', ...headers });
    if (hang) res.write(body);
    else res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}/`),
    requests: () => requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---- The fetch reader and the loop, against the real server ---------------------

describe('StreamingClient with the fetch reader', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createHttpStreaming, { heartbeatMs: 60_000, backlog: 5 });
  });
  after(() => server.close());

  test('gets the backlog, then live messages, each once, counting requests and bytes', async () => {
    const first = server.log.publish('one').id;
    const observer = recorder();
    const client = track(createClient(new URL(server.url), observer, { since: first - 1, backoff: fastBackoff() }));
    client.start();
    client.start(); // a second start is ignored
    await waitFor(() => observer.messages.length === 1, 5_000, 'replay');
    assert.equal(observer.state_, 'open');
    assert.equal(observer.states.find((s) => s.state === 'open')?.detail, 'fetch reader');
    server.log.publish('two');
    await waitFor(() => observer.messages.length === 2, 5_000, 'live');
    assert.deepEqual(ids(observer), [first, first + 1]);
    assert.equal(client.lastId, first + 1);
    assert.equal(observer.requestCount, 1);
    assert.ok(observer.byteCount > 40);
    client.stop();
    client.stop();
    assert.equal(observer.state_, 'closed');
    await waitFor(() => server.log.subscriberCount === 0, 5_000, 'stream closed');
  });

  test('cut() drops the connection; it reconnects with since and nothing comes twice', async () => {
    const observer = recorder();
    const client = track(new StreamingClient(new URL(server.url), observer, { since: server.log.lastId, backoff: fastBackoff() }));
    client.start();
    await waitFor(() => observer.state_ === 'open', 5_000, 'open');
    const a = server.log.publish('a').id;
    await waitFor(() => observer.messages.length === 1, 5_000, 'a');
    client.cut();
    await waitFor(() => observer.requestCount === 2 && observer.state_ === 'open', 5_000, 'reconnected');
    assert.ok(observer.states.some((s) => s.state === 'retrying' && /cut/.test(s.detail ?? '')));
    server.log.publish('b');
    await waitFor(() => observer.messages.length === 2, 5_000, 'b');
    assert.deepEqual(ids(observer), [a, a + 1]);
    client.stop();
  });

  test('a backlog that rolled over is reported as a gap before the next message', async () => {
    const observer = recorder();
    const start = server.log.lastId;
    for (let i = 0; i < 8; i++) server.log.publish(`m${i}`); // backlog 5: the first 3 are gone
    const client = track(createClient(new URL(server.url), observer, { since: start, backoff: fastBackoff() }));
    client.start();
    await waitFor(() => observer.messages.length === 5, 5_000, 'what is left');
    assert.deepEqual(observer.gaps, [[3, start]]);
    client.stop();
  });

  test('the watchdog replaces a connection that stays silent', async () => {
    const observer = recorder();
    const client = track(createClient(new URL(server.url), observer, { watchdogMs: 100, backoff: fastBackoff(), since: server.log.lastId }));
    client.start();
    await waitFor(() => observer.requestCount >= 3, 10_000, 'two reconnects');
    assert.ok(observer.states.some((s) => /nothing received for 0.1 s/.test(s.detail ?? '')));
    client.stop();
  });

  test('the watchdog is two of the heartbeats the server announces (Heartbeat-Ms), plus slack', async () => {
    const observer = recorder();
    const client = track(new StreamingClient(new URL(server.url), observer, { since: server.log.lastId, backoff: fastBackoff() }));
    assert.equal(client.watchdogMs, WATCHDOG_MS, 'before the server has said anything');
    client.start();
    await waitFor(() => observer.state_ === 'open', 5_000, 'open');
    assert.equal(client.watchdogMs, watchdogFor(60_000));
    client.stop();

    // A connection that went silent after its headers (a server that died without
    // a FIN reaching us): replaced after 2 × 100 ms + slack, not after 45 s.
    const silent = await cannedServer('', 200, { headers: { 'Heartbeat-Ms': '100' }, hang: true });
    const second = recorder();
    const other = track(new StreamingClient(silent.url, second, { backoff: fastBackoff() }));
    other.start();
    await waitFor(() => silent.requests() >= 2, 10_000, 'replaced by the watchdog');
    assert.equal(other.watchdogMs, watchdogFor(100));
    assert.ok(second.states.some((s) => s.detail?.startsWith(`nothing received for ${watchdogFor(100) / 1000} s`)));
    other.stop();
    await silent.close();
  });

  test('an error answer is shown and retried; the end of the stream (shutdown) too', async () => {
    const observer = recorder();
    const client = track(createClient(new URL('nowhere/', server.url), observer, { backoff: fastBackoff() }));
    client.start();
    await waitFor(() => observer.requestCount >= 2, 5_000, 'retried');
    assert.match(observer.states.find((s) => s.state === 'retrying')?.detail ?? '', /^HTTP 404: Not found.*; again in /);
    client.stop();

    const own = await startTestServer(createHttpStreaming, { heartbeatMs: 60_000 });
    const second = recorder();
    const other = track(createClient(new URL(own.url), second, { backoff: new Backoff({ initialMs: 60_000 }) }));
    other.start();
    await waitFor(() => second.state_ === 'open', 5_000, 'open');
    await own.close();
    await waitFor(() => second.state_ === 'retrying', 5_000, 'retrying');
    assert.match(second.states.at(-1)!.detail!, /the server ended the stream/);
    other.stop();
  });

  test('waking up (online, tab visible) reconnects at once instead of waiting out the delay', async () => {
    const observer = recorder();
    const client = track(createClient(new URL('nowhere/', server.url), observer, { backoff: new Backoff({ initialMs: 60_000 }) }));
    client.start();
    await waitFor(() => observer.state_ === 'retrying', 5_000, 'retrying');
    fakeWindow.dispatchEvent(new Event('online'));
    await waitFor(() => observer.requestCount === 2, 5_000, 'reconnected on online');
    await waitFor(() => observer.state_ === 'retrying', 5_000, 'retrying again');
    fakeDocument.dispatchEvent(new Event('visibilitychange'));
    await waitFor(() => observer.requestCount === 3, 5_000, 'reconnected on visibilitychange');
    client.stop();
    fakeWindow.dispatchEvent(new Event('online'));
    assert.equal(observer.requestCount, 3, 'no listener left after stop');
  });

  test('waking up replaces a connection silent for half the watchdog, and keeps a lively one', async () => {
    const observer = recorder();
    const client = track(createClient(new URL(server.url), observer, { watchdogMs: 6_000, since: server.log.lastId, backoff: fastBackoff() }));
    client.start();
    await waitFor(() => observer.state_ === 'open', 5_000, 'open');
    fakeWindow.dispatchEvent(new Event('online'));
    assert.equal(observer.requestCount, 1, 'just opened: kept');
    await new Promise((resolve) => setTimeout(resolve, 3_200)); // past half the watchdog, well before it
    fakeWindow.dispatchEvent(new Event('online'));
    await waitFor(() => observer.requestCount === 2, 5_000, 'replaced');
    assert.ok(observer.states.some((s) => /silent while the tab was away/.test(s.detail ?? '')));
    client.stop();
  });

  test('offline: a failure while the browser is offline says so', async () => {
    fakeNavigator.onLine = false;
    try {
      const observer = recorder();
      const client = track(createClient(new URL('nowhere/', server.url), observer, { backoff: new Backoff({ initialMs: 60_000 }) }));
      client.start();
      await waitFor(() => observer.state_ === 'offline', 5_000, 'offline');
      client.stop();
    } finally {
      fakeNavigator.onLine = true;
    }
  });

  test('a body that is not NDJSON, or ends inside a line, is given up and retried', async () => {
    for (const [body, reason] of [
      ['{"id":1,"text":"ok"}\nnot json\n', /not a message line: not json/],
      ['{"id":1,"text":"ok"}\n{"id":2,"te', /ended in the middle of a line/],
    ] as const) {
      const canned = await cannedServer(body);
      const observer = recorder();
      const client = track(createClient(canned.url, observer, { backoff: new Backoff({ initialMs: 60_000 }) }));
      client.start();
      await waitFor(() => observer.state_ === 'retrying', 5_000, 'retrying');
      assert.match(observer.states.at(-1)!.detail!, reason);
      assert.deepEqual(ids(observer), [1]);
      client.stop();
      await canned.close();
    }
  });
});

// ---- The XHR reader ----------------------------------------------------------------

describe('readWithXhr: the documents readyState 3 reader', () => {
  const base = new URL('http://example.test/chat/');
  beforeEach(() => (FakeXhr.instances = []));
  const read = (signal = new AbortController().signal, xhrMaxChars = 1_000) => {
    const events = eventsRecorder();
    const done = readWithXhr(base, 7, events, signal, { xhrMaxChars });
    return { events, done, xhr: FakeXhr.instances.at(-1)! };
  };

  test('asks for stream?since=N and reads only the new part of responseText each time, across splits', async () => {
    const { events, done, xhr } = read();
    assert.equal(xhr.url, 'http://example.test/chat/stream?since=7');
    assert.equal(xhr.requestHeaders['Accept'], 'application/x-ndjson');
    xhr.headers(200);
    xhr.receive('{"id":8,"text":"a"}\n{"id":9,');
    xhr.receive('"text":"b"}\n\n');
    xhr.receive('');
    xhr.finish('{"id":10,"text":"é"}\n');
    assert.equal(await done, 'ended');
    assert.deepEqual(events.log, ['open', 'alive 28', 'message 8 a', 'alive 13', 'message 9 b', 'alive 22', 'message 10 é']);
  });

  test('reconnects ("rotate") once responseText passes the bound, at a line boundary', async () => {
    const { done, xhr } = read(undefined, 30);
    xhr.headers(200);
    xhr.receive('{"id":8,"text":"aaaaaaaaaaaaaaaaaaaaaa"}\n{"id":9,');
    xhr.receive('"text":"b"}\n');
    assert.equal(await done, 'rotate');
    assert.equal(xhr.aborted, true);
  });

  test('reads the heartbeat interval from the Heartbeat-Ms header when the headers arrive', async () => {
    const controller = new AbortController();
    const { events, xhr, done } = read(controller.signal);
    xhr.headers(200, { 'heartbeat-ms': '15000' });
    assert.deepEqual(events.log, ['open 15000']);
    controller.abort(new Error('done'));
    await assert.rejects(done, /done/);
  });

  test('a status other than 200, or a network error, rejects with the reason', async () => {
    const notFound = read();
    notFound.xhr.headers(404);
    notFound.xhr.receive('Not ');
    notFound.xhr.finish('found\n');
    await assert.rejects(notFound.done, /HTTP 404: Not found/);

    const network = read();
    network.xhr.headers(200);
    network.xhr.status = 0;
    network.xhr.finish();
    await assert.rejects(network.done, /network error/);
  });

  test('a bad line, or a stream ending inside a line, rejects', async () => {
    const bad = read();
    bad.xhr.headers(200);
    bad.xhr.receive('<html>\n');
    await assert.rejects(bad.done, /not a message line/);

    const cut = read();
    cut.xhr.headers(200);
    cut.xhr.finish('{"id":8');
    await assert.rejects(cut.done, /middle of a line/);
  });

  test('aborting the signal aborts the request once, despite abort() re-entering onreadystatechange', async () => {
    const controller = new AbortController();
    const { done, xhr, events } = read(controller.signal);
    xhr.headers(200);
    controller.abort(new Error('stopped'));
    await assert.rejects(done, /stopped/);
    assert.equal(xhr.aborted, true);
    assert.deepEqual(events.log, ['open']);
  });
});

// ---- The iframe reader ---------------------------------------------------------------

describe('readWithIframe: the forever frame', () => {
  const base = new URL('http://example.test/');
  beforeEach(() => (fakeDocument.frames = []));
  const call = (source: unknown, message: unknown, hello?: unknown): void =>
    (fakeWindow[FRAME_CALLBACK] as (source: unknown, message: unknown, hello: unknown) => void)(source, message, hello);

  test('loads a hidden iframe?since=N; hello, heartbeats and messages arrive through onStreamMessage; its end is the end', async () => {
    const events = eventsRecorder();
    const done = readWithIframe(base, 3, events, new AbortController().signal, { xhrMaxChars: 0 });
    await waitFor(() => fakeDocument.frames.length === 1, 1_000, 'frame');
    const frame = fakeDocument.frames[0]!;
    assert.equal(frame.src, 'http://example.test/iframe?since=3');
    assert.equal(frame.hidden, true);
    call(frame.contentWindow, null, { heartbeatMs: 1_000 });
    call(frame.contentWindow, { id: 4, text: 'x' });
    call({ name: 'another frame' }, { id: 5, text: 'not ours' });
    call(frame.contentWindow, null);
    frame.dispatchEvent(new Event('load'));
    assert.equal(await done, 'ended');
    assert.equal(frame.removed, true);
    assert.deepEqual(events.log, ['open 1000', 'alive 0', 'alive 19', 'message 4 x', 'alive 0']);
    call(frame.contentWindow, { id: 6, text: 'after the end' });
    assert.equal(events.log.length, 5, 'a removed frame is no longer heard');
  });

  test('a frame that loads without saying hello (an error page) is a failure', async () => {
    const done = readWithIframe(base, 0, eventsRecorder(), new AbortController().signal, { xhrMaxChars: 0 });
    await waitFor(() => fakeDocument.frames.length === 1, 1_000, 'frame');
    fakeDocument.frames[0]!.dispatchEvent(new Event('load'));
    await assert.rejects(done, /loaded without opening a stream/);
  });

  test('something that is not a message, or an abort, removes the frame', async () => {
    const done = readWithIframe(base, 0, eventsRecorder(), new AbortController().signal, { xhrMaxChars: 0 });
    await waitFor(() => fakeDocument.frames.length === 1, 1_000, 'frame');
    call(fakeDocument.frames[0]!.contentWindow, { id: 'x' });
    await assert.rejects(done, /not a message/);
    assert.equal(fakeDocument.frames[0]!.removed, true);

    const controller = new AbortController();
    const aborted = readWithIframe(base, 0, eventsRecorder(), controller.signal, { xhrMaxChars: 0 });
    await waitFor(() => fakeDocument.frames.length === 2, 1_000, 'frame');
    controller.abort(new Error('stopped'));
    await assert.rejects(aborted, /stopped/);
    assert.equal(fakeDocument.frames[1]!.removed, true);
  });

  test('waits for the page to finish loading first (a forever frame would hold its load event)', async () => {
    fakeDocument.readyState = 'loading';
    try {
      const done = readWithIframe(base, 0, eventsRecorder(), new AbortController().signal, { xhrMaxChars: 0 });
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(fakeDocument.frames.length, 0, 'not before load');
      fakeWindow.dispatchEvent(new Event('load'));
      await waitFor(() => fakeDocument.frames.length === 1, 1_000, 'frame after load');
      fakeDocument.frames[0]!.dispatchEvent(new Event('load'));
      await assert.rejects(done);

      const controller = new AbortController();
      const aborted = readWithIframe(base, 0, eventsRecorder(), controller.signal, { xhrMaxChars: 0 });
      controller.abort(new Error('stopped before load'));
      await assert.rejects(aborted, /stopped before load/);
    } finally {
      fakeDocument.readyState = 'complete';
    }
  });

  test('a frame that falls silent after its hello (its response broke off: no load event) is replaced within two heartbeats', async () => {
    const observer = recorder();
    const client = track(new StreamingClient(base, observer, { reader: 'iframe', backoff: fastBackoff() }));
    client.start();
    await waitFor(() => fakeDocument.frames.length === 1, 1_000, 'frame');
    call(fakeDocument.frames[0]!.contentWindow, null, { heartbeatMs: 100 });
    call(fakeDocument.frames[0]!.contentWindow, { id: 1, text: 'x' });
    assert.equal(client.watchdogMs, watchdogFor(100));
    await waitFor(() => fakeDocument.frames.length === 2, 10_000, 'a new frame');
    assert.equal(fakeDocument.frames[0]!.removed, true);
    assert.equal(fakeDocument.frames[1]!.src, 'http://example.test/iframe?since=1');
    assert.ok(observer.states.some((s) => s.state === 'retrying' && /nothing received for 2.2 s/.test(s.detail ?? '')));
    client.stop();
  });

  test('StreamingClient drives it like the others', async () => {
    const observer = recorder();
    const client = track(createClient(base, observer, { reader: 'iframe', backoff: fastBackoff() }));
    client.start();
    await waitFor(() => fakeDocument.frames.length === 1, 1_000, 'frame');
    call(fakeDocument.frames[0]!.contentWindow, null);
    call(fakeDocument.frames[0]!.contentWindow, { id: 1, text: 'x' });
    assert.deepEqual(ids(observer), [1]);
    assert.equal(observer.states.find((s) => s.state === 'open')?.detail, 'iframe reader');
    client.stop();
    assert.equal(fakeDocument.frames[0]!.removed, true);
  });
});

describe('parseHeartbeatMs', () => {
  test('a positive integer of milliseconds, as a header string or the hello number; nothing else', () => {
    assert.equal(parseHeartbeatMs('15000'), 15_000);
    assert.equal(parseHeartbeatMs(' 40 '), 40);
    assert.equal(parseHeartbeatMs(1_000), 1_000);
    for (const bad of [null, undefined, '', '0', '-5', '1.5', '15s', '1e3', '99999999999', 0, -1, 1.5, Number.NaN, 2 * 86_400_000, {}]) {
      assert.equal(parseHeartbeatMs(bad), undefined, String(bad));
    }
  });

  test('the watchdog is two intervals plus slack', () => {
    assert.equal(watchdogFor(15_000), 32_000);
  });
});

describe('readerFromQuery', () => {
  test('?reader= picks one of the three; anything else is fetch', () => {
    assert.equal(readerFromQuery('?reader=xhr'), 'xhr');
    assert.equal(readerFromQuery('?reader=iframe&x=1'), 'iframe');
    assert.equal(readerFromQuery(''), 'fetch');
    assert.equal(readerFromQuery('?reader=<script>'), 'fetch');
  });
});
