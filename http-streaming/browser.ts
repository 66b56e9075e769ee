/**
 * The HTTP-streaming client: three ways to read one never-ending response, and
 * the loop around them that every push client needs (last id, gaps, backoff,
 * a watchdog, reconnecting on wake).
 *
 * - `fetch`: `fetch()` + `response.body.getReader()`, bytes as they arrive,
 *   split into lines by NdjsonDecoder. The modern `readyState 3`: it sees only
 *   the new bytes and keeps nothing, so one connection can live for days.
 * - `xhr`: the documents' `onreadystatechange` watching `readyState === 3`
 *   (LOADING), taking only the part of `responseText` past what it has read.
 *   `responseText` keeps *everything* received, so the page's memory grows with
 *   the stream; this reader reconnects (with `since`) once it passes a bound.
 * - `iframe`: the forever frame. A hidden iframe loads `iframe?since=N`, a page
 *   that never finishes, whose `<script>` chunks call `onStreamMessage` here
 *   (forever-frame.ts has the contract). It tells us nothing about HTTP errors,
 *   and when its response breaks off (a cut, a server that died) Chromium
 *   fires no `load` and no `error`: the document just stays "loading". Only a
 *   clean end fires `load`; a broken one is caught by the watchdog, fed by the
 *   frame's heartbeats.
 *
 * Around any of them, StreamingClient: every message goes through Delivery
 * (exactly once, in id order, a gap said out loud); a reconnect asks
 * `since=<last id>`; failures wait a jittered, growing delay (Backoff); a
 * connection silent for two of the heartbeats the server says it sends (the
 * `Heartbeat-Ms` header, or the frame's hello) is presumed dead and replaced;
 * a tab coming back (`visibilitychange`,
 * `online`) reconnects at once instead of waiting out a delay that timers
 * throttled while it was hidden.
 *
 * No side effects at import; URLs relative to `base`.
 */
import { Backoff } from '../shared/browser/backoff.ts';
import { ChatView, PublishForm } from '../shared/browser/chat-view.ts';
import {
  Delivery,
  onWake,
  sleep,
  type ClientObserver,
  type ClientOptions,
  type PushClient,
} from '../shared/browser/client.ts';
import { isChatMessage, type ChatMessage } from '../shared/browser/messages.ts';
import { FRAME_CALLBACK } from './forever-frame.ts';
import { HEARTBEAT_HEADER, LineSplitter, NdjsonDecoder, parseLine } from './ndjson.ts';

export { ChatView, PublishForm };

export const READERS = ['fetch', 'xhr', 'iframe'] as const;
export type ReaderName = (typeof READERS)[number];

/**
 * The watchdog before the server has said how often it sends a heartbeat (a
 * first connection that has not opened yet, a server that does not say): three
 * heartbeats at the contract's default HEARTBEAT_MS (15 s).
 */
export const WATCHDOG_MS = 45_000;
/**
 * Beyond two heartbeat intervals, time for one delayed by a busy server, a slow
 * network or a throttled timer, before a silent connection counts as dead.
 */
export const WATCHDOG_SLACK_MS = 2_000;

/** The watchdog for a server that sends a heartbeat every `heartbeatMs`: two missed, plus slack. */
export function watchdogFor(heartbeatMs: number): number {
  return 2 * heartbeatMs + WATCHDOG_SLACK_MS;
}

/** Largest heartbeat interval believed (a day): a bigger one would all but switch the watchdog off. */
const MAX_HEARTBEAT_MS = 24 * 60 * 60 * 1000;

/**
 * The heartbeat interval a server announced (the `Heartbeat-Ms` header as a
 * string, or the frame's hello as a number): a positive integer of
 * milliseconds, or undefined for anything else (absent, garbled, absurd).
 */
export function parseHeartbeatMs(value: unknown): number | undefined {
  const ms = typeof value === 'string' && /^[0-9]{1,9}$/.test(value.trim()) ? Number(value) : value;
  return typeof ms === 'number' && Number.isSafeInteger(ms) && ms > 0 && ms <= MAX_HEARTBEAT_MS ? ms : undefined;
}
/**
 * The XHR reader reconnects once `responseText` holds this many characters
 * (about 2 MiB of memory as UTF-16), rather than hold a day of chat in one string.
 */
export const XHR_MAX_CHARS = 1024 * 1024;

export interface StreamingOptions extends ClientOptions {
  /** Which reader; `fetch` by default. */
  reader?: ReaderName;
  /**
   * No byte for this long and the connection is presumed dead. Fixed when
   * given; by default derived from the server's heartbeat (watchdogFor).
   */
  watchdogMs?: number;
  /** The XHR reader's bound, in characters of responseText. */
  xhrMaxChars?: number;
  backoff?: Backoff;
}

