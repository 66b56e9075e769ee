import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { HttpError, parseCursor, parseSince } from './http.ts';

const since = (query: string): number => parseSince(new URL(`http://x/messages${query}`));

describe('parseSince', () => {
  test('missing means 0: a first connection gets the whole backlog', () => {
    assert.equal(since(''), 0);
    assert.equal(since('?other=1'), 0);
  });

  test('a non-negative decimal integer is the cursor', () => {
    assert.equal(since('?since=0'), 0);
    assert.equal(since('?since=42'), 42);
    assert.equal(since(`?since=${Number.MAX_SAFE_INTEGER}`), Number.MAX_SAFE_INTEGER);
  });

  for (const query of ['?since=-1', '?since=abc', '?since=', '?since=1.5', '?since=1e3', '?since=01', '?since=%201',
    '?since=0x10', '?since=9007199254740993', '?since=1&since=2']) {
    test(`${query} is a 400`, () => {
      assert.throws(() => since(query), (error: unknown) => error instanceof HttpError && error.status === 400);
    });
  }

  test('the 400 says what was wrong, quoting at most 40 characters', () => {
    assert.throws(() => parseCursor('x'.repeat(100), 'Last-Event-ID'), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.match(error.message, /^Last-Event-ID must be a non-negative integer, got "x{40}"$/);
      return true;
    });
  });
});
