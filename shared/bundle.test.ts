import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleBrowserScript } from './bundle.ts';
import { startTestServer } from './testing/server.ts';
import { createFixture } from './testing/fixture/server.ts';
import { browserSuite } from './testing/chromium.ts';
import { HttpError } from './http.ts';
import type { RunningServer } from './lifecycle.ts';

describe('GET /browser.js', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createFixture);
  });
  after(() => server.close());

  test('is browser.ts compiled to one self-contained JavaScript module', async () => {
    const response = await fetch(new URL('browser.js', server.url));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const code = await response.text();
    assert.match(code, /function greet\(json\)/, 'types are gone');
    assert.match(code, /function parseMessage/, 'the shared import is inlined');
    assert.doesNotMatch(code, /^import /m, 'nothing left to fetch');
    assert.match(code, /export \{/);
  });

  test('carries an inline source map that points back at the TypeScript', async () => {
    const code = await (await fetch(new URL('browser.js', server.url))).text();
    const match = /\/\/# sourceMappingURL=data:application\/json;[^,]*base64,(\S+)/.exec(code);
    assert.ok(match, 'inline source map');
    const map = JSON.parse(Buffer.from(match[1]!, 'base64').toString());
    assert.ok(map.sources.some((source: string) => source === 'browser.ts'));
    assert.ok(map.sources.some((source: string) => source.endsWith('/browser/messages.ts')));
    assert.ok(map.sourcesContent.every((content: string) => content.length > 0));
  });

  test('answers 304 to If-None-Match with its ETag', async () => {
    const first = await fetch(new URL('browser.js', server.url));
    const etag = first.headers.get('etag');
    assert.ok(etag);
    const second = await fetch(new URL('browser.js', server.url), { headers: { 'If-None-Match': etag } });
    assert.equal(second.status, 304);
  });

  test('HEAD has the headers and no body; POST is 405', async () => {
    const head = await fetch(new URL('browser.js', server.url), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const post = await fetch(new URL('browser.js', server.url), { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
  });
});

describe('bundleBrowserScript', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(fileURLToPath(new URL('./testing/', import.meta.url)), 'tmp-bundle-'));
    mkdirSync(path.join(dir, 'folder'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is cached, and rebuilt when an input file changes', async () => {
    const entry = path.join(dir, 'folder', 'browser.ts');
    writeFileSync(entry, 'export const answer: number = 1;\n');
    const first = await bundleBrowserScript(entry);
    assert.equal(await bundleBrowserScript(entry), first, 'same object from the cache');
    writeFileSync(entry, 'export const answer: number = 2;\n');
    utimesSync(entry, new Date(), new Date(Date.now() + 5_000));
    const second = await bundleBrowserScript(entry);
    assert.notEqual(second.etag, first.etag);
    assert.match(second.code, /answer = 2/);
  });

  test('a compile error is a 500 naming the file and the first error', async () => {
    const entry = path.join(dir, 'folder', 'broken.ts');
    writeFileSync(entry, 'export const = ;\n');
    await assert.rejects(bundleBrowserScript(entry), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 500);
      assert.match(error.message, /^Could not compile broken\.ts: /);
      return true;
    });
    // Fixed, it compiles: failures are not cached.
    writeFileSync(entry, 'export const fixed = true;\n');
    assert.match((await bundleBrowserScript(entry)).code, /fixed = true/);
  });
});

browserSuite('the bundle in Chromium', (browser) => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createFixture);
  });
  after(() => server.close());

  test('the page imports browser.js and runs the shared code, with no console errors', async () => {
    const page = await browser.open(server.url);
    await page.waitForFunction(() => document.getElementById('greeting')?.textContent === 'bundled');
  });
});
