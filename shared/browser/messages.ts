/**
 * What every browser client does with the messages it receives, whatever the
 * technique: parse them defensively, drop what it has already seen, and
 * notice when some never arrived.
 *
 * Ids are consecutive (1, 2, 3, …), so "first id received greater than last
 * seen + 1" means messages were missed: usually because the client was away
 * longer than the server's backlog reaches back. A client says so instead of
 * silently showing a chat with a hole in it.
 *
 * Pure: no DOM, no network; tested in Node.
 */

export interface ChatMessage {
  id: number;
  text: string;
  /** Server time when published (ms since the epoch), when the server sends it. */
  time?: number;
  [field: string]: unknown;
}

/** Whether a parsed JSON value has the shape of a chat message. */
export function isChatMessage(value: unknown): value is ChatMessage {
  if (typeof value !== 'object' || value === null) return false;
  const { id, text } = value as { id?: unknown; text?: unknown };
  return Number.isSafeInteger(id) && (id as number) > 0 && typeof text === 'string';
}

/** Parses one message from JSON text; undefined when it is not one. */
export function parseMessage(json: string): ChatMessage | undefined {
  try {
    const value: unknown = JSON.parse(json);
    return isChatMessage(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Parses a JSON array of messages (the polling answers); undefined when it is not one. */
export function parseMessageList(json: string): ChatMessage[] | undefined {
  try {
    const value: unknown = JSON.parse(json);
    return Array.isArray(value) && value.every(isChatMessage) ? value : undefined;
  } catch {
    return undefined;
  }
}

export type Arrival =
  /** A message not seen before; `missed` messages before it never arrived (0 normally). */
  | { fresh: true; missed: number }
  /** Already seen (a replay overlapping what arrived live): ignore it. */
  | { fresh: false; missed: 0 };

/** Remembers the last id seen; `since` for the next request is `cursor.lastId`. */
export class MessageCursor {
  lastId: number;

  constructor(lastId = 0) {
    this.lastId = lastId;
  }

  accept(message: ChatMessage): Arrival {
    if (message.id <= this.lastId) return { fresh: false, missed: 0 };
    const missed = message.id - this.lastId - 1;
    this.lastId = message.id;
    return { fresh: true, missed };
  }
}
