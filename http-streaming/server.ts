/**
 * HTTP streaming ("Comet", streaming flavour): one response that never ends.
 *
 * The documents: "the server keeps the request open and keeps pushing data; the
 * client reads it while it arrives, by watching readyState === 3 of an XHR, or
 * with the tricky iframe". Where long polling answers once and makes the client
 * ask again, here the answer itself goes on: HTTP/1.1 chunked transfer coding
 * (RFC 9112 §7.1) lets a server send a body of unknown length as a series of
 * chunks, each prefixed with its size, ended only by a zero-size chunk, which
 * this server writes at shutdown and never before.
 *
 *     $ curl -N 'http://127.0.0.1:8080/stream?since=1'
 *     {"id":2,"text":"second","time":1763712001000}        replayed: ids after since=1
 *                                                          a heartbeat: an empty line, every HEARTBEAT_MS
 *     {"id":3,"text":"third","time":1763712017000}         live, as POST /publish happens
 *
 *     $ curl -N http://127.0.0.1:8080/iframe               the same, as a forever frame
 *     <!doctype html> … <script nonce="…">p({"id":1,"text":"hi",…})</script>
 *
 * Two bodies over the same subscription:
 * - `GET /stream?since=N`: NDJSON (ndjson.ts), one message JSON per line, an empty
 *   line as heartbeat. Read by `fetch` + a stream reader (the modern readyState 3)
 *   or by an XHR watching readyState 3 (browser.ts has both).
 * - `GET /iframe?since=N`: an HTML document of `<script>` calls into the parent
 *   page, for the hidden-iframe reader (forever-frame.ts: the contract, the escaping).
 *
 * Why it lost to SSE and WebSocket: everything between the two ends may buffer a
 * response it believes is finite. Proxies collect the body before forwarding it
 * (nginx does unless told `X-Accel-Buffering: no`), compress it (gzip holds bytes
 * back until it has a block: `Cache-Control: no-transform`), antivirus and
 * corporate proxies scan whole responses, and browsers sniff the first bytes
 * before they hand any to a page (`X-Content-Type-Options: nosniff`). And the
 * client must frame messages itself, keep its own last id and reconnect by
 * itself. SSE (WHATWG HTML §9.2) standardised exactly this (a text format, an id,
 * a retry, reconnection in the browser), and WebSocket left HTTP altogether.
 * RFC 6202 §3 lists these issues for "HTTP streaming".
 *
 * The documents warn: "Comet may cause too many IO in the same time, so need
 * Non-blocking IO Server". That is what Node is: an open stream
 * here costs a socket and a log subscription (about 9 KiB of server memory
 * when idle, measured by bench/), no thread, and a message is one write per
 * reader from a single event loop.
 *
 * Left out on purpose: compression (see above, and BREACH: secrets compressed
 * beside attacker-chosen text); HTTP/2 (each stream is then a frame sequence and
 * the buffering problems move, not vanish; this is plain node:http); a
 * per-client send queue (a replay is paced by the socket and read from the log,
 * which is the only queue; a live reader too slow to keep up is cut off, and
 * catches up with `since` when it reconnects).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { allowMethods, guard, parseSince, requestUrl } from '../shared/http.ts';
import { isEntryPoint, runStandalone } from '../shared/lifecycle.ts';
import type { Message, MessageLog } from '../shared/message-log.ts';
import { handlePublish } from '../shared/publish.ts';
import { createSite } from '../shared/site.ts';
import type { CreateTechnique, Technique } from '../shared/technique.ts';
import { FRAME_TAIL, frameHead, frameHeartbeat, frameMessage } from './forever-frame.ts';
import { HEARTBEAT_HEADER, NEWLINE, formatLine } from './ndjson.ts';

/**
 * Unsent bytes a live reader may leave behind, beyond one largest chunk, before
 * it is cut off. A reader that keeps up drains far faster than a chat fills
 * this; one a megabyte behind is stalled (a frozen tab, a phone in a tunnel),
 * and holding more would only grow memory for it, one copy per slow reader. It
 * reconnects with `since` and loses nothing the backlog still holds. Counted
 * over res.writableLength: what Node still holds once the kernel's socket
 * buffer (a few MiB on loopback) is full. The same mark as ../sse/server.ts.
 */
