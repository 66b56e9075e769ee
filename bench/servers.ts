/**
 * The servers under test, as the benchmark starts them: each technique folder
 * exactly as `npx tsx <folder>/server.ts` would run it (shared/lifecycle.ts's
 * startServer), and three reference peers the figures are compared with:
 *
 *   ws-echo   an echo on the npm `ws` package (the usual choice in Node),
 *             `perMessageDeflate: false` as our codec (see STYLE.md);
 *   tcp-echo  `node:net` writing every chunk back as it is read: the ceiling
 *             of any echo (no `pipe()`: its stream machinery costs more per
 *             chunk than the write itself; the load client bounds what is in
 *             flight, so there is nothing to push back on);
 *   bare-304  `node:http` answering a matching `If-None-Match` with 304 and
 *             nothing else: the ceiling of any polling endpoint;
 *   bare-upgrade  `node:http` answering every upgrade with a 101 and holding
 *             the socket: the floor of memory per WebSocket connection.
 *
 * Each runs alone in a child process (bench/child.ts) under the same runtime
 * (node + tsx's loader), so CPU time and memory are the server's own and a
 * loader quirk costs every contender alike.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import v8 from 'node:v8';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { startServer } from '../shared/lifecycle.ts';
import type { CreateTechnique } from '../shared/technique.ts';
import { TECHNIQUES, type Technique } from './subscribers.ts';

export const PEERS = ['ws-echo', 'tcp-echo', 'bare-304', 'bare-upgrade'] as const;
export type ServerKind = Technique | (typeof PEERS)[number];

export interface ServerOptions {
  /** HEARTBEAT_MS for the technique (the echo runs raise it so no ping lands in a byte count). */
  heartbeatMs?: number;
  pollTimeoutMs?: number;
}

export interface ServerStats {
  /** process.cpuUsage(), user + system, in µs since the process started. */
  cpuMicros: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** V8's young generation as committed now (it grows under allocation and is not given back by a GC). */
  newSpaceBytes: number;
  /** Live subscriptions to the message log (null for the peers). */
  subscribers: number | null;
  /** Whether the GCs ran before the memory was read (needs --expose-gc). */
  collected: boolean;
}

export interface ServerHandle {
  port: number;
  stats(collect: boolean): ServerStats;
  close(): Promise<void>;
}

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export function isTechnique(kind: string): kind is Technique {
  return (TECHNIQUES as readonly string[]).includes(kind);
}

/** Whether a technique folder has a server to measure yet. */
export function folderExists(technique: Technique): boolean {
  return existsSync(`${ROOT}${technique}/server.ts`);
}

export async function startBenchServer(kind: ServerKind, options: ServerOptions = {}): Promise<ServerHandle> {
  let port: number;
  let close: () => Promise<void>;
  let subscribers: () => number | null = () => null;
  if (isTechnique(kind)) {
    const module = (await import(`../${kind}/server.ts`)) as { default: CreateTechnique };
    const config = { port: 0, host: '127.0.0.1', ...options };
    const running = await startServer(module.default, { env: {}, config });
    port = running.port;
    close = running.close;
    subscribers = () => running.log.subscriberCount;
  } else {
    const server =
      kind === 'tcp-echo' ? createTcpEcho()
      : kind === 'bare-304' ? createBare304()
      : kind === 'bare-upgrade' ? createBareUpgrade()
      : kind === 'ws-echo' ? await createWsEcho()
      : undefined;
    if (!server) throw new Error(`no server called ${String(kind)}`);
    const sockets = new Set<net.Socket>();
    server.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    close = () => closeServer(server, sockets);
  }
  return {
    port,
    close,
    stats(collect) {
      const gc = (globalThis as { gc?: (options?: { type: 'major' | 'minor' }) => void }).gc;
      if (collect && gc) {
        // The same sequence for every server: a minor GC (a scavenge of the
        // young generation), then two full GCs, the second for what the first
        // one's weak callbacks released. The young generation's size is fixed
        // by the launch flags (bench.ts, MEMORY_NODE_FLAGS), not by a GC.
        gc({ type: 'minor' });
        gc();
        gc();
      }
      const usage = process.cpuUsage();
      const memory = process.memoryUsage();
      return {
        cpuMicros: usage.user + usage.system,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        newSpaceBytes: v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0,
        subscribers: subscribers(),
        collected: collect && gc !== undefined,
      };
    },
  };
}

/** Every byte back as it came. */
export function createTcpEcho(): net.Server {
  return net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
  });
}

/** The same ETag dance as ajax-polling's `GET /messages`, with nothing behind it. */
export function createBare304(): http.Server {
  const etag = '"bench-0"';
  return http.createServer((req, res) => {
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { ETag: etag, 'Cache-Control': 'no-cache' });
      res.end();
      return;
    }
    res.writeHead(200, { ETag: etag, 'Cache-Control': 'no-cache', 'Content-Type': 'application/json' });
    res.end('[]');
  });
}

/** A 101 for every upgrade (RFC 6455 §4.2.2), then the socket is held and read. */
export function createBareUpgrade(): http.Server {
  const server = http.createServer((_req, res) => res.writeHead(426).end());
  server.on('upgrade', (req, socket: net.Socket) => {
    const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.on('error', () => socket.destroy());
    socket.on('data', () => {});
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  });
  return server;
}

/** The `ws` package's echo, as its README writes it (on every path). Loaded only in the process that runs it. */
export async function createWsEcho(): Promise<http.Server> {
  const { WebSocketServer } = await import('ws');
  const server = http.createServer((_req, res) => res.writeHead(426).end());
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
  wss.on('connection', (socket) => {
    socket.on('error', () => socket.terminate());
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  server.on('close', () => wss.close());
  return server;
}

/** Stops listening and cuts every connection still open (upgraded ones included). */
function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const socket of sockets) socket.destroy();
  });
}
