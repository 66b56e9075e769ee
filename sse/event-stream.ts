/**
 * The `text/event-stream` format (WHATWG HTML §9.2.5–§9.2.6), both ways, with
 * no I/O: `formatEvent()` / `formatComment()` turn an event into the text the
 * server writes, `EventStreamParser` turns bytes back into events the way a
 * browser's EventSource does (the tests read the server with it), and
 * `acceptsEventStream()` reads an Accept header.
 *
 * The format is lines of `field: value`; a blank line ends (dispatches) an event:
 *
 *     retry: 500                      reconnect 500 ms after a drop
 *                                     (blank line: nothing to dispatch, no data)
 *     : keep-alive                    a comment, ignored by the client
 *     id: 7                           remembered; sent back as Last-Event-ID
 *     data: {"id":7,"text":"hi"}      the event's data (several lines join with \n)
 *                                     blank line: dispatch a "message" event
 *     event: ping                     a named event: addEventListener('ping', …)
 *     data: {"time":"…"}
 *
 * §9.2.6: a line ends at CRLF, LF *or a lone CR*. So a value holding any of
 * them would end its line early and what follows would be read as a new field
 * (`data: a\n\nid: 999` is an event, then a forged id) or as the blank line that
 * dispatches. The writer below never lets that happen: data is split into one
 * `data:` line per line, and the fields that cannot be split (id, event,
 * retry) are refused when they hold a line break.
 */

export interface StreamEvent {
  /** Sets the client's last event id; it must hold no CR, LF or NUL. */
  id?: string | number;
  /** The event type; missing or '' means "message" (what `onmessage` sees). */
  event?: string;
  /** The payload; line breaks (CRLF, LF, CR) arrive as LF. '' is a valid, empty event. */
  data: string;
  /** Reconnection delay in ms the client should use from now on. */
  retry?: number;
}

/** A line break as §9.2.6 counts them: CRLF, LF or a lone CR. */
const LINE_BREAK = /\r\n|\r|\n/;

/**
 * The text of one event, ending with the blank line that dispatches it.
 *
 *     formatEvent({ id: 7, data: 'two\nlines' })  →  'id: 7\ndata: two\ndata: lines\n\n'
 *
 * Every `data:` line keeps the space after the colon, since the parser strips
 * exactly one: data that starts with a space keeps it. Throws a TypeError for
 * an id or event type that could break the framing, and for a retry that is
 * not a non-negative integer: those are the caller's bugs, and quietly
 * altering an id would resume a client from the wrong place.
 */
export function formatEvent({ id, event, data, retry }: StreamEvent): string {
  let text = '';
  if (retry !== undefined) text += formatRetry(retry);
  if (event !== undefined && event !== '') {
    if (LINE_BREAK.test(event)) throw new TypeError(`event type must not contain a line break: ${JSON.stringify(event)}`);
    text += `event: ${event}\n`;
  }
  if (id !== undefined) {
    const value = String(id);
    // §9.2.6 "If the field value does not contain U+0000 NULL, then set the
    // last event ID buffer": an id with NUL would be silently dropped by the client.
    if (LINE_BREAK.test(value) || value.includes('\0')) {
      throw new TypeError(`event id must not contain CR, LF or NUL: ${JSON.stringify(value)}`);
    }
    text += `id: ${value}\n`;
  }
  for (const line of data.split(LINE_BREAK)) text += `data: ${line}\n`;
  return text + '\n';
}

/** `retry: <ms>\n`; §9.2.6 ignores a retry value that is not all ASCII digits. */
export function formatRetry(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new TypeError(`retry must be a non-negative integer, got ${ms}`);
  return `retry: ${ms}\n`;
}

/**
 * Comment lines (`: text`), which the client ignores: a keep-alive that proxies
 * see as traffic. Multi-line text becomes several comment lines; a comment
 * never dispatches anything, so it may sit between any two lines.
 */
export function formatComment(text = ''): string {
  return text
    .split(LINE_BREAK)
    .map((line) => (line === '' ? ':\n' : `: ${line}\n`))
    .join('');
}

// ---------------------------------------------------------------------------
// Reading: the §9.2.6 "interpreting an event stream" algorithm.

/** What an EventSource would dispatch: a MessageEvent's type, data and lastEventId. */
export interface ParsedEvent {
  type: string;
  data: string;
  lastEventId: string;
}

export interface ParserHandlers {
  onEvent(event: ParsedEvent): void;
  /** A valid `retry:` field (§9.2.6: only ASCII digits count). */
  onRetry?(ms: number): void;
  /** A comment line's text after the colon (browsers ignore comments; tests watch heartbeats). */
  onComment?(text: string): void;
}

