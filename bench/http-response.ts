/**
 * An incremental HTTP/1.1 response reader for the load generators.
 *
 * The benchmark talks to the servers over raw `node:net` sockets so that it can
 * count every byte read and written, and so that the client is not the
 * bottleneck (an `http.Agent` costs more per request than the servers it
 * measures). This is the smallest reader that does that job: it takes bytes in
 * any chunking and reports each response's head, body pieces and end, following
 * RFC 9112 §6.3 (message body length):
 *
 *   1xx other than 101, 204 and 304 have no body (§6.3 item 1 and 2);
 *   101 ends HTTP on this connection: the rest of the bytes are the new protocol;
 *   `Transfer-Encoding: chunked` (§7.1) is read chunk by chunk, trailers skipped;
 *   `Content-Length` is read to the byte;
 *   otherwise the body runs until the connection closes.
 *
 * Not a general client: it does not check what it is given (the servers are
 * ours), and a HEAD request's answer would be misread as having a body.
 */

export interface ResponseHead {
  status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  headers: Map<string, string>;
}

export interface ResponseEvents {
  head?(head: ResponseHead): void;
  /** A piece of the body, chunk framing removed. Valid only during the call. */
  body?(piece: Buffer): void;
  /** The response is complete; the next bytes are the next response. */
  end?(head: ResponseHead): void;
  /** After a 101: the bytes that followed the head, already in the new protocol. */
  upgrade?(head: ResponseHead, rest: Buffer): void;
}

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailer' | 'until-close' | 'upgraded';

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');
/** A head larger than this is a bug in a server under test, not a response. */
const MAX_HEAD_BYTES = 64 * 1024;

export class ResponseReader {
  #state: State = 'head';
  #pending: Buffer = EMPTY;
  #remaining = 0;
  #head: ResponseHead = { status: 0, headers: new Map() };

  constructor(private readonly events: ResponseEvents) {}

  /** True after a 101: the reader takes no more bytes. */
  get upgraded(): boolean {
    return this.#state === 'upgraded';
  }

  push(chunk: Buffer): void {
    if (this.#state === 'upgraded') throw new Error('the connection was upgraded: HTTP is over');
    const buffer = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = EMPTY;
    let at = 0;
    // Every pass consumes bytes or returns, so the loop is bounded by the buffer.
    while (at < buffer.length) {
      switch (this.#state) {
        case 'head': {
          const end = buffer.indexOf(HEAD_END, at);
          if (end < 0) {
            if (buffer.length - at > MAX_HEAD_BYTES) throw new Error('response head too large');
            this.#pending = buffer.subarray(at);
            return;
          }
          this.#head = parseHead(buffer.toString('latin1', at, end));
          at = end + HEAD_END.length;
          if (this.#startBody(buffer.subarray(at))) return;
          break;
        }
        case 'length':
        case 'chunk-data': {
          const take = Math.min(this.#remaining, buffer.length - at);
          this.events.body?.(buffer.subarray(at, at + take));
          this.#remaining -= take;
          at += take;
          if (this.#remaining === 0) {
            if (this.#state === 'length') this.#finish();
            else this.#state = 'chunk-end';
          }
          break;
        }
        case 'chunk-end':
        case 'chunk-size':
        case 'trailer': {
          const end = buffer.indexOf(CRLF, at);
          if (end < 0) {
            this.#pending = buffer.subarray(at);
            return;
          }
          const line = buffer.toString('latin1', at, end);
          at = end + CRLF.length;
          if (this.#state === 'chunk-end') {
            this.#state = 'chunk-size';
          } else if (this.#state === 'chunk-size') {
            // RFC 9112 §7.1: chunk-size in hex, then optional ";extensions".
            const size = Number.parseInt(line, 16);
            if (!Number.isInteger(size) || size < 0) throw new Error(`bad chunk size ${JSON.stringify(line)}`);
            if (size === 0) this.#state = 'trailer';
            else {
              this.#remaining = size;
              this.#state = 'chunk-data';
            }
          } else if (line === '') {
            this.#finish(); // the empty line after the (usually absent) trailer fields
          }
          break;
        }
        case 'until-close':
          this.events.body?.(buffer.subarray(at));
          return;
      }
    }
  }

  /** Decides how the body after a head is delimited; true when HTTP is over (101). */
  #startBody(rest: Buffer): boolean {
    const { status, headers } = this.#head;
    if (status === 101) {
      this.#state = 'upgraded';
      this.events.head?.(this.#head);
      this.events.upgrade?.(this.#head, rest);
      return true;
    }
    if (status >= 100 && status < 200) return false; // 100 Continue and friends: another head follows
    this.events.head?.(this.#head);
    if (status === 204 || status === 304) {
      this.#finish();
    } else if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      this.#state = 'chunk-size';
    } else if (headers.has('content-length')) {
      this.#remaining = Number(headers.get('content-length'));
      if (this.#remaining === 0) this.#finish();
      else this.#state = 'length';
    } else {
      this.#state = 'until-close';
    }
    return false;
  }

  #finish(): void {
    this.#state = 'head';
    this.events.end?.(this.#head);
  }
}

export function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!match) throw new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(match[1]), headers };
}

/** A GET request head; `headers` are added as given. */
export function getRequest(path: string, headers: Record<string, string> = {}): string {
  let head = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}
