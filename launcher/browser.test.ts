// The comparison page in Chromium, over the real launcher and every folder
// present: it loads clean, one message reaches every pane, the figures are
// numbers that move, and a pane whose connection is cut recovers what it missed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { browserSuite } from '../shared/testing/chromium.ts';
import { startTestServer } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import createLauncher, { folders } from './server.ts';

/** Folders the page can drive: a server and a client. The others show a note. */
const LIVE = folders.filter((folder) => folder.create && folder.client).map((folder) => folder.name);
const MISSING = folders.filter((folder) => !(folder.create && folder.client)).map((folder) => folder.name);
/** Generous: two shared cores, several test runs at once. */
const SLOW = 30_000;

interface PaneFigures {
  name: string;
  state: string;
  latency: number;
  median: number;
  message: number;
  requests: number;
  bytes: number;
}

/** What each live pane shows, read from the DOM. */
function figures(page: Page): Promise<PaneFigures[]> {
  // No named functions in here: the test runner's compiler would wrap them in
  // a helper (`__name`) that exists in Node, not in the page.
  return page.evaluate(
    (live) =>
      live.map((name) => {
        const pane = document.querySelector(`.technique[data-technique="${name}"]`)!;
        const value: Record<string, number> = {};
        for (const figure of pane.querySelectorAll<HTMLElement>('[data-figure]')) value[figure.dataset.figure!] = Number(figure.dataset.value);
        return {
          name,
          state: pane.querySelector<HTMLElement>('.state')?.dataset.state ?? '',
          latency: value.latency!,
          median: value.median!,
          message: Number(pane.querySelector<HTMLElement>('[data-figure="latency"]')!.dataset.message),
          requests: value.requests!,
          bytes: value.bytes!,
        };
      }),
    LIVE,
  );
}

/** Waits until every live pane shows a message with `text` (and `.recovered`, when asked). */
async function arrivedEverywhere(page: Page, text: string, selector = '.message'): Promise<void> {
  await page.waitForFunction(
    ({ live, text, selector }) =>
      live.every((name) =>
        [...document.querySelectorAll(`.technique[data-technique="${name}"] ${selector}`)].some((m) => m.textContent === text),
      ),
    { live: LIVE, text, selector },
    { timeout: SLOW },
  );
}

async function allOpen(page: Page): Promise<void> {
  await page.waitForFunction(
    (live) => live.every((name) => document.querySelector(`.technique[data-technique="${name}"] .state`)?.getAttribute('data-state') === 'open'),
    LIVE,
    { timeout: SLOW },
  );
}

async function type(page: Page, text: string): Promise<void> {
  await page.fill('#publish input[name="message"]', text);
  await page.click('#publish input[type="submit"]');
}

async function setDelay(page: Page, ms: number): Promise<void> {
  await page.fill('#delay input[name="delay"]', String(ms));
  await page.click('#delay input[type="submit"]');
  await page.waitForSelector(`#delay-current[data-value="${ms}"]`, { timeout: SLOW });
}

