import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MessageCursor, isChatMessage, parseMessage, parseMessageList } from './messages.ts';

describe('parsing messages', () => {
  test('a message is an object with a positive integer id and a string text', () => {
    assert.equal(isChatMessage({ id: 1, text: '' }), true);
    assert.equal(isChatMessage({ id: 1, text: 'x', time: 5, from: 'ab' }), true);
    for (const value of [null, 1, 'x', [], { id: 0, text: 'x' }, { id: 1.5, text: 'x' }, { id: '1', text: 'x' }, { id: 1 }, { id: 1, text: 2 }]) {
      assert.equal(isChatMessage(value), false, JSON.stringify(value));
    }
  });

  test('parseMessage returns undefined for bad JSON or the wrong shape, never throws', () => {
    assert.deepEqual(parseMessage('{"id":3,"text":"hi"}'), { id: 3, text: 'hi' });
    assert.equal(parseMessage('{'), undefined);
    assert.equal(parseMessage('{"id":3}'), undefined);
  });

  test('parseMessageList takes an array of messages only', () => {
    assert.deepEqual(parseMessageList('[]'), []);
    assert.deepEqual(parseMessageList('[{"id":1,"text":"a"}]'), [{ id: 1, text: 'a' }]);
    assert.equal(parseMessageList('[{"id":1}]'), undefined);
    assert.equal(parseMessageList('{"id":1,"text":"a"}'), undefined);
    assert.equal(parseMessageList('nope'), undefined);
  });
});

describe('MessageCursor', () => {
  test('the next id is fresh with nothing missed', () => {
    const cursor = new MessageCursor();
    assert.deepEqual(cursor.accept({ id: 1, text: '' }), { fresh: true, missed: 0 });
    assert.deepEqual(cursor.accept({ id: 2, text: '' }), { fresh: true, missed: 0 });
    assert.equal(cursor.lastId, 2);
  });

  test('an id greater than last + 1 reports how many were missed', () => {
    const cursor = new MessageCursor(10);
    assert.deepEqual(cursor.accept({ id: 14, text: '' }), { fresh: true, missed: 3 });
    assert.equal(cursor.lastId, 14);
  });

  test('an id already seen is not fresh and does not move the cursor', () => {
    const cursor = new MessageCursor(5);
    assert.deepEqual(cursor.accept({ id: 5, text: '' }), { fresh: false, missed: 0 });
    assert.deepEqual(cursor.accept({ id: 2, text: '' }), { fresh: false, missed: 0 });
    assert.equal(cursor.lastId, 5);
  });
});
