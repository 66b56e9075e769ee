import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ifNoneMatchHolds, parseIfNoneMatch, pollTag } from './etag.ts';

describe('pollTag: the tag names the id range, which names the bytes', () => {
  test('a range of messages', () => {
    assert.equal(pollTag('e1', 4, 7), '"e1.4-7"');
  });
  test('an empty answer has one tag per log, whatever the since', () => {
    assert.equal(pollTag('e1', 8, 7), '"e1.empty"');
    assert.equal(pollTag('e1', 100, 7), pollTag('e1', 8, 7));
  });
  test('another log (a restarted process) gives another tag for the same ids', () => {
    assert.notEqual(pollTag('e1', 1, 2), pollTag('e2', 1, 2));
  });
});

describe('parseIfNoneMatch (RFC 9110 §13.1.2: "*" / #entity-tag)', () => {
  test('one strong tag, one weak tag', () => {
    assert.deepEqual(parseIfNoneMatch('"abc"'), ['"abc"']);
    assert.deepEqual(parseIfNoneMatch('W/"abc"'), ['W/"abc"']);
  });
  test('a list, with optional whitespace and empty elements (§5.6.1)', () => {
    assert.deepEqual(parseIfNoneMatch(' "a" ,W/"b",, "c"  '), ['"a"', 'W/"b"', '"c"']);
    assert.deepEqual(parseIfNoneMatch('"a",'), ['"a"']);
  });
  test('a comma inside an opaque tag is part of the tag (etagc excludes only DQUOTE)', () => {
    assert.deepEqual(parseIfNoneMatch('"a,b", "c"'), ['"a,b"', '"c"']);
  });
  test('"*" alone', () => {
    assert.equal(parseIfNoneMatch(' * '), '*');
  });
  test('malformed values are undefined (the condition is then ignored)', () => {
    for (const value of ['', 'abc', '"unterminated', '"a" "b"', 'w/"lowercase weak"', '"a"x', '*, "a"', ',', '"sp ace"']) {
      assert.equal(parseIfNoneMatch(value), undefined, value);
    }
  });
});

describe('ifNoneMatchHolds', () => {
  const tag = '"e1.4-7"';
  test('no header: the condition is absent, answer 200', () => {
    assert.equal(ifNoneMatchHolds(undefined, tag), false);
  });
  test('the same tag holds', () => {
    assert.equal(ifNoneMatchHolds('"e1.4-7"', tag), true);
  });
  test('"A recipient MUST use the weak comparison function" for If-None-Match', () => {
    assert.equal(ifNoneMatchHolds('W/"e1.4-7"', tag), true);
  });
  test('any tag of a list may match', () => {
    assert.equal(ifNoneMatchHolds('"x", "e1.4-7"', tag), true);
  });
  test('"*" matches any current representation', () => {
    assert.equal(ifNoneMatchHolds('*', tag), true);
  });
  test('another tag, or a malformed header, does not hold', () => {
    assert.equal(ifNoneMatchHolds('"e1.4-8"', tag), false);
    assert.equal(ifNoneMatchHolds('e1.4-7', tag), false);
  });
  test('the exact-match shortcut changes no answer: every spelling of the tag holds, near misses do not', () => {
    // Spellings the shortcut does not see pass through the grammar and still hold.
    for (const header of ['"e1.4-7"', ' "e1.4-7" ', '"e1.4-7",', 'W/"e1.4-7"', '"x",W/"e1.4-7"', '"e1.4-7", "x"']) {
      assert.equal(ifNoneMatchHolds(header, tag), true, header);
    }
    // A prefix, an extension, another case, two tags not separated by a comma.
    for (const header of ['"e1.4-', '"e1.4-7', '"e1.4-7"x', '"E1.4-7"', 'w/"e1.4-7"', '"e1.4-7" "e1.4-7"', '"e1.4-70"']) {
      assert.equal(ifNoneMatchHolds(header, tag), false, header);
    }
  });
  test('a weak tag is compared by its opaque part on both sides', () => {
    assert.equal(ifNoneMatchHolds('W/"x"', 'W/"x"'), true);
    assert.equal(ifNoneMatchHolds('"x"', 'W/"x"'), true);
    assert.equal(ifNoneMatchHolds('"y", W/"x"', 'W/"x"'), true);
    assert.equal(ifNoneMatchHolds('"y"', 'W/"x"'), false);
  });
});
