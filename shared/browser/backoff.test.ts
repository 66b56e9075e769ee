import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from './backoff.ts';

describe('Backoff', () => {
  test('delays double from initialMs, each drawn from [base/2, base]', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => 0 });
    assert.deepEqual([low.next(), low.next(), low.next(), low.next()], [50, 100, 200, 400]);
    const high = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => 1 });
    assert.deepEqual([high.next(), high.next(), high.next()], [100, 200, 400]);
  });

  test('delays stop growing at maxMs, however many failures', () => {
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 5_000, random: () => 1 });
    const delays = Array.from({ length: 100 }, () => backoff.next());
    assert.equal(Math.max(...delays), 5_000);
    assert.equal(delays.at(-1), 5_000);
    assert.equal(backoff.failures, 100);
  });

  test('reset() starts again from initialMs', () => {
    const backoff = new Backoff({ initialMs: 100, random: () => 1 });
    backoff.next();
    backoff.next();
    backoff.reset();
    assert.equal(backoff.failures, 0);
    assert.equal(backoff.next(), 100);
  });

  test('the defaults are 1 s growing to 30 s, with real jitter', () => {
    const backoff = new Backoff();
    const first = backoff.next();
    assert.ok(first >= 500 && first <= 1_000);
    for (let i = 0; i < 20; i++) backoff.next();
    const late = backoff.next();
    assert.ok(late >= 15_000 && late <= 30_000);
  });
});