browserSuite('the comparison page in Chromium', (browser) => {
  let server: RunningServer;
  before(async () => {
    console.log(`panes driven: ${LIVE.join(', ') || 'none'}; not yet: ${MISSING.join(', ') || 'none'}`);
    server = await startTestServer(createLauncher);
  });
  after(() => server.close());

  test('it loads with no console errors; every pane opens; a folder not there yet says so', async () => {
    const page = await browser.open(server.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: SLOW });
    await allOpen(page);
    assert.equal(await page.locator('.technique').count(), folders.length);
    for (const name of MISSING) {
      assert.match(await page.locator(`.technique[data-technique="${name}"] .notice`).innerText(), /not written yet|could not/);
    }
  });

  test('a message typed once arrives in every pane, and the latency figures are numbers that move', async () => {
    const page = await browser.open(server.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: SLOW });
    await allOpen(page);
    const lastId = server.log.lastId;

    const first = 'Hello, <b>five</b> ways';
    await type(page, first);
    await arrivedEverywhere(page, first);
    assert.equal(server.log.lastId, lastId + 1, 'published once');
    const one = await figures(page);
    for (const pane of one) {
      assert.equal(pane.message, lastId + 1, `${pane.name}: latency is for the new message`);
      assert.ok(Number.isFinite(pane.latency) && pane.latency >= 0, `${pane.name}: latency ${pane.latency}`);
      assert.ok(Number.isFinite(pane.median) && pane.median >= 0, `${pane.name}: median ${pane.median}`);
      assert.ok(pane.requests >= 1 && pane.bytes > 0, `${pane.name}: ${pane.requests} requests, ${pane.bytes} bytes`);
    }
    assert.equal(await page.locator('.message b').count(), 0, 'message text is never HTML');

    const second = 'A second message';
    await type(page, second);
    await arrivedEverywhere(page, second);
    const two = await figures(page);
    for (const [index, pane] of two.entries()) {
      assert.equal(pane.message, lastId + 2, `${pane.name}: the figure moved to the next message`);
      assert.ok(Number.isFinite(pane.latency) && pane.latency >= 0);
      assert.ok(pane.bytes > one[index]!.bytes, `${pane.name}: more bytes received`);
    }
    // Any one pane may measure the same whole millisecond twice; all of them together do not.
    assert.ok(two.some((pane, index) => pane.latency !== one[index]!.latency || pane.median !== one[index]!.median), 'some figure changed');
  });

  test('a pane whose connection is cut recovers and shows the messages it missed', async () => {
    const page = await browser.open(server.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: SLOW });
    await allOpen(page);
    const warmUp = 'Before the cut';
    await type(page, warmUp);
    await arrivedEverywhere(page, warmUp);

    // Every request to a folder now waits 3 s, so a cut pane stays cut at
    // least that long: whatever is published meanwhile, it can only recover.
    await setDelay(page, 3_000);
    await page.click('#cut-all');
    const missed = 'Published while every pane was cut';
    const response = await fetch(new URL('publish', server.url), { method: 'POST', body: missed });
    assert.equal(response.status, 201);
    await arrivedEverywhere(page, missed, '.message.recovered');
    await allOpen(page);
    await page.waitForFunction(
      (live) => live.every((name) => [...document.querySelectorAll(`.technique[data-technique="${name}"] .notice`)].some((n) => /Open again after/.test(n.textContent ?? ''))),
      LIVE,
      { timeout: SLOW },
    );

    await setDelay(page, 0);
    const recovered = 'After the recovery';
    await type(page, recovered);
    await arrivedEverywhere(page, recovered);
    // Each message once per pane, none lost, none doubled.
    const counts = await page.evaluate(
      ({ live, text }) => live.map((name) => [...document.querySelectorAll(`.technique[data-technique="${name}"] .message`)].filter((m) => m.textContent === text).length),
      { live: LIVE, text: missed },
    );
    assert.deepEqual(counts, LIVE.map(() => 1));

    await page.setViewportSize({ width: 1440, height: 900 });
    const file = await browser.screenshot(page, 'comparison');
    // The README shows this one; refresh it with COMPARISON_PNG=docs/comparison.png.
    if (process.env.COMPARISON_PNG) copyFileSync(file, process.env.COMPARISON_PNG);
  });

  test('a pane cut for longer than the backlog reaches says what it missed (gap notice)', async () => {
    // Its own server, holding only the last two messages.
    const small = await startTestServer(createLauncher, { backlog: 2 });
    let page: Page | undefined;
    try {
      page = await browser.open(small.url);
      await page.waitForSelector('body[data-ready="true"]', { timeout: SLOW });
      await allOpen(page);
      const first = 'Seen by everyone';
      await type(page, first);
      await arrivedEverywhere(page, first);
      await setDelay(page, 3_000);
      await page.click('#cut-all');
      for (const text of ['lost 1', 'lost 2', 'kept 1', 'kept 2']) {
        assert.equal((await fetch(new URL('publish', small.url), { method: 'POST', body: text })).status, 201);
      }
      await arrivedEverywhere(page, 'kept 2');
      await page.waitForFunction(
        (live) =>
          live.every((name) =>
            [...document.querySelectorAll(`.technique[data-technique="${name}"] .notice`)].some((n) => /2 messages after #1 could not be delivered/.test(n.textContent ?? '')),
          ),
        LIVE,
        { timeout: SLOW },
      );
      assert.equal(await page.locator('.message', { hasText: 'lost' }).count(), 0);
      await setDelay(page, 0);
    } finally {
      // The page first: its clients would otherwise log refused reconnections.
      await page?.context().close();
      await small.close();
    }
  });

  test('on a phone the panes stack, with nothing wider than the screen', async () => {
    const page = await browser.open(server.url);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForSelector('body[data-ready="true"]', { timeout: SLOW });
    const layout = await page.evaluate(() => ({
      lefts: [...document.querySelectorAll('.technique')].map((pane) => Math.round(pane.getBoundingClientRect().left)),
      overflow: document.documentElement.scrollWidth - window.innerWidth,
    }));
    assert.equal(new Set(layout.lefts).size, 1, `one column: ${layout.lefts.join(', ')}`);
    assert.ok(layout.overflow <= 0, `no horizontal scroll (${layout.overflow} px too wide)`);
  });
});
