/**
 * Server-Sent Events (WHATWG HTML §9.2), on node:http, resuming where they stopped.
 *
 * One long HTTP response that never ends: the browser opens it with
 * `new EventSource('events')`, the server keeps writing small text blocks
 * (events) into it, and the browser fires one DOM event per block. One way only:
 * the browser talks back with ordinary requests (here `POST /publish`).
 *
 *     $ curl -N -H 'Accept: text/event-stream' -H 'Last-Event-ID: 1' http://127.0.0.1:8080/events
 *     retry: 500                                  reconnect 500 ms after a drop
 *
 *     id: 2                                       replay: what came after id 1
 *     data: {"id":2,"text":"two\nlines <b>","time":1795249094734}
 *
 *     event: ping                                 the documents' ping, every 5 s
 *     data: {"time":"2026-11-21T08:18:14.753Z"}
 *
 *     : keep-alive                                a comment every HEARTBEAT_MS
 *
 * The format (§9.2.5–§9.2.6, event-stream.ts) is `field: value` lines; a blank line
 * dispatches. Unnamed events reach `onmessage`; `event: ping` reaches
 * `addEventListener('ping', …)`.
 *
 * Automatic reconnection (§9.2.3): when the response ends or the network drops,
 * the browser reconnects by itself after `retry` ms and sends the last `id:` it
 * saw as the `Last-Event-ID` header. With consecutive ids and a message log,
 * the server replays exactly what was missed. That is the point of this folder;
 * the documents' snippets send no ids, so every drop loses messages.
 * The browser gives up for good (readyState CLOSED) on a non-200 answer or a
 * wrong Content-Type: browser.ts then reopens with `?since=` and a back-off.
 *
 * Limits worth knowing: over HTTP/1.1 a browser opens at most 6 connections per
 * origin, and each EventSource holds one for good, so a 7th tab of the same
 * site stalls (HTTP/2 multiplexes them and lifts that). Text only (no binary),
 * and no request headers of your own from EventSource (no Authorization).
 *
 * Spec sections: WHATWG HTML §9.2.3 (the processing model: 200 +
 * text/event-stream or fail, reconnection), §9.2.4 (the Last-Event-ID header),
 * §9.2.5–§9.2.6 (the format and how clients read it), §9.2.7 (authoring notes:
 * a comment every 15 s or so against proxies, the per-server connection limit);
 * RFC 9110 §12.5.1 (Accept, the 406); RFC 6202 §5.5 (timeouts on intermediaries).
 *
 * Left out on purpose: compression (a stream compressed by a proxy or by us
 * waits for the compressor's buffer: see README), HTTP/2 (node:http is
 * HTTP/1.1 here), and authentication (same as every folder).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { allowMethods, guard, HttpError, parseCursor, parseSince, requestUrl } from '../shared/http.ts';
import { isEntryPoint, runStandalone } from '../shared/lifecycle.ts';
import type { Message, MessageLog, Unsubscribe } from '../shared/message-log.ts';
import { handlePublish } from '../shared/publish.ts';
import { createSite } from '../shared/site.ts';
import type { Technique, TechniqueContext } from '../shared/technique.ts';
import { acceptsEventStream, formatComment, formatEvent, formatRetry } from './event-stream.ts';

/**
 * Reconnection delay sent as `retry:` (the documents' value). The browser's own
 * default is a few seconds; 500 ms makes a dropped connection heal before a
 * reader notices.
 */
export const RETRY_MS = 500;

/** The documents' ping (`event: ping`, `{"time": …}`): one at once, then this often. */
export const PING_INTERVAL_MS = 5_000;

/**
 * Unsent bytes a live stream may hold, beyond one largest event, before the
 * reader counts as too slow and the stream is ended. A healthy reader drains
 * far faster than a chat fills this; one a megabyte behind is stuck (a frozen
 * tab, a dead NAT mapping) and would only grow a queue here. Ending the stream
 * costs it nothing: it reconnects with Last-Event-ID and the log replays.
 */
export const HIGH_WATER_BYTES = 1024 * 1024;

/**
 * The largest event a message of `maxMessageBytes` makes: JSON escapes a
 * control character as 6 bytes ("\u0001" for one), plus the id, the time and
 * the field names.
 */
export function largestEventBytes(maxMessageBytes: number): number {
  return 6 * maxMessageBytes + 200;
}

const STREAM_HEADERS = {
  'Content-Type': 'text/event-stream',
  // no-cache: never answer an EventSource from a cache. no-transform: a proxy
  // must not recompress or rewrite the body (RFC 9111 §5.2.2.6), which would
  // buffer events until a compressor block fills.
  'Cache-Control': 'no-cache, no-transform',
  // nginx buffers proxied responses unless told not to, per response.
  'X-Accel-Buffering': 'no',
  'X-Content-Type-Options': 'nosniff',
} as const;

export interface SseTechnique extends Technique {
  /** Streams open right now (tests check that none leak). */
  readonly openStreams: number;
}

