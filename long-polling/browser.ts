/**
 * The long-polling client: the documents' SubscribePane loop, made to lose
 * nothing and to survive real networks.
 *
 * The documents (javascript.info, seeds/004) do, in a function that calls
 * itself:
 *
 *     502            → subscribe again at once (the proxy gave up on a held request)
 *     other non-200  → show response.statusText, wait 1 s, subscribe again
 *     200            → show the body, subscribe again
 *
 * This client keeps that table and fixes what it leaves out:
 * - a loop, not recursion: `await subscribe()` inside subscribe() grows a chain
 *   of pending promises, one per message, for as long as the page is open;
 * - a cursor: each request says `since=<last id seen>`, so a message published
 *   while this client was between two requests comes in the next answer;
 * - 204 (the server's "nothing yet") is a normal end of a poll, and so is 504
 *   (a gateway timed the poll out): ask again at once, like 502. Only a
 *   502/504 that keeps coming (a proxy whose server is down answers at once,
 *   every time) backs off instead of spinning: see RetryPolicy;
 * - every other status (404 included) and a network error (fetch throws) are
 *   shown and retried after 1 s as in the documents, then with a growing,
 *   jittered delay while they last: nothing but stop() ends the loop, and an
 *   unhandled rejection no longer kills it;
 * - a poll that gets no answer long after the server's timeout is abandoned and
 *   sent again: a connection can die silently (a NAT forgetting it, a laptop
 *   lid), and nothing else would ever tell;
 * - when the tab becomes visible or the network comes back, it asks again at
 *   once (onWake), without waiting out a back-off or a dead request.
 *
 * Messages go through Delivery (exactly once, in id order, gaps reported), and
 * the page shows them with textContent only (ChatView): never HTML.
 */
import { Backoff, type BackoffOptions } from '../shared/browser/backoff.ts';
import { ChatView, PublishForm } from '../shared/browser/chat-view.ts';
import {
  Delivery,
  onWake,
  sleep,
  type ClientObserver,
  type ClientOptions,
  type ConnectionState,
  type PushClient,
} from '../shared/browser/client.ts';
import { parseMessageList, type ChatMessage } from '../shared/browser/messages.ts';

export { ChatView, PublishForm };

/**
 * How long a poll may stay unanswered before it is given up and sent again:
 * the server's POLL_TIMEOUT_MS (25 s by default) plus room for a slow network.
 * A server configured to hold longer needs a larger value (`pollDeadlineMs`);
 * too small costs an extra request per poll, never a message.
 */
export const POLL_DEADLINE_MS = 25_000 + 10_000;

/**
 * When a poll has been out this long with no answer, the server is holding it:
 * the client counts as connected ('open'). A long poll has no other moment that
 * says so (the answer is the first thing that comes back), and what fails fast
 * (a refused connection, a proxy's 502) comes back well within this.
 */
export const HELD_AFTER_MS = 500;

export interface LongPollingOptions extends ClientOptions {
  /** See POLL_DEADLINE_MS. */
  pollDeadlineMs?: number;
  /** Delays between failed attempts (see RetryPolicy): 1 s as in the documents, doubling up to 30 s. */
  backoff?: BackoffOptions;
}

/**
 * 502/504 answers in a row that are retried at once, before backing off. One
 * is the normal life of a long poll behind a proxy (it gave up on a request
 * held longer than its own timeout), and two or three in a row still happen
 * (a proxy restarting, a load balancer trying each backend). More is a proxy
 * answering at once for a server that is down: the documents' loop would then
 * send requests as fast as the network allows, from every open tab, to a
 * server that is trying to come back. A few is enough to tell the two apart.
 */
export const IMMEDIATE_GATEWAY_RETRIES = 3;

/** A back-off delay is lengthened by up to this share of itself, at random. */
export const RETRY_JITTER = 0.25;

/** What one answer to `GET subscribe` means for the loop; pure, see classify(). */
export type Outcome =
  /** 200 with messages: show them, ask again after the last one. */
  | { kind: 'messages'; messages: ChatMessage[] }
  /** 204 (or a 200 with none): nothing yet, ask again at once. */
  | { kind: 'again' }
  /** 502/504: a proxy or gateway ended the poll; reconnect at once (the documents' case), see RetryPolicy. */
  | { kind: 'gateway'; detail: string }
  /** Any other status (404 too), or a 200 that is not a message list: show it, retry after 1 s, then backing off. */
  | { kind: 'error'; detail: string }
  /** No answer at all: fetch threw (refused, reset, offline) or the connection was cut. */
  | { kind: 'network'; detail: string };

/**
 * The documents' if/else chain, as a table from an HTTP answer to what it
 * means; RetryPolicy says when to ask again. Every status but 200, 204, 502
 * and 504 is an `error`, 404 and 5xx alike: a proxy or a restarting server can
 * answer anything for a while, and no status ends the loop (only stop() does).
 */
