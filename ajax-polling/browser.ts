/**
 * The ajax-polling client: the documents' `setInterval(() => fetch(url), 1000)`
 * (seed 001), made to survive real use.
 *
 *     request ──► 200 [..] / 304 ──► wait one interval ──► request ──► …
 *                       └─ error ──► wait (backoff) ──────┘
 *
 * What it fixes in the snippet, each marked ① … ⑥ below:
 * ① `setInterval` fires whether or not the last answer came back: on a slow
 *   server requests pile up, and their answers can arrive out of order. Here
 *   the next request is scheduled (`setTimeout`) only after the previous one
 *   has finished, so there is never more than one in flight.
 * ② The snippet asks for everything every time. Here it asks for what is newer
 *   than the last id seen (`since`), so nothing is lost or shown twice.
 * ③ Nothing changed → the server says `304` with no body: the request carries
 *   the last `ETag` in `If-None-Match`. `cache: 'no-store'` keeps the browser's
 *   own HTTP cache out of the way, so the 304 reaches this code (with the
 *   default mode the cache would turn it into a 200 from its copy, and the
 *   page could not count it).
 * ④ On errors the snippet keeps hammering every second. Here the delay grows
 *   (1 s, 2 s, 4 s, … up to 30 s, jittered so many clients do not come back in
 *   step), and resets on the first success.
 * ⑤ A hidden tab polls ten times slower; it polls at once when it is shown
 *   again or the network comes back (`visibilitychange`, `online`).
 * ⑥ It shows its state, and says so when messages were missed (a gap in the
 *   ids: the server's backlog rolled over while this client was away).
 */
import { Delivery, onWake, type ClientObserver, type ClientOptions, type PushClient } from '../shared/browser/client.ts';
import { Backoff } from '../shared/browser/backoff.ts';
import { parseMessageList } from '../shared/browser/messages.ts';
import { ChatView, PublishForm } from '../shared/browser/chat-view.ts';

export { ChatView, PublishForm };

/** The documents' interval. */
export const INTERVAL_MS = 1_000;
/** ⑤ A hidden tab needs no second-by-second updates (browsers throttle its timers anyway). */
export const HIDDEN_SLOWDOWN = 10;
/** ④ The longest wait between attempts after errors. */
export const MAX_BACKOFF_MS = 30_000;
/** A poll is answered at once; one that takes this long is stuck (a dead connection). */
export const REQUEST_TIMEOUT_MS = 10_000;
/** Shortest interval a page URL may ask for (`?interval=`), so nobody polls in a busy loop. */
export const MIN_INTERVAL_MS = 100;

/** What the loop needs to know about the page; the real one by default, a fake in Node tests. */
export interface PageSignals {
  hidden(): boolean;
  online(): boolean;
  /** Calls `wake` when the page is shown again or goes online; returns the remover. */
  onWake(wake: () => void): () => void;
}

const BROWSER_PAGE: PageSignals = {
  hidden: () => document.hidden,
  online: () => navigator.onLine,
  onWake,
};

export interface PollingOptions extends ClientOptions {
  /** Delay between the end of one poll and the start of the next (default INTERVAL_MS). */
  intervalMs?: number;
  /** The same while the page is hidden (default intervalMs × HIDDEN_SLOWDOWN). */
  hiddenIntervalMs?: number;
  /** Cap of the error backoff, which starts at intervalMs (default MAX_BACKOFF_MS). */
  maxBackoffMs?: number;
  requestTimeoutMs?: number;
  /** Jitter source, for tests. */
  random?: () => number;
  page?: PageSignals;
}

/** Why a poll failed, for the state line. */
class PollError extends Error {
  constructor(
    message: string,
    /** From `Retry-After` (RFC 9110 §10.2.3), in ms, when the server sent one. */
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

/** The ajax-polling PushClient (see the top of this file). */
export class PollingClient implements PushClient {
  readonly #url: URL;
  readonly #observer: ClientObserver;
  readonly #delivery: Delivery;
  readonly #backoff: Backoff;
  readonly #intervalMs: number;
  readonly #hiddenIntervalMs: number;
  readonly #requestTimeoutMs: number;
  readonly #page: PageSignals;

  #running = false;
  /** The pending timer between polls, if any. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** ① The one request in flight, if any. */
  #inFlight: AbortController | undefined;
  #removeWake: (() => void) | undefined;
  /** ③ The last ETag, and the `since` it was the answer for (a validator belongs to one URL). */
  #validator: { since: number; etag: string } | undefined;

  constructor(base: URL, observer: ClientObserver, options: PollingOptions = {}) {
    this.#url = new URL('messages', base);
    this.#observer = observer;
    this.#delivery = new Delivery(observer, options.since ?? 0);
    this.#intervalMs = options.intervalMs ?? INTERVAL_MS;
    this.#hiddenIntervalMs = options.hiddenIntervalMs ?? this.#intervalMs * HIDDEN_SLOWDOWN;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.#backoff = new Backoff({
      initialMs: this.#intervalMs,
      maxMs: Math.max(this.#intervalMs, options.maxBackoffMs ?? MAX_BACKOFF_MS),
      random: options.random,
    });
    this.#page = options.page ?? BROWSER_PAGE;
  }

  get lastId(): number {
    return this.#delivery.lastId;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    // ⑤ Back in view or back online: poll now instead of waiting out a long delay.
    this.#removeWake = this.#page.onWake(() => this.#wake());
    this.#observer.state('connecting');
    void this.#poll();
  }

  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#inFlight?.abort();
    this.#inFlight = undefined;
    this.#removeWake?.();
    this.#observer.state('closed');
  }

