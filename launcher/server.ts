/**
 * All five techniques in one process, side by side: `npm start`.
 *
 * Each technique folder runs alone (`npx tsx sse/server.ts`); this launcher
 * mounts every folder under its own path prefix on one server, over ONE message
 * log, so a message published once reaches the subscribers of all five, and a
 * comparison page (GET /) shows them receiving it.
 *
 *     $ npm start
 *     Listening on http://127.0.0.1:8080/
 *     $ curl -d hello http://127.0.0.1:8080/sse/publish
 *     {"id":1,"text":"hello","time":1795248430871}
 *     $ curl http://127.0.0.1:8080/ajax-polling/messages       # another folder, the same log
 *     [{"id":1,"text":"hello","time":1795248430871}]
 *     $ curl -d 500 http://127.0.0.1:8080/control/delay
 *     {"delayMs":500}
 *     $ curl -i http://127.0.0.1:8080/sse
 *     HTTP/1.1 308 Permanent Redirect
 *     Location: /sse/
 *
 * Routes:
 *   /<folder>/…         the folder's technique, with `/<folder>` taken off req.url
 *                       (plain requests and WebSocket upgrades alike); `/<folder>`
 *                       alone is redirected to `/<folder>/` (routes.ts says why)
 *   POST /publish       the shared log, like every folder's /publish
 *   /control/delay      GET the added delay, POST a new one (ms as the body)
 *   /control/techniques which folders are mounted, for the page
 *   GET /, /browser.js  the comparison page (public/index.html, browser.ts)
 *
 * The launcher is itself a CreateTechnique: it creates each folder's technique
 * with the same context (so the same log and config), and the shared
 * lifecycle runs it exactly like a folder: PORT/HOST, the printed URL,
 * SIGINT/SIGTERM. Its shutdown() ends its own held requests, then calls every
 * folder's shutdown().
 *
 * The delay control "slows the server": every request to a folder waits that
 * long before the folder sees it. Polling pays it on every message; a stream
 * or a socket pays it once, when it (re)connects; which is the comparison.
 * The launcher's own routes are not delayed: the controls stay usable, and a
 * message published from the page is stamped (`time`) at once, so the latency
 * figures measure delivery only.
 *
 * Left out on purpose: nothing here changes how a folder behaves (no shared
 * state but the log and config), so what the page shows is each folder as it
 * runs alone. The delay is global, not per folder: a slow server is slow for
 * everybody. The control endpoints have no authentication: like the rest,
 * this binds to loopback by default and is a demo, not a deployment.
 */
import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { readTextBody } from '../shared/body.ts';
import { allowMethods, guard, requestUrl, sendJson, sendText } from '../shared/http.ts';
import { isEntryPoint, runStandalone } from '../shared/lifecycle.ts';
import { handlePublish } from '../shared/publish.ts';
import { createSite } from '../shared/site.ts';
import type { CreateTechnique, Technique } from '../shared/technique.ts';
import { parseDelay, routeRequest } from './routes.ts';

/** The technique folders, in the order the page shows them. */
export const FOLDERS = ['ajax-polling', 'long-polling', 'sse', 'http-streaming', 'websocket'] as const;

/** A folder as found on disk: mounted when its server.ts loaded, with a note when not. */
export interface Folder {
  name: string;
  /** Its CreateTechnique, when `<name>/server.ts` exists and exports one as default. */
  create?: CreateTechnique;
  /** Whether `<name>/browser.ts` exists, so the page can import `<name>/browser.js`. */
  client: boolean;
  /** Why it is not mounted (or has no client), for people. */
  note?: string;
}

/**
 * Imports each folder's server.ts. A folder not written yet, or one whose
 * module fails to load, is skipped with a note instead of stopping the
 * launcher: the others still run, and the page says what is missing.
 */
export async function loadFolders(names: readonly string[], root = new URL('..', import.meta.url)): Promise<Folder[]> {
  const folders: Folder[] = [];
  for (const name of names) {
    const server = new URL(`${name}/server.ts`, root);
    const client = existsSync(new URL(`${name}/browser.ts`, root));
    if (!existsSync(server)) {
      folders.push({ name, client: false, note: `${name}/server.ts is not written yet` });
      continue;
    }
    try {
      const module = (await import(server.href)) as { default?: unknown };
      if (typeof module.default !== 'function') throw new Error('it does not export a CreateTechnique as default');
      const note = client ? undefined : `${name}/browser.ts is not written yet`;
      folders.push({ name, create: module.default as CreateTechnique, client, note });
    } catch (error) {
      folders.push({ name, client: false, note: `${name}/server.ts could not be loaded: ${oneLine(error)}` });
    }
  }
  return folders;
}

/**
 * Requests waiting out the added delay. Each has one teardown path, forget():
 * called when its time is up, when its client goes away first, or at
 * shutdown, which answers it 503 instead of handing it on.
 *
 * A new delay applies to the requests already waiting too, counted from when
 * each arrived: turning the delay off lets them all through at once, instead
 * of leaving them to wait out the old setting.
 */
class DelayGate {
  #ms = 0;
  #closed = false;
  readonly #held = new Set<{ arrived: number; schedule: () => void; forget: () => void; refuse: () => void }>();

  get ms(): number {
    return this.#ms;
  }

