/**
 * Entity tags for the poll answers, and the `If-None-Match` check, as pure
 * functions (no I/O; tested on strings in etag.test.ts).
 *
 * What the tag names. The body of `GET /messages?since=N` is the JSON array of
 * the messages with ids from `first = max(N + 1, log.firstId)` to
 * `last = log.lastId` (empty when first > last). A published message never
 * changes, so within one message log that id range *is* the body, byte for
 * byte. The tag is therefore
 *
 *     "<epoch>.<first>-<last>"     e.g. "k3v9q1.4-7"  (messages 4…7)
 *     "<epoch>.empty"              the body is []
 *
 * where `epoch` tells one log from another: ids restart at 1 when the process
 * restarts, so "4-7" from yesterday's process is not today's "4-7".
 *
 * Why this is correct (RFC 9110 §8.8.3: a strong validator changes whenever
 * the representation's bytes change):
 * - same tag ⇒ same epoch and same range ⇒ the same message objects ⇒ the same
 *   JSON bytes. So a 304 never hides a message, even when a client sends a tag
 *   it got for another `since` (two `since` values below the backlog's start
 *   give the same bytes, and the same tag, which is then right too).
 * - a new message changes `last`; the backlog rolling over changes `first` for
 *   an old `since`: either way the tag changes and the client gets a 200.
 * - it costs nothing to compute: no hashing of the body, two integers read.
 */

/** The strong entity tag (RFC 9110 §8.8.3) of the answer holding messages `first`…`last`. */
export function pollTag(epoch: string, first: number, last: number): string {
  return first > last ? `"${epoch}.empty"` : `"${epoch}.${first}-${last}"`;
}

/**
 * The entity tags listed in an `If-None-Match` value, or `'*'`.
 *
 * RFC 9110 §13.1.2: `If-None-Match = "*" / #entity-tag`, and
 * §8.8.3: `entity-tag = [ weak ] opaque-tag`, `weak = %s"W/"`,
 * `opaque-tag = DQUOTE *etagc DQUOTE`. A list may come in several header
 * lines (Node joins them with ", "). Returns undefined for a malformed value:
 * the caller then ignores the condition (answers 200), which is always safe.
 */
export function parseIfNoneMatch(value: string): string[] | '*' | undefined {
  const trimmed = value.trim();
  if (trimmed === '*') return '*';
  const tags: string[] = [];
  // One list element (possibly empty: RFC 9110 §5.6.1 says "a, , b" is
  // allowed and the empty ones are ignored), then a comma or the end.
  // etagc = %x21 / %x23-7E / obs-text: any visible byte but DQUOTE, so a
  // comma may sit inside a tag and the value cannot simply be split on ",".
  const element = /[ \t]*(?:((?:W\/)?"[\x21\x23-\x7e\x80-\xff]*")[ \t]*)?(,|$)/y;
  while (element.lastIndex < trimmed.length) {
    const match = element.exec(trimmed);
    if (!match) return undefined;
    if (match[1] !== undefined) tags.push(match[1]);
  }
  return tags.length > 0 ? tags : undefined;
}

/**
 * Whether a request with this `If-None-Match` already holds `tag`, so that a
 * GET gets `304 Not Modified` (RFC 9110 §13.1.2, §13.2.2 step 3).
 *
 * §13.1.2: "A recipient MUST use the weak comparison function when comparing
 * entity tags for If-None-Match": `W/"x"` matches `"x"`. `*` matches any
 * current representation, and a poll answer always has one.
 */
export function ifNoneMatchHolds(header: string | undefined, tag: string): boolean {
  if (header === undefined) return false;
  // The common case first: a client sends back exactly the ETag it was given
  // (browsers, and ./browser.ts). A header equal to a valid
  // entity tag is a one-element list holding it, so no parsing is needed.
  if (header === tag) return true;
  // Anything else (a list, W/, whitespace, "*") goes through the grammar.
  const tags = parseIfNoneMatch(header);
  if (tags === undefined) return false;
  if (tags === '*') return true;
  const wanted = opaqueTag(tag);
  for (const candidate of tags) if (opaqueTag(candidate) === wanted) return true;
  return false;
}

/** An entity tag without its weakness indicator: equal opaque tags compare equal weakly (RFC 9110 §8.8.3.2). */
function opaqueTag(entityTag: string): string {
  return entityTag.startsWith('W/') ? entityTag.slice(2) : entityTag;
}