export const createSse = ({ log, config }: TechniqueContext): SseTechnique => {
  const site = createSite(new URL('.', import.meta.url));
  const streams = new OpenStreams({
    heartbeatMs: config.heartbeatMs,
    // A single largest message must never trip the mark on its own.
    highWaterBytes: HIGH_WATER_BYTES + largestEventBytes(config.maxMessageBytes),
  });

  function openEvents(req: IncomingMessage, res: ServerResponse): void {
    if (!allowMethods(req, res, ['GET'])) return;
    // RFC 9110 §15.5.7: 406 when no acceptable representation exists. The
    // documents' check was `accept == 'text/event-stream'`, which refuses
    // `text/event-stream, */*` and curl's `*/*`; see acceptsEventStream().
    if (!acceptsEventStream(req.headers.accept)) {
      throw new HttpError(406, 'GET /events answers text/event-stream only; send Accept: text/event-stream');
    }
    const since = resumePoint(req);
    res.writeHead(200, STREAM_HEADERS);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    new EventStream(res, log, streams, since).start();
  }

  return {
    handle: guard(async (req, res) => {
      switch (requestUrl(req).pathname) {
        case '/events':
          return openEvents(req, res);
        case '/publish':
          return handlePublish(req, res, log, config.maxMessageBytes);
        default:
          return site(req, res);
      }
    }),
    shutdown() {
      for (const stream of streams) stream.end('server shutting down');
    },
    get openStreams() {
      return streams.size;
    },
  };
};

/**
 * Where a stream starts: after `Last-Event-ID` when the browser sends one (a
 * reconnect, §9.2.4), else after `?since=N` (the page's first connection or a
 * reopen after the browser gave up), else from the start of the backlog.
 * Last-Event-ID wins: the URL of an EventSource never changes, so its `since`
 * is as old as the EventSource, while the header is the newest position. A
 * malformed value of either is a 400 (a misread cursor loses or repeats messages);
 * an empty Last-Event-ID counts as absent (browsers never send one).
 */
export function resumePoint(req: IncomingMessage): number {
  const since = parseSince(requestUrl(req));
  // Node joins a repeated header with ", ", which parseCursor then refuses.
  const header = req.headers['last-event-id'];
  const value = Array.isArray(header) ? header.join(', ') : header;
  if (value === undefined || value === '') return since;
  return parseCursor(value, 'Last-Event-ID');
}

interface StreamOptions {
  heartbeatMs: number;
  highWaterBytes: number;
}

/**
 * Every open stream, and the two timers that keep them all alive: one sweep
 * writes a heartbeat comment to each stream every heartbeatMs, another the
 * documents' ping every PING_INTERVAL_MS. The timers run only while a stream
 * is open (none at import, none on an idle server).
 *
 * Why one sweep and not a timer per stream: memory. Each open stream is idle
 * almost all the time, so what it holds is what it costs; a timer per stream
 * is an object and a closure more for every connection, while a heartbeat only
 * has to come at least every heartbeatMs, not at a moment of the stream's own.
 * (A stream opened just before a sweep gets its first heartbeat early; none
 * ever waits longer than heartbeatMs. `ws` users keep their pings this way.)
 */
class OpenStreams {
  readonly options: StreamOptions;
  readonly #streams = new Set<EventStream>();
  #heartbeat: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;

  constructor(options: StreamOptions) {
    this.options = options;
  }

  get size(): number {
    return this.#streams.size;
  }

  [Symbol.iterator](): IterableIterator<EventStream> {
    return this.#streams.values();
  }

