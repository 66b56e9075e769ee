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
});
