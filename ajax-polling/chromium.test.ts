// The ajax-polling page in a real browser: two pages chatting, message text
// that is never HTML, exactly one request in flight against a slow server
// (and the documents' setInterval snippet, which piles them up), no console
// errors (browserSuite fails a test on any).
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserSuite, typeMessage } from '../shared/testing/chromium.ts';
import { startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import { instrument, type Instrument } from './instrumented.ts';

let servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
});

async function start(): Promise<{ server: RunningServer; wire: Instrument }> {
  const wire = instrument();
  const server = await startTestServer(wire.create);
  servers.push(server);
  return { server, wire };
}

/** Makes the page remember when (Date.now()) each message element appeared. */
async function stampArrivals(page: Page): Promise<void> {
  await page.evaluate(() => {
    const shown: Record<string, number> = {};
    (window as unknown as { shownAt: Record<string, number> }).shownAt = shown;
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (node instanceof HTMLElement && node.dataset.id) shown[node.dataset.id] = Date.now();
        }
      }
    }).observe(document.getElementById('subscribe')!, { childList: true });
  });
}

browserSuite('ajax-polling in Chromium', (browser) => {
  test('a message typed in one page shows in the other within two poll intervals', async (t) => {
    const { server, wire } = await start();
    const a = await browser.open(server.url);
    const b = await browser.open(server.url);
    await b.setExtraHTTPHeaders({ 'X-Test-Page': 'b' });
    await Promise.all([a, b].map((page) => page.waitForSelector('.state[data-state="open"]')));
    await stampArrivals(b);

    const id = await typeMessage(a, 'hello from a');
    const shown = b.locator(`.message[data-id="${id}"]`);
    await shown.waitFor({ timeout: 15_000 });
    assert.equal(await shown.textContent(), 'hello from a');
    await a.locator(`.message[data-id="${id}"]`).waitFor({ timeout: 15_000 });

    // "Within two poll intervals", counted in polls rather than measured in
    // milliseconds (a loaded machine stretches every interval alike): page b
    // started at most two polls between the publish and the message showing.
    const shownAt = await b.evaluate((key) => (window as unknown as { shownAt: Record<string, number> }).shownAt[key], String(id));
    assert.ok(shownAt, 'the arrival was stamped');
    const pollsBetween = wire.polls.filter((poll) => poll.page === 'b' && poll.lastIdAtArrival >= id && poll.arrivedAt <= shownAt);
    assert.ok(pollsBetween.length >= 1 && pollsBetween.length <= 2, `${pollsBetween.length} polls of page b before it showed`);
    t.diagnostic(`shown in b ${shownAt - pollsBetween[0]!.arrivedAt} ms after its poll; default interval 1000 ms`);
    // The page polls with 304s while nothing changes.
    await waitFor(() => wire.polls.some((poll) => poll.page === 'b' && poll.status === 304), 15_000, 'a 304');
  });

  test('a message <img src=x onerror=...> shows as text and runs nothing', async () => {
    const { server } = await start();
    const a = await browser.open(`${server.url}?interval=200`);
    const b = await browser.open(`${server.url}?interval=200`);
    await b.waitForSelector('.state[data-state="open"]');
    const payload = `<img src=x onerror="document.title='pwned';console.error('xss ran')">`;
    const id = await typeMessage(a, payload);
    for (const page of [a, b]) {
      const shown = page.locator(`.message[data-id="${id}"]`);
      await shown.waitFor({ timeout: 15_000 });
      assert.equal(await shown.textContent(), payload);
      assert.equal(await page.locator('#subscribe img').count(), 0, 'no element made from the text');
      assert.notEqual(await page.title(), 'pwned');
    }
  });

  test('a slow server: the loop keeps exactly one request in flight', async () => {
    const { server, wire } = await start();
    wire.delayMs = 400; // four times the interval below
    const page = await browser.open(`${server.url}?interval=100`);
    await waitFor(() => wire.polls.filter((poll) => poll.status !== undefined).length >= 5, 30_000, 'five answers');
    assert.equal(wire.maxInFlight, 1);
    assert.equal(await page.getAttribute('.state', 'data-state'), 'open');
  });

  test('a hidden tab slows down; shown again it polls at once; offline shows, online recovers', async () => {
    const { server, wire } = await start();
    // 2 s visible, so 20 s hidden: a poll within a few seconds of the tab
    // being shown can only come from the wake-up.
    const page = await browser.open(`${server.url}?interval=2000`, { allow: [/ERR_INTERNET_DISCONNECTED|Failed to fetch/] });
    await page.waitForSelector('.state[data-state="open"]');
    // A script as text: tsx would wrap the getters' functions in a helper the page does not have.
    const setVisibility = (hidden: boolean) =>
      page.evaluate(`
        Object.defineProperty(document, 'hidden', { configurable: true, get() { return ${hidden}; } });
        Object.defineProperty(document, 'visibilityState', { configurable: true, get() { return '${hidden ? 'hidden' : 'visible'}'; } });
        document.dispatchEvent(new Event('visibilitychange'));
      `);
    await setVisibility(true);
    const hiddenAt = Date.now();
    // The first answer sent after this is read by a hidden page, which then waits 20 s.
    await waitFor(() => wire.polls.some((poll) => (poll.answeredAt ?? 0) > hiddenAt), 15_000, 'a poll answered while hidden');
    // Now the next poll is 20 s away: none comes in the next 3 s (1.5 visible intervals).
    const quiet = wire.polls.length;
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    assert.equal(wire.polls.length, quiet, 'no poll at the visible interval while hidden');
    const id = server.log.publish('while hidden').id;
    await setVisibility(false);
    await page.locator(`.message[data-id="${id}"]`).waitFor({ timeout: 10_000 });

    await page.context().setOffline(true);
    await page.waitForSelector('.state[data-state="offline"]', { timeout: 15_000 });
    const back = server.log.publish('while offline').id;
    await page.context().setOffline(false);
    await page.locator(`.message[data-id="${back}"]`).waitFor({ timeout: 15_000 });
    await page.waitForSelector('.state[data-state="open"]');
  });

  test('the documents\' setInterval(fetch, …) against the same slow server piles requests up', async () => {
    // The control for the test above: it can tell the two loops apart.
    const { server, wire } = await start();
    wire.delayMs = 400;
    const page = await browser.open(new URL('style.css', server.url).href); // same origin, no client running
    await page.evaluate(() => {
      const timer = setInterval(() => void fetch('messages?since=0', { cache: 'no-store' }).catch(() => {}), 100);
      setTimeout(() => clearInterval(timer), 1_000);
    });
    await waitFor(() => wire.maxInFlight > 1, 15_000, 'two requests in flight');
  });
});
