/**
 * Reading a request body as text, with the limits a public endpoint needs.
 *
 * - A body over `limit` bytes is refused with 413 as soon as that is known:
 *   from Content-Length before reading anything, otherwise at the chunk that
 *   crosses the limit. At most `limit` bytes are ever kept in memory; the
 *   connection is closed after the answer rather than drained.
 * - An empty body is a 400: there is nothing to publish.
 * - Bytes that are not UTF-8 are a 400, not silently replaced by U+FFFD: the
 *   message every subscriber gets must be the one that was sent.
 *
 * The content type is not looked at: the contract takes raw UTF-8 whatever the
 * client calls it (a browser's `fetch(url, {body: text})` says text/plain).
 */
import type { IncomingMessage } from 'node:http';
import { isUtf8 } from 'node:buffer';
import { HttpError } from './http.ts';

/** Headers for a refusal after which the rest of the body will not be read. */
const CLOSE = { Connection: 'close' } as const;

/**
 * Connections whose body was refused. node:http goes on parsing what the
 * client pipelined behind the refused request (it may already sit in the
 * same TCP read) and hands it over as a new request; that request's answer
 * would never be sent, since the connection closes after the 413, so it
 * must not have any effect either: a client retrying it would publish twice.
 */
const refusedConnections = new WeakSet<object>();

export function readTextBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    if (refusedConnections.has(req.socket)) {
      reject(new HttpError(400, 'This connection is closing: a previous body was refused', CLOSE));
      return;
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      stopReading(req);
      reject(tooLarge(req, limit));
      return;
    }

    const chunks: Buffer[] = [];
    let received = 0;

    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limit) {
        cleanUp();
        stopReading(req);
        reject(tooLarge(req, limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanUp();
      const body = Buffer.concat(chunks, received);
      if (body.length === 0) reject(new HttpError(400, 'Empty body: send the message text'));
      else if (!isUtf8(body)) reject(new HttpError(400, 'Body is not valid UTF-8'));
      else resolve(body.toString('utf8'));
    };
    const onClose = (): void => {
      // The client went away before the body ended; nobody is left to answer.
      cleanUp();
      reject(new HttpError(400, 'Request body incomplete'));
    };
    const cleanUp = (): void => {
      req.off('data', onData).off('end', onEnd).off('close', onClose).off('error', onClose);
    };

    req.on('data', onData).on('end', onEnd).on('close', onClose).on('error', onClose);
  });
}

function tooLarge(req: IncomingMessage, limit: number): HttpError {
  refusedConnections.add(req.socket);
  return new HttpError(413, `Message too large: the limit is ${limit} bytes`, CLOSE);
}

/**
 * Stops taking bytes from this request. The 413 still goes out, and because
 * it says Connection: close, node:http closes the socket once it is written
 * instead of draining the rest of a body we have already refused.
 */
function stopReading(req: IncomingMessage): void {
  req.pause();
}
