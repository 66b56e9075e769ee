// The WebSocket page in Chromium, with the browser's own WebSocket against our
// codec: two pages chat, text is never HTML, the GitHub events show, a connection
// the server closes comes back by itself with `since` (missing nothing, doubling
// nothing), a rolled-over backlog shows as a gap, and offline → online recovers.
// browserSuite fails a test on any console error.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserSuite } from '../shared/testing/chromium.ts';
import { startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { Config } from '../shared/config.ts';
import { createWebSocket } from './server.ts';

let servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
});

async function start(config: Partial<Config> = {}): Promise<RunningServer> {
  const server = await startTestServer(createWebSocket, config);
  servers.push(server);
  return server;
}

async function send(page: Page, text: string): Promise<void> {
  await page.fill('#chat-input', text);
  await page.click('#chat-form button');
}

async function chatOpen(page: Page): Promise<void> {
  await page.waitForSelector('#chat-state[data-state="open"]');
}

browserSuite('websocket in Chromium', (browser) => {
  test('a message sent in one page shows in both as "<id> said <text>"', async () => {
    const server = await start();
    const a = await browser.open(server.url);
    const b = await browser.open(server.url);
    await Promise.all([chatOpen(a), chatOpen(b)]);
    await send(a, 'hello from a');
    for (const page of [a, b]) {
      const shown = page.locator('.message[data-id="1"]');
      await shown.waitFor();
      assert.match((await shown.textContent()) ?? '', /^[0-9a-f]{4} said hello from a$/);
    }
    assert.equal(await a.inputValue('#chat-input'), '', 'the input is cleared once sent');
  });

  test('a message <img src=x onerror=...> shows as text and runs nothing', async () => {
    const server = await start();
    const a = await browser.open(server.url);
    const b = await browser.open(server.url);
    await Promise.all([chatOpen(a), chatOpen(b)]);
    const payload = `<img src=x onerror="document.title='pwned';console.error('xss ran')">`;
    await send(a, payload);
    for (const page of [a, b]) {
      const shown = page.locator('.message[data-id="1"]');
      await shown.waitFor();
      assert.match((await shown.textContent()) ?? '', / said <img src=x onerror=/);
      assert.equal(await page.locator('#messages img').count(), 0, 'no element made from the text');
      assert.notEqual(await page.title(), 'pwned');
    }
  });

  test('GitHub events arrive over /githubEvents and show as lines of text', async () => {
    const server = await start();
    const page = await browser.open(server.url);
    await page.waitForSelector('#events-state[data-state="open"]');
    const first = page.locator('#events li').first();
    await first.waitFor();
    assert.match((await first.textContent()) ?? '', /\S+ octocat PushEvent octocat\/Hello-World$/);
  });

  test('closed by the server (1009), the page reconnects with since and misses nothing', async () => {
    const server = await start({ maxMessageBytes: 64 });
    const page = await browser.open(server.url);
    await chatOpen(page);
    server.log.publish('before');
    await page.locator('.message[data-id="1"]').waitFor();

    // Too long for the chat: the server closes with 1009 and the page says so…
    await send(page, 'x'.repeat(65));
    await page.waitForSelector('#chat-state[data-state="retrying"]');
    assert.match((await page.textContent('#chat-state')) ?? '', /1009/);
    // …while it is away, a message is published; it must arrive after the reconnect.
    server.log.publish('while away');
    await chatOpen(page);
    await page.locator('.message[data-id="2"]').waitFor();
    await waitFor(() => server.log.subscriberCount === 1, 5_000, 'one chat socket again');
    const texts = await page.locator('.message').allTextContents();
    assert.deepEqual(texts, ['before', 'while away'], 'each message once, in order');
  });

  test('messages the backlog no longer holds are reported as a gap, not hidden', async () => {
    const server = await start({ backlog: 2 });
    for (const text of ['one', 'two', 'three', 'four', 'five']) server.log.publish(text);
    const page = await browser.open(server.url);
    await page.locator('.message[data-id="5"]').waitFor();
    assert.deepEqual(await page.locator('.message').allTextContents(), ['four', 'five']);
    assert.match((await page.textContent('.notice')) ?? '', /^3 messages after #0 could not be delivered/);
  });

  test('offline, the page waits for the network; back online it reconnects at once and catches up', async () => {
    const server = await start();
    const page = await browser.open(server.url, { allow: [/ERR_INTERNET_DISCONNECTED/] });
    await chatOpen(page);
    await page.context().setOffline(true);
    // The server drops every socket (as a restart would) while the browser is offline.
    server.technique.shutdown();
    await page.waitForSelector('#chat-state[data-state="offline"]');
    server.log.publish('sent while offline');
    await page.context().setOffline(false);
    await chatOpen(page);
    await page.locator('.message[data-id="1"]').waitFor();
    assert.deepEqual(await page.locator('.message').allTextContents(), ['sent while offline']);
  });
});
