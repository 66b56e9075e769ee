/**
 * Test helpers for servers: start one in-process on a free port, and talk raw
 * HTTP to it over a socket (for requests no well-behaved client would send).
 */
import net from 'node:net';
import { startServer, type RunningServer } from '../lifecycle.ts';
import type { Config } from '../config.ts';
import type { MessageLog } from '../message-log.ts';
import type { CreateTechnique } from '../technique.ts';

/** Starts `create` on 127.0.0.1 and a free port, ignoring the process environment. */
export function startTestServer(
  create: CreateTechnique,
  config: Partial<Config> = {},
  log?: MessageLog,
): Promise<RunningServer> {
  return startServer(create, { env: {}, config: { port: 0, host: '127.0.0.1', ...config }, log });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  raw: string;
}

/**
 * Sends `request` (bytes or a string, sent as latin1 so every byte is exact)
 * and reads until the server closes the connection or `timeoutMs` passes.
 * Add `Connection: close` to the request so the server closes after answering.
 */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 2_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset after the answer is fine; 'close' still comes
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const parsed = parseRawResponse(raw);
      if (parsed) resolve(parsed);
      else reject(new Error(`no HTTP response, got ${JSON.stringify(raw.slice(0, 200))}`));
    });
    socket.write(typeof request === 'string' ? Buffer.from(request, 'latin1') : request);
  });
}

export function parseRawResponse(raw: string): RawResponse | undefined {
  const end = raw.indexOf('\r\n\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  if (end < 0 || !match) return undefined;
  const headers: Record<string, string> = {};
  for (const line of raw.slice(0, end).split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.slice(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
  return { status: Number(match[1]), headers, body, raw };
}

function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const lineEnd = rest.indexOf('\r\n');
    if (lineEnd < 0) return out;
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!(size > 0)) return out;
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}

/** Resolves when `condition()` is true, polling every few ms; rejects after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
