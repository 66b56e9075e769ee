/**
 * The HTTP vocabulary every folder shares: one error type, plain-text error
 * answers, JSON answers, method checks and the `since` cursor.
 *
 * Every error response is a status plus a one-line text body, so `curl` shows
 * what went wrong. Handlers throw HttpError (or call sendError) and never let
 * another exception escape: see `guard()`.
 */
import type { IncomingMessage, ServerResponse, OutgoingHttpHeaders } from 'node:http';

export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: OutgoingHttpHeaders = {},
  ) {
    super(message);
  }
}

/** A short plain-text answer; the connection may be kept alive. */
export function sendText(res: ServerResponse, status: number, text: string, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    // Too late for a status line: the best we can do is stop the response.
    res.destroy();
    return;
  }
  const body = text.endsWith('\n') ? text : text + '\n';
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function sendError(res: ServerResponse, error: HttpError): void {
  sendText(res, error.status, error.message, error.headers);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: OutgoingHttpHeaders = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-cache',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/**
 * Answers 405 with the Allow header (RFC 9110 §15.5.6) unless the method is
 * one of `methods`; returns whether the caller may go on. HEAD is allowed
 * wherever GET is (RFC 9110 §9.3.2).
 */
export function allowMethods(req: IncomingMessage, res: ServerResponse, methods: readonly string[]): boolean {
  const allowed = methods.includes('GET') && !methods.includes('HEAD') ? [...methods, 'HEAD'] : methods;
  if (allowed.includes(req.method ?? '')) return true;
  sendText(res, 405, `Method ${req.method} not allowed; use ${allowed.join(' or ')}`, { Allow: allowed.join(', ') });
  return false;
}

/** The request URL, parsed; the host part is irrelevant and fixed. */
export function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? '/', 'http://localhost');
}

const NON_NEGATIVE_INTEGER = /^(0|[1-9][0-9]*)$/;

/**
 * `since=N`: "messages with an id greater than N". Missing means 0 (everything
 * the backlog holds). Anything but a non-negative decimal integer, or a value
 * given twice, is a 400: a silently misread cursor would lose or repeat messages.
 */
export function parseSince(url: URL): number {
  const values = url.searchParams.getAll('since');
  if (values.length === 0) return 0;
  return parseCursor(values.length === 1 ? values[0]! : '', 'since');
}

/** A non-negative integer cursor (a `since` value, a Last-Event-ID); HttpError 400 otherwise. */
export function parseCursor(value: string, name: string): number {
  const number = Number(value);
  if (!NON_NEGATIVE_INTEGER.test(value) || !Number.isSafeInteger(number)) {
    throw new HttpError(400, `${name} must be a non-negative integer, got ${JSON.stringify(value.slice(0, 40))}`);
  }
  return number;
}

/**
 * Runs a request handler so that nothing escapes it: an HttpError becomes its
 * answer, anything else is logged and becomes a 500.
 */
export function guard(
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    try {
      const result = handler(req, res);
      if (result) result.catch((error: unknown) => answerFailure(res, error));
    } catch (error) {
      answerFailure(res, error);
    }
  };
}

/** An HttpError becomes its answer; anything else is a bug: logged, and a 500. */
function answerFailure(res: ServerResponse, error: unknown): void {
  if (error instanceof HttpError) {
    sendError(res, error);
  } else {
    console.error('request failed:', error);
    sendText(res, 500, 'Internal server error');
  }
}
