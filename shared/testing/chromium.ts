/**
 * The real-browser test rig: Debian's Chromium driven by playwright-core.
 *
 *     browserSuite('ajax-polling in Chromium', (browser) => {
 *       test('two pages chat', async () => {
 *         const page = await browser.open(url);
 *         …
 *       });
 *     });
 *
 * Every page opened through `browser.open` records console errors and
 * uncaught page errors; after each test the suite fails it if there were any
 * (pass `allow` for errors a test provokes on purpose, such as a refused
 * connection while the server restarts).
 *
 * When Chromium is missing the suite is skipped with one line saying how to
 * install it, unless REQUIRE_BROWSER=1 (set by .ci/run), where that is a
 * failure: CI must not go green by testing nothing in the browser.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const INSTALL_HINT = 'Chromium not found: apt-get update && apt-get install -y chromium (or set CHROMIUM_PATH)';

/** Folder for screenshots and other artifacts tests leave behind. */
export const ARTIFACTS = path.resolve(import.meta.dirname, '../../.artifacts');

// Flags from DEVELOPERS.md: this machine has no network, no GPU, runs as root.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface OpenOptions {
  /** Console or page errors matching one of these do not fail the test. */
  allow?: RegExp[];
}

export interface TestBrowser {
  /** Opens `url` in a new page (its own context, so no shared cache or storage). */
  open(url: string, options?: OpenOptions): Promise<Page>;
  /** The errors recorded so far in this test's pages. */
  errors(): string[];
  /** Saves a PNG of `page` under .artifacts/ and returns its path. */
  screenshot(page: Page, name: string): Promise<string>;
}

/**
 * Types `text` into the page's publish form (`input[name="message"]`), sends
 * it, and resolves with the id the server gave the message (checking the 201).
 */
export async function typeMessage(page: Page, text: string): Promise<number> {
  const published = page.waitForResponse((response) => response.url().endsWith('/publish'));
  await page.fill('input[name="message"]', text);
  await page.click('input[type="submit"]');
  const response = await published;
  if (response.status() !== 201) throw new Error(`publish answered ${response.status()}`);
  return ((await response.json()) as { id: number }).id;
}

export function browserAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export function browserSuite(name: string, body: (browser: TestBrowser) => void): void {
  const required = process.env.REQUIRE_BROWSER === '1';
  const skip = !browserAvailable() && !required ? INSTALL_HINT : false;

  describe(name, { skip }, () => {
    let browser: Browser | undefined;
    let opened: { page: Page; errors: string[] }[] = [];

    before(async () => {
      if (!browserAvailable()) throw new Error(`${INSTALL_HINT} (REQUIRE_BROWSER=1)`);
      // playwright starts Chromium with a fresh temporary --user-data-dir of
      // its own and removes it on close; it never downloads a browser when
      // given executablePath.
      browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    });

    after(async () => {
      await browser?.close();
    });

    afterEach(async () => {
      const pages = opened;
      opened = [];
      const errors = pages.flatMap((entry) => entry.errors);
      await Promise.all(pages.map((entry) => entry.page.context().close().catch(() => {})));
      if (errors.length > 0) throw new Error(`errors in the page:\n${errors.join('\n')}`);
    });

    body({
      async open(url, { allow = [] } = {}) {
        if (!browser) throw new Error('browser not started');
        const context = await browser.newContext();
        const page = await context.newPage();
        const entry = { page, errors: [] as string[] };
        const record = (text: string): void => {
          if (!allow.some((pattern) => pattern.test(text))) entry.errors.push(text);
        };
        page.on('console', (message) => {
          if (message.type() === 'error') record(`console: ${message.text()}`);
        });
        page.on('pageerror', (error) => record(`page error: ${error.message}`));
        opened.push(entry);
        await page.goto(url);
        return page;
      },
      errors: () => opened.flatMap((entry) => entry.errors),
      async screenshot(page, name) {
        mkdirSync(ARTIFACTS, { recursive: true });
        const file = path.join(ARTIFACTS, `${name}.png`);
        await page.screenshot({ path: file, fullPage: true });
        return file;
      },
    });
  });
}