  add(stream: EventStream): void {
    this.#streams.add(stream);
    if (this.#streams.size > 1) return;
    this.#heartbeat = setInterval(() => {
      for (const open of this.#streams) open.writeHeartbeat();
    }, this.options.heartbeatMs);
    this.#ping = setInterval(() => {
      for (const open of this.#streams) open.writePing();
    }, PING_INTERVAL_MS);
  }

  delete(stream: EventStream): void {
    if (!this.#streams.delete(stream) || this.#streams.size > 0) return;
    clearInterval(this.#heartbeat);
    clearInterval(this.#ping);
  }
}

/**
 * One open `GET /events` response: its cursor, its subscription.
 *
 * It writes in two modes, because a replay and live messages differ in who
 * sets the pace:
 * - catching up: messages come from the log, as fast as the socket takes them.
 *   When `res.write()` says the socket is full, it waits for 'drain' and picks
 *   up from the log where it stopped. So a replay of the whole backlog never
 *   sits in this process's memory at once, and the log is the only queue.
 * - live: once caught up, `log.subscribe(listener, sent)` goes live in one
 *   synchronous step (nothing published in between is lost or doubled). Now
 *   the publisher sets the pace; a reader that leaves more than highWaterBytes
 *   unsent is cut, and resumes by Last-Event-ID.
 * A reader that takes nothing for a whole heartbeat interval while a replay
 * waits for 'drain' is cut as well: it is stuck, not slow.
 *
 * Teardown: every way a stream ends (client gone, cut, shutdown) passes
 * through #teardown, once, which clears the stall timer, the subscription and
 * the stream's place in `streams` (and with it, its heartbeats and pings).
 *
 * Memory: the state lives in fields and the code in methods (on the
 * prototype, shared by every stream); the only functions made per stream are
 * the few arrows handed straight to an event or the log. A method stored as an
 * arrow field (`#onLive = (m) => …`) would be one more closure per stream, and
 * under tsx (whose `keepNames` gives every closure bound to a name its own
 * property store) some 300 bytes more for each open connection.
 */
class EventStream {
  readonly #res: ServerResponse;
  readonly #log: MessageLog;
  readonly #streams: OpenStreams;
  /** Id of the last message written; the client's Last-Event-ID once it reads it. */
  #sent: number;
  #unsubscribe: Unsubscribe | undefined;
  #stalled: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(res: ServerResponse, log: MessageLog, streams: OpenStreams, since: number) {
    this.#res = res;
    this.#log = log;
    this.#streams = streams;
    this.#sent = since;
  }

  start(): void {
    this.#streams.add(this);
    // 'close' is the one signal for "this response is over", whether the
    // client went away (tab closed, network cut) or we ended it.
    this.#res.on('close', () => this.#teardown());
    // The headers go now, so the browser's onopen fires at once, not when the
    // first message comes. Sent on their own (not glued to the first write),
    // they leave Node's copy of the head (`res._header`, kept while the
    // response lives) as one flat string instead of the ~28-piece rope Node
    // built it as: about 0.6 KiB less per open stream, measured.
    this.#res.flushHeaders();
    // §9.2.6: `retry:` sets the reconnection time. It goes first, in a block
    // of its own, so it holds for every reconnect; the blank line dispatches
    // nothing (no data).
    this.#res.write(formatRetry(RETRY_MS) + '\n');
    this.#catchUp();
    this.writePing();
  }

  /** Ends the response cleanly (the terminating chunk), saying why in a comment. */
  end(reason: string): void {
    if (this.#ended) return;
    this.#res.end(formatComment(reason));
    this.#teardown();
  }

  /** §9.2.7: a comment line that keeps proxies from timing out an idle stream. */
  writeHeartbeat(): void {
    this.#write(formatComment('keep-alive'));
  }

  writePing(): void {
    // The documents' ping, without an id: a ping must not move Last-Event-ID.
    this.#write(formatEvent({ event: 'ping', data: JSON.stringify({ time: new Date().toISOString() }) }));
  }

  #catchUp(): void {
    // A 'drain' may still come after the teardown (the listener is not removed).
    if (this.#ended) return;
    this.#clearStallTimer();
    for (const message of this.#log.since(this.#sent)) {
      if (!this.#writeMessage(message)) {
        // The socket holds enough: wait until it has sent it.
        this.#res.once('drain', () => this.#catchUp());
        // Nothing taken for a whole heartbeat interval: stuck, not slow.
        this.#stalled = setTimeout(() => this.#cut(), this.#streams.options.heartbeatMs);
        return;
      }
    }
    // Caught up with the log: go live. `subscribe(…, sent)` replays whatever
    // is newer than `sent` (nothing, as we are still in the same tick) and
    // then listens, in one step.
    this.#unsubscribe = this.#log.subscribe((message) => this.#onLive(message), this.#sent);
  }

  #onLive(message: Message): void {
    this.#writeMessage(message);
    // Too far behind: cut it rather than queue more (see HIGH_WATER_BYTES).
    if (this.#res.writableLength > this.#streams.options.highWaterBytes) this.#cut();
  }

  /** Writes one message as `id:` + `data:`; false when the socket asks us to wait. */
  #writeMessage(message: Message): boolean {
    // Belt and braces: a message can reach us both from a replay and live only
    // if the log misbehaves; never send an id twice.
    if (message.id <= this.#sent) return true;
    this.#sent = message.id;
    // JSON.stringify never emits a raw line break, so this is one data: line.
    return this.#write(formatEvent({ id: message.id, data: JSON.stringify(message) }));
  }

  #write(text: string): boolean {
    if (this.#ended) return true;
    return this.#res.write(text);
  }

  /**
   * Ends the stream abruptly: the bytes queued for this reader are dropped
   * with the socket (that memory is the point). The browser sees a network
   * error and reconnects with the last id it actually processed.
   */
  #cut(): void {
    if (this.#ended) return;
    this.#teardown();
    this.#res.destroy();
  }

  #clearStallTimer(): void {
    clearTimeout(this.#stalled);
    this.#stalled = undefined;
  }

  #teardown(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#clearStallTimer();
    this.#unsubscribe?.();
    this.#streams.delete(this);
  }
}

export default createSse;
if (isEntryPoint(import.meta.url)) void runStandalone(createSse);
