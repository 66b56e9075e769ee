/**
 * The WebSocket page's client: the documents' two demos, typed and made to
 * survive real networks.
 *
 * - /githubEvents, as in the express-ws snippet: `onmessage` with a guarded
 *   JSON.parse that logs "This doesn't look like a valid JSON" instead of throwing.
 * - /chat, as in the socket.io snippet: messages shown as "<short id> said <text>",
 *   sent over the same socket. Unlike the snippet, text goes in with textContent
 *   (its innerHTML ran any `<img onerror>` a stranger sent), and a dropped
 *   connection comes back by itself with `?since=<last id>`, so nothing is missed
 *   or shown twice.
 *
 * Both sockets reconnect with jittered exponential backoff, wait for `online` when
 * the browser is offline, and reconnect at once when the tab becomes visible or the
 * network returns. URLs are relative to the page, so the folder works under a path
 * prefix (/websocket/chat when the page is /websocket/).
 */
import { Backoff } from '../shared/browser/backoff.ts';
import { ChatView } from '../shared/browser/chat-view.ts';
import { Delivery, onWake, type ClientObserver, type ClientOptions, type ConnectionState, type PushClient } from '../shared/browser/client.ts';
import { parseMessage, type ChatMessage } from '../shared/browser/messages.ts';

/** The chat's subprotocol, as server.ts names it: the JSON message format both sides agree on. */
const CHAT_PROTOCOL = 'push-chat.v1';

/** How many GitHub events the page keeps on screen. */
const EVENTS_SHOWN = 20;

