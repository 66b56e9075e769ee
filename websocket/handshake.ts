/**
 * The opening handshake (RFC 6455 §4.2): is this HTTP request a valid WebSocket
 * upgrade, and what do we answer? Pure: request in, response out; server.ts writes
 * the answer on the socket.
 *
 *     GET /chat?since=0 HTTP/1.1
 *     Host: localhost:8080
 *     Upgrade: websocket
 *     Connection: Upgrade
 *     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
 *     Sec-WebSocket-Version: 13
 *     Origin: http://localhost:8080
 *
 *     HTTP/1.1 101 Switching Protocols
 *     Upgrade: websocket
 *     Connection: Upgrade
 *     Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 *
 * The accept value proves the server read this handshake (§1.3): base64 of the
 * SHA-1 of the key followed by a GUID fixed by the RFC. It is not security; what
 * protects users is the `Origin` check: a browser always sends the page's origin,
 * so a page from another site cannot open a socket here with the user's cookies
 * (cross-site WebSocket hijacking, §10.2).
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { STATUS_CODES } from 'node:http';

/** §1.3: the GUID every server appends to the client's key. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** §4.1: the only version this server speaks. */
export const WEBSOCKET_VERSION = '13';

/** §4.1: the key is 16 random bytes in base64, which is always 22 characters and "==". */
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;

/** RFC 7230 §3.2.6 token characters: what a subprotocol name may be made of (§4.1). */
const TOKEN_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export interface HandshakeRequest {
  method?: string | undefined;
  url?: string | undefined;
  /** "1.1" for HTTP/1.1; node's IncomingMessage has it. */
  httpVersion?: string | undefined;
  headers: IncomingHttpHeaders;
}

export interface HandshakeOptions {
  /** Each path that has an endpoint, with the subprotocols it speaks (maybe none). */
  endpoints: ReadonlyMap<string, readonly string[]>;
  /** Origins other than the server's own allowed to connect, as `scheme://host[:port]`. */
  allowedOrigins: readonly string[];
  /** Whether the server is reached over TLS, which makes its own origin https://. */
  secure?: boolean;
}

export type HandshakeAnswer =
  | {
      accepted: true;
      /** The request target; only its path and query mean anything. */
      url: URL;
      /** The subprotocol chosen, if the client offered one the endpoint speaks. */
      protocol: string | undefined;
      /** The 101 response, ready to write on the socket. */
      response: string;
    }
  | {
      accepted: false;
      status: number;
      /** The whole refusal, headers and plain-text body, ready to write on the socket. */
      response: string;
    };

/** §4.2.2 step 5.4: base64(SHA-1(key + GUID)). */
export function acceptValue(key: string): string {
  return createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');
}

/**
 * Checks an upgrade request against §4.2.1 and chooses the answer (§4.2.2):
 *
 * 1. an unknown path → 404;
 * 2. not a GET over HTTP/1.1 or later, no Host, no `websocket` in Upgrade, no `upgrade` in Connection, a key
 *    that is not 16 bytes of base64, a malformed subprotocol list → 400;
 * 3. a version other than 13 (or none) → 426 naming the version we speak (§4.4);
 * 4. an Origin that is neither ours nor allowed → 403 (§4.2.2 step 4, §10.2);
 *    no Origin at all is allowed: only browsers send one, and only browsers need
 *    protecting from other sites' pages;
 * 5. else → 101, with `Sec-WebSocket-Accept` and maybe a subprotocol.
 *
 * It does not check the query string: each endpoint reads its own parameters.
 */