/**
 * Bytes in, events out, exactly as §9.2.6 describes, whatever the chunking:
 * a chunk may end inside a UTF-8 sequence, inside a line, or between the CR
 * and the LF of a CRLF, and the result is the same as for the whole stream.
 *
 * State between chunks: the decoder's partial character, the partial line,
 * whether the last chunk ended in CR, and the three buffers of the spec (data,
 * event type, last event id). An event left unfinished when the stream ends is
 * never dispatched (call nothing; just drop the parser), also per §9.2.6.
 */
export class EventStreamParser {
  // "Streams must be decoded using the UTF-8 decode algorithm": replacement
  // characters for bad bytes, and one leading BOM stripped (TextDecoder does both).
  readonly #decoder = new TextDecoder('utf-8');
  readonly #handlers: ParserHandlers;
  #line = '';
  #afterCR = false;
  #data = '';
  #eventType = '';
  #lastEventId = '';

  constructor(handlers: ParserHandlers) {
    this.#handlers = handlers;
  }

  /** The last event id seen so far: what a client sends as Last-Event-ID. */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  feed(chunk: Uint8Array): void {
    const text = this.#decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const char = text[i];
      if (char === '\n' && this.#afterCR && i === start && this.#line === '') {
        // The LF of a CRLF whose CR ended the previous line (maybe in the previous chunk).
        this.#afterCR = false;
        start = i + 1;
        continue;
      }
      this.#afterCR = false;
      if (char === '\r' || char === '\n') {
        this.#processLine(this.#line + text.slice(start, i));
        this.#line = '';
        this.#afterCR = char === '\r';
        start = i + 1;
      }
    }
    this.#line += text.slice(start);
  }

  #processLine(line: string): void {
    // "If the line is empty (a blank line): dispatch the event."
    if (line === '') return this.#dispatch();
    // "If the line starts with a U+003A COLON character (:): ignore the line."
    if (line.startsWith(':')) return this.#handlers.onComment?.(line.slice(1).replace(/^ /, ''));
    // "If the line contains a colon: collect the characters before it as the
    // field name, after it as the value; if the value starts with a space,
    // remove it." Otherwise the whole line is the name and the value is ''.
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    this.#processField(field, value);
  }

  #processField(field: string, value: string): void {
    switch (field) {
      case 'event':
        this.#eventType = value;
        return;
      case 'data':
        this.#data += value + '\n';
        return;
      case 'id':
        // "If the field value does not contain U+0000 NULL, then set the last event ID buffer."
        if (!value.includes('\0')) this.#lastEventId = value;
        return;
      case 'retry':
        // "If the field value consists of only ASCII digits, then interpret it as an integer."
        if (/^[0-9]+$/.test(value)) this.#handlers.onRetry?.(Number(value));
        return;
      default:
      // "Otherwise: the field is ignored."
    }
  }

  #dispatch(): void {
    // 1. The last event id is kept even when nothing is dispatched.
    // 2. "If the data buffer is an empty string, set the data buffer and the
    //    event type buffer to the empty string and return."
    if (this.#data === '') {
      this.#eventType = '';
      return;
    }
    // 3. "If the data buffer's last character is a U+000A LINE FEED, remove it."
    const data = this.#data.slice(0, -1);
    const type = this.#eventType === '' ? 'message' : this.#eventType;
    this.#data = '';
    this.#eventType = '';
    this.#handlers.onEvent({ type, data, lastEventId: this.#lastEventId });
  }
}

// ---------------------------------------------------------------------------
// Who gets an event stream: content negotiation on Accept (RFC 9110 §12.5.1).

/**
 * Whether an Accept header admits `text/event-stream`.
 *
 * RFC 9110 §12.5.1: no Accept header means any type is acceptable, and so does
 * `*\/*` (curl's default); `text/*` covers it too. When several ranges match,
 * the most specific one decides, and `q=0` means "not acceptable", so
 * `text/event-stream;q=0, *\/*` is a no. Unparseable entries are skipped.
 * EventSource always sends `Accept: text/event-stream`.
 */
export function acceptsEventStream(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === '') return true;
  let best: { specificity: number; q: number } | undefined;
  for (const entry of accept.split(',')) {
    const [range = '', ...parameters] = entry.split(';').map((part) => part.trim().toLowerCase());
    const specificity = range === 'text/event-stream' ? 3 : range === 'text/*' ? 2 : range === '*/*' ? 1 : 0;
    if (specificity === 0) continue;
    let q = 1;
    for (const parameter of parameters) {
      const match = /^q\s*=\s*([01](?:\.[0-9]{0,3})?)$/.exec(parameter);
      if (match) q = Number(match[1]);
    }
    if (!best || specificity > best.specificity) best = { specificity, q };
  }
  return best !== undefined && best.q > 0;
}