/** What a reader reports while it reads one response. */
export interface ReaderEvents {
  /**
   * The stream is really open: a 200 of the right kind, or the frame said hello.
   * `heartbeatMs`: the interval the server announced, when it did.
   */
  open(heartbeatMs?: number): void;
  /** A message, possibly one already seen (a replay overlapping what came live). */
  message(message: ChatMessage): void;
  /** Any sign of life: a heartbeat, bytes. Feeds the watchdog. */
  alive(bytes: number): void;
}

/**
 * One response, read until it ends. Resolves `'ended'` when the server ended
 * it cleanly, `'rotate'` when the reader chose to reconnect at once (the XHR's
 * bound); rejects on any failure, and when `signal` aborts.
 */
export type Reader = (base: URL, since: number, events: ReaderEvents, signal: AbortSignal, options: ReaderOptions) => Promise<'ended' | 'rotate'>;

export interface ReaderOptions {
  xhrMaxChars: number;
}

/** A line from /stream: a heartbeat, a message, or a reason to give the stream up. */
function deliverLine(line: string, events: ReaderEvents): void {
  const parsed = parseLine(line);
  if (parsed.kind === 'message') events.message(parsed.message);
  else if (parsed.kind === 'invalid') throw new Error(`not a message line: ${parsed.line.slice(0, 60)}`);
}

function streamUrl(base: URL, path: 'stream' | 'iframe', since: number): URL {
  const url = new URL(path, base);
  url.searchParams.set('since', String(since));
  return url;
}

const utf8 = new TextEncoder();

/** fetch + ReadableStream: the modern readyState 3. */
export const readWithFetch: Reader = async (base, since, events, signal) => {
  const response = await fetch(streamUrl(base, 'stream', since), {
    signal,
    cache: 'no-store',
    headers: { Accept: 'application/x-ndjson' },
  });
  if (response.status !== 200 || !response.body) {
    throw new Error(`HTTP ${response.status}: ${(await response.text()).trim().slice(0, 100)}`);
  }
  events.open(parseHeartbeatMs(response.headers.get(HEARTBEAT_HEADER)));
  const reader = response.body.getReader();
  const decoder = new NdjsonDecoder();
  for (;;) {
    // Each read() resolves with whatever bytes arrived: half a line, or ten lines.
    const { done, value } = await reader.read();
    if (done) break;
    events.alive(value.byteLength);
    for (const line of decoder.push(value)) deliverLine(line, events);
  }
  if (decoder.end() !== undefined) throw new Error('the stream ended in the middle of a line');
  return 'ended';
};

/** The documents' XHR, read at every readystatechange of readyState 3 (LOADING). */
export const readWithXhr: Reader = (base, since, events, signal, { xhrMaxChars }) =>
  new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const splitter = new LineSplitter();
    /** How much of responseText has been read already. */
    let seen = 0;
    let settled = false;
    const settle = (finish: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      xhr.onreadystatechange = null; // abort() below fires it once more, synchronously
      xhr.abort();
      finish();
    };
    const onAbort = (): void => settle(() => reject(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });

    xhr.onreadystatechange = () => {
      // 2 HEADERS_RECEIVED: the status is known. A network error jumps to 4 with status 0.
      if (xhr.readyState < 2) return;
      if (xhr.status !== 200) {
        if (xhr.readyState < 4) return; // an error answer is short: wait for its text
        const detail = xhr.status === 0 ? 'network error' : `HTTP ${xhr.status}: ${xhr.responseText.trim().slice(0, 100)}`;
        return settle(() => reject(new Error(detail)));
      }
      if (xhr.readyState === 2) return events.open(parseHeartbeatMs(xhr.getResponseHeader(HEARTBEAT_HEADER)));
      // 3 LOADING, fired again as more arrives (at most every 50 ms, XHR §4.7), and 4 DONE.
      // responseText is everything so far; only the part after `seen` is new.
      const text = xhr.responseText;
      const fresh = text.slice(seen);
      seen = text.length;
      try {
        if (fresh) events.alive(utf8.encode(fresh).byteLength);
        for (const line of splitter.push(fresh)) deliverLine(line, events);
      } catch (error) {
        return settle(() => reject(error));
      }
      if (xhr.readyState === 4) {
        const rest = splitter.end();
        return settle(() => (rest === undefined ? resolve('ended') : reject(new Error('the stream ended in the middle of a line'))));
      }
      // The reason for the bound: the browser will not let go of what responseText holds.
      if (seen > xhrMaxChars && splitter.pendingLength === 0) settle(() => resolve('rotate'));
    };
    xhr.open('GET', streamUrl(base, 'stream', since));
    xhr.setRequestHeader('Accept', 'application/x-ndjson');
    xhr.send();
  });

