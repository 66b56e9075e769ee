/**
 * WebSocket (RFC 6455), written here from the RFC on node:http: no library.
 *
 * The other folders push through HTTP responses that never quite end. WebSocket
 * leaves HTTP after one exchange: the client asks to *upgrade* the connection, the
 * server answers 101, and from then on the same TCP connection carries frames in
 * both directions at once (full duplex), each side sending whenever it likes.
 *
 *     → GET /echo HTTP/1.1                        ← HTTP/1.1 101 Switching Protocols
 *       Host: localhost:8080                        Upgrade: websocket
 *       Upgrade: websocket                          Connection: Upgrade
 *       Connection: Upgrade                         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 *       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
 *       Sec-WebSocket-Version: 13
 *     → 81 82 37 fa 21 3d 5f 93                   ← 81 02 68 69
 *       text, FIN, masked, 2 bytes, key, "hi"^key    text, FIN, 2 bytes, "hi"
 *     → 88 82 37 fa 21 3d 34 12                   ← 88 02 03 e8
 *       close, masked code 1000                     close 1000, then the server ends TCP
 *
 * Frames (§5.2, frame.ts): a 2–14 byte header (final-fragment bit, opcode, length
 * in 7, 16 or 64 bits, masking key) then the payload. Text and binary messages may
 * be cut into fragments; ping, pong and close are control frames that may come
 * between fragments.
 *
 * Masking (§5.3, §10.3): every client frame is XORed with a fresh random 4-byte
 * key. It is not secrecy (the key travels in the frame) but protection for proxies:
 * a script cannot choose the bytes on the wire, so it cannot make a frame look like
 * an HTTP request to a transparent proxy and poison its cache.
 *
 * Proxies and idle timeouts: many proxies and load balancers cut a connection
 * silent for 30–60 s. The server pings every HEARTBEAT_MS (15 s), which keeps the
 * connection busy and finds peers that vanished without closing (connection.ts).
 *
 * Endpoints (see CONTRACT.md):
 *   /chat          the shared chat: each message as one text frame of its JSON;
 *                  text frames from the client are published. `?since=N` replays.
 *   /echo          every message back unchanged, up to 16 MiB (conformance tests).
 *   /githubEvents  GitHub-style event objects on a timer, as in the documents.
 *
 * Left out on purpose: permessage-deflate (RFC 7692). It doubles CPU, holds zlib
 * memory per connection, and compressing secrets beside attacker-chosen text leaks
 * them (CRIME/BREACH); so RSV1 is a protocol error (1002). Also no TLS here (wss://
 * belongs to the proxy in front) and no client side in Node: browsers have one.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { guard, HttpError, parseSince, requestUrl, sendText } from '../shared/http.ts';
import { isEntryPoint, runStandalone } from '../shared/lifecycle.ts';
import type { MessageLog } from '../shared/message-log.ts';
import { handlePublish } from '../shared/publish.ts';
import { createSite } from '../shared/site.ts';
import type { CreateTechnique } from '../shared/technique.ts';
import {
  destroySocket,
  OpenConnections,
  WebSocketConnection,
  type ConnectionHandlers,
  type ConnectionOptions,
} from './connection.ts';
import { CloseCode, MAX_FRAME_HEADER_BYTES } from './frame.ts';
import { answerHandshake, refuse } from './handshake.ts';

/**
 * The chat's subprotocol (§1.9). The documents note that WebSocket fixes no
 * message format, so each app invents one; naming it lets both sides check they
 * agree. Ours: server → client, one text frame per message, holding the message
 * JSON `{"id":…,"text":…,…}`; client → server, one text frame per message text.
 * A client may offer it or not; the server speaks the same either way.
 */
export const CHAT_PROTOCOL = 'push-chat.v1';

/** /echo takes messages this large, so conformance tests can try big frames. */
export const ECHO_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** How often /githubEvents sends the next event: slow enough to read. */
export const GITHUB_EVENT_INTERVAL_MS = 3_000;

/** /githubEvents reads nothing from clients; it accepts small messages and drops them. */
const GITHUB_EVENTS_MAX_MESSAGE_BYTES = 4 * 1024;

