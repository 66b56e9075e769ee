import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Delivery, sleep, type ClientObserver } from './client.ts';
import type { ChatMessage } from './messages.ts';

function recorder(): ClientObserver & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    message: (m: ChatMessage) => log.push(`message ${m.id}`),
    gap: (missed, after) => log.push(`gap ${missed} after ${after}`),
    state: (state) => log.push(`state ${state}`),
  };
}

describe('Delivery', () => {
  test('hands each message over once, in order, and reports a gap before the message after it', () => {
    const observer = recorder();
    const delivery = new Delivery(observer);
    for (const id of [1, 2, 2, 1, 5, 6]) delivery.receive({ id, text: '' });
    assert.deepEqual(observer.log, ['message 1', 'message 2', 'gap 2 after 2', 'message 5', 'message 6']);
    assert.equal(delivery.lastId, 6);
  });

  test('starts after `since` when given one', () => {
    const observer = recorder();
    const delivery = new Delivery(observer, 10);
    delivery.receive({ id: 10, text: '' });
    delivery.receive({ id: 11, text: '' });
    assert.deepEqual(observer.log, ['message 11']);
  });
});

describe('sleep', () => {
  test('resolves after the delay', async () => {
    const started = Date.now();
    await sleep(20);
    assert.ok(Date.now() - started >= 15);
  });

  test('resolves at once when the signal aborts, or has already aborted', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const sleeping = sleep(10_000, controller.signal);
    controller.abort();
    await sleeping;
    await sleep(10_000, controller.signal);
    assert.ok(Date.now() - started < 1_000);
  });
});
