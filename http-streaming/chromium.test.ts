// The http-streaming page in a real browser, once per reader (fetch, XHR
// readyState 3, forever iframe): a message typed in another page arrives; a
// hostile message shows as text and runs nothing (the iframe reader is where the
// escaping matters); after the server restarts, the reader catches up with
// `since`; the forever frame notices a server that died (no load event then)
// by its heartbeat-sized watchdog; a backlog that rolled over shows a gap
// notice. browserSuite fails a test on any console error not allowed.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { browserSuite, typeMessage } from '../shared/testing/chromium.ts';
import { startTestServer } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import { MessageLog } from '../shared/message-log.ts';
import createHttpStreaming from './server.ts';
import { READERS } from './browser.ts';

let servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
});

async function start(log?: MessageLog, port = 0): Promise<RunningServer> {
  const server = await startTestServer(createHttpStreaming, { heartbeatMs: 1_000, port }, log);
  servers.push(server);
  return server;
}

const XSS = '<img src=x onerror="window.pwned=1"></script><script>parent.pwned=1</script><!--\u2028';
// While the server is down: the refused connection (fetch, XHR) and the frame's error page.
const RESTART_ERRORS = [/ERR_CONNECTION_REFUSED|Failed to load resource|ERR_EMPTY_RESPONSE|net::ERR/];

browserSuite('http-streaming in Chromium', (browser) => {
  for (const reader of READERS) {
    test(`${reader} reader: a message from another page arrives, and a hostile one shows as text`, async () => {
      const server = await start();
      const page = await browser.open(`${server.url}?reader=${reader}`);
      const publisher = await browser.open(server.url);
      await page.waitForSelector('.state[data-state="open"]');
      assert.match((await page.textContent('.state')) ?? '', new RegExp(`${reader} reader`));
      assert.equal(await page.locator(`input[name="reader"][value="${reader}"]`).isChecked(), true);

      const hello = await typeMessage(publisher, `hello ${reader}`);
      await page.locator(`.message[data-id="${hello}"]`).waitFor({ timeout: 10_000 });
      assert.equal(await page.textContent(`.message[data-id="${hello}"]`), `hello ${reader}`);

      const hostile = await typeMessage(publisher, XSS);
      await page.locator(`.message[data-id="${hostile}"]`).waitFor({ timeout: 10_000 });
      assert.equal(await page.textContent(`.message[data-id="${hostile}"]`), XSS);
      assert.equal(await page.locator('#subscribe img, #subscribe script').count(), 0);
      const pwned = await page.evaluate(() => {
        const frames = [window, ...[...document.querySelectorAll('iframe')].map((frame) => frame.contentWindow)];
        return frames.some((w) => (w as unknown as { pwned?: number } | null)?.pwned !== undefined);
      });
      assert.equal(pwned, false);
      if (reader === 'iframe') {
        assert.equal(await page.locator('iframe[hidden]').count(), 1, 'one hidden frame');
      }
    });
  }

  for (const reader of READERS) {
    test(`${reader} reader: reconnects after a server restart and catches up with since`, async () => {
      const log = new MessageLog(1_000);
      const first = await start(log);
      const page = await browser.open(`${first.url}?reader=${reader}`, { allow: RESTART_ERRORS });
      await page.waitForSelector('.state[data-state="open"]');
      log.publish('before the restart');
      await page.locator('.message[data-id="1"]').waitFor({ timeout: 10_000 });

      await first.close(); // ends the stream cleanly; the client reconnects, refused, backs off
      servers = servers.filter((server) => server !== first);
      await page.waitForSelector('.state[data-state="retrying"]', { timeout: 10_000 });
      log.publish('while the server was down');
      await start(log, first.port);
      log.publish('after the restart');
      await page.locator('.message[data-id="3"]').waitFor({ timeout: 20_000 });
      const ids = await page.locator('.message').evaluateAll((elements) => elements.map((e) => (e as HTMLElement).dataset.id));
      assert.deepEqual(ids, ['1', '2', '3'], 'each exactly once, in order');
      assert.equal(await page.locator('.notice').count(), 0);
    });
  }

  test('iframe reader: a server that dies (no clean end, so no load event) is noticed within two heartbeats, then caught up', async () => {
    const log = new MessageLog(1_000);
    const first = await start(log); // HEARTBEAT_MS 1 s: the page's watchdog becomes 2 × 1 s + 2 s
    const page = await browser.open(`${first.url}?reader=iframe`, { allow: RESTART_ERRORS });
    await page.waitForSelector('.state[data-state="open"]');
    log.publish('before the server died');
    await page.locator('.message[data-id="1"]').waitFor({ timeout: 10_000 });

    // Every state line from now on (each lasts only until the next reconnect).
    await page.evaluate(() => {
      const state = document.querySelector('.state')!;
      const seen: string[] = ((window as unknown as { states: string[] }).states = []);
      new MutationObserver(() => seen.push(state.textContent ?? '')).observe(state, { childList: true, characterData: true, subtree: true });
    });
    // As kill -9 does: every connection dropped at once, no tail, no zero-size
    // chunk. Chromium leaves the frame's document "loading", with no load event.
    first.server.closeAllConnections();
    await first.close();
    servers = servers.filter((server) => server !== first);
    // Well under the old fixed 45 s watchdog (a missed heartbeat is noticed in ~4 s here).
    await page.waitForFunction(() => (window as unknown as { states: string[] }).states.length > 0, null, { timeout: 15_000 });
    const states = await page.evaluate(() => (window as unknown as { states: string[] }).states);
    assert.match(states[0]!, /^retrying: nothing received for 4 s/);

    log.publish('while the server was down');
    await start(log, first.port);
    log.publish('after the restart');
    await page.locator('.message[data-id="3"]').waitFor({ timeout: 20_000 });
    const ids = await page.locator('.message').evaluateAll((elements) => elements.map((e) => (e as HTMLElement).dataset.id));
    assert.deepEqual(ids, ['1', '2', '3'], 'each exactly once, in order');
    assert.equal(await page.locator('.notice').count(), 0);
    assert.equal(await page.locator('iframe').count(), 1, 'the dead frame was removed');
  });

  test('a reader back after the backlog rolled over says how many messages it missed', async () => {
    const log = new MessageLog(2);
    const first = await start(log);
    const page = await browser.open(`${first.url}?reader=xhr`, { allow: RESTART_ERRORS });
    log.publish('one');
    await page.locator('.message[data-id="1"]').waitFor({ timeout: 10_000 });
    await first.close();
    servers = servers.filter((server) => server !== first);
    for (const text of ['two', 'three', 'four', 'five']) log.publish(text); // the log keeps 4 and 5
    await start(log, first.port);
    await page.locator('.message[data-id="5"]').waitFor({ timeout: 20_000 });
    assert.match((await page.textContent('.notice')) ?? '', /^2 messages after #1 could not be delivered/);
  });
});
