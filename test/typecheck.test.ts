// The two sides of the project are type-checked against different worlds:
// server files against Node's types, browser.ts files against the DOM. These
// tests prove the fence holds by compiling a file that crosses it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

function typecheck(dir: string, config: string, file: string, source: string): Promise<string> {
  writeFileSync(path.join(dir, file), source);
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({ extends: `../${config}`, include: [file], exclude: [] }),
  );
  return new Promise((resolve) => {
    execFile(process.execPath, [TSC, '--noEmit', '-p', dir], (_error, stdout) => resolve(stdout));
  });
}

describe('the type check', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(ROOT, '.typecheck-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('fails a server file that uses the DOM', async () => {
    const out = await typecheck(dir, 'tsconfig.json', 'server.ts', 'export const title: string = document.title;\n');
    assert.match(out, /server\.ts.*error TS\d+: Cannot find name 'document'/);
  });

  test('fails a browser file that uses a Node API', async () => {
    const out = await typecheck(
      dir,
      'tsconfig.browser.json',
      'browser.ts',
      "export const bytes = Buffer.byteLength('x') + process.pid;\n",
    );
    assert.match(out, /browser\.ts.*error TS\d+: Cannot find name 'Buffer'/);
    assert.match(out, /browser\.ts.*error TS\d+: Cannot find name 'process'/);
  });

  test('fails a browser file that imports a node: module', async () => {
    const out = await typecheck(dir, 'tsconfig.browser.json', 'browser.ts', "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n");
    assert.match(out, /error TS2307: Cannot find module 'node:fs'/);
  });

  test('passes clean files on both sides', async () => {
    assert.equal(await typecheck(dir, 'tsconfig.json', 'server.ts', "import { createServer } from 'node:http';\nexport const make = createServer;\n"), '');
    assert.equal(await typecheck(dir, 'tsconfig.browser.json', 'browser.ts', "export const make = () => document.createElement('div');\n"), '');
  });
});
