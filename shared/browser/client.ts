/**
 * The one interface every technique's browser client implements, so that a
 * folder's page and the all-in-one comparison page drive them the same way.
 *
 * A client owns its connection(s) and its retry loop. It reports through an
 * observer: each message exactly once and in id order, gaps, its connection
 * state, and (for the comparison page's figures) the HTTP requests it starts
 * and the bytes it receives.
 */
import { MessageCursor, type ChatMessage } from './messages.ts';

export type ConnectionState =
  /** Opening a connection or sending a request. */
  | 'connecting'
  /** Connected (or, for polling, the last request succeeded). */
  | 'open'
  /** Waiting before the next attempt after a failure. */
  | 'retrying'
  /** The browser says it is offline; waiting for the `online` event. */
  | 'offline'
  /** stop() was called. */
  | 'closed';

export interface ClientObserver {
  /** A message not seen before, in id order. */
  message(message: ChatMessage): void;
  /** `missed` messages after id `after` will never arrive (the server's backlog no longer has them). */
  gap(missed: number, after: number): void;
  /** The connection changed state; `detail` says why, for people (an HTTP status, an error). */
  state(state: ConnectionState, detail?: string): void;
  /** An HTTP request (or WebSocket handshake) started. */
  request?(): void;
  /** Bytes of response body or frame payload received. */
  bytes?(count: number): void;
}

export interface PushClient {
  /** Starts receiving from `since` = lastId. */
  start(): void;
  /** Stops for good: closes connections, cancels timers and listeners. */
  stop(): void;
  /** Drops the current connection the way a network failure would; the client recovers by itself. */
  cut(): void;
  /** The last message id received. */
  readonly lastId: number;
}

/** What every technique's `createClient(base, observer, options)` accepts. */
export interface ClientOptions {
  /** Start after this id instead of 0 (0 asks for the whole backlog). */
  since?: number;
}

/**
 * Hands messages to an observer exactly once and in order, and reports gaps:
 * the part of every client that does not depend on the technique.
 */
export class Delivery {
  readonly #cursor: MessageCursor;
  readonly #observer: ClientObserver;

  constructor(observer: ClientObserver, since = 0) {
    this.#observer = observer;
    this.#cursor = new MessageCursor(since);
  }

  get lastId(): number {
    return this.#cursor.lastId;
  }

  /** Delivers one message, or ignores it when already seen. */
  receive(message: ChatMessage): void {
    const before = this.#cursor.lastId;
    const arrival = this.#cursor.accept(message);
    if (!arrival.fresh) return;
    if (arrival.missed > 0) this.#observer.gap(arrival.missed, before);
    this.#observer.message(message);
  }
}

/**
 * Calls `wake` when the page comes back (tab visible again, network back
 * online): timers may have been throttled or frozen while it was away, so a
 * client should reconnect at once instead of waiting out a long back-off.
 * Returns the function that removes the listeners.
 */
export function onWake(wake: () => void): () => void {
  const onVisibility = (): void => {
    if (document.visibilityState === 'visible') wake();
  };
  document.addEventListener('visibilitychange', onVisibility);
  window.addEventListener('online', wake);
  return () => {
    document.removeEventListener('visibilitychange', onVisibility);
    window.removeEventListener('online', wake);
  };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
