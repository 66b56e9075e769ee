/**
 * # Ajax (short) polling
 *
 * The browser asks "anything new?" on a timer and the server answers at once,
 * with what it has. No connection is held open; every exchange is an ordinary
 * request, so it works through any proxy, cache or load balancer there is.
 *
 *     $ curl -i 'http://127.0.0.1:8080/messages?since=0'
 *     HTTP/1.1 200 OK
 *     Content-Type: application/json; charset=utf-8
 *     Cache-Control: no-cache
 *     ETag: "l98t82.1-2"
 *
 *     [{"id":1,"text":"hi","time":1795248073678},{"id":2,"text":"there","time":1795248073686}]
 *     $ curl -i -H 'If-None-Match: "l98t82.1-2"' 'http://127.0.0.1:8080/messages?since=0'
 *     HTTP/1.1 304 Not Modified                    (nothing new: headers only, no body)
 *     ETag: "l98t82.1-2"
 *
 * The documents' version is `setInterval(() => fetch(url), 1000)` (seed 001),
 * and "regular polling", where the server keeps what arrived since the last
 * request and hands it over on the next one (seed 004). Here the server keeps
 * no state per client: every message has a consecutive id, the client says
 * which one it saw last (`since`), and the answer is everything newer that the
 * backlog still holds. A client that was away simply asks with an older id.
 *
 * What it costs: a request every interval even when nothing happened (here
 * mostly `304`s with no body), and latency of up to one interval plus a round
 * trip. Choose it when updates are rare or a few seconds' delay is fine, when
 * the infrastructure is hostile to anything long-lived, or as the fallback
 * under the other four techniques. For low latency, see ../long-polling/
 * (same requests, held until something happens) and ../sse/.
 *
 * Specs: RFC 9110 §8.8.3 (ETag), §13.1.2 (If-None-Match), §15.4.5 (304),
 * RFC 9111 §5.2.2.4 (Cache-Control: no-cache).
 *
 * Left out on purpose:
 * - Server-side waiting of any kind: that is long polling, the next folder.
 * - Per-client queues (seed 004's "what arrived since the last request"): the
 *   `since` cursor gives the same answer without the server remembering, and
 *   without losing messages when a response is lost on the way.
 * - `Last-Modified`: the messages carry millisecond times, HTTP dates have
 *   one-second resolution; the ETag is exact.
 * - Long-lived exchanges: there are none, so shutdown() has nothing to end;
 *   the lifecycle just closes idle keep-alive connections.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { allowMethods, guard, parseSince, requestUrl, sendJson } from '../shared/http.ts';
import { handlePublish } from '../shared/publish.ts';
import { createSite } from '../shared/site.ts';
import { isEntryPoint, runStandalone } from '../shared/lifecycle.ts';
import type { MessageLog } from '../shared/message-log.ts';
import type { CreateTechnique } from '../shared/technique.ts';
import { ifNoneMatchHolds, pollTag } from './etag.ts';

/**
 * RFC 9111 §5.2.2.4: `no-cache` lets a cache store the answer but never reuse
 * it without asking us first (with If-None-Match), so no proxy or browser
 * serves yesterday's poll. It is not `no-store`: revalidation is the point.
 */
const CACHE_CONTROL = 'no-cache';

/** RFC 9110 §9.3.2: HEAD wherever GET. Listed both, once, so no array is made per request. */
const GET_AND_HEAD = ['GET', 'HEAD'] as const;

export const createAjaxPolling: CreateTechnique = ({ log, config }) => {
  const site = createSite(new URL('.', import.meta.url));
  // Tells this log's ids from those of an earlier process (ids restart at 1);
  // see etag.ts for why the tag needs it.
  const epoch = randomBytes(4).readUInt32BE().toString(36);

  return {
    // Not `async`: guard() catches what a route throws at once (poll()'s 400)
    // as well as what a returned promise rejects with (publish, static files),
    // so the hot route, `/messages`, runs to its answer with no promise made.
    handle: guard((req, res) => {
      const url = requestUrl(req); // parsed once, here, for the route and the cursor
      switch (url.pathname) {
        case '/messages':
          return poll(req, res, url, log, epoch);
        case '/publish':
          return handlePublish(req, res, log, config.maxMessageBytes);
        default:
          return site(req, res);
      }
    }),
    // Every answer is sent at once: nothing is held, nothing to end.
    shutdown() {},
  };
};

/**
 * `GET /messages?since=N`: the messages with an id greater than N that the
 * backlog still holds, at once, as a JSON array (`[]` when there are none).
 */
function poll(req: IncomingMessage, res: ServerResponse, url: URL, log: MessageLog, epoch: string): void {
  if (!allowMethods(req, res, GET_AND_HEAD)) return;
  // 1. The cursor. Anything but a non-negative integer is a 400 (thrown as an
  //    HttpError, answered by guard()): a misread cursor would lose messages.
  const since = parseSince(url);

  // 2. Which messages the answer holds. A `since` older than the backlog gets
  //    what is left (the client sees the gap in the ids and says so).
  const first = Math.max(since + 1, log.firstId);
  const last = log.lastId;
  const headers = { ETag: pollTag(epoch, first, last), 'Cache-Control': CACHE_CONTROL };

  // 3. RFC 9110 §13.2.2: evaluate If-None-Match after the request is known to
  //    be valid, before building the body. §15.4.5: a 304 carries the ETag and
  //    Cache-Control the 200 would have had, and no content: the head is
  //    written in one call, with those two fields and what node adds (Date,
  //    keep-alive), and no Content-Length (node never frames a 304's body).
  if (ifNoneMatchHolds(req.headers['if-none-match'], headers.ETag)) {
    res.writeHead(304, headers).end();
    return;
  }

  // 4. The answer. log.since() reads the same range: nothing runs in between
  //    (one thread, no await since step 2), so the body is what the tag names.
  sendJson(res, 200, log.since(since), headers);
}

export default createAjaxPolling;
if (isEntryPoint(import.meta.url)) void runStandalone(createAjaxPolling);
