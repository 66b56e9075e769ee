/**
 * What every folder serves besides its technique: the page, its script and
 * the other files of its public root.
 *
 *     GET /             → <folder>/public/index.html
 *     GET /browser.js   → <folder>/browser.ts, compiled (see bundle.ts)
 *     GET /<file>       → <folder>/public/<file>, else shared/public/<file>
 *     anything else     → 404 (405 for methods other than GET/HEAD)
 *
 * The public root holds only what a browser needs; server sources live beside
 * it, never in it, so no path can reach them.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { guard } from './http.ts';
import { serveBrowserScript } from './bundle.ts';
import { createStaticFiles } from './static.ts';

const SHARED_PUBLIC = fileURLToPath(new URL('./public/', import.meta.url));

/** `folder` is the technique's directory, usually `new URL('.', import.meta.url)`. */
export function createSite(folder: URL): (req: IncomingMessage, res: ServerResponse) => void {
  const directory = fileURLToPath(folder);
  const browserEntry = path.join(directory, 'browser.ts');
  const staticFiles = createStaticFiles([path.join(directory, 'public'), SHARED_PUBLIC]);

  return guard(async (req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0];
    if (pathname === '/browser.js') await serveBrowserScript(req, res, browserEntry);
    else staticFiles(req, res);
  });
}
