/**
 * The load generators. They run in their own process (bench/child.ts) so that
 * the servers' CPU and memory are theirs alone; the orchestrator (bench/run.ts)
 * drives them step by step over IPC, because server figures must be read
 * between steps (RSS after the connections are open, CPU around a run).
 *
 * Every loop is bounded by a count and a deadline; every socket is loopback.
 */
import net from 'node:net';
import { getRequest, ResponseReader } from './http-response.ts';
import { distribution, sleep, waitUntil, type Distribution } from './stats.ts';
import { createSubscriber, Publisher, type Subscriber, type Technique } from './subscribers.ts';
import { maskedFrame, OPCODE, serverFrameBytes, upgradeRequest } from './ws-frames.ts';

export interface OpenParams {
  port: number;
  technique: Technique;
  count: number;
  /** ajax-polling: pause between polls. */
  pollIntervalMs: number;
  /** Connections opened at once; the next batch waits for this one. */
  concurrency: number;
  /** Give up on a subscription not in place after this long. */
  timeoutMs: number;
}

export interface OpenResult {
  connected: number;
  failed: number;
  firstError?: string;
}

export interface RunParams {
  ratePerSec: number;
  durationMs: number;
  messageBytes: number;
  /** After the last publish, how long to wait for every delivery. */
  drainMs: number;
}

export interface RunResult {
  published: number;
  failedPublishes: number;
  /** Deliveries expected: published × subscribers still connected. */
  expected: number;
  delivered: number;
  duplicates: number;
  latencyMs: Distribution;
  requests: number;
  bytesRead: number;
  bytesWritten: number;
  subscribers: number;
  lost: number;
}

export interface RoundParams {
  messageBytes: number;
  timeoutMs: number;
}

export interface RoundResult {
  expected: number;
  received: number;
  /** Arrival of the message at each subscriber, ms after it was published. */
  latenciesMs: number[];
}

/** Subscribers and a publisher kept between the orchestrator's steps. */
export class LoadSession {
  #subscribers: Subscriber[] = [];
  #publisher: Publisher | undefined;
  #port = 0;
  /** Publish time (performance.now()) of each message of the current step, by its text's tag. */
  #sentAt = new Map<string, number>();
  #latencies: number[] = [];
  #sequence = 0;
  #step = 0;

