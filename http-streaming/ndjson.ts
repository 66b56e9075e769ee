/**
 * NDJSON framing, both directions: one JSON value per line, lines ended by
 * `\n` (the "newline-delimited JSON" convention, ndjson.org; also JSON Lines).
 *
 *     {"id":1,"text":"hi","time":1763712000000}\n      a message
 *     \n                                               a heartbeat (an empty line)
 *
 * Why a line works as a frame: JSON.stringify never writes a raw newline (a
 * `\n` inside a string comes out as the two characters `\` `n`), so the only
 * newline bytes on the wire are the separators. And in UTF-8 the byte 0x0A is
 * never part of a multi-byte character, so splitting at it is safe even before
 * decoding.
 *
 * The reading side must accept *any* chunking. TCP and every proxy on the way
 * may cut the response anywhere: in the middle of a line, in the middle of a
 * multi-byte character, one byte at a time. LineSplitter holds back the part
 * after the last newline until the rest arrives; NdjsonDecoder does the same for
 * bytes, with a streaming TextDecoder holding back a split character.
 *
 * Pure: no DOM, no Node. Imported by server.ts (formatLine) and by browser.ts
 * (the readers), and tested in Node on strings and bytes.
 */
import { parseMessage, type ChatMessage } from '../shared/browser/messages.ts';

/** The separator, and the whole heartbeat line. */
export const NEWLINE = '\n';

/**
 * A response header of /stream (and /iframe): the server's heartbeat interval,
 * in milliseconds (HEARTBEAT_MS). The client sizes its watchdog from it (two
 * missed heartbeats) instead of guessing; the frame, which cannot read headers,
 * gets the same number in its hello (forever-frame.ts).
 */
export const HEARTBEAT_HEADER = 'Heartbeat-Ms';

/** The line for one message: its JSON, then the newline. */
export function formatLine(message: object): string {
  return JSON.stringify(message) + NEWLINE;
}

/**
 * A line longer than this (in UTF-16 code units) means the peer is not
 * speaking NDJSON, or wants us to buffer forever: the reader gives up on the
 * response instead of growing a string without bound. Generous: the largest
 * message (MAX_MESSAGE_BYTES, 64 KiB by default) can grow sixfold as JSON
 * (`\u0001` for each control character) and the server's limit is configurable.
 */
export const MAX_LINE_LENGTH = 8 * 1024 * 1024;

export class LineTooLongError extends Error {
  override name = 'LineTooLongError';
}

/**
 * Cuts a stream of text into lines, whatever the chunk boundaries.
 *
 *     splitter.push('{"id":1}\n{"i')   → ['{"id":1}']
 *     splitter.push('d":2}\n\n')       → ['{"id":2}', '']
 *
 * A `\r` before the `\n` is dropped, so CRLF lines read the same (NDJSON says
 * `\n`, but some tools write `\r\n`). It does not parse JSON: see parseLine.
 */
export class LineSplitter {
  /** Pieces of the line not yet ended, kept apart so one-byte chunks cost O(n), not O(n²). */
  #pending: string[] = [];
  #pendingLength = 0;
  readonly #maxLineLength: number;

  constructor(maxLineLength = MAX_LINE_LENGTH) {
    this.#maxLineLength = maxLineLength;
  }

  /** Characters held back: the start of a line whose newline has not arrived. */
  get pendingLength(): number {
    return this.#pendingLength;
  }

  /** Feeds a chunk; returns every line it completes, without their newlines. Throws LineTooLongError. */
  push(chunk: string): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let newline = chunk.indexOf(NEWLINE); newline !== -1; newline = chunk.indexOf(NEWLINE, start)) {
      this.#hold(chunk.slice(start, newline));
      const line = this.#pending.join('');
      this.#pending = [];
      this.#pendingLength = 0;
      lines.push(line.endsWith('\r') ? line.slice(0, -1) : line);
      start = newline + 1;
    }
    if (start < chunk.length) this.#hold(chunk.slice(start));
    return lines;
  }

  /**
   * The stream ended. Returns the unterminated last line, if any: NDJSON ends
   * every line with `\n`, so a caller should treat it as a truncated line,
   * not as a message.
   */
  end(): string | undefined {
    if (this.#pendingLength === 0) return undefined;
    const rest = this.#pending.join('');
    this.#pending = [];
    this.#pendingLength = 0;
    return rest;
  }

  #hold(piece: string): void {
    if (piece === '') return;
    this.#pendingLength += piece.length;
    if (this.#pendingLength > this.#maxLineLength) {
      throw new LineTooLongError(`a line grew past ${this.#maxLineLength} characters without a newline`);
    }
    this.#pending.push(piece);
  }
}

/**
 * Bytes in, lines out: a streaming UTF-8 decoder in front of a LineSplitter.
 * `{stream: true}` makes TextDecoder keep the first bytes of a character cut
 * by a chunk boundary until its last bytes arrive, instead of writing U+FFFD.
 */
export class NdjsonDecoder {
  readonly #decoder = new TextDecoder('utf-8');
  readonly #splitter: LineSplitter;

  constructor(maxLineLength = MAX_LINE_LENGTH) {
    this.#splitter = new LineSplitter(maxLineLength);
  }

  push(bytes: Uint8Array): string[] {
    return this.#splitter.push(this.#decoder.decode(bytes, { stream: true }));
  }

  /** The stream ended: flushes the decoder; returns an unterminated last line, if any. */
  end(): string | undefined {
    // What the decoder still holds is the start of a character the end cut off:
    // it comes out as U+FFFD, never as a newline, so push() completes no line here.
    this.#splitter.push(this.#decoder.decode());
    return this.#splitter.end();
  }
}

export type Line =
  | { kind: 'heartbeat' }
  | { kind: 'message'; message: ChatMessage }
  /** Not JSON, or JSON that is not a chat message. */
  | { kind: 'invalid'; line: string };

/** What one line means: an empty line is a heartbeat, anything else should be a message. */
export function parseLine(line: string): Line {
  if (line === '') return { kind: 'heartbeat' };
  const message = parseMessage(line);
  return message ? { kind: 'message', message } : { kind: 'invalid', line };
}
