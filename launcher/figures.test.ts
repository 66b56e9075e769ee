import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { LatencyFigures, formatBytes, formatMs, publishedDuringOutage } from './figures.ts';

describe('LatencyFigures: the last latency and a running median', () => {
  test('nothing before the first message', () => {
    const figures = new LatencyFigures();
    assert.equal(figures.last, undefined);
    assert.equal(figures.median, undefined);
    assert.equal(figures.count, 0);
  });

  test('the median is the middle value, or the mean of the two middle ones', () => {
    const figures = new LatencyFigures();
    figures.add(30);
    assert.equal(figures.median, 30);
    figures.add(10);
    assert.equal(figures.median, 20);
    figures.add(1000);
    assert.equal(figures.median, 30);
    assert.equal(figures.last, 1000);
  });

  test('one slow message moves the last figure, hardly the median', () => {
    const figures = new LatencyFigures();
    for (const ms of [5, 6, 5, 7, 6]) figures.add(ms);
    figures.add(5_000);
    assert.equal(figures.last, 5_000);
    assert.equal(figures.median, 6);
  });

  test('the median looks at the last `window` latencies only, so it follows a change', () => {
    const figures = new LatencyFigures(3);
    for (const ms of [1, 1, 1, 900, 900, 900]) figures.add(ms);
    assert.equal(figures.count, 3);
    assert.equal(figures.median, 900);
  });
});

describe('formatting the figures', () => {
  test('milliseconds under a second, seconds with one decimal above', () => {
    assert.equal(formatMs(undefined), '–');
    assert.equal(formatMs(0), '0 ms');
    assert.equal(formatMs(12.4), '12 ms');
    assert.equal(formatMs(999), '999 ms');
    assert.equal(formatMs(1_250), '1.3 s');
  });

  test('bytes in B, KiB and MiB', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1_023), '1023 B');
    assert.equal(formatBytes(2_048), '2.0 KiB');
    assert.equal(formatBytes(3 * 1_024 * 1_024), '3.0 MiB');
  });
});

describe('publishedDuringOutage: which messages a cut pane had to recover', () => {
  test('published after the cut and before the connection was open again', () => {
    const outage = { from: 1_000, until: 2_000 };
    assert.equal(publishedDuringOutage(999, outage), false);
    assert.equal(publishedDuringOutage(1_000, outage), true);
    assert.equal(publishedDuringOutage(1_999, outage), true);
    assert.equal(publishedDuringOutage(2_000, outage), false);
  });

  test('while still not open again, everything after the cut', () => {
    assert.equal(publishedDuringOutage(5_000, { from: 1_000 }), true);
  });

  test('no cut, or a message without a time, is never recovered', () => {
    assert.equal(publishedDuringOutage(5_000, undefined), false);
    assert.equal(publishedDuringOutage(undefined, { from: 0 }), false);
  });
});
