/**
 * Chat clients for the load generators, one per technique, on raw sockets.
 *
 * Each behaves like the folder's browser client on the wire (same requests,
 * same reconnect rule) but does nothing else: it decodes messages and hands
 * each `{id, text}` to a sink. Counting happens here: every HTTP request made
 * (a poll, a stream opened, a WebSocket upgrade) and every byte read from and
 * written to the socket (`socket.bytesRead` / `bytesWritten`: HTTP heads, chunk
 * framing, SSE fields, WebSocket frame headers, heartbeats included; TCP/IP
 * headers not).
 *
 *   ajax-polling   GET /messages?since=N, If-None-Match, every `pollIntervalMs`
 *                  after the previous answer (never two in flight)
 *   long-polling   GET /subscribe?since=N, again at once after each 200/204
 *   sse            GET /events, Accept: text/event-stream; `data:` fields
 *   http-streaming GET /stream; one JSON message per line
 *   websocket      upgrade on /chat; one text frame per message
 */
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { getRequest, ResponseReader, type ResponseHead } from './http-response.ts';
import { maskedFrame, OPCODE, ServerFrameReader, upgradeRequest } from './ws-frames.ts';

export const TECHNIQUES = ['ajax-polling', 'long-polling', 'sse', 'http-streaming', 'websocket'] as const;
export type Technique = (typeof TECHNIQUES)[number];
export const PUSH_TECHNIQUES = ['long-polling', 'sse', 'http-streaming', 'websocket'] as const satisfies readonly Technique[];

/** Receives each new message once; `id` is the server's, `text` what was published. */
export type Sink = (id: number, text: string) => void;

export interface SubscriberOptions {
  port: number;
  sink: Sink;
  /** ajax-polling only: pause between an answer and the next poll. */
  pollIntervalMs?: number;
}

/** What every subscriber reports, whatever the technique. */
export interface Subscriber {
  /** Resolves once the subscription is in place (stream head, 101, poll sent); rejects if it fails first. */
  readonly ready: Promise<void>;
  /** HTTP requests sent so far, the upgrade included. */
  readonly requests: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** Messages seen again (an id not above the last one): 0 unless a server is wrong. */
  readonly duplicates: number;
  /** Set when the connection failed or the server closed it. */
  readonly error: string | undefined;
  close(): void;
}

export function createSubscriber(technique: Technique, options: SubscriberOptions): Subscriber {
  switch (technique) {
    case 'ajax-polling':
      return new PollingSubscriber(options, 'short');
    case 'long-polling':
      return new PollingSubscriber(options, 'long');
    case 'sse':
      return new StreamSubscriber(options, getRequest('/events', { Accept: 'text/event-stream' }), new SseDecoder());
    case 'http-streaming':
      return new StreamSubscriber(options, getRequest('/stream'), new LineDecoder());
    case 'websocket':
      return new WebSocketSubscriber(options);
  }
}