export const HIGH_WATER_BYTES = 1024 * 1024;

/**
 * The largest chunk a message of `maxMessageBytes` makes: JSON writes a control
 * character as 6 bytes (`\u0001`), and the frame writes `<`, `>`, `&` as 6 as
 * well (forever-frame.ts), plus the id, the time and the script element.
 */
export function largestChunkBytes(maxMessageBytes: number): number {
  return 6 * maxMessageBytes + 200;
}

/** Headers both bodies share: keep every intermediary from holding bytes back. */
const STREAM_HEADERS: OutgoingHttpHeaders = {
  // RFC 9111 §5.2.2.4 no-cache: no cache may answer from a stored copy without asking us;
  // §5.2.2.6 no-transform: no proxy may compress or otherwise rewrite the body.
  'Cache-Control': 'no-cache, no-transform',
  // nginx buffers proxied responses unless the upstream says otherwise.
  'X-Accel-Buffering': 'no',
  // Browsers must not sniff (and wait for) the first bytes to guess a type.
  'X-Content-Type-Options': 'nosniff',
};

/** How one body writes what the subscription produces. */
interface BodyFormat {
  headers: (nonce: string) => OutgoingHttpHeaders;
  head: (nonce: string, heartbeatMs: number) => string;
  message: (nonce: string, message: Message) => string;
  heartbeat: (nonce: string) => string;
  tail: string;
}

const NDJSON: BodyFormat = {
  headers: () => ({ 'Content-Type': 'application/x-ndjson' }),
  head: () => '',
  message: (_, message) => formatLine(message),
  heartbeat: () => NEWLINE,
  tail: '', // the zero-size chunk alone ends it
};

const FOREVER_FRAME: BodyFormat = {
  headers: (nonce) => ({
    'Content-Type': 'text/html; charset=utf-8',
    // Only scripts carrying this response's nonce run (a second wall behind the
    // escaping), and only a page of this origin may frame it (forever-frame.ts).
    'Content-Security-Policy': `default-src 'none'; script-src 'nonce-${nonce}'; frame-ancestors 'self'`,
    'X-Frame-Options': 'SAMEORIGIN', // frame-ancestors for browsers before CSP 2
  }),
  head: frameHead,
  message: frameMessage,
  heartbeat: frameHeartbeat,
  tail: FRAME_TAIL,
};

/** The technique, plus what tests look at. */
export interface HttpStreaming extends Technique {
  /** Responses open right now. */
  readonly streamCount: number;
}

export const createHttpStreaming: CreateTechnique = ({ log, config }) => {
  const site = createSite(new URL('.', import.meta.url));
  /** Every open stream, so shutdown can end them all (one owner, one set), and their heartbeat. */
  const streams = new OpenStreams({
    heartbeatMs: config.heartbeatMs,
    // A single largest message must never trip the mark on its own, however small
    // MAX_MESSAGE_BYTES is set.
    highWaterBytes: HIGH_WATER_BYTES + largestChunkBytes(config.maxMessageBytes),
  });

  const open = (req: IncomingMessage, res: ServerResponse, format: BodyFormat): void => {
    if (!allowMethods(req, res, ['GET'])) return;
    const since = parseSince(requestUrl(req)); // 400 before any byte of the 200 is written
    new Stream(res, format, streams, since).start(req.method === 'HEAD' ? undefined : log);
  };

  const technique: HttpStreaming = {
    handle: guard(async (req, res) => {
      switch (requestUrl(req).pathname) {
        case '/publish':
          return handlePublish(req, res, log, config.maxMessageBytes);
        case '/stream':
          return open(req, res, NDJSON);
        case '/iframe':
          return open(req, res, FOREVER_FRAME);
        default:
          return site(req, res);
      }
    }),
    shutdown() {
      for (const stream of streams) stream.close('shutdown');
    },
    get streamCount() {
      return streams.size;
    },
  };
  return technique;
};