export function answerHandshake(request: HandshakeRequest, options: HandshakeOptions): HandshakeAnswer {
  const { headers } = request;
  const target = parseTarget(request.url);
  // 1.
  const subprotocols = target && options.endpoints.get(target.pathname);
  if (!target || !subprotocols) return refuse(404, 'No WebSocket endpoint at this path.');

  // 2.
  // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
  if (request.method !== 'GET') return refuse(400, 'A WebSocket handshake is a GET request.');
  if (request.httpVersion === '1.0' || request.httpVersion === '0.9') return refuse(400, 'A WebSocket handshake needs HTTP/1.1.');
  if (!headers.host) return refuse(400, 'Missing Host header.');
  if (!headerTokens(headers.upgrade).includes('websocket')) return refuse(400, 'Upgrade header must name websocket.');
  if (!headerTokens(headers.connection).includes('upgrade')) return refuse(400, 'Connection header must include upgrade.');
  const key = singleHeader(headers['sec-websocket-key']);
  if (key === undefined || !KEY_PATTERN.test(key)) return refuse(400, 'Sec-WebSocket-Key must be 16 bytes in base64.');
  const offered = headerList(headers['sec-websocket-protocol']);
  if (!offered.every((name) => TOKEN_PATTERN.test(name))) return refuse(400, 'Malformed Sec-WebSocket-Protocol header.');

  // 3.
  if (singleHeader(headers['sec-websocket-version']) !== WEBSOCKET_VERSION) {
    return refuse(426, 'Only WebSocket version 13 is supported.', { 'Sec-WebSocket-Version': WEBSOCKET_VERSION });
  }

  // 4.
  const origin = singleHeader(headers.origin);
  if (origin !== undefined && !isOriginAllowed(origin, headers.host, options)) {
    return refuse(403, 'Origin not allowed.');
  }

  // 5. The client lists subprotocols by preference (§4.1); take its first we speak.
  const protocol = offered.find((name) => subprotocols.includes(name));
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptValue(key)}`,
  ];
  // §4.2.2 step 5.4: answer with a subprotocol only if one was offered and chosen.
  if (protocol !== undefined) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  return {
    accepted: true,
    url: target,
    protocol,
    response: lines.join('\r\n') + '\r\n\r\n',
  };
}

/** A refusal as raw HTTP with a short plain-text body; the caller then closes the socket. */
export function refuse(status: number, body: string, extraHeaders: Record<string, string> = {}) {
  const text = body + '\n';
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(text)}`,
    ...Object.entries(extraHeaders).map(([name, value]) => `${name}: ${value}`),
  ];
  return { accepted: false as const, status, response: lines.join('\r\n') + '\r\n\r\n' + text };
}

/**
 * Whether a browser page from `origin` may connect (§10.2). Our own origin is the
 * scheme we serve plus the Host the browser asked for; others must be listed.
 * `URL` normalises both sides: case, and default ports (`http://a:80` is `http://a`).
 */
export function isOriginAllowed(origin: string, host: string, options: Pick<HandshakeOptions, 'allowedOrigins' | 'secure'>): boolean {
  const normalised = normaliseOrigin(origin);
  if (normalised === undefined) return false; // includes "null", sent by sandboxed pages and file://
  const ownOrigin = normaliseOrigin(`${options.secure ? 'https' : 'http'}://${host}`);
  if (normalised === ownOrigin) return true;
  return options.allowedOrigins.some((allowed) => normaliseOrigin(allowed) === normalised);
}

/** `scheme://host[:port]` in canonical form, or undefined if it is not an http(s) origin. */
export function normaliseOrigin(origin: string): string | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return url.origin;
}

function parseTarget(url: string | undefined): URL | undefined {
  // Request targets are paths (origin-form). Appending instead of resolving keeps
  // "//other/chat" a path rather than a host.
  if (url === undefined || !url.startsWith('/')) return undefined;
  try {
    return new URL('http://request.target' + url);
  } catch {
    return undefined;
  }
}

/** A header that must appear once; node joins most repeated headers with ", ". */
function singleHeader(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value.trim() : undefined;
}

/** A comma-separated header as its items, trimmed, empty ones dropped (RFC 7230 §7). */
function headerList(value: string | string[] | undefined): string[] {
  const joined = Array.isArray(value) ? value.join(',') : (value ?? '');
  return joined
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Upgrade and Connection hold case-insensitive tokens (RFC 7230 §6.1, §6.7). */
function headerTokens(value: string | string[] | undefined): string[] {
  return headerList(value).map((token) => token.toLowerCase());
}