export function classify(status: number, statusText: string, body: string): Outcome {
  const detail = `${status}${statusText ? ` ${statusText}` : ''}`;
  if (status === 204) return { kind: 'again' };
  if (status === 502 || status === 504) return { kind: 'gateway', detail };
  if (status !== 200) return { kind: 'error', detail };
  const messages = parseMessageList(body);
  if (!messages) return { kind: 'error', detail: `${detail}, but not a list of messages` };
  return messages.length > 0 ? { kind: 'messages', messages } : { kind: 'again' };
}

/**
 * How long to wait before the next request, after each outcome: the loop's
 * timing, kept apart from timers and sockets so that it can be tested as a
 * table. Pure but for `random` (injectable).
 *
 * - messages, again: at once; a success ends any back-off.
 * - gateway (502/504): at once for the first IMMEDIATE_GATEWAY_RETRIES in a
 *   row, then the back-off below.
 * - error (any other status), network: 1 s the first time, as in the
 *   documents, then 2 s, 4 s… up to `maxMs` (30 s) while failures go on.
 * - restart (a wake-up, a poll past its deadline): at once, nothing learnt.
 *
 * Jitter only adds (1000–1250 ms the first time), so no retry comes before the
 * documents' second: shared Backoff draws from [base/2, base], which would
 * retry after 0.5 s. Backoff is used here for its count, doubling and cap only.
 */
export class RetryPolicy {
  readonly #backoff: Backoff;
  readonly #random: () => number;
  #gatewayInRow = 0;

  constructor({ initialMs = 1_000, maxMs = 30_000, random = Math.random }: BackoffOptions = {}) {
    // random = 1: Backoff's draw is then its whole base, min(maxMs, initialMs · 2^n).
    this.#backoff = new Backoff({ initialMs, maxMs, random: () => 1 });
    this.#random = random;
  }

  /** Counts `kind` and returns the delay in ms before the next request. */
  delayAfter(kind: Outcome['kind'] | 'restart'): number {
    switch (kind) {
      case 'restart':
        return 0;
      case 'messages':
      case 'again':
        this.#gatewayInRow = 0;
        this.#backoff.reset();
        return 0;
      case 'gateway':
        return ++this.#gatewayInRow <= IMMEDIATE_GATEWAY_RETRIES ? 0 : this.#backOff();
      case 'error':
      case 'network':
        this.#gatewayInRow = 0;
        return this.#backOff();
    }
  }

  #backOff(): number {
    const base = this.#backoff.next();
    return base + Math.round(this.#random() * base * RETRY_JITTER);
  }
}

/** Why this client aborted its own request. */
type AbortReason =
  /** stop(): the loop ends. */
  | 'stop'
  /** cut(): treated as the network failure it imitates. */
  | 'cut'
  /** The page woke up, or the poll outlived POLL_DEADLINE_MS: ask again at once. */
  | 'restart';

class LongPollingClient implements PushClient {
  readonly #endpoint: URL;
  readonly #observer: ClientObserver;
  readonly #delivery: Delivery;
  readonly #retry: RetryPolicy;
  readonly #deadlineMs: number;
  /** Set while running; stop() aborts it. */
  #running: AbortController | undefined;
  /** The request in flight, if any, and why it was aborted. */
  #request: { controller: AbortController; reason?: AbortReason } | undefined;
  /** The wait between two attempts, if any; a wake-up cuts it short. */
  #nap: AbortController | undefined;
  #forgetWake: (() => void) | undefined;
  /** The last state reported, with its detail. */
  #reported: string | undefined;

  constructor(endpoint: URL, observer: ClientObserver, options: LongPollingOptions) {
    this.#endpoint = endpoint;
    this.#observer = observer;
    this.#delivery = new Delivery(observer, options.since ?? 0);
    this.#retry = new RetryPolicy(options.backoff);
    this.#deadlineMs = options.pollDeadlineMs ?? POLL_DEADLINE_MS;
  }

  get lastId(): number {
    return this.#delivery.lastId;
  }

  start(): void {
    if (this.#running) return;
    const running = new AbortController();
    this.#running = running;
    this.#forgetWake = onWake(() => this.#wake());
    void this.#loop(running.signal);
  }

  stop(): void {
    if (!this.#running) return;
    this.#running.abort();
    this.#running = undefined;
    this.#abortRequest('stop');
    this.#nap?.abort();
    this.#forgetWake?.();
    this.#setState('closed');
  }

  cut(): void {
    this.#abortRequest('cut');
  }

  #wake(): void {
    this.#nap?.abort();
    this.#abortRequest('restart');
  }

  #abortRequest(reason: AbortReason): void {
    const request = this.#request;
    if (!request || request.controller.signal.aborted) return;
    request.reason = reason;
    request.controller.abort();
  }

