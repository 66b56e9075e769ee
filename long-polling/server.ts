/**
 * Long polling: the hanging GET.
 *
 * The browser asks "anything after #N?" and the server does not answer until
 * it has something to say. When a message is published, every held request is
 * answered with it and the browser asks again at once, with the id it just
 * got. When nothing happens for POLL_TIMEOUT_MS the server answers 204 ("nothing
 * yet, ask again"), so that no proxy, load balancer or browser gives up on a
 * silent request first (RFC 6202 §5.5: 30 s is a safe ceiling; we hold 25 s).
 *
 *     $ curl -i 'http://127.0.0.1:8080/subscribe?since=0'        # backlog: at once
 *     HTTP/1.1 200 OK
 *     Cache-Control: no-store
 *     [{"id":1,"text":"hello","time":1763712000000}]
 *     $ curl -i 'http://127.0.0.1:8080/subscribe?since=1'        # held…
 *                                     (elsewhere: curl -d 'hi' …/publish)
 *     HTTP/1.1 200 OK                                            # …until a publish
 *     [{"id":2,"text":"hi","time":1763712004211}]
 *     $ curl -i 'http://127.0.0.1:8080/subscribe?since=2'        # …or the timeout
 *     HTTP/1.1 204 No Content                                    # (25 s later)
 *
 * Why a cursor. The documents' version (javascript.info, in seeds/004) ends
 * every held response with the new message and forgets it: a message published
 * while a browser is between two polls (reading the last answer, reconnecting,
 * offline for a second) reaches nobody. Here every message has an id and the
 * log keeps a backlog, so `since=N` gets what was missed at once; the only loss
 * left is a client away for longer than the backlog reaches, and the client sees
 * that as a gap in the ids and says so.
 *
 * Why a server timeout. A request held forever is cut by whatever sits in
 * between, at its own moment and with its own error (a 502 or 504 from a proxy,
 * a network error from the browser). Answering first keeps that path for real
 * failures.
 *
 * Cost per message, compared with polling (ajax-polling/): a poll every second
 * costs one request a second per client whether anything happens or not, and a
 * message waits half a second on average. A long poll costs one request per
 * message (plus one per POLL_TIMEOUT_MS when idle) and a message leaves at once;
 * the price is one open connection per waiting client, and a full exchange with
 * headers (a few hundred bytes each way) for every message, where SSE or a WebSocket send only the
 * message (sse/, websocket/).
 *
 * Specs: RFC 6202 (Known Issues and Best Practices for Long Polling) §2.1 the
 * technique, §5.5 timeouts, §5.6 caching; RFC 9110 §15.3.5 204 No Content;
 * RFC 9111 §5.2.2.5 no-store.
 *
 * Left out on purpose: batching several messages into one answer after a short
 * delay (each answer carries what the backlog holds anyway, so a client that
 * falls behind catches up in one request); HTTP/1.1 pipelining tricks; a
 * per-client limit on held requests (a browser holds one per tab; the browser's
 * own six-connections-per-host limit is the reason a page must not hold two).
 */
import type { IncomingMessage, ServerResponse, OutgoingHttpHeaders } from 'node:http';
import { allowMethods, guard, parseSince, requestUrl, sendJson } from '../shared/http.ts';
import { isEntryPoint, runStandalone } from '../shared/lifecycle.ts';
import type { Message, Unsubscribe } from '../shared/message-log.ts';
import { handlePublish } from '../shared/publish.ts';
import { createSite } from '../shared/site.ts';
import type { CreateTechnique, Technique, TechniqueContext } from '../shared/technique.ts';

/**
 * On every answer to /subscribe. An answer is only true at the moment it is
 * given: a cache or proxy that kept it would replay old news or, worse, answer
 * the next poll at once forever (RFC 6202 §5.6). `no-store` (RFC 9111 §5.2.2.5)
 * forbids keeping it at all; the documents' random query parameter is then not
 * needed (it is still accepted and ignored).
 */
export const NO_STORE: OutgoingHttpHeaders = { 'Cache-Control': 'no-store' };

/** The technique, plus what tests need to see that nothing is left behind. */
export interface LongPolling extends Technique {
  /** Requests being held right now. */
  readonly heldCount: number;
}

/**
 * One held request: its response, when it times out, its place in the message
 * log. A plain object, and no timer of its own (see `timeouts` in
 * createLongPolling), for memory: a held request is idle until it is answered,
 * so what it holds is what it costs, and a timer per request is an object and
 * a closure more for each of them (with the backlog checked before subscribing,
 * a request costs two small closures: its log listener and its 'close').
 */
interface HeldPoll {
  readonly res: ServerResponse;
  readonly since: number;
  /** performance.now() at which it is answered 204. */
  readonly deadline: number;
  unsubscribe: Unsubscribe;
}

