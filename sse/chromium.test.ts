// The SSE page in a real browser: two pages chat, the documents' pings tick,
// a server restart is survived with nothing lost (the browser's own
// reconnect, Last-Event-ID, the same MessageLog), message text is never HTML.
// browserSuite fails a test on any console error not allowed.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserSuite, typeMessage } from '../shared/testing/chromium.ts';
import { startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import { MessageLog } from '../shared/message-log.ts';
import createSse, { type SseTechnique } from './server.ts';

const TIMEOUT = 20_000;

let servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
});

async function start(log?: MessageLog, port = 0): Promise<RunningServer> {
  const server = await startTestServer(createSse, { port }, log);
  servers.push(server);
  return server;
}

const shownIds = (page: Page): Promise<number[]> =>
  page.locator('.message[data-id]').evaluateAll((elements) => elements.map((element) => Number((element as HTMLElement).dataset.id)));

browserSuite('sse in Chromium', (browser) => {
  test('two pages chat, and the documents\' pings arrive as "ping at <time>"', async () => {
    const server = await start();
    const a = await browser.open(server.url);
    const b = await browser.open(server.url);
    await Promise.all([a, b].map((page) => page.waitForSelector('.state[data-state="open"]', { timeout: TIMEOUT })));

    const id = await typeMessage(a, 'hello from a');
    for (const page of [a, b]) {
      const shown = page.locator(`.message[data-id="${id}"]`);
      await shown.waitFor({ timeout: TIMEOUT });
      assert.equal(await shown.textContent(), 'hello from a');
    }
    const ping = b.locator('#evt li').first();
    await ping.waitFor({ timeout: TIMEOUT });
    assert.match((await ping.textContent()) ?? '', /^ping at \d{4}-\d\d-\d\dT/);

    // Closing a tab ends its stream on the server at once.
    const sse = server.technique as SseTechnique;
    assert.equal(sse.openStreams, 2);
    await b.close();
    await waitFor(() => sse.openStreams === 1 && server.log.subscriberCount === 1, TIMEOUT, 'the closed tab\'s stream to go');
  });

  test('a message <img src=x onerror=...> shows as text and runs nothing', async () => {
    const server = await start();
    const a = await browser.open(server.url);
    const b = await browser.open(server.url);
    await b.waitForSelector('.state[data-state="open"]', { timeout: TIMEOUT });
    const payload = `<img src=x onerror="document.title='pwned';console.error('xss ran')">`;
    const id = await typeMessage(a, payload);
    for (const page of [a, b]) {
      const shown = page.locator(`.message[data-id="${id}"]`);
      await shown.waitFor({ timeout: TIMEOUT });
      assert.equal(await shown.textContent(), payload);
      assert.equal(await page.locator('#messages img').count(), 0, 'no element made from the text');
      assert.notEqual(await page.title(), 'pwned');
    }
  });

  test('after a server restart the page resumes by itself and gets what was published meanwhile', async () => {
    const log = new MessageLog(100);
    const first = await start(log);
    const page = await browser.open(first.url, { allow: [/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET/] });
    await page.waitForSelector('.state[data-state="open"]', { timeout: TIMEOUT });
    log.publish('before the restart');
    await page.locator('.message[data-id="1"]').waitFor({ timeout: TIMEOUT });

    await first.close();
    servers = servers.filter((server) => server !== first);
    await page.waitForSelector('.state[data-state="retrying"]', { timeout: TIMEOUT });
    log.publish('while down 1');
    log.publish('while down 2');
    // Same port, same log: the ids go on, and the browser's Last-Event-ID: 1 asks for 2 and 3.
    await start(log, first.port);
    log.publish('after the restart');
    await page.locator('.message[data-id="4"]').waitFor({ timeout: TIMEOUT });
    assert.deepEqual(await shownIds(page), [1, 2, 3, 4]);
    assert.equal(await page.locator('.notice').count(), 0, 'no gap');
    assert.equal(await page.getAttribute('.state', 'data-state'), 'open');
  });

  test('a gap the backlog cannot fill is said, not hidden', async () => {
    const server = await startTestServer(createSse, { backlog: 2 });
    servers.push(server);
    for (let n = 1; n <= 5; n++) server.log.publish(`m${n}`);
    const page = await browser.open(server.url);
    await page.locator('.message[data-id="5"]').waitFor({ timeout: TIMEOUT });
    assert.deepEqual(await shownIds(page), [4, 5]);
    assert.match((await page.locator('.notice').first().textContent()) ?? '', /^3 messages after #0 could not be delivered/);
  });
});
