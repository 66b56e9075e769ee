/**
 * `GET /browser.js`: the folder's browser.ts, compiled on request.
 *
 * There is no build step and nothing generated is committed: esbuild (the
 * compiler tsx already runs on) bundles browser.ts with whatever it imports
 * from shared/browser/ into one self-contained ES module, with an inline
 * source map so the browser's devtools show the TypeScript.
 *
 * The result is cached in memory and rebuilt only when one of its input files
 * changes (a stat per input per request), so editing browser.ts and reloading
 * the page is enough. ETag + If-None-Match give a 304 when nothing changed.
 * A compile error is answered 500 with the compiler's first message.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { build } from 'esbuild';
import { HttpError, allowMethods } from './http.ts';

interface Bundle {
  code: string;
  etag: string;
  /** Every file the bundle was built from, with its modification time. */
  inputs: Map<string, number>;
}

const cache = new Map<string, Promise<Bundle>>();
const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The bundle for `entry` (an absolute path to a .ts file), built or from the cache. */
export async function bundleBrowserScript(entry: string): Promise<Bundle> {
  const cached = cache.get(entry);
  if (cached) {
    const bundle = await cached.catch(() => undefined);
    if (bundle && (await isFresh(bundle))) return bundle;
  }
  const fresh = compile(entry);
  cache.set(entry, fresh);
  fresh.catch(() => cache.delete(entry));
  return fresh;
}

async function compile(entry: string): Promise<Bundle> {
  let result;
  try {
    result = await build({
      entryPoints: [entry],
      absWorkingDir: PROJECT_ROOT,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2020',
      sourcemap: 'inline',
      sourcesContent: true,
      metafile: true,
      write: false,
      logLevel: 'silent',
      outfile: path.join(path.dirname(entry), 'browser.js'),
    });
  } catch (error) {
    const first = (error as { errors?: { text: string }[] }).errors?.[0]?.text;
    throw new HttpError(500, `Could not compile ${path.basename(entry)}: ${first ?? String(error)}`);
  }
  const code = result.outputFiles[0]!.text;
  const inputs = new Map<string, number>();
  for (const input of Object.keys(result.metafile.inputs)) {
    const file = path.resolve(PROJECT_ROOT, input);
    inputs.set(file, (await stat(file)).mtimeMs);
  }
  const etag = '"' + createHash('sha256').update(code).digest('base64url').slice(0, 27) + '"';
  return { code, etag, inputs };
}

async function isFresh(bundle: Bundle): Promise<boolean> {
  for (const [file, mtime] of bundle.inputs) {
    const now = await stat(file).then((s) => s.mtimeMs, () => -1);
    if (now !== mtime) return false;
  }
  return true;
}

/** Answers a request for the compiled script of `entry`. */
export async function serveBrowserScript(req: IncomingMessage, res: ServerResponse, entry: string): Promise<void> {
  if (!allowMethods(req, res, ['GET'])) return;
  const bundle = await bundleBrowserScript(entry);
  const headers = {
    'Content-Type': 'text/javascript; charset=utf-8',
    'Cache-Control': 'no-cache',
    ETag: bundle.etag,
    'X-Content-Type-Options': 'nosniff',
  };
  if (req.headers['if-none-match'] === bundle.etag) {
    res.writeHead(304, headers).end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': Buffer.byteLength(bundle.code) });
  res.end(req.method === 'HEAD' ? undefined : bundle.code);
}