type CloseReason =
  /** The server is going down: the body is ended properly (tail + zero-size chunk). */
  | 'shutdown'
  /** The reader fell too far behind, or took nothing for a heartbeat: the connection is destroyed. */
  | 'slow'
  /** The connection closed (the client went away, or after one of the above). */
  | 'gone';

interface StreamOptions {
  heartbeatMs: number;
  highWaterBytes: number;
}

/**
 * The open streams, and the one timer that writes a heartbeat to each of them
 * every heartbeatMs. It runs only while a stream is open: none at import, none
 * on an idle server.
 *
 * Why one sweep and not a timer per stream: memory. An open stream is idle
 * almost all the time, so what it holds is what it costs, and a timer per
 * stream is an object and a closure more for every connection. A heartbeat
 * only has to come at least every heartbeatMs, not at a moment of the
 * stream's own: a stream opened just before a sweep gets its first one early,
 * and none waits longer. (`ws` users keep their pings the same way.)
 */
class OpenStreams {
  readonly options: StreamOptions;
  readonly #streams = new Set<Stream>();
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(options: StreamOptions) {
    this.options = options;
  }

  get size(): number {
    return this.#streams.size;
  }

  [Symbol.iterator](): IterableIterator<Stream> {
    return this.#streams.values();
  }

  add(stream: Stream): void {
    this.#streams.add(stream);
    if (this.#streams.size > 1) return;
    // RFC 6202 §5.5: a connection silent for 30-60 s is cut by many proxies and
    // NATs; a heartbeat keeps it busy and lets clients notice a dead one.
    this.#heartbeat = setInterval(() => {
      for (const stream of this.#streams) stream.writeHeartbeat();
    }, this.options.heartbeatMs);
  }

