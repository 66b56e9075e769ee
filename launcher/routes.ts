/**
 * The launcher's pure parts: which folder a request path belongs to, and what
 * a delay setting says. No I/O; tested on plain strings (routes.test.ts).
 *
 *     routeRequest('/sse/events?since=3', names)  → { kind: 'mounted', name: 'sse', url: '/events?since=3' }
 *     routeRequest('/sse/', names)                → { kind: 'mounted', name: 'sse', url: '/' }
 *     routeRequest('/sse?x=1', names)             → { kind: 'redirect', location: '/sse/?x=1' }
 *     routeRequest('/publish', names)             → { kind: 'own', url: '/publish' }
 */

export type Route =
  /** Under a folder's prefix: hand `url` (the prefix taken off) to that folder. */
  | { kind: 'mounted'; name: string; url: string }
  /**
   * The folder's name without its trailing slash. Its page uses relative URLs
   * (`fetch('publish')`), which resolve against the directory: served at `/sse`
   * they would reach `/publish`, so the browser is sent to `/sse/` first.
   */
  | { kind: 'redirect'; location: string }
  /** Everything else: the launcher's own routes and page. */
  | { kind: 'own'; url: string };

/**
 * Routes a request target (origin-form, RFC 9112 §3.2.1: a path and an optional
 * query). Matching is on the raw, undecoded path and on whole segments, so
 * `/ssex` and `/%73se/` are not `/sse/`: they fall to the launcher's own site,
 * whose static gate answers 404. What is left after the prefix is handed on
 * unchanged; the folder's own checks (its static gate, its `since` parser)
 * apply to it as they do when it runs alone.
 */
export function routeRequest(target: string, names: readonly string[]): Route {
  const queryAt = target.indexOf('?');
  const path = queryAt < 0 ? target : target.slice(0, queryAt);
  const query = queryAt < 0 ? '' : target.slice(queryAt);
  for (const name of names) {
    const prefix = `/${name}`;
    if (path === prefix) return { kind: 'redirect', location: `${prefix}/${query}` };
    if (path.startsWith(`${prefix}/`)) return { kind: 'mounted', name, url: path.slice(prefix.length) + query };
  }
  return { kind: 'own', url: target };
}

/**
 * The largest delay the control accepts. Enough to watch a reconnect happen;
 * far under POLL_TIMEOUT_MS (25 s), so a delayed long-poll is still a long-poll.
 */
export const MAX_DELAY_MS = 10_000;

/**
 * Parses the body of `POST /control/delay`: the delay in milliseconds as a
 * decimal integer from 0 to MAX_DELAY_MS (`curl -d 500`). Surrounding
 * whitespace (a trailing newline from `echo`) is allowed; anything else
 * (`1.5`, `-1`, `1e3`, `500ms`, `0x10`) is refused with the reason, rather
 * than read as something the sender may not have meant.
 */
export function parseDelay(body: string): { ok: true; ms: number } | { ok: false; reason: string } {
  const text = body.trim();
  if (!/^(0|[1-9][0-9]*)$/.test(text)) {
    return { ok: false, reason: `delay must be a whole number of milliseconds, got ${JSON.stringify(text.slice(0, 20))}` };
  }
  const ms = Number(text);
  if (ms > MAX_DELAY_MS) return { ok: false, reason: `delay must be at most ${MAX_DELAY_MS} ms, got ${text.slice(0, 20)}` };
  return { ok: true, ms };
}
