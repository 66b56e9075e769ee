/**
 * The SSE client: the documents' EventSource lines, made to lose nothing.
 *
 * The documents do
 *
 *     const evtSource = new EventSource('/events');           (000, 002)
 *     evtSource.addEventListener('event', …)                   (000: a named event)
 *     sse.onmessage = console.log                              (001)
 *     source.addEventListener('ping', (e) => … e.data …)       (002: the ping)
 *
 * and this client keeps those shapes: `onmessage` for the chat (the server
 * sends unnamed events, so `onmessage` sees them) and `addEventListener('ping')`
 * for the server's clock. What it adds:
 * - the browser already reconnects by itself after a drop, sending the last
 *   `id:` it saw as Last-Event-ID, and the server replays what was missed. The
 *   client only watches: `onopen` → open, `onerror` with readyState CONNECTING
 *   → "the browser is reconnecting";
 * - but the browser gives up for good (readyState CLOSED) when an answer is not
 *   a 200 text/event-stream: a proxy's 502 during a deploy, a 406, a 500. Then
 *   this client opens a new EventSource itself, after a growing, jittered delay
 *   (Backoff), at `events?since=<last id>` since a new EventSource has no
 *   Last-Event-ID to send;
 * - when the tab becomes visible or the network comes back (onWake), a closed
 *   stream is reopened at once instead of waiting out the back-off;
 * - messages pass through Delivery: exactly once, in id order, and a gap (ids
 *   the server no longer holds) is reported, not hidden;
 * - text is shown with textContent only (ChatView, PingList): never HTML, where
 *   the document's ping list used innerHTML.
 */
import { Backoff, type BackoffOptions } from '../shared/browser/backoff.ts';
import { ChatView, PublishForm } from '../shared/browser/chat-view.ts';
import { Delivery, onWake, type ClientObserver, type ClientOptions, type PushClient } from '../shared/browser/client.ts';
import { parseMessage } from '../shared/browser/messages.ts';

export { ChatView, PublishForm };

export interface SseClientOptions extends ClientOptions {
  /** Called with the server's time for each `event: ping`. */
  onPing?: (time: string) => void;
  /** Delays before reopening a stream the browser gave up on: 1 s, doubling up to 30 s. */
  backoff?: BackoffOptions;
}

/** Starts nothing until `start()`. */
export function createClient(base: URL, observer: ClientObserver, options: SseClientOptions = {}): PushClient {
  return new SseClient(base, observer, options);
}

const encoder = new TextEncoder();

class SseClient implements PushClient {
  readonly #base: URL;
  readonly #observer: ClientObserver;
  readonly #options: SseClientOptions;
  readonly #delivery: Delivery;
  readonly #backoff: Backoff;
  #source: EventSource | undefined;
  #reopenTimer: ReturnType<typeof setTimeout> | undefined;
  #stopWaking: (() => void) | undefined;

  constructor(base: URL, observer: ClientObserver, options: SseClientOptions) {
    this.#base = base;
    this.#observer = observer;
    this.#options = options;
    this.#delivery = new Delivery(observer, options.since ?? 0);
    this.#backoff = new Backoff(options.backoff);
  }

  get lastId(): number {
    return this.#delivery.lastId;
  }

  start(): void {
    if (this.#stopWaking) return; // already started
    this.#stopWaking = onWake(() => this.#wake());
    this.#open();
  }

  stop(): void {
    this.#stopWaking?.();
    this.#stopWaking = undefined;
    this.#close();
    this.#observer.state('closed');
  }

  cut(): void {
    if (!this.#stopWaking) return;
    this.#close();
    this.#reopenLater('connection cut');
  }

  #open(): void {
    this.#close();
    const url = new URL('events', this.#base);
    // A new EventSource sends no Last-Event-ID: say where we are in the URL.
    // The server prefers the header, which the browser sends on its own
    // reconnects once a message has arrived on this stream.
    if (this.lastId > 0) url.searchParams.set('since', String(this.lastId));
    const source = new EventSource(url);
    this.#source = source;
    this.#observer.request?.();
    this.#observer.state('connecting');

    source.onopen = () => {
      this.#backoff.reset();
      this.#observer.state('open');
    };
    // Unnamed events: the chat messages (`id:` + `data: <message JSON>`).
    source.onmessage = (event: MessageEvent<string>) => {
      this.#observer.bytes?.(encoder.encode(event.data).length);
      const message = parseMessage(event.data);
      if (message) this.#delivery.receive(message);
    };
    // The documents' named event: `event: ping`, `data: {"time": …}`.
    source.addEventListener('ping', (event: MessageEvent<string>) => {
      this.#observer.bytes?.(encoder.encode(event.data).length);
      const time = parsePing(event.data);
      if (time !== undefined) this.#options.onPing?.(time);
    });
    source.onerror = () => {
      if (source !== this.#source) return;
      if (source.readyState === EventSource.CONNECTING) {
        // §9.2.3: the browser waits `retry` ms and reconnects with Last-Event-ID.
        this.#observer.request?.();
        this.#observer.state('retrying', 'connection lost; the browser reconnects by itself');
        return;
      }
      // CLOSED: the browser gave up (a non-200 answer or a wrong Content-Type)
      // and will not try again. Open a new one ourselves, later.
      this.#close();
      this.#reopenLater('the server refused the stream');
    };
  }

  #reopenLater(reason: string): void {
    if (!navigator.onLine) {
      // onWake's `online` reopens it.
      this.#observer.state('offline', reason);
      return;
    }
    const delay = this.#backoff.next();
    this.#observer.state('retrying', `${reason}; again in ${Math.ceil(delay / 1000)} s`);
    this.#reopenTimer = setTimeout(() => this.#open(), delay);
  }

  /** Tab visible or network back: reopen a stream nobody is retrying, now. */
  #wake(): void {
    if (this.#source === undefined || this.#source.readyState === EventSource.CLOSED) this.#open();
  }

  #close(): void {
    clearTimeout(this.#reopenTimer);
    this.#reopenTimer = undefined;
    this.#source?.close();
    this.#source = undefined;
  }
}

/** The time of a ping's `{"time": …}`, or undefined when the data is not one. */
export function parsePing(data: string): string | undefined {
  try {
    const value: unknown = JSON.parse(data);
    const time = (value as { time?: unknown } | null)?.time;
    return typeof time === 'string' ? time : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The documents' ping list (`<ul id="evt">`, one "ping at …" per ping), with
 * textContent instead of innerHTML and only the newest few kept.
 */
export class PingList {
  readonly #list: HTMLElement;
  readonly #keep: number;

  constructor(list: HTMLElement, keep = 3) {
    this.#list = list;
    this.#keep = keep;
  }

  show(time: string): void {
    const item = document.createElement('li');
    item.className = 'ping';
    item.textContent = `ping at ${time}`;
    this.#list.prepend(item);
    while (this.#list.children.length > this.#keep) this.#list.lastElementChild?.remove();
  }
}