  delete(stream: Stream): void {
    if (!this.#streams.delete(stream) || this.#streams.size > 0) return;
    clearInterval(this.#heartbeat);
  }
}

/**
 * One open response and everything it holds: its position (the last id
 * written), the log subscription and the timers that judge a slow reader.
 * close() is its only teardown path and runs once, whoever calls it first
 * (shutdown, a slow-reader check, or the connection's 'close').
 *
 * It writes in two modes, because a replay and live messages differ in who
 * sets the pace (as ../sse/server.ts does):
 * - catching up: messages come from the log as fast as the socket takes them.
 *   When res.write() returns false (Node holds its 16 KiB high-water mark) it
 *   waits for 'drain' and goes on from the log after the last id written. A
 *   replay of the whole backlog (1000 × 64 KiB by default) never sits in this
 *   process's memory at once, and a reader that keeps up is never cut for it.
 * - live: once caught up, `log.subscribe(listener, sent)` goes live in one
 *   synchronous step, so nothing published in between is lost or doubled. Now
 *   the publishers set the pace, and a reader that leaves more than
 *   highWaterBytes unsent is cut.
 * A replay that gets no 'drain' for a whole heartbeat interval is cut too: the
 * reader is stuck, not slow.
 *
 * Memory: the state lives in fields and the code in methods (on the prototype,
 * shared by every stream); the only functions made per stream are the arrows
 * handed straight to an event or the log. A method kept as an arrow field
 * (`#onLive = (m) => …`) is one more closure per stream, and under tsx (whose
 * `keepNames` gives every closure bound to a name its own property store)
 * some 300 bytes more for each open connection.
 */
class Stream {
  readonly #res: ServerResponse;
  readonly #format: BodyFormat;
  readonly #streams: OpenStreams;
  /** Per response: a script without it does not run in the frame (forever-frame.ts). */
  readonly #nonce = randomBytes(16).toString('base64');
  /** Id of the last message written (starts at the request's `since`). */
  #sent: number;
  #log: MessageLog | undefined;
  #unsubscribe: (() => void) | undefined;
  /** Armed while a replay waits for 'drain': fires if none comes for a heartbeat. */
  #stalled: NodeJS.Timeout | undefined;
  #backlogCheck: NodeJS.Immediate | undefined;
  #closed = false;

  constructor(res: ServerResponse, format: BodyFormat, streams: OpenStreams, since: number) {
    this.#res = res;
    this.#format = format;
    this.#streams = streams;
    this.#sent = since;
  }

  /** Sends the headers and head, then (unless HEAD: no log) the replay and the live messages. */
  start(log: MessageLog | undefined): void {
    const res = this.#res;
    // 'close' fires when the client goes away, and also after we end or destroy:
    // either way this stream is over. Registered first, so nothing below can miss it.
    res.on('close', () => this.close('gone'));
    const { heartbeatMs } = this.#streams.options;
    res.writeHead(200, { ...STREAM_HEADERS, [HEARTBEAT_HEADER]: String(heartbeatMs), ...this.#format.headers(this.#nonce) });
    if (!log) {
      res.end();
      return;
    }
    this.#log = log;
    // No Content-Length: Node sends `Transfer-Encoding: chunked` (RFC 9112 §6.1).
    // Flush now, so the client sees 200 + headers before the first message.
    res.flushHeaders();
    this.#write(this.#format.head(this.#nonce, heartbeatMs));
    this.#streams.add(this); // from now on, its heartbeats (OpenStreams)
    this.#catchUp();
  }

  writeHeartbeat(): void {
    this.#write(this.#format.heartbeat(this.#nonce));
  }

  /** Replays from the log at the socket's pace, then goes live (see the class comment). */
  #catchUp(): void {
    // A 'drain' may still come after close() (the listener is not removed).
    if (this.#closed) return;
    clearTimeout(this.#stalled);
    this.#stalled = undefined;
    const log = this.#log!;
    for (const message of log.since(this.#sent)) {
      if (!this.#writeMessage(message)) {
        // The socket holds enough: go on from the log once it has sent it.
        this.#res.once('drain', () => this.#catchUp());
        this.#stalled = setTimeout(() => this.close('slow'), this.#streams.options.heartbeatMs);
        return;
      }
    }
    // Caught up: `subscribe(…, sent)` replays whatever is newer than `sent`
    // (nothing: we are still in the same tick) and listens, in one step.
    this.#unsubscribe = log.subscribe((message) => this.#onLive(message), this.#sent);
  }

  #onLive(message: Message): void {
    this.#writeMessage(message);
    if (this.#res.writableLength > this.#streams.options.highWaterBytes) {
      this.#backlogCheck ??= setImmediate(() => this.#checkBacklog());
    }
  }

  /**
   * Judged one turn of the event loop later, not at once: Node corks a chunked
   * response until the next tick, so a burst published in one tick sits in
   * writableLength even for a reader that keeps up. Once Node has handed it to
   * the kernel, what is still queued is this reader's fault.
   */
  #checkBacklog(): void {
    this.#backlogCheck = undefined;
    if (this.#res.writableLength > this.#streams.options.highWaterBytes) this.close('slow');
  }

  /** Writes one message; false when the socket asks us to wait. */
  #writeMessage(message: Message): boolean {
    // Belt and braces: an id already written (which only a misbehaving log could
    // hand over twice) is never sent again.
    if (message.id <= this.#sent) return true;
    this.#sent = message.id;
    return this.#write(this.#format.message(this.#nonce, message));
  }

  #write(chunk: string): boolean {
    if (this.#closed || chunk === '') return true;
    return this.#res.write(chunk);
  }

  close(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    clearTimeout(this.#stalled);
    clearImmediate(this.#backlogCheck);
    this.#streams.delete(this);
    // 'slow': the bytes queued for this reader go with the socket (that memory is
    // the point); the client sees the body break off and reconnects with `since`.
    if (reason === 'shutdown') this.#res.end(this.#format.tail);
    else if (reason === 'slow') this.#res.destroy();
  }
}

export default createHttpStreaming;
if (isEntryPoint(import.meta.url)) void runStandalone(createHttpStreaming);
