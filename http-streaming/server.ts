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
 * here costs a socket, a timer and a log subscription, no thread, and a
 * message is one write per reader from a single event loop.
 *
 * Left out on purpose: compression (see above, and BREACH: secrets compressed
 * beside attacker-chosen text); HTTP/2 (each stream is then a frame sequence and
 * the buffering problems move, not vanish; this is plain node:http); a
 * per-client send queue (a reader too slow to keep up is cut off instead, and
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
import { NEWLINE, formatLine } from './ndjson.ts';

/**
 * Unsent bytes a reader may leave behind before it is cut off: room for this
 * many of the largest messages. Past it the reader is not keeping up (a stalled
 * tab, a phone in a tunnel), and holding more would only grow memory for it,
 * one copy per slow reader. It reconnects with `since` and loses nothing the
 * backlog still holds. Counted over res.writableLength: what Node still holds
 * once the kernel's socket buffer (a few MiB on loopback) is full.
 */
export const BUFFERED_MESSAGES_PER_READER = 16;

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
  head: (nonce: string) => string;
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
  /** Every open stream, so shutdown can end them all (one owner, one set). */
  const streams = new Set<Stream>();
  const options = { heartbeatMs: config.heartbeatMs, highWaterBytes: BUFFERED_MESSAGES_PER_READER * config.maxMessageBytes };

  const open = (req: IncomingMessage, res: ServerResponse, format: BodyFormat): void => {
    if (!allowMethods(req, res, ['GET'])) return;
    const since = parseSince(requestUrl(req)); // 400 before any byte of the 200 is written
    const stream = new Stream(res, format, options, () => streams.delete(stream));
    streams.add(stream);
    stream.start(req.method === 'HEAD' ? undefined : { log, since });
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
  /** The reader fell too far behind: the connection is destroyed, nothing more is queued. */
  | 'slow'
  /** The connection closed (the client went away, or after one of the above). */
  | 'gone';

/**
 * One open response and everything it holds: the log subscription and the
 * heartbeat timer. close() is its only teardown path and runs once, whoever
 * calls it first (shutdown, the slow-reader check, or the connection's 'close').
 */
class Stream {
  readonly #res: ServerResponse;
  readonly #format: BodyFormat;
  readonly #options: { heartbeatMs: number; highWaterBytes: number };
  readonly #onClosed: () => void;
  /** Per response: a script without it does not run in the frame (forever-frame.ts). */
  readonly #nonce = randomBytes(16).toString('base64');
  #unsubscribe: (() => void) | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #backlogCheck: NodeJS.Immediate | undefined;
  #closed = false;

  constructor(
    res: ServerResponse,
    format: BodyFormat,
    options: { heartbeatMs: number; highWaterBytes: number },
    onClosed: () => void,
  ) {
    this.#res = res;
    this.#format = format;
    this.#options = options;
    this.#onClosed = onClosed;
  }

  /** Sends the headers and head, then (unless HEAD) the replay and the live messages. */
  start(subscription: { log: MessageLog; since: number } | undefined): void {
    const res = this.#res;
    // 'close' fires when the client goes away, and also after we end or destroy:
    // either way this stream is over. Registered first, so nothing below can miss it.
    res.on('close', () => this.close('gone'));
    res.writeHead(200, { ...STREAM_HEADERS, ...this.#format.headers(this.#nonce) });
    if (!subscription) {
      res.end();
      return;
    }
    // No Content-Length: Node sends `Transfer-Encoding: chunked` (RFC 9112 §6.1).
    // Flush now, so the client sees 200 + headers before the first message.
    res.flushHeaders();
    this.#write(this.#format.head(this.#nonce));
    // RFC 6202 §5.5: a connection silent for 30-60 s is cut by many proxies and
    // NATs; a heartbeat keeps it busy and lets clients notice a dead one.
    this.#heartbeat = setInterval(() => this.#write(this.#format.heartbeat(this.#nonce)), this.#options.heartbeatMs);
    // Replay, then live, in one synchronous step (MessageLog.subscribe): nothing
    // published in between is lost or doubled.
    this.#unsubscribe = subscription.log.subscribe(
      (message) => this.#write(this.#format.message(this.#nonce, message)),
      subscription.since,
    );
  }

  /** Writes one chunk; a reader that has let too much pile up is cut off (#checkBacklog). */
  #write(chunk: string): void {
    if (this.#closed || chunk === '') return;
    // res.write() returning false only says "past 16 KiB, slow down"; a push
    // server cannot slow down the publishers, so it bounds the queue instead.
    this.#res.write(chunk);
    if (this.#res.writableLength > this.#options.highWaterBytes) this.#backlogCheck ??= setImmediate(() => this.#checkBacklog());
  }

  /**
   * Judged one turn of the event loop later, not at once: Node corks a chunked
   * response until the next tick, so a burst published in one tick (or a long
   * replay) sits in writableLength even for a reader that keeps up. Once Node
   * has handed it to the kernel, what is still queued is this reader's fault.
   */
  #checkBacklog(): void {
    this.#backlogCheck = undefined;
    if (this.#res.writableLength > this.#options.highWaterBytes) this.close('slow');
  }

  close(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    clearInterval(this.#heartbeat);
    clearImmediate(this.#backlogCheck);
    this.#onClosed();
    if (reason === 'shutdown') this.#res.end(this.#format.tail);
    else if (reason === 'slow') this.#res.destroy();
  }
}

export default createHttpStreaming;
if (isEntryPoint(import.meta.url)) void runStandalone(createHttpStreaming);
