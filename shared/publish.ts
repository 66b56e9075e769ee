/**
 * `POST /publish`, the same in every folder: the body is the message text.
 *
 *     $ curl -d 'hello' http://127.0.0.1:8080/publish
 *     {"id":7,"text":"hello","time":1763712000000}
 *
 * 201 with the new message; 400 empty or not UTF-8; 413 over
 * MAX_MESSAGE_BYTES (nothing is published); 405 for other methods.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MessageLog } from './message-log.ts';
import { allowMethods, sendJson } from './http.ts';
import { readTextBody } from './body.ts';

export async function handlePublish(
  req: IncomingMessage,
  res: ServerResponse,
  log: MessageLog,
  maxMessageBytes: number,
): Promise<void> {
  if (!allowMethods(req, res, ['POST'])) return;
  const text = await readTextBody(req, maxMessageBytes);
  sendJson(res, 201, log.publish(text));
}