  set ms(ms: number) {
    this.#ms = ms;
    for (const entry of [...this.#held]) entry.schedule();
  }

  /** Runs `pass` after the delay (at once when there is none) unless `closes` closes first. */
  hold(closes: ServerResponse | Duplex, pass: () => void, refuse: () => void): void {
    if (this.#closed) return refuse(); // a keep-alive connection's next request, after shutdown
    if (this.#ms === 0) return pass();
    let timer: NodeJS.Timeout | undefined;
    const forget = (): void => {
      clearTimeout(timer);
      closes.off('close', forget);
      this.#held.delete(entry);
    };
    const schedule = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        forget();
        pass();
      }, Math.max(0, entry.arrived + this.#ms - Date.now()));
    };
    const entry = { arrived: Date.now(), schedule, forget, refuse };
    schedule();
    closes.on('close', forget);
    this.#held.add(entry);
  }

  shutdown(): void {
    this.#closed = true;
    for (const entry of [...this.#held]) {
      entry.forget();
      entry.refuse();
    }
  }
}

/** The launcher's own answer to an upgrade it cannot route: raw HTTP on the socket. */
function refuseUpgrade(socket: Duplex, status: 404 | 503, text: string): void {
  const reason = status === 404 ? 'Not Found' : 'Service Unavailable';
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Returns the launcher over `folders` (see loadFolders), as a CreateTechnique. */
export function launcherOf(folders: readonly Folder[]): CreateTechnique {
  return (context) => {
    const { log, config } = context;
    // 1. Every mounted folder gets the same context: one log, one config.
    const mounted = new Map<string, Technique>();
    for (const folder of folders) if (folder.create) mounted.set(folder.name, folder.create(context));
    const names = folders.map((folder) => folder.name);
    const notMounted = (name: string): string =>
      folders.find((folder) => folder.name === name)?.note ?? `${name} is not mounted`;

    const delay = new DelayGate();
    const site = createSite(new URL('.', import.meta.url));

    // 2. The launcher's own routes: publish, the controls, the page.
    const own = guard(async (req, res) => {
      switch (requestUrl(req).pathname) {
        case '/publish':
          return handlePublish(req, res, log, config.maxMessageBytes);
        case '/control/delay':
          if (!allowMethods(req, res, ['GET', 'POST'])) return;
          if (req.method === 'POST') {
            // A number is a few bytes; 32 leaves room for whitespace, and a 413 past it.
            const parsed = parseDelay(await readTextBody(req, 32));
            if (!parsed.ok) return sendText(res, 400, parsed.reason);
            delay.ms = parsed.ms;
          }
          return sendJson(res, 200, { delayMs: delay.ms });
        case '/control/techniques':
          if (!allowMethods(req, res, ['GET'])) return;
          return sendJson(
            res,
            200,
            folders.map(({ name, client, note }) => ({ name, path: `${name}/`, mounted: mounted.has(name), client, note })),
          );
        default:
          return site(req, res);
      }
    });

    /** Hands a request to a folder: the last net is lifecycle.ts's, repeated for the delayed call. */
    const pass = (technique: Technique, req: IncomingMessage, res: ServerResponse): void => {
      try {
        technique.handle(req, res);
      } catch (error) {
        console.error('request failed:', error);
        sendText(res, 500, 'Internal server error');
      }
    };

    return {
      handle(req, res) {
        const route = routeRequest(req.url ?? '/', names);
        if (route.kind === 'own') return own(req, res);
        if (route.kind === 'redirect') {
          // RFC 9110 §15.4.9: 308 keeps the method and body (a POST stays a POST).
          res.writeHead(308, { Location: route.location, 'Content-Type': 'text/plain; charset=utf-8' });
          res.end(req.method === 'HEAD' ? undefined : `See ${route.location}\n`);
          return;
        }
        const technique = mounted.get(route.name);
        if (!technique) return sendText(res, 404, `Not found: ${notMounted(route.name)}`);
        // 3. The folder sees its own paths, as when it runs alone.
        req.url = route.url;
        delay.hold(res, () => pass(technique, req, res), () => sendText(res, 503, 'Server shutting down', { Connection: 'close' }));
      },

      upgrade(req, socket, head) {
        const route = routeRequest(req.url ?? '/', names);
        const technique = route.kind === 'mounted' ? mounted.get(route.name) : undefined;
        if (route.kind !== 'mounted' || !technique?.upgrade) return refuseUpgrade(socket, 404, 'Not found');
        req.url = route.url;
        // A reset while the handshake waits out the delay must not become an
        // unhandled 'error'; once handed on, the folder's own listener takes over.
        const onError = (): void => {
          socket.destroy();
        };
        socket.on('error', onError);
        delay.hold(
          socket,
          () => {
            socket.off('error', onError);
            try {
              technique.upgrade!(req, socket, head);
            } catch (error) {
              console.error('upgrade failed:', error);
              socket.destroy();
            }
          },
          () => refuseUpgrade(socket, 503, 'Server shutting down'),
        );
      },

      // 4. Shutdown: answer what is still waiting out the delay, then let every
      // folder end its own long-lived exchanges. One folder failing must not
      // keep the others' clients hanging.
      shutdown() {
        delay.shutdown();
        for (const [name, technique] of mounted) {
          try {
            technique.shutdown();
          } catch (error) {
            console.error(`${name}: shutdown failed:`, error);
          }
        }
      },
    };
  };
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n', 1)[0]!.slice(0, 200);
}

/**
 * The folders present when this module was loaded. Importing them has no side
 * effects (the contract), so neither has importing this.
 */
export const folders = await loadFolders(FOLDERS);
export const createLauncher: CreateTechnique = launcherOf(folders);
export default createLauncher;

if (isEntryPoint(import.meta.url)) {
  for (const folder of folders) if (folder.note) console.error(`note: ${folder.note}`);
  void runStandalone(createLauncher);
}
