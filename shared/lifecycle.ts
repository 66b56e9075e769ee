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

/** Under the contract's 2 s, with room for the process to exit. */
export const SHUTDOWN_GRACE_MS = 1_500;
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

  const server = http.createServer((req, res) => {
    try {
      technique.handle(req, res);
    } catch (error) {
      // Handlers are written not to throw; this is the last net.
      console.error('request failed:', error);
      sendText(res, 500, 'Internal server error');
    }
  });
  server.on('clientError', answerClientError);
  server.on('upgrade', (req, socket, head) => {
    if (technique.upgrade) technique.upgrade(req, socket, head);
    else socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nNot found\n');
  });

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
  const body = `${STATUS_CODES[status]}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
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
    // One line, no stack trace: a bad variable or a port in use is not a bug.
    const text =
      error instanceof ConfigError ? error.message
      : error instanceof Error && 'code' in error ? `cannot listen: ${error.message}`
      : String(error);
    console.error(text);
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
