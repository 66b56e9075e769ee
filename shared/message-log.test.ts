import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MessageLog, type Message } from './message-log.ts';

const ids = (messages: Message[]): number[] => messages.map((m) => m.id);

describe('MessageLog', () => {
  test('ids start at 1 and grow by 1 per published message', () => {
    const log = new MessageLog(10);
    assert.equal(log.lastId, 0);
    assert.deepEqual([log.publish('a').id, log.publish('b').id, log.publish('c').id], [1, 2, 3]);
    assert.equal(log.lastId, 3);
  });

  test('a message carries its text, the server time and any extra fields', () => {
    const log = new MessageLog(10);
    const before = Date.now();
    const message = log.publish('hi', { from: 'ab' });
    assert.equal(message.text, 'hi');
    assert.equal(message.from, 'ab');
    assert.ok(message.time >= before && message.time <= Date.now());
  });

  test('extra fields cannot override id, text or time', () => {
    const log = new MessageLog(10);
    const message = log.publish('hi', { id: 99, text: 'no', time: 0 });
    assert.equal(message.id, 1);
    assert.equal(message.text, 'hi');
    assert.notEqual(message.time, 0);
  });

  test('since(n) returns the messages with an id greater than n, oldest first', () => {
    const log = new MessageLog(10);
    for (const text of 'abcde') log.publish(text);
    assert.deepEqual(ids(log.since(0)), [1, 2, 3, 4, 5]);
    assert.deepEqual(ids(log.since(3)), [4, 5]);
    assert.deepEqual(ids(log.since(5)), []);
    assert.deepEqual(ids(log.since(99)), []);
  });

  test('the backlog keeps only the newest `capacity` messages; an older since replays what is left', () => {
    const log = new MessageLog(3);
    for (let i = 0; i < 7; i++) log.publish(`m${i + 1}`);
    assert.equal(log.firstId, 5);
    assert.deepEqual(ids(log.since(0)), [5, 6, 7]);
    assert.deepEqual(ids(log.since(5)), [6, 7]);
    assert.deepEqual(log.since(0).map((m) => m.text), ['m5', 'm6', 'm7']);
  });

  test('an empty log has firstId 1 and replays nothing', () => {
    const log = new MessageLog(3);
    assert.equal(log.firstId, 1);
    assert.deepEqual(log.since(0), []);
  });

  test('the capacity must be a positive integer', () => {
    assert.throws(() => new MessageLog(0), RangeError);
    assert.throws(() => new MessageLog(1.5), RangeError);
  });

  test('every subscriber receives every message once, in id order', () => {
    const log = new MessageLog(10);
    const a: number[] = [];
    const b: number[] = [];
    log.subscribe((m) => a.push(m.id));
    log.subscribe((m) => b.push(m.id));
    log.publish('1');
    log.publish('2');
    assert.deepEqual(a, [1, 2]);
    assert.deepEqual(b, [1, 2]);
    assert.equal(log.subscriberCount, 2);
  });

  test('unsubscribe stops delivery, and calling it twice is harmless', () => {
    const log = new MessageLog(10);
    const got: number[] = [];
    const stop = log.subscribe((m) => got.push(m.id));
    log.publish('1');
    stop();
    stop();
    log.publish('2');
    assert.deepEqual(got, [1]);
    assert.equal(log.subscriberCount, 0);
  });

  test('the same function subscribed twice gets each message twice and unsubscribes one at a time', () => {
    const log = new MessageLog(10);
    const got: number[] = [];
    const listener = (m: Message): void => {
      got.push(m.id);
    };
    const first = log.subscribe(listener);
    log.subscribe(listener);
    log.publish('1');
    first();
    log.publish('2');
    assert.deepEqual(got, [1, 1, 2]);
  });

  test('a subscriber that throws is reported and does not stop delivery to the others', () => {
    const errors: unknown[] = [];
    const log = new MessageLog(10, { onListenerError: (error) => errors.push(error) });
    const got: number[] = [];
    log.subscribe(() => {
      throw new Error('boom');
    });
    log.subscribe((m) => got.push(m.id));
    log.publish('1');
    log.publish('2');
    assert.deepEqual(got, [1, 2]);
    assert.equal(errors.length, 2);
    assert.match(String(errors[0]), /boom/);
  });

  test('by default a throwing subscriber is logged to the console', (t) => {
    const logged = t.mock.method(console, 'error', () => {});
    const log = new MessageLog(10);
    log.subscribe(() => {
      throw new Error('boom');
    });
    log.publish('x');
    assert.equal(logged.mock.callCount(), 1);
  });

  test('subscribe(listener, since) replays the backlog first, then goes live', () => {
    const log = new MessageLog(10);
    log.publish('1');
    log.publish('2');
    const got: number[] = [];
    log.subscribe((m) => got.push(m.id), 1);
    log.publish('3');
    assert.deepEqual(got, [2, 3]);
  });

  test('a message published from inside a subscriber reaches everybody after the current one', () => {
    const log = new MessageLog(10);
    const first: number[] = [];
    const second: number[] = [];
    log.subscribe((m) => {
      first.push(m.id);
      if (m.id === 1) log.publish('reply');
    });
    log.subscribe((m) => second.push(m.id));
    log.publish('hello');
    assert.deepEqual(first, [1, 2]);
    assert.deepEqual(second, [1, 2]);
  });

  test('a subscriber added during a delivery gets that message from its replay, not twice', () => {
    const log = new MessageLog(10);
    const late: number[] = [];
    log.subscribe((m) => {
      if (m.id === 1) log.subscribe((n) => late.push(n.id), 0);
    });
    log.publish('1');
    log.publish('2');
    assert.deepEqual(late, [1, 2]);
  });

  test('a replay during a delivery stops at what has been announced; a pending message arrives live once', () => {
    const log = new MessageLog(10);
    const late: number[] = [];
    log.subscribe((m) => {
      if (m.id === 1) log.publish('2'); // pending until 1 has reached everybody
    });
    log.subscribe((m) => {
      if (m.id === 1) log.subscribe((n) => late.push(n.id), 0);
    });
    log.publish('1');
    assert.deepEqual(late, [1, 2]);
  });

  test('a subscriber removed during a delivery gets nothing more, that message included', () => {
    const log = new MessageLog(10);
    const got: number[] = [];
    let stopB = (): void => {};
    log.subscribe(() => stopB());
    stopB = log.subscribe((m) => got.push(m.id));
    log.publish('1');
    assert.deepEqual(got, []);
  });

  test('replay then live has no seam: random subscribe/publish interleavings see every id once, in order', () => {
    const log = new MessageLog(50);
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const clients: { got: number[]; stop?: () => void }[] = [];
    for (let step = 0; step < 2000; step++) {
      const r = random();
      if (r < 0.5) log.publish(`m${step}`);
      else if (r < 0.7) {
        const client: { got: number[]; stop?: () => void } = { got: [] };
        client.stop = log.subscribe((m) => client.got.push(m.id), Math.max(0, log.lastId - Math.floor(random() * 5)));
        clients.push(client);
      } else if (clients.length > 0) {
        // Reconnect: stop, then resume from the last id seen.
        const client = clients[Math.floor(random() * clients.length)]!;
        client.stop?.();
        const last = client.got.at(-1) ?? 0;
        client.stop = log.subscribe((m) => client.got.push(m.id), last);
      }
    }
    for (const client of clients) {
      const first = client.got[0];
      if (first === undefined) continue;
      assert.deepEqual(client.got, Array.from({ length: client.got.length }, (_, i) => first + i));
    }
  });
});