/** The parts every client shares: one socket at a time, counters, the sink. */
abstract class BaseSubscriber implements Subscriber {
  readonly ready: Promise<void>;
  requests = 0;
  duplicates = 0;
  error: string | undefined;
  protected closed = false;
  protected lastId = 0;
  protected socket: net.Socket;
  #settle: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(protected readonly options: SubscriberOptions) {
    this.ready = new Promise<void>((resolve, reject) => (this.#settle = { resolve, reject }));
    this.ready.catch(() => {}); // a caller that never awaits must not crash the process
    this.socket = net.connect(options.port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('error', (error) => this.fail(error.message));
    this.socket.on('close', () => this.fail('connection closed by the server'));
  }

  get bytesRead(): number {
    return this.socket.bytesRead;
  }

  get bytesWritten(): number {
    return this.socket.bytesWritten;
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  protected send(request: string): void {
    this.requests++;
    this.socket.write(request, 'latin1');
  }

  protected markReady(): void {
    this.#settle?.resolve();
    this.#settle = undefined;
  }

  protected fail(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.error = reason;
    this.socket.destroy();
    this.#settle?.reject(new Error(reason));
    this.#settle = undefined;
  }

  /** A message JSON from the server: to the sink once, in order. */
  protected deliver(json: string): void {
    let message: unknown;
    try {
      message = JSON.parse(json);
    } catch {
      return; // not a message (an SSE ping's data, say)
    }
    const { id, text } = (message ?? {}) as { id?: unknown; text?: unknown };
    if (typeof id !== 'number' || typeof text !== 'string') return;
    if (id <= this.lastId) {
      this.duplicates++;
      return;
    }
    this.lastId = id;
    this.options.sink(id, text);
  }
}

/** ajax-polling ('short') and long-polling ('long'): one request after another on a keep-alive connection. */
class PollingSubscriber extends BaseSubscriber {
  #etag: string | undefined;
  #body: Buffer[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    options: SubscriberOptions,
    private readonly kind: 'short' | 'long',
  ) {
    super(options);
    const reader = new ResponseReader({
      body: (piece) => this.#body.push(Buffer.from(piece)),
      end: (head) => this.#answered(head),
    });
    this.socket.on('data', (chunk: Buffer) => reader.push(chunk));
    this.socket.on('connect', () => {
      this.#poll();
      this.markReady(); // a poll is out; the server decides when it answers
    });
  }

  override close(): void {
    clearTimeout(this.#timer);
    super.close();
  }

  protected override fail(reason: string): void {
    clearTimeout(this.#timer);
    super.fail(reason);
  }

  #poll(): void {
    if (this.closed) return;
    if (this.kind === 'long') return this.send(getRequest(`/subscribe?since=${this.lastId}`));
    this.send(getRequest(`/messages?since=${this.lastId}`, this.#etag === undefined ? {} : { 'If-None-Match': this.#etag }));
  }

  #answered(head: ResponseHead): void {
    const body = Buffer.concat(this.#body).toString('utf8');
    this.#body = [];
    if (head.status === 200) {
      this.#etag = head.headers.get('etag') ?? this.#etag;
      for (const message of JSON.parse(body) as unknown[]) this.deliver(JSON.stringify(message));
    }
    // The documents' loop: long-poll again at once after an answer (or a 204), wait after an error;
    // short polls always wait for the interval.
    const again = head.status === 200 || head.status === 204 || head.status === 304;
    const delay = this.kind === 'long' && again ? 0 : this.kind === 'short' ? (this.options.pollIntervalMs ?? 1_000) : 1_000;
    if (delay === 0) this.#poll();
    else this.#timer = setTimeout(() => this.#poll(), delay);
  }
}

interface TextDecoderLike {
  /** Text of the body in order; returns the message JSONs it completed. */
  push(text: string): string[];
}

/** SSE (WHATWG HTML §9.2.6): lines; `data:` fields gathered; an empty line dispatches. */
export class SseDecoder implements TextDecoderLike {
  #partial = '';
  #data: string[] = [];
  #event = '';

  push(text: string): string[] {
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop()!;
    const out: string[] = [];
    for (let line of lines) {
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (this.#data.length > 0 && (this.#event === '' || this.#event === 'message')) out.push(this.#data.join('\n'));
        this.#data = [];
        this.#event = '';
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.#data.push(value);
      else if (field === 'event') this.#event = value;
    }
    return out;
  }
}

/** NDJSON: one JSON per line; empty lines are heartbeats. */
export class LineDecoder implements TextDecoderLike {
  #partial = '';

  push(text: string): string[] {
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop()!;
    return lines.map((line) => line.trim()).filter((line) => line !== '');
  }
}

/** sse and http-streaming: one response that never ends. */
class StreamSubscriber extends BaseSubscriber {
  constructor(options: SubscriberOptions, request: string, decoder: TextDecoderLike) {
    super(options);
    const text = new StringDecoder('utf8');
    const reader = new ResponseReader({
      head: (head) => {
        if (head.status === 200) this.markReady();
        else this.fail(`answered ${head.status}`);
      },
      body: (piece) => {
        for (const json of decoder.push(text.write(piece))) this.deliver(json);
      },
      end: () => this.fail('the stream ended'),
    });
    this.socket.on('data', (chunk: Buffer) => reader.push(chunk));
    this.socket.on('connect', () => this.send(request));
  }
}

/** websocket: the upgrade, then text frames; pings answered so heartbeats do not drop us. */
class WebSocketSubscriber extends BaseSubscriber {
  #frames = new ServerFrameReader();
  #fragments: Buffer[] = [];

  constructor(options: SubscriberOptions) {
    super(options);
    const reader = new ResponseReader({
      head: (head) => {
        if (head.status !== 101) this.fail(`answered ${head.status}`);
      },
      upgrade: (_head, rest) => {
        this.markReady();
        if (rest.length > 0) this.#receive(rest);
      },
    });
    this.socket.on('data', (chunk: Buffer) => (reader.upgraded ? this.#receive(chunk) : reader.push(chunk)));
    this.socket.on('connect', () => this.send(upgradeRequest('/chat')));
  }

  override close(): void {
    if (!this.closed && this.socket.writable) this.socket.write(maskedFrame(OPCODE.CLOSE, Buffer.from([0x03, 0xe8])));
    super.close();
  }

  #receive(chunk: Buffer): void {
    for (const frame of this.#frames.push(chunk)) {
      if (frame.opcode === OPCODE.PING) this.socket.write(maskedFrame(OPCODE.PONG, frame.payload));
      else if (frame.opcode === OPCODE.CLOSE) return this.fail('the server closed the WebSocket');
      else if (frame.opcode === OPCODE.TEXT || frame.opcode === OPCODE.CONTINUATION) {
        this.#fragments.push(Buffer.from(frame.payload));
        if (!frame.fin) continue;
        const text = Buffer.concat(this.#fragments).toString('utf8');
        this.#fragments = [];
        this.deliver(text);
      }
    }
  }
}

/**
 * POST /publish on one keep-alive connection. Requests may be pipelined
 * (RFC 9112 §9.3.2); node answers them in order. `sentAt` holds the
 * performance.now() of each publish, for latency.
 */
export class Publisher {
  readonly ready: Promise<void>;
  readonly #socket: net.Socket;
  #answered = 0;
  #sent = 0;
  #failures = 0;
  #waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(port: number) {
    this.#socket = net.connect(port, '127.0.0.1');
    this.#socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.#socket.once('connect', resolve);
      this.#socket.once('error', reject);
    });
    this.#socket.on('error', () => {});
    const reader = new ResponseReader({
      end: (head) => {
        this.#answered++;
        if (head.status < 200 || head.status > 299) this.#failures++;
        this.#waiters = this.#waiters.filter((waiter) => {
          if (this.#answered < waiter.count) return true;
          waiter.resolve();
          return false;
        });
      },
    });
    this.#socket.on('data', (chunk: Buffer) => reader.push(chunk));
  }

  /** Publishes `text`; returns the performance.now() at which the request was written. */
  publish(text: string): number {
    const body = Buffer.from(text, 'utf8');
    this.#sent++;
    this.#socket.write(
      `POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${text}`,
    );
    return performance.now();
  }

  /** Answers that were not 2xx. */
  get failures(): number {
    return this.#failures;
  }

  /** Resolves when every publish so far is answered, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    if (this.#answered >= this.#sent) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#waiters.push({ count: this.#sent, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}