type FrameHandler = (message: unknown, hello: unknown) => void;
/** Frames reading right now, by their window: one global callback serves them all. */
const frames = new Map<Window, FrameHandler>();

/** `window.onStreamMessage(source, message, hello)`: the parent's side of the forever-frame contract. */
function dispatchFrameCall(source: unknown, message: unknown, hello: unknown): void {
  frames.get(source as Window)?.(message, hello);
}

/**
 * Resolves once the page has finished loading. A frame that never finishes
 * loading holds its parent's `load` event back for as long as it lives (the
 * endless spinner of early Comet), so the first frame waits for it.
 */
function pageLoaded(signal: AbortSignal): Promise<void> {
  if (document.readyState === 'complete') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (): void => {
      window.removeEventListener('load', done);
      signal.removeEventListener('abort', done);
      if (signal.aborted) reject(signal.reason);
      else resolve();
    };
    window.addEventListener('load', done);
    signal.addEventListener('abort', done);
  });
}

/** The forever frame: a hidden iframe whose never-ending page calls onStreamMessage. */
export const readWithIframe: Reader = async (base, since, events, signal) => {
  await pageLoaded(signal);
  return new Promise((resolve, reject) => {
    (window as unknown as Record<string, unknown>)[FRAME_CALLBACK] = dispatchFrameCall;
    const iframe = document.createElement('iframe');
    iframe.hidden = true;
    iframe.title = 'message stream';
    iframe.tabIndex = -1;
    // A new iframe per connection rather than a new src: navigating an existing
    // frame adds a session-history entry, and the back button would walk them.
    iframe.src = streamUrl(base, 'iframe', since).href;
    let opened = false;
    let settled = false;
    const settle = (finish: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      frames.delete(frameWindow);
      iframe.remove(); // ends the request
      finish();
    };
    const onAbort = (): void => settle(() => reject(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    // `load` means the document is complete: the server ended it (shutdown), or
    // it was never a stream (an error page, a refused connection). An iframe
    // reports no HTTP status, so "did it say hello first" is all we can tell.
    // A response that breaks off after the hello (the server cut us, or died)
    // fires nothing at all in Chromium: the watchdog replaces that one.
    iframe.addEventListener('load', () =>
      settle(() => (opened ? resolve('ended') : reject(new Error('the frame loaded without opening a stream')))),
    );
    document.body.append(iframe);
    const frameWindow = iframe.contentWindow!; // the same WindowProxy across the frame's navigations
    frames.set(frameWindow, (message, hello) => {
      if (message === null) {
        // The first p(null, hello) is the hello, the others heartbeats.
        if (!opened) events.open(parseHeartbeatMs((hello as { heartbeatMs?: unknown } | undefined)?.heartbeatMs));
        opened = true;
        return events.alive(0);
      }
      if (!isChatMessage(message)) return settle(() => reject(new Error('the frame sent something that is not a message')));
      // No byte count from inside a frame: the message's JSON is a fair estimate.
      events.alive(utf8.encode(JSON.stringify(message)).byteLength);
      events.message(message);
    });
  });
};

const READER_FUNCTIONS: Record<ReaderName, Reader> = { fetch: readWithFetch, xhr: readWithXhr, iframe: readWithIframe };

/**
 * The loop around one reader: connect with `since`, read until the response
 * ends or fails, wait if it failed, connect again. One connection at a time.
 */
export class StreamingClient implements PushClient {
  readonly #base: URL;
  readonly #observer: ClientObserver;
  readonly #delivery: Delivery;
  readonly #readerName: ReaderName;
  readonly #reader: Reader;
  /** The watchdog the caller fixed, if it did. */
  readonly #fixedWatchdogMs: number | undefined;
  /** The heartbeat interval the server last announced. */
  #heartbeatMs: number | undefined;
  readonly #readerOptions: ReaderOptions;
  readonly #backoff: Backoff;
  #running = false;
  /** Aborts the connection in progress (stop, cut, watchdog, wake). */
  #connection: AbortController | undefined;
  /** Aborts the wait between two connections (stop, wake). */
  #pause: AbortController | undefined;
  #lastSignOfLife = 0;
  #stopWake: (() => void) | undefined;

  constructor(base: URL, observer: ClientObserver, options: StreamingOptions = {}) {
    this.#base = base;
    this.#observer = observer;
    this.#delivery = new Delivery(observer, options.since ?? 0);
    this.#readerName = options.reader ?? 'fetch';
    this.#reader = READER_FUNCTIONS[this.#readerName];
    this.#fixedWatchdogMs = options.watchdogMs;
    this.#readerOptions = { xhrMaxChars: options.xhrMaxChars ?? XHR_MAX_CHARS };
    this.#backoff = options.backoff ?? new Backoff({ initialMs: 500, maxMs: 15_000 });
  }

  get lastId(): number {
    return this.#delivery.lastId;
  }

  get reader(): ReaderName {
    return this.#readerName;
  }

  /** How long a connection may stay silent: fixed, else two of the server's heartbeats, else WATCHDOG_MS. */
  get watchdogMs(): number {
    if (this.#fixedWatchdogMs !== undefined) return this.#fixedWatchdogMs;
    return this.#heartbeatMs === undefined ? WATCHDOG_MS : watchdogFor(this.#heartbeatMs);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopWake = onWake(() => this.#wake());
    void this.#loop();
  }

  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#stopWake?.();
    this.#connection?.abort(new Error('stopped'));
    this.#pause?.abort();
    this.#observer.state('closed');
  }

  cut(): void {
    this.#connection?.abort(new Error('cut'));
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      const outcome = await this.#connect();
      if (!this.#running) return;
      if (outcome === 'rotate') continue; // a planned reconnect: at once
      const delay = this.#backoff.next();
      const why = outcome === 'ended' ? 'the server ended the stream' : outcome.message;
      this.#observer.state(navigator.onLine === false ? 'offline' : 'retrying', `${why}; again in ${Math.round(delay / 100) / 10} s`);
      this.#pause = new AbortController();
      await sleep(delay, this.#pause.signal);
      this.#pause = undefined;
    }
  }

  /** One connection, from request to end; never throws. */
  async #connect(): Promise<'ended' | 'rotate' | Error> {
    const connection = new AbortController();
    this.#connection = connection;
    this.#observer.state('connecting');
    this.#observer.request?.();
    // The watchdog: re-armed by every sign of life, fires after watchdogMs of silence.
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const arm = (): void => {
      this.#lastSignOfLife = Date.now();
      clearTimeout(watchdog);
      const ms = this.watchdogMs;
      watchdog = setTimeout(() => connection.abort(new Error(`nothing received for ${ms / 1000} s`)), ms);
    };
    const events: ReaderEvents = {
      open: (heartbeatMs) => {
        // Kept for the next connections too: it also bounds how long connecting may take.
        if (heartbeatMs !== undefined) this.#heartbeatMs = heartbeatMs;
        this.#backoff.reset();
        this.#observer.state('open', `${this.#readerName} reader`);
        arm();
      },
      message: (message) => {
        arm();
        this.#delivery.receive(message);
      },
      alive: (bytes) => {
        arm();
        if (bytes > 0) this.#observer.bytes?.(bytes);
      },
    };
    arm(); // also bounds how long connecting may take
    try {
      return await this.#reader(this.#base, this.#delivery.lastId, events, connection.signal, this.#readerOptions);
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    } finally {
      clearTimeout(watchdog);
      this.#connection = undefined;
    }
  }

  /**
   * The tab is visible again, or the network is back: timers were throttled or
   * frozen meanwhile. Reconnect now if waiting; replace a connection that has
   * been silent for half the watchdog, a heartbeat or more (likely dead after a sleep).
   */
  #wake(): void {
    if (this.#pause) this.#pause.abort();
    else if (this.#connection && Date.now() - this.#lastSignOfLife > this.watchdogMs / 2) {
      this.#connection.abort(new Error('silent while the tab was away'));
    }
  }
}

export function createClient(base: URL, observer: ClientObserver, options?: StreamingOptions): PushClient {
  return new StreamingClient(base, observer, options);
}

/** The reader a page URL asks for (`?reader=xhr`); `fetch` when absent or unknown. */
export function readerFromQuery(search: string): ReaderName {
  const value = new URLSearchParams(search).get('reader');
  return READERS.find((name) => name === value) ?? 'fetch';
}

/**
 * The documents' SubscribePane, streaming: shows every message of the chat in
 * `pane` and the connection state in `status`, through the reader chosen.
 */
export class SubscribePane {
  readonly view: ChatView;
  readonly client: StreamingClient;

  constructor(pane: HTMLElement, status: HTMLElement | null, base: URL, options: StreamingOptions = {}) {
    this.view = new ChatView(pane, status);
    this.client = new StreamingClient(base, this.view.observer(), options);
    this.client.start();
  }
}
