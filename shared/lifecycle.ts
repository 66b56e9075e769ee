/**
 * Starting and stopping a server, the same way for every folder.
 *
 *     $ PORT=0 npx tsx sse/server.ts
 *     Listening on http://127.0.0.1:40527/
 *     ^C                                   (exit code 0, within 2 s)
 *
 * startServer() is what tests and the launcher call: it listens and returns a
 * handle whose close() shuts down gracefully. runStandalone() adds what a
 * process needs: reading the environment (a bad value stops start-up with one
 * line and exit code 1, before listening), printing the URL, and SIGINT,
 * SIGTERM and the IPC message 'shutdown' (as in the long-polling document)
 * for a graceful exit.
 *
 * Graceful means: stop accepting connections, let the technique end every
 * long-lived exchange (Technique.shutdown), close keep-alive connections as
 * they go idle, and after SHUTDOWN_GRACE_MS cut whatever is still open. It does
 * not wait for a client to read what was written last.
 */
import http, { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { ConfigError, readConfig, type Config } from './config.ts';
import { MessageLog } from './message-log.ts';
import { sendText } from './http.ts';
import type { CreateTechnique, Technique } from './technique.ts';

/**
 * Under the contract's 2 s, with room for the process to exit: a browser's
 * speculative connection that never sent a request is not "idle" to node:http
 * and stays open until this deadline.
 */
export const SHUTDOWN_GRACE_MS = 1_000;
/** How often idle keep-alive connections are swept during shutdown. */
const IDLE_SWEEP_MS = 25;

export interface RunningServer {
  /** `http://host:port/` with the real port. */
  url: string;
  port: number;
  server: http.Server;
  log: MessageLog;
  config: Config;
  technique: Technique;
  /** Graceful shutdown; resolves when every connection is closed. Safe to call twice. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Environment to read the config from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Values that win over the environment (tests use `{ port: 0 }`). */
  config?: Partial<Config>;
  /** An existing log to share; a new one of `config.backlog` otherwise. */
  log?: MessageLog;
}

export async function startServer(create: CreateTechnique, options: StartOptions = {}): Promise<RunningServer> {
  const config: Config = { ...readConfig(options.env), ...options.config };
  const log = options.log ?? new MessageLog(config.backlog);
  const technique = create({ log, config });

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    try {
      technique.handle(req, res);
    } catch (error) {
      // Handlers are written not to throw; this is the last net.
      console.error('request failed:', error);
      sendText(res, 500, 'Internal server error');
    }
  };
  const server = http.createServer(handle);
  // "Expect: 100-continue" asks whether to send the body at all. No route here
  // takes a body larger than MAX_MESSAGE_BYTES, so a larger one is refused
  // before the client sends it, instead of being invited and then refused.
  server.on('checkContinue', (req, res) => {
    if (Number(req.headers['content-length']) > config.maxMessageBytes) {
      sendText(res, 413, `Message too large: the limit is ${config.maxMessageBytes} bytes`, { Connection: 'close' });
      return;
    }
    res.writeContinue();
    handle(req, res);
  });
  server.on('clientError', answerClientError);
  // CONNECT asks for a tunnel; without this listener node:http drops the
  // socket without a word.
  server.on('connect', (_req, socket) => {
    socket.on('error', () => socket.destroy());
    socket.end(plainResponse(405, 'CONNECT is not supported', 'Allow: GET, HEAD, POST\r\n'));
  });
  // With an 'upgrade' listener node:http hands over *every* request that says
  // Connection: upgrade, whatever protocol it asks for. Only a technique that
  // speaks WebSocket listens; anything else (curl --http2 sends
  // "Upgrade: h2c" on ordinary requests) is answered as the plain HTTP
  // request it also is: RFC 9110 §7.8 lets a server ignore an Upgrade.
  const { upgrade } = technique;
  if (upgrade) {
    server.on('upgrade', (req, socket, head) => {
      if (asksForWebSocket(req)) upgrade.call(technique, req, socket, head);
      else answerWithoutUpgrade(server, req, socket, head);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}/`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= shutDown(server, technique));
  return { url, port, server, log, config, technique, close };
}

function asksForWebSocket(req: http.IncomingMessage): boolean {
  return (req.headers.upgrade ?? '').split(',').some((token) => token.trim().toLowerCase() === 'websocket');
}

/**
 * Gives a request that asked for some other protocol back to node:http as an
 * ordinary one: its head is written out again without the upgrade headers,
 * put back in front of whatever followed it on the socket, and the socket is
 * handed to the server as if it had just connected.
 */
function answerWithoutUpgrade(server: http.Server, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    let value = req.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === 'upgrade' || lower === 'http2-settings') continue;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((token) => token.trim())
        .filter((token) => !['upgrade', 'http2-settings'].includes(token.toLowerCase()))
        .join(', ');
      if (value === '') continue;
    }
    lines.push(`${name}: ${value}`);
  }
  socket.unshift(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), head]));
  server.emit('connection', socket);
}

function plainResponse(status: number, text: string, extraHeaders = ''): string {
  const body = `${text}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n${extraHeaders}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/**
 * Requests node:http could not parse (malformed request line, headers too
 * large, a request that took too long to arrive) get a status with a one-line
 * text body like every other error here, instead of node's empty answer.
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  const response = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || response?.headersSent) {
    socket.destroy();
    return;
  }
  const status =
    error.code === 'HPE_HEADER_OVERFLOW' ? 431
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408
    : 400;
  socket.end(plainResponse(status, STATUS_CODES[status] ?? 'Bad request'));
}

function shutDown(server: http.Server, technique: Technique): Promise<void> {
  return new Promise((resolve) => {
    // 1. Stop accepting; the callback runs once every connection has closed.
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(deadline);
      resolve();
    });
    // 2. End the long-lived exchanges (held polls answered, streams ended, sockets closed).
    try {
      technique.shutdown();
    } catch (error) {
      console.error('shutdown failed:', error);
    }
    // 3. Keep-alive connections close as soon as they have nothing in flight…
    server.closeIdleConnections();
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    // 4. …and whatever is still open at the deadline is cut.
    const deadline = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
  });
}

function startupError(error: unknown): string {
  if (error instanceof ConfigError) return error.message;
  const { code, message } = error as { code?: string; message?: string };
  const variable =
    code === 'EADDRINUSE' || code === 'EACCES' ? 'PORT'
    : code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT' ? 'HOST'
    : undefined;
  const text = `cannot listen (${message ?? String(error)})`;
  return variable ? `${variable}: ${text}` : text;
}

/** True when the module at `moduleUrl` is the script node (or tsx) was started with. */
export function isEntryPoint(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(path.resolve(script)) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/**
 * Runs a technique as a process: `if (isEntryPoint(import.meta.url)) runStandalone(createX)`.
 */
export async function runStandalone(create: CreateTechnique): Promise<void> {
  let running: RunningServer;
  try {
    running = await startServer(create);
  } catch (error) {
    // One line, no stack trace, naming the variable to change: a bad value or
    // a port in use is not a bug.
    console.error(startupError(error));
    process.exitCode = 1;
    return;
  }
  console.log(`Listening on ${running.url}`);

  let exiting = false;
  const exit = (): void => {
    // A second signal while shutting down means "now".
    if (exiting) process.exit(0);
    exiting = true;
    void running.close().then(() => process.exit(0));
  };
  process.on('SIGINT', exit);
  process.on('SIGTERM', exit);
  process.on('message', (message) => {
    if (message === 'shutdown') exit();
  });
}