/**
 * Unsent bytes a peer may leave unread before it is failed (1008, connection.ts),
 * counted in messages of the endpoint's largest size: a chat peer may fall this
 * many full messages behind; an echo peer gets the reply to one message being
 * written and one more. Past that the peer is not reading, and the server would
 * only be growing a queue for it.
 */
const CHAT_MESSAGES_BUFFERED = 16;
const ECHO_MESSAGES_BUFFERED = 2;
/** A GitHub event is well under 1 KiB: the floor below is over a thousand unread events. */
const GITHUB_EVENTS_BUFFERED = 16;

/**
 * …but never less than this, however small MAX_MESSAGE_BYTES is: the answers to
 * one read of the socket are all queued before the connection can pause reading,
 * and they can be large. Node reads up to 64 KiB at a time; a 1-character chat
 * frame is 7 bytes in and about 60 bytes of message JSON back to its sender, so
 * one read of tiny frames can queue some 600 KiB for a peer that reads perfectly
 * well. (With MAX_MESSAGE_BYTES=100, 16 messages were 1.6 KB, and a client
 * sending 50 short messages in a row was cut.)
 */
const MIN_BUFFERED_BYTES = 1024 * 1024;

interface Endpoint {
  /** Subprotocols it speaks (§1.9), offered by the client in the handshake. */
  protocols: string[];
  options: ConnectionOptions;
  /**
   * Checks the request before the 101, throwing HttpError to refuse it: after
   * the 101 the connection is no longer HTTP and can only be closed.
   */
  checkRequest?: (url: URL) => void;
  /** Starts talking on the new connection and says what to do with what comes. */
  open: (connection: WebSocketConnection, url: URL) => ConnectionHandlers;
}

export const createWebSocket: CreateTechnique = ({ log, config }) => {
  const site = createSite(new URL('.', import.meta.url));
  const githubEvents = new GithubEventFeed(loadGithubEvents());
  /**
   * Every open connection, so shutdown can close them all (one owner, one set);
   * a connection joins it when it starts and leaves it when its socket closes.
   * It also pings them all every HEARTBEAT_MS (connection.ts).
   */
  const connections = new OpenConnections(config.heartbeatMs);

  const limits = (maxMessageBytes: number, messagesBuffered: number): ConnectionOptions => ({
    connections,
    maxMessageBytes,
    maxBufferedBytes: Math.max(MIN_BUFFERED_BYTES, messagesBuffered * maxMessageBytes),
  });

  const endpoints = new Map<string, Endpoint>([
    [
      '/chat',
      {
        protocols: [CHAT_PROTOCOL],
        options: limits(config.maxMessageBytes, CHAT_MESSAGES_BUFFERED),
        checkRequest: parseSince, // a malformed `since` is a 400
        open: (connection, url) => openChat(connection, parseSince(url), log),
      },
    ],
    [
      '/echo',
      {
        protocols: [],
        options: limits(ECHO_MAX_MESSAGE_BYTES, ECHO_MESSAGES_BUFFERED),
        open: openEcho,
      },
    ],
    [
      '/githubEvents',
      {
        protocols: [],
        options: limits(GITHUB_EVENTS_MAX_MESSAGE_BYTES, GITHUB_EVENTS_BUFFERED),
        open: (connection) => githubEvents.add(connection),
      },
    ],
  ]);
  const handshakeOptions = {
    endpoints: new Map([...endpoints].map(([path, endpoint]) => [path, endpoint.protocols])),
    allowedOrigins: config.allowedOrigins,
  };

  return {
    handle: guard(async (req, res) => {
      const { pathname } = requestUrl(req);
      if (pathname === '/publish') return handlePublish(req, res, log, config.maxMessageBytes);
      // A plain GET on a WebSocket endpoint (curl, a mistyped fetch) is a handshake
      // without its Upgrade header: 400 as the contract says for any malformed
      // handshake (RFC 6455 §4.2.1 "such as 400 Bad Request"), saying what it wants.
      if (endpoints.has(pathname)) {
        return sendText(res, 400, 'This endpoint speaks WebSocket: send a GET with Upgrade: websocket and Connection: Upgrade.');
      }
      return site(req, res);
    }),

    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      socket.on('error', destroySocket); // a reset before the connection takes over
      const answer = answerHandshake(req, handshakeOptions);
      if (!answer.accepted) {
        socket.end(answer.response);
        return;
      }
      const endpoint = endpoints.get(answer.url.pathname)!;
      try {
        endpoint.checkRequest?.(answer.url);
      } catch (error) {
        const refusal = error instanceof HttpError ? refuse(error.status, error.message) : refuse(500, 'Internal server error');
        socket.end(refusal.response);
        return;
      }
      socket.write(answer.response);
      const connection = new WebSocketConnection(socket, endpoint.options);
      connection.start(endpoint.open(connection, answer.url), head);
      socket.off('error', destroySocket); // start() added the same listener: one is enough
    },

    shutdown(): void {
      // §7.4.1: 1001 "going away", e.g. "a server going down".
      connections.closeAll(CloseCode.GOING_AWAY, 'server shutting down');
    },
  };
};