  /** The documents' subscribe(), as a loop that only stop() ends. */
  async #loop(stopped: AbortSignal): Promise<void> {
    this.#setState('connecting');
    while (!stopped.aborted) {
      const outcome = await this.#poll();
      if (stopped.aborted) return;

      const delay = this.#retry.delayAfter(outcome.kind);
      switch (outcome.kind) {
        case 'restart':
          break; // asked again at once, nothing learnt about the server
        case 'messages':
        case 'again':
          if (outcome.kind === 'messages') for (const message of outcome.messages) this.#delivery.receive(message);
          this.#setState('open');
          break;
        case 'gateway':
          this.#setState(delay > 0 ? 'retrying' : 'connecting', outcome.detail);
          break;
        case 'error':
        case 'network':
          this.#setState(outcome.kind === 'network' && navigator.onLine === false ? 'offline' : 'retrying', outcome.detail);
          break;
      }
      if (delay > 0) {
        const nap = new AbortController();
        this.#nap = nap;
        await sleep(delay, nap.signal);
        if (this.#nap === nap) this.#nap = undefined;
        if (!stopped.aborted) this.#setState('connecting');
      }
    }
  }

  /** One request: `GET subscribe?since=<last id>`, and what its answer means. */
  async #poll(): Promise<Outcome | { kind: 'restart' }> {
    const controller = new AbortController();
    const request: { controller: AbortController; reason?: AbortReason } = { controller };
    this.#request = request;
    const deadline = setTimeout(() => this.#abortRequest('restart'), this.#deadlineMs);
    const held = setTimeout(() => {
      if (!controller.signal.aborted) this.#setState('open');
    }, HELD_AFTER_MS);
    try {
      const url = new URL(this.#endpoint);
      url.searchParams.set('since', String(this.#delivery.lastId));
      this.#observer.request?.();
      // The browser's own cache must never answer a poll. `no-store` also makes
      // fetch send `Cache-Control: no-cache` (Fetch §4.5), the request half of
      // RFC 6202 §5.6's advice to intermediaries; the server sends the other half.
      const response = await fetch(url, { signal: controller.signal, cache: 'no-store' });
      const bytes = new Uint8Array(await response.arrayBuffer());
      this.#observer.bytes?.(bytes.byteLength);
      return classify(response.status, response.statusText, new TextDecoder().decode(bytes));
    } catch (error) {
      // Whatever the answer carried and was not read comes again: the next
      // request asks from the same `since`.
      if (request.reason === 'restart' || request.reason === 'stop') return { kind: 'restart' };
      if (request.reason === 'cut') return { kind: 'network', detail: 'connection cut' };
      return { kind: 'network', detail: error instanceof Error ? error.message : String(error) };
    } finally {
      clearTimeout(deadline);
      clearTimeout(held);
      if (this.#request === request) this.#request = undefined;
    }
  }

  #setState(state: ConnectionState, detail?: string): void {
    const key = `${state} ${detail ?? ''}`;
    if (key === this.#reported) return; // a poll every few seconds is not news
    this.#reported = key;
    this.#observer.state(state, detail);
  }
}

/**
 * A client that long-polls `subscribe` under `base` (the folder's URL, e.g.
 * `https://example.org/long-polling/`). Not started: call start().
 */
export function createClient(base: URL, observer: ClientObserver, options: LongPollingOptions = {}): PushClient {
  return createSubscriber(new URL('subscribe', base), observer, options);
}

/** The same, for a full endpoint URL (extra query parameters are kept). */
export function createSubscriber(endpoint: URL, observer: ClientObserver, options: LongPollingOptions = {}): PushClient {
  return new LongPollingClient(endpoint, observer, options);
}

export interface SubscribePaneOptions extends LongPollingOptions {
  /** Where the connection state is shown (ChatView's state line). */
  status?: HTMLElement | null;
}

/**
 * The documents' SubscribePane: shows every message `url` delivers in `elem`,
 * as text. `url` is relative to the page, as in the documents
 * (`new SubscribePane(elem, 'subscribe')`). Starts at once.
 */
export class SubscribePane {
  readonly view: ChatView;
  readonly client: PushClient;

  constructor(elem: HTMLElement, url: string | URL = 'subscribe', options: SubscribePaneOptions = {}) {
    this.view = new ChatView(elem, options.status ?? null);
    const observer = this.view.observer();
    let failing = false;
    this.client = createSubscriber(new URL(url, document.baseURI), {
      ...observer,
      state: (state, detail) => {
        observer.state(state, detail);
        // The documents show an error in the pane; do it once per outage, not at every retry.
        const failed = state === 'retrying' || state === 'offline';
        if (failed && !failing) this.view.showNotice(`Connection problem: ${detail ?? state}; retrying.`);
        if (state === 'open' && failing) this.view.showNotice('Connected again.');
        if (failed || state === 'open') failing = failed;
      },
    }, options);
    this.client.start();
  }
}
