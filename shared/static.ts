/**
 * Static files through node-static, behind a gate.
 *
 * node-static 0.7.11 is the last release and is unmaintained. As shipped it
 * - serves files outside its root when their directory name starts with the
 *   root's name (`/../public-secret/x`): its containment check is a string
 *   prefix test without a separator (CVE-2023-26111);
 * - answers `//evil.example/..` with a redirect to another host (open redirect);
 * - crashes the whole process on `GET /%00` (fs.stat throws on a NUL byte
 *   inside a callback) and on a missing file when nobody listens for 'error'.
 *
 * So every request passes this gate before node-static sees it:
 * 1. GET and HEAD only (405 otherwise).
 * 2. The raw path may not hold NUL, `\`, or their or `/`'s percent-encodings
 *    (`%00`, `%5c`, `%2f`): each means a different path to different layers.
 * 3. Every segment must percent-decode, must not be `.` or `..` (also when
 *    written `%2e%2e`), must not be empty (`//`), and must not hide `?`, `#`
 *    or control characters.
 * 4. The resolved file must be the root itself or lie below root + separator.
 * 5. node-static is then handed the path we checked, never the original, and
 *    always an error callback.
 * Two more quirks are handled here: node-static answers HEAD by writing the
 * head twice, which throws inside a stream callback and takes the process
 * down, so it is shown a GET (node:http already knows the response is for a
 * HEAD and sends no body); and Range requests are not needed for these pages
 * while node-static logs noise for malformed ones, so Range is dropped.
 *
 * With several roots, the first that has the file answers.
 */
import path from 'node:path';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import nodeStatic, { type Server as NodeStaticServer } from 'node-static';
import { HttpError, allowMethods, sendError, sendText } from './http.ts';

/** Characters that never belong in a file name served here (after decoding). */
const UNSAFE_IN_SEGMENT = /[\u0000-\u001f\u007f?#]/;
const UNSAFE_IN_RAW_PATH = /\u0000|\\|%00|%5c|%2f/i;

/**
 * Checks a request path against a root and returns the decoded path (starting
 * with `/`) that may be served from it. Throws HttpError 400 for any path the
 * gate refuses. Pure apart from path arithmetic: no file system access.
 */
export function safeStaticPath(rawUrl: string, root: string): string {
  const rawPath = rawUrl.split(/[?#]/, 1)[0]!;
  if (!rawPath.startsWith('/') || UNSAFE_IN_RAW_PATH.test(rawPath)) {
    throw new HttpError(400, 'Bad path');
  }
  const segments = rawPath.slice(1).split('/');
  const decoded = segments.map((segment, index) => {
    let text: string;
    try {
      text = decodeURIComponent(segment);
    } catch {
      throw new HttpError(400, 'Bad path: not percent-decodable');
    }
    const isLast = index === segments.length - 1;
    if (text === '.' || text === '..' || (text === '' && !isLast) || UNSAFE_IN_SEGMENT.test(text)) {
      throw new HttpError(400, 'Bad path');
    }
    return text;
  });
  const servedPath = '/' + decoded.join('/');
  // The same arithmetic node-static does (path.resolve(path.join(root, p))),
  // checked the way node-static should have: equal to the root or below root + separator.
  const resolved = path.resolve(path.join(root, servedPath));
  if (resolved !== root && !resolved.startsWith(root + path.sep)) {
    throw new HttpError(400, 'Bad path');
  }
  return servedPath;
}

/**
 * Another method on a static path: 405 with Allow when the file exists, but
 * 404 when it does not (the contract: unknown paths are 404, whatever the method).
 */
async function refuseMethod(req: IncomingMessage, res: ServerResponse, servers: NodeStaticServer[]): Promise<void> {
  for (const server of servers) {
    try {
      const file = path.join(server.root, safeStaticPath(req.url ?? '/', server.root));
      if ((await stat(file)).isFile() || file === server.root + path.sep) {
        allowMethods(req, res, ['GET', 'HEAD']);
        return;
      }
    } catch {
      // not this root
    }
  }
  sendText(res, 404, 'Not found');
}

export type StaticHandler = (req: IncomingMessage, res: ServerResponse) => void;

export function createStaticFiles(roots: readonly string[]): StaticHandler {
  const servers = roots.map(
    (root) =>
      new nodeStatic.Server(path.resolve(root), {
        cache: false,
        serverInfo: 'server-push',
        headers: { 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' },
      }),
  );

  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      void refuseMethod(req, res, servers);
      return;
    }
    delete req.headers.range;
    // The ServerResponse was created for a HEAD and will send no body.
    if (req.method === 'HEAD') req.method = 'GET';
    const originalUrl = req.url ?? '/';
    let index = 0;
    const tryNext = (): void => {
      const server = servers[index++];
      if (!server) {
        sendText(res, 404, 'Not found');
        return;
      }
      let servedPath: string;
      try {
        servedPath = safeStaticPath(originalUrl, server.root);
      } catch (error) {
        sendError(res, error as HttpError);
        return;
      }
      // encodeURI is undone exactly by the decodeURI node-static applies; the
      // gate has refused every character ('?', '#', '%2f', …) where that is not so.
      req.url = encodeURI(servedPath);
      server.serve(req, res, (error) => {
        if (!error) return;
        if (error.status === 404) tryNext();
        else sendText(res, error.status || 500, error.message || 'Error');
      });
    };
    tryNext();
  };
}