  /** Aborts the request in flight as a network failure would; the loop backs off and recovers. */
  cut(): void {
    this.#inFlight?.abort(new PollError('connection cut'));
  }

  #wake(): void {
    // ① Only when idle: a request in flight will schedule the next one itself.
    if (!this.#running || this.#inFlight) return;
    this.#backoff.reset();
    clearTimeout(this.#timer);
    void this.#poll();
  }

  async #poll(): Promise<void> {
    this.#timer = undefined;
    const controller = new AbortController();
    this.#inFlight = controller;
    const timeout = setTimeout(() => controller.abort(new PollError('no answer in time')), this.#requestTimeoutMs);
    let delay: number;
    try {
      await this.#request(controller.signal);
      if (this.#inFlight !== controller) return; // stopped meanwhile (by an observer, say)
      this.#backoff.reset();
      this.#observer.state('open');
      delay = this.#page.hidden() ? this.#hiddenIntervalMs : this.#intervalMs;
    } catch (error) {
      if (this.#inFlight !== controller) return; // stopped meanwhile: stay quiet
      const reason = controller.signal.aborted ? controller.signal.reason : error;
      const problem = reason instanceof PollError ? reason : new PollError(describe(reason));
      delay = Math.max(this.#backoff.next(), problem.retryAfterMs);
      if (this.#page.hidden()) delay = Math.max(delay, this.#hiddenIntervalMs);
      const offline = !this.#page.online();
      this.#observer.state(
        offline ? 'offline' : 'retrying',
        `${problem.message}; next try in ${Math.ceil(delay / 1000)} s`,
      );
    } finally {
      clearTimeout(timeout);
    }
    this.#inFlight = undefined;
    // ① The next poll is scheduled only now, after this one has finished.
    this.#timer = setTimeout(() => void this.#poll(), delay);
  }

  /** One request: delivers what it brings, or throws a PollError. */
  async #request(signal: AbortSignal): Promise<void> {
    // ② Everything after the last message seen.
    const since = this.#delivery.lastId;
    const url = new URL(this.#url);
    url.searchParams.set('since', String(since));
    const headers: Record<string, string> = {};
    // ③ Conditional only for the same `since`: an ETag validates the answer to one URL.
    if (this.#validator?.since === since) headers['If-None-Match'] = this.#validator.etag;

    this.#observer.request?.();
    const response = await fetch(url, { headers, cache: 'no-store', signal });
    const body = await response.arrayBuffer();
    this.#observer.bytes?.(body.byteLength);

    if (response.status === 304) return; // ③ nothing new
    if (response.status !== 200) {
      const seconds = Number(response.headers.get('Retry-After'));
      throw new PollError(`HTTP ${response.status}`, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0);
    }
    const messages = parseMessageList(new TextDecoder().decode(body));
    if (!messages) throw new PollError('not a JSON array of messages');
    const etag = response.headers.get('ETag');
    this.#validator = etag ? { since, etag } : undefined;
    // ⑥ Delivery drops what was already seen and reports gaps in the ids.
    for (const message of messages) this.#delivery.receive(message);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The PushClient every folder exports. */
export function createClient(base: URL, observer: ClientObserver, options?: PollingOptions): PushClient {
  return new PollingClient(base, observer, options);
}

/**
 * The poll interval a page URL asks for (`?interval=250`), for trying out
 * other values and for tests; undefined (the 1 s default) when absent or bad.
 */
export function intervalFromQuery(search: string): number | undefined {
  const value = new URLSearchParams(search).get('interval');
  if (value === null || !/^[0-9]{1,7}$/.test(value)) return undefined;
  return Math.max(MIN_INTERVAL_MS, Number(value));
}

/**
 * The documents' SubscribePane (seed 004), polling: shows every message of
 * the chat in `pane` and the connection state in `status`.
 */
export class SubscribePane {
  readonly view: ChatView;
  readonly client: PushClient;

  constructor(pane: HTMLElement, status: HTMLElement | null, base: URL, options: PollingOptions = {}) {
    this.view = new ChatView(pane, status);
    this.client = createClient(base, this.view.observer(), options);
    this.client.start();
  }
}
