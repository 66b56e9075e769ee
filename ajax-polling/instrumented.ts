/**
 * The technique wrapped for tests: every `GET /messages` is recorded (its
 * `since`, `If-None-Match`, status, a label from the `X-Test-Page` header) and
 * can be delayed, answered with an error, or counted while in flight, so a
 * test can prove "never two requests in flight" on the server's side of the
 * wire. Not used by the server itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CreateTechnique } from '../shared/technique.ts';
import { createAjaxPolling } from './server.ts';

export interface PollRecord {
  since: string | null;
  ifNoneMatch: string | undefined;
  page: string | undefined;
  /** The log's lastId when the request arrived. */
  lastIdAtArrival: number;
  /** Filled in when the answer has been sent. */
  status?: number;
  arrivedAt: number;
  /** Date.now() when the answer was sent. */
  answeredAt?: number;
}

export interface Instrument {
  create: CreateTechnique;
  polls: PollRecord[];
  /** Most /messages requests open at the same time so far. */
  readonly maxInFlight: number;
  readonly inFlight: number;
  /** How long each /messages answer is held back (ms). */
  delayMs: number;
  /** When set, answers the next poll instead of the technique (a status, headers, a body). */
  fail?: (req: IncomingMessage) => { status: number; body?: string; headers?: Record<string, string> } | undefined;
}

export function instrument(): Instrument {
  let inFlight = 0;
  let maxInFlight = 0;
  const state: Instrument = {
    polls: [],
    delayMs: 0,
    get maxInFlight() {
      return maxInFlight;
    },
    get inFlight() {
      return inFlight;
    },
    create: (context) => {
      const technique = createAjaxPolling(context);
      const answer = (req: IncomingMessage, res: ServerResponse, record: PollRecord): void => {
        if (res.destroyed) return; // the client gave up while we were waiting
        const failure = state.fail?.(req);
        if (failure) {
          res.writeHead(failure.status, { 'Content-Type': 'application/json', ...failure.headers });
          res.end(failure.body ?? '');
        } else {
          technique.handle(req, res);
        }
        record.status = res.statusCode;
        record.answeredAt = Date.now();
      };
      return {
        ...technique,
        handle(req, res) {
          const url = new URL(req.url ?? '/', 'http://localhost');
          if (url.pathname !== '/messages') return technique.handle(req, res);
          const record: PollRecord = {
            since: url.searchParams.get('since'),
            ifNoneMatch: req.headers['if-none-match'],
            page: req.headers['x-test-page'] as string | undefined,
            lastIdAtArrival: context.log.lastId,
            arrivedAt: Date.now(),
          };
          state.polls.push(record);
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          res.once('close', () => inFlight--);
          if (state.delayMs > 0) setTimeout(() => answer(req, res, record), state.delayMs);
          else answer(req, res, record);
        },
      };
    },
  };
  return state;
}