  async open(params: OpenParams): Promise<OpenResult> {
    this.#port = params.port;
    const sink = (_id: number, text: string): void => this.#received(text);
    let failed = 0;
    let firstError: string | undefined;
    for (let start = 0; start < params.count; start += params.concurrency) {
      const batch: Subscriber[] = [];
      for (let i = start; i < Math.min(params.count, start + params.concurrency); i++) {
        batch.push(createSubscriber(params.technique, { port: params.port, sink, pollIntervalMs: params.pollIntervalMs }));
      }
      this.#subscribers.push(...batch);
      const outcomes = await Promise.allSettled(batch.map((subscriber) => withTimeout(subscriber.ready, params.timeoutMs)));
      for (const outcome of outcomes) {
        if (outcome.status === 'fulfilled') continue;
        failed++;
        firstError ??= String((outcome.reason as Error).message);
      }
    }
    return { connected: this.#live().length, failed, firstError };
  }

  /** Publishes at a fixed rate for a while, then waits for the deliveries. */
  async run(params: RunParams): Promise<RunResult> {
    const publisher = await this.#startStep();
    const subscribers = this.#live();
    const before = new Map(subscribers.map((subscriber) => [subscriber, totals([subscriber])]));
    const count = Math.max(1, Math.floor((params.durationMs / 1_000) * params.ratePerSec));
    const periodMs = 1_000 / params.ratePerSec;
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = start + i * periodMs - performance.now();
      if (wait > 0) await sleep(wait);
      this.#publish(publisher, params.messageBytes);
    }
    await publisher.settled(params.drainMs);
    const expectedFor = (): number => count * this.#live().length;
    await waitUntil(() => this.#latencies.length >= expectedFor(), params.drainMs);
    // Counted over the subscribers still there at the end, from their state at the start.
    const live = this.#live();
    const after = totals(live);
    const beforeLive = { requests: 0, bytesRead: 0, bytesWritten: 0, duplicates: 0 };
    for (const subscriber of live) {
      const start = before.get(subscriber)!;
      beforeLive.requests += start.requests;
      beforeLive.bytesRead += start.bytesRead;
      beforeLive.bytesWritten += start.bytesWritten;
      beforeLive.duplicates += start.duplicates;
    }
    return {
      published: count,
      failedPublishes: publisher.failures,
      expected: expectedFor(),
      delivered: this.#latencies.length,
      duplicates: after.duplicates - beforeLive.duplicates,
      latencyMs: distribution(this.#latencies),
      requests: after.requests - beforeLive.requests,
      bytesRead: after.bytesRead - beforeLive.bytesRead,
      bytesWritten: after.bytesWritten - beforeLive.bytesWritten,
      subscribers: live.length,
      lost: subscribers.length - live.length,
    };
  }

  /** One message to everybody; resolves when all have it or at the timeout. */
  async round(params: RoundParams): Promise<RoundResult> {
    const publisher = await this.#startStep();
    const expected = this.#live().length;
    this.#publish(publisher, params.messageBytes);
    await waitUntil(() => this.#latencies.length >= expected, params.timeoutMs, 5);
    return { expected, received: this.#latencies.length, latenciesMs: this.#latencies.slice() };
  }

  /** Publishes `count` messages and waits for their answers (to set up a state). */
  async publish(port: number, count: number): Promise<void> {
    this.#port = port;
    const publisher = await this.#startStep();
    for (let i = 0; i < count; i++) this.#publish(publisher, 16);
    await publisher.settled(5_000);
  }

  close(): void {
    for (const subscriber of this.#subscribers) subscriber.close();
    this.#subscribers = [];
    this.#publisher?.close();
    this.#publisher = undefined;
  }

  #live(): Subscriber[] {
    return this.#subscribers.filter((subscriber) => subscriber.error === undefined);
  }

  async #startStep(): Promise<Publisher> {
    this.#step++;
    this.#sentAt.clear();
    this.#latencies = [];
    if (!this.#publisher) {
      this.#publisher = new Publisher(this.#port);
      await this.#publisher.ready;
    }
    return this.#publisher;
  }

  /** Text `s<step>m<n> xxxx…`, `messageBytes` long: the tag finds its publish time. */
  #publish(publisher: Publisher, messageBytes: number): void {
    const tag = `s${this.#step}m${++this.#sequence}`;
    const text = `${tag} `.padEnd(messageBytes, 'x');
    this.#sentAt.set(tag, publisher.publish(text));
  }

  #received(text: string): void {
    const now = performance.now();
    const space = text.indexOf(' ');
    const sentAt = this.#sentAt.get(space < 0 ? text : text.slice(0, space));
    if (sentAt !== undefined) this.#latencies.push(now - sentAt);
  }
}

function totals(subscribers: Subscriber[]): { requests: number; bytesRead: number; bytesWritten: number; duplicates: number } {
  const sum = { requests: 0, bytesRead: 0, bytesWritten: 0, duplicates: 0 };
  for (const subscriber of subscribers) {
    sum.requests += subscriber.requests;
    sum.bytesRead += subscriber.bytesRead;
    sum.bytesWritten += subscriber.bytesWritten;
    sum.duplicates += subscriber.duplicates;
  }
  return sum;
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not connected within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// Throughput: echo and request/answer loops
// ---------------------------------------------------------------------------

export interface ThroughputResult {
  /** Completed echoes or answers per second in the measured window. */
  perSecond: number;
  completed: number;
  seconds: number;
  /** What went wrong, if anything did (the figure is then not to be trusted). */
  error?: string;
}

export interface EchoParams {
  port: number;
  /** 'websocket': upgrade on `path` first; 'tcp': the bytes come back as sent. */
  mode: 'websocket' | 'tcp';
  path: string;
  connections: number;
  payloadBytes: number;
  /** Messages in flight per connection. */
  window: number;
  warmupMs: number;
  durationMs: number;
}

/**
 * Binary messages of `payloadBytes`, `window` in flight per connection, for
 * warm-up + duration. The client does not parse the answers: it counts bytes
 * (an echo of n frames is n × the reply size), so it stays cheaper than any
 * server it drives. The first reply on each connection is compared byte for
 * byte with what an echo must send.
 */
export async function echoLoad(params: EchoParams): Promise<ThroughputResult> {
  const payload = Buffer.alloc(params.payloadBytes, 0x61);
  const frame = maskedFrame(OPCODE.BINARY, payload);
  const expectedReply = params.mode === 'tcp' ? frame : serverFrame(payload);
  const replyBytes = expectedReply.length;
  const batch = Buffer.concat(Array.from({ length: params.window }, () => frame));
  let completed = 0;
  let sending = true;
  let error: string | undefined;
  const sockets: net.Socket[] = [];

  const startConnection = (socket: net.Socket, rest: Buffer): void => {
    let pending = 0;
    let first: Buffer | undefined = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      if (first !== undefined) {
        first = Buffer.concat([first, chunk.subarray(0, replyBytes - first.length)]);
        if (first.length === replyBytes) {
          if (!first.equals(expectedReply)) error ??= 'an echo came back different from what was sent';
          first = undefined;
        }
      }
      pending += chunk.length;
      const done = Math.floor(pending / replyBytes);
      if (done === 0) return;
      pending -= done * replyBytes;
      completed += done;
      if (sending) socket.write(batch.subarray(0, done * frame.length));
    };
    socket.on('data', onData);
    socket.write(batch);
    if (rest.length > 0) onData(rest);
  };

  await Promise.all(
    Array.from({ length: params.connections }, async () => {
      const socket = net.connect(params.port, '127.0.0.1');
      socket.setNoDelay(true);
      sockets.push(socket);
      socket.on('error', (e) => (error ??= e.message));
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      if (params.mode === 'tcp') return startConnection(socket, Buffer.alloc(0));
      const rest = await upgrade(socket, params.path);
      startConnection(socket, rest);
    }),
  ).catch((e: Error) => (error ??= e.message));

  const result = await measure(() => completed, params.warmupMs, params.durationMs);
  sending = false;
  for (const socket of sockets) socket.destroy();
  return { ...result, error };
}

function serverFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(serverFrameBytes(payload.length) - payload.length);
  head[0] = 0x80 | OPCODE.BINARY;
  if (head.length === 2) head[1] = payload.length;
  else if (head.length === 4) {
    head[1] = 126;
    head.writeUInt16BE(payload.length, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([head, payload]);
}

/** Sends the upgrade and resolves after the 101 with whatever followed it. */
function upgrade(socket: net.Socket, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const reader = new ResponseReader({
      head: (head) => {
        if (head.status !== 101) reject(new Error(`upgrade answered ${head.status}`));
      },
      upgrade: (_head, rest) => {
        socket.off('data', onData);
        resolve(Buffer.from(rest));
      },
    });
    const onData = (chunk: Buffer): void => {
      try {
        reader.push(chunk);
      } catch (error) {
        socket.destroy();
        reject(error as Error);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before the upgrade')));
    socket.write(upgradeRequest(path));
  });
}

/** Counts what `count` gains between the end of the warm-up and the end of the window. */
async function measure(count: () => number, warmupMs: number, durationMs: number): Promise<Omit<ThroughputResult, 'error'>> {
  await sleep(warmupMs);
  const c0 = count();
  const t0 = performance.now();
  await sleep(durationMs);
  const completed = count() - c0;
  const seconds = (performance.now() - t0) / 1_000;
  return { perSecond: completed / seconds, completed, seconds };
}

export interface RequestsParams {
  port: number;
  /** Fetched once first, for its ETag; then asked again with `If-None-Match`. */
  path: string;
  connections: number;
  warmupMs: number;
  durationMs: number;
}

export interface RequestsResult extends ThroughputResult {
  /** Answers by status code, over the whole run. */
  statuses: Record<string, number>;
}

/**
 * Conditional GETs on keep-alive connections, one in flight per connection
 * (no pipelining: browsers do not pipeline), answer after answer.
 */
export async function requestsLoad(params: RequestsParams): Promise<RequestsResult> {
  const statuses: Record<string, number> = {};
  let completed = 0;
  let sending = true;
  let error: string | undefined;
  const sockets: net.Socket[] = [];
  const first = await fetchHead(params.port, params.path);
  const etag = first.get('etag');
  if (etag === undefined) error = `GET ${params.path} has no ETag`;
  const request = Buffer.from(getRequest(params.path, etag === undefined ? {} : { 'If-None-Match': etag }), 'latin1');

  for (let i = 0; i < params.connections; i++) {
    const socket = net.connect(params.port, '127.0.0.1');
    socket.setNoDelay(true);
    sockets.push(socket);
    socket.on('error', (e) => (error ??= e.message));
    const reader = new ResponseReader({
      end: (head) => {
        completed++;
        statuses[head.status] = (statuses[head.status] ?? 0) + 1;
        if (sending) socket.write(request);
      },
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('connect', () => socket.write(request));
  }
  const result = await measure(() => completed, params.warmupMs, params.durationMs);
  sending = false;
  for (const socket of sockets) socket.destroy();
  return { ...result, statuses, error };
}

/** One GET on its own connection: the answer's headers. */
function fetchHead(port: number, path: string): Promise<Map<string, string>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => socket.destroy(new Error(`GET ${path}: no answer`)), 5_000);
    const reader = new ResponseReader({
      end: (head) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(head.headers);
      },
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.write(getRequest(path));
  });
}
