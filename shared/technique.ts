/**
 * The shape every technique folder exports, so that a folder can run alone
 * (lifecycle.ts) or next to the others in one process (the launcher), always
 * over one shared message log.
 *
 * A technique's factory has no side effects beyond creating its state: no
 * listening, no timers until a client connects.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config } from './config.ts';
import type { MessageLog } from './message-log.ts';

export interface TechniqueContext {
  log: MessageLog;
  config: Config;
}

export interface Technique {
  /** Every HTTP request, with `req.url` relative to where the folder is mounted. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** HTTP upgrade requests (WebSocket); without it they are answered 404. */
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * Ends every long-lived exchange cleanly and at once: a held long-poll is
   * answered, a stream is ended, a WebSocket gets close 1001. Called once, at
   * shutdown, after the server has stopped accepting connections.
   */
  shutdown(): void;
}

export type CreateTechnique = (context: TechniqueContext) => Technique;