/**
 * /chat: replay from `since`, then every message live; text from the client is
 * published under a short random sender id, the documents' `socket.id.substr(0, 2)`.
 */
function openChat(connection: WebSocketConnection, since: number, log: MessageLog): ConnectionHandlers {
  const from = randomBytes(2).toString('hex');
  // The listener only queues a frame; WebSocketConnection drops it once closing.
  // subscribe() first replays, synchronously: that burst was asked for, so it may
  // go past the usual limit on unsent bytes.
  let replaying = true;
  const unsubscribe = log.subscribe((message) => {
    const json = JSON.stringify(message);
    if (replaying) connection.allowBurst(Buffer.byteLength(json) + MAX_FRAME_HEADER_BYTES);
    connection.sendText(json);
  }, since);
  replaying = false;
  return {
    onMessage(data, binary) {
      if (binary) return connection.close(CloseCode.UNSUPPORTED_DATA, 'the chat takes text frames');
      const text = data.toString('utf8'); // already checked to be UTF-8 and under the limit
      if (text !== '') log.publish(text, { from }); // nothing to say: like POST /publish's 400, not published
    },
    onClose: unsubscribe,
  };
}

/** /echo: every message back as it came, text as text, binary as binary. */
function openEcho(connection: WebSocketConnection): ConnectionHandlers {
  // A method, not `onMessage: (…) => …`: see connection.ts on closures per connection.
  return {
    onMessage(data, binary) {
      connection.sendMessage(data, binary);
    },
  };
}

/** A GitHub event as in https://api.github.com/events, cut down. */
interface GithubEvent {
  id: string;
  type: string;
  actor: { login: string; [field: string]: unknown };
  repo: { name: string; [field: string]: unknown };
  payload: Record<string, unknown>;
  created_at: string;
  [field: string]: unknown;
}

function loadGithubEvents(): GithubEvent[] {
  return JSON.parse(readFileSync(new URL('./github-events.json', import.meta.url), 'utf8')) as GithubEvent[];
}

/**
 * /githubEvents: the sample events of github-events.json, one every
 * GITHUB_EVENT_INTERVAL_MS to every subscriber, with a fresh id and time. A new
 * subscriber gets one at once. The timer runs only while someone listens.
 */
class GithubEventFeed {
  private readonly subscribers = new Set<WebSocketConnection>();
  private timer: NodeJS.Timeout | undefined;
  private sent = 0;

  constructor(private readonly samples: GithubEvent[]) {}

  add(connection: WebSocketConnection): ConnectionHandlers {
    this.subscribers.add(connection);
    connection.sendText(JSON.stringify(this.nextEvent()));
    this.timer ??= setInterval(() => this.broadcast(), GITHUB_EVENT_INTERVAL_MS);
    const feed = this; // method shorthand, as in openEcho
    return {
      onClose() {
        feed.remove(connection);
      },
    };
  }

  private remove(connection: WebSocketConnection): void {
    this.subscribers.delete(connection);
    if (this.subscribers.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private broadcast(): void {
    const text = JSON.stringify(this.nextEvent());
    for (const connection of this.subscribers) connection.sendText(text);
  }

  private nextEvent(): GithubEvent {
    const sample = this.samples[this.sent % this.samples.length];
    this.sent++;
    return { ...sample, id: String(Number(sample.id) + this.sent * 1000), created_at: new Date().toISOString() };
  }
}

export default createWebSocket;
if (isEntryPoint(import.meta.url)) void runStandalone(createWebSocket);