/** ws: for a page served over http:, wss: for https:, same host, path relative to `base`. */
export function socketUrl(base: URL, path: string): URL {
  const url = new URL(path, base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

/** A close event in words, for the state line: "1009 message too big", "1006". */
function describeClose(event: CloseEvent): string {
  return event.reason ? `closed ${event.code} ${event.reason}` : `closed ${event.code}`;
}

interface SocketEvents {
  /** The URL of the next attempt (the chat's carries the last id it saw). */
  url(): URL;
  protocols?: string[];
  message(text: string): void;
  state(state: ConnectionState, detail?: string): void;
  attempt?(): void;
}

/**
 * One WebSocket that comes back after every failure. It has one timer (the next
 * attempt) and at most one socket; `stop()` clears both for good.
 */
class ReconnectingSocket {
  readonly #events: SocketEvents;
  readonly #backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
  #socket: WebSocket | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #removeWakeListeners: (() => void) | undefined;

  constructor(events: SocketEvents) {
    this.#events = events;
  }

  start(): void {
    this.#removeWakeListeners = onWake(() => this.#wake());
    this.#connect();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    this.#removeWakeListeners?.();
    this.#socket?.close(1000, 'page closed the connection');
    this.#socket = undefined;
    this.#events.state('closed');
  }

  /** Drops the connection as a network failure would; the retry loop brings it back. */
  cut(): void {
    this.#socket?.close(4000, 'cut by the page');
  }

  /** Sends a text frame; false when not connected. */
  send(text: string): boolean {
    if (this.#socket?.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(text);
    return true;
  }

  #connect(): void {
    clearTimeout(this.#retry);
    this.#retry = undefined;
    if (!navigator.onLine) {
      this.#events.state('offline'); // the 'online' event calls #wake
      return;
    }
    this.#events.attempt?.();
    this.#events.state('connecting');
    const socket = new WebSocket(this.#events.url(), this.#events.protocols);
    this.#socket = socket;
    socket.onopen = () => {
      this.#backoff.reset();
      this.#events.state('open');
    };
    socket.onmessage = (event: MessageEvent) => {
      // Text frames arrive as strings; this server sends nothing else.
      if (typeof event.data === 'string') this.#events.message(event.data);
    };
    // 'error' is always followed by 'close', which does the work.
    socket.onclose = (event: CloseEvent) => {
      if (socket !== this.#socket || this.#stopped) return;
      this.#socket = undefined;
      const delay = this.#backoff.next();
      this.#events.state('retrying', describeClose(event));
      this.#retry = setTimeout(() => this.#connect(), delay);
    };
  }

  /** The tab is visible again or the network is back: retry now, not after the backoff. */
  #wake(): void {
    if (this.#stopped || this.#socket) return;
    this.#connect();
  }
}

/** The chat over /chat, as every technique's client: see shared/browser/client.ts. */
export interface WebSocketChatClient extends PushClient {
  /** Publishes `text` over the socket; false when not connected. */
  send(text: string): boolean;
}

export function createClient(base: URL, observer: ClientObserver, options: ClientOptions = {}): WebSocketChatClient {
  const delivery = new Delivery(observer, options.since);
  const socket = new ReconnectingSocket({
    // §1.9: offering the subprotocol asks the server to confirm it speaks our format.
    protocols: [CHAT_PROTOCOL],
    url: () => {
      const url = socketUrl(base, 'chat');
      url.searchParams.set('since', String(delivery.lastId));
      return url;
    },
    message: (text) => {
      if (observer.bytes) observer.bytes(new TextEncoder().encode(text).length);
      const message = parseMessage(text);
      if (message) delivery.receive(message);
      else console.log(`This doesn't look like a chat message: ${text}`);
    },
    state: (state, detail) => observer.state(state, detail),
    attempt: () => observer.request?.(),
  });
  return {
    start: () => socket.start(),
    stop: () => socket.stop(),
    cut: () => socket.cut(),
    send: (text) => socket.send(text),
    get lastId() {
      return delivery.lastId;
    },
  };
}

/** A GitHub event, as far as the page reads it; anything else may be there too. */
export interface GithubEvent {
  type: string;
  actor: { login: string };
  repo: { name: string };
  created_at: string;
}

function isGithubEvent(value: unknown): value is GithubEvent {
  const event = value as Partial<GithubEvent> | null;
  return (
    typeof event === 'object' &&
    event !== null &&
    typeof event.type === 'string' &&
    typeof event.actor?.login === 'string' &&
    typeof event.repo?.name === 'string' &&
    typeof event.created_at === 'string'
  );
}

/** One line per event: "12:00:03 octocat PushEvent octocat/Hello-World". */
export function describeGithubEvent(event: GithubEvent): string {
  const time = new Date(event.created_at).toLocaleTimeString();
  return `${time} ${event.actor.login} ${event.type} ${event.repo.name}`;
}

/**
 * The documents' /githubEvents client: each message should be one event's JSON.
 * Returns the socket so the page can stop it.
 */
export function watchGithubEvents(
  base: URL,
  onEvent: (event: GithubEvent) => void,
  onState: (state: ConnectionState, detail?: string) => void,
): { start(): void; stop(): void } {
  return new ReconnectingSocket({
    url: () => socketUrl(base, 'githubEvents'),
    message: (text) => {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        console.log("This doesn't look like a valid JSON: " + text);
        return;
      }
      if (isGithubEvent(value)) onEvent(value);
      else console.log("This doesn't look like a GitHub event: " + text);
    },
    state: onState,
  });
}

/** Wires index.html: the chat pane and form, the events list, their state lines. */
export function startPage(base: URL = new URL('.', location.href)): void {
  const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

  const view = new ChatView(byId('messages'), byId('chat-state'));
  const saidBy = (message: ChatMessage) => (typeof message.from === 'string' ? `${message.from} said ${message.text}` : message.text);
  const chat = createClient(base, view.observer(saidBy));
  chat.start();

  const form = byId<HTMLFormElement>('chat-form');
  const input = byId<HTMLInputElement>('chat-input');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (input.value === '') return;
    if (chat.send(input.value)) input.value = '';
    else view.showNotice('Not sent: not connected, try again in a moment.');
  });

  const events = byId<HTMLUListElement>('events');
  const eventsState = byId('events-state');
  watchGithubEvents(
    base,
    (event) => {
      const item = document.createElement('li');
      item.textContent = describeGithubEvent(event);
      events.prepend(item);
      while (events.children.length > EVENTS_SHOWN) events.lastElementChild?.remove();
    },
    (state, detail) => {
      eventsState.dataset.state = state;
      eventsState.textContent = detail ? `${state}: ${detail}` : state;
    },
  ).start();
}