export const createLongPolling = ({ log, config }: TechniqueContext): LongPolling => {
  const site = createSite(new URL('.', import.meta.url));
  /**
   * Every held request; the documents' `subscribers` object. In the order they
   * came, which is also the order they time out: every request is held for the
   * same pollTimeoutMs.
   */
  const held = new Set<HeldPoll>();
  let closing = false;
  /**
   * One timer for all held requests, set for the oldest one's deadline; armed
   * only while a request is held (none at import, none on an idle server).
   */
  let timeouts: NodeJS.Timeout | undefined;

  /** Answers 204 to every request whose time is up, then waits for the next deadline. */
  function expire(): void {
    timeouts = undefined;
    const now = performance.now();
    for (const poll of held) {
      if (poll.deadline > now) {
        timeouts = setTimeout(expire, Math.ceil(poll.deadline - now));
        return;
      }
      release(poll, 204); // leaves the set: iterating a Set survives that
    }
  }

  /**
   * The one way a held request ends, whatever ends it (a publish, the timeout,
   * the client leaving, shutdown): out of the set (the timer cleared with the
   * last one), unsubscribed from the log, exactly once. Answers only when there is still someone to
   * answer: `status` is undefined when the client has gone.
   */
  function release(poll: HeldPoll, status?: 200 | 204, messages: Message[] = []): void {
    if (!held.delete(poll)) return; // already released: everything below ran once
    if (held.size === 0) {
      clearTimeout(timeouts);
      timeouts = undefined;
    }
    poll.unsubscribe();
    if (status === undefined || poll.res.destroyed) return;
    // While shutting down, also close the connection, so that it is not left
    // idle for the lifecycle to sweep.
    const headers = closing ? { ...NO_STORE, Connection: 'close' } : NO_STORE;
    if (status === 200) sendJson(poll.res, 200, messages, headers);
    else poll.res.writeHead(204, headers).end();
  }

  /** GET /subscribe?since=N */
  function subscribe(req: IncomingMessage, res: ServerResponse): void {
    if (!allowMethods(req, res, ['GET'])) return;
    const since = parseSince(requestUrl(req)); // 400 for anything but a non-negative integer

    // 1. Something already newer: answer at once. This is the request a client
    //    sends right after an answer, catching up with whatever was published
    //    while it was away.
    const backlog = log.since(since);
    if (backlog.length > 0) return sendJson(res, 200, backlog, NO_STORE);
    // While shutting down, nothing more will be published here: "ask again" at
    // once, and close the connection so that the next attempt finds the new server.
    if (closing) return void res.writeHead(204, { ...NO_STORE, Connection: 'close' }).end();

    // 2. Nothing yet: hold the request until a publish, the timeout or the
    //    client leaves. Subscribing in the same synchronous step as the check
    //    above, so a message published around this moment is either in that
    //    backlog or comes live, never neither and never both.
    const poll: HeldPoll = { res, since, deadline: performance.now() + config.pollTimeoutMs, unsubscribe: noop };
    poll.unsubscribe = log.subscribe((message) => {
      // Contract: only ids above `since`. A live message can be lower only when
      // the client's cursor is ahead of the log (it saw a previous run of the
      // server, whose ids this run repeats: the log is not persisted).
      if (message.id > poll.since) release(poll, 200, [message]);
    });
    held.add(poll);
    timeouts ??= setTimeout(expire, config.pollTimeoutMs);
    // 'close' on the response fires when it has been sent, and also when the
    // connection goes away before that (a closed tab, an aborted fetch). In the
    // second case the client is forgotten now, not at the next publish or
    // timeout: no write to a dead socket, no subscription left behind.
    // (The documents listen on the request; in Node 20 that fires at the same
    // moment, but the response's 'close' is the one documented for both cases.)
    res.on('close', () => release(poll));
  }

  return {
    handle: guard(async (req, res) => {
      switch (requestUrl(req).pathname) {
        case '/subscribe':
          return subscribe(req, res);
        case '/publish':
          // A message reaches every held request through its log subscription.
          return handlePublish(req, res, log, config.maxMessageBytes);
        default:
          return site(req, res);
      }
    }),

    /**
     * The documents' close(): every held request gets its answer, 204 "nothing
     * yet, ask again", so a client goes straight to its reconnect loop instead
     * of seeing a cut connection. Later polls on connections still open are
     * answered 204 at once.
     */
    shutdown(): void {
      closing = true;
      for (const poll of [...held]) release(poll, 204);
    },

    get heldCount(): number {
      return held.size;
    },
  };
};

function noop(): void {}

export default createLongPolling satisfies CreateTechnique;

if (isEntryPoint(import.meta.url)) void runStandalone(createLongPolling);
