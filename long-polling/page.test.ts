// The page in Chromium: the documents' PublishForm and SubscribePane over the
// long-polling server. Two pages chat both ways, a script in a message stays
// text, a gap the backlog cannot fill is said, the page's reconnect loop
// finds a restarted server by itself, and it follows the documents' status
// table in a real browser (502 at once; 500, 404 after 1 s, then backing off).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserSuite } from '../shared/testing/chromium.ts';
import { startTestServer } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { Config } from '../shared/config.ts';
import type { MessageLog } from '../shared/message-log.ts';
import createLongPolling from './server.ts';

const servers: RunningServer[] = [];
after(() => Promise.all(servers.map((server) => server.close())));

async function start(config: Partial<Config> = {}, log?: MessageLog): Promise<RunningServer> {
  const server = await startTestServer(createLongPolling, config, log);
  servers.push(server);
  return server;
}

const messages = (page: Page): Promise<string[]> => page.locator('#subscribe .message').allTextContents();

async function send(page: Page, text: string): Promise<void> {
  await page.fill('form[name=publish] input[name=message]', text);
  await page.click('form[name=publish] input[type=submit]');
}

async function waitForOpen(page: Page): Promise<void> {
  await page.waitForSelector('#state[data-state="open"]', { timeout: 10_000 });
}

browserSuite('long-polling in Chromium', (browser) => {
  test('two pages chat both ways, each message shown once, in the same order', async () => {
    const server = await start();
    const alice = await browser.open(server.url);
    const bob = await browser.open(server.url);
    await Promise.all([waitForOpen(alice), waitForOpen(bob)]);

    await send(alice, 'hello from alice');
    await bob.waitForSelector('#subscribe .message[data-id="1"]', { timeout: 10_000 });
    await send(bob, 'hi from bob');
    await alice.waitForSelector('#subscribe .message[data-id="2"]', { timeout: 10_000 });
    await bob.waitForSelector('#subscribe .message[data-id="2"]', { timeout: 10_000 });

    for (const page of [alice, bob]) {
      assert.deepEqual(await messages(page), ['hello from alice', 'hi from bob']);
    }
  });

  test('a message holding markup and script is shown as text and runs nothing', async () => {
    const server = await start();
    const reader = await browser.open(server.url);
    await waitForOpen(reader);
    const payload = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script><b>bold?</b>';
    const writer = await browser.open(server.url);
    await send(writer, payload);
    await reader.waitForSelector('#subscribe .message[data-id="1"]', { timeout: 10_000 });

    assert.deepEqual(await messages(reader), [payload]);
    assert.equal(await reader.locator('#subscribe img, #subscribe script, #subscribe b').count(), 0);
    assert.equal(await reader.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
  });

  test('messages the backlog no longer holds are reported as a gap, not hidden', async () => {
    const server = await start({ backlog: 2 });
    for (let i = 1; i <= 4; i++) server.log.publish(`m${i}`);
    const page = await browser.open(server.url);
    await page.waitForSelector('#subscribe .message[data-id="4"]', { timeout: 10_000 });
    assert.deepEqual(await messages(page), ['m3', 'm4']);
    assert.match(await page.locator('#subscribe .notice').first().innerText(), /^2 messages after #0 could not be delivered/);
  });

  test('502 ×3 retried at once, then 500 ×2 and 404 after 1 s, 2 s, 4 s; then messages arrive', async () => {
    const server = await start();
    // Chromium logs every error status it receives; those are the point here.
    const page = await browser.open('about:blank', { allow: [/Failed to load resource: the server responded with a status of (502|500|404)/] });
    const failures = [502, 502, 502, 500, 500, 404];
    const arrivals: number[] = [];
    await page.route('**/subscribe?*', async (route) => {
      arrivals.push(performance.now());
      const status = failures[arrivals.length - 1];
      if (status === undefined) await route.continue();
      else await route.fulfill({ status, contentType: 'text/plain', body: `failing with ${status}` });
    });
    await page.goto(server.url);
    await waitForOpen(page); // only after the real server held a poll (or answered one)
    server.log.publish('after the errors');
    await page.waitForSelector('#subscribe .message[data-id="1"]', { timeout: 10_000 });

    assert.ok(arrivals.length >= 7, `${arrivals.length} requests`);
    const gaps = arrivals.slice(1, 7).map((time, i) => Math.round(time - arrivals[i]!));
    const explain = `gaps between requests: ${gaps.join(', ')} ms`;
    // After each 502 (the first three): at once. Loosely: well under the 1 s of an error.
    assert.ok(gaps.slice(0, 3).every((gap) => gap < 900), explain);
    // After the 500, the 500 and the 404: 1 s, 2 s, 4 s (+ up to 25 %), never earlier.
    assert.ok(gaps[3]! >= 900 && gaps[4]! >= 1_800 && gaps[5]! >= 3_600, explain);
    assert.deepEqual(await messages(page), ['after the errors']);
    const notices = await page.locator('#subscribe .notice').allInnerTexts();
    assert.equal(notices[0], 'Connection problem: 500 Internal Server Error; retrying.');
    assert.equal(notices.at(-1), 'Connected again.');
  });

  test('the page recovers after the server restarts, and misses nothing published meanwhile', async () => {
    const first = await start();
    // Refused connections while the server is down are expected; Chromium logs them.
    const page = await browser.open(first.url, { allow: [/ERR_CONNECTION_REFUSED|Failed to load resource|net::ERR/] });
    await waitForOpen(page);
    first.log.publish('before the restart');
    await page.waitForSelector('#subscribe .message[data-id="1"]', { timeout: 10_000 });

    // Shutdown answers the held poll 204; the page asks again, is refused, backs off.
    await first.close();
    await page.waitForSelector('#state[data-state="retrying"]', { timeout: 10_000 });
    assert.match(await page.locator('#subscribe .notice').last().innerText(), /Connection problem/);

    // Same port, same log (so ids continue); one message while the page is still away.
    const second = await start({ port: first.port }, first.log);
    second.log.publish('while the page was away');
    await page.waitForSelector('#subscribe .message[data-id="2"]', { timeout: 30_000 });
    await waitForOpen(page);
    second.log.publish('after the restart');
    await page.waitForSelector('#subscribe .message[data-id="3"]', { timeout: 10_000 });

    assert.deepEqual(await messages(page), ['before the restart', 'while the page was away', 'after the restart']);
    assert.equal(await page.locator('#subscribe .notice').last().innerText(), 'Connected again.');
    await browser.screenshot(page, 'long-polling-after-restart');
  });
});
