/**
 * The comparison page: one pane per technique, each driven by that folder's
 * own client (`<folder>/browser.js`, imported at run time), so what a pane
 * shows is what the folder's page would do. One form publishes once to the
 * shared log; every pane should show the message.
 *
 * Per pane, live: the delivery latency of the last message and a running
 * median (figures.ts), the HTTP requests the client started, the bytes it
 * received, and its connection state, all from the ClientObserver callbacks
 * every client reports through (shared/browser/client.ts). A "Cut" button
 * drops the pane's connection the way a network failure would (client.cut());
 * messages published while it was down are marked when they arrive.
 */
import type { ClientObserver, ClientOptions, ConnectionState, PushClient } from '../shared/browser/client.ts';
import type { ChatMessage } from '../shared/browser/messages.ts';
import { ChatView, publish } from '../shared/browser/chat-view.ts';
import { LatencyFigures, formatBytes, formatMs, publishedDuringOutage } from './figures.ts';

/** What every folder's browser.js exports (see shared/README.md). */
export interface ClientModule {
  createClient(base: URL, observer: ClientObserver, options?: ClientOptions): PushClient;
}

/** One entry of `GET control/techniques`. */
export interface TechniqueEntry {
  name: string;
  /** Relative to the page: `sse/`. */
  path: string;
  mounted: boolean;
  client: boolean;
  note?: string;
}

/** How the page names each folder, and what its client does on the wire, in a few words. */
const TECHNIQUES: Record<string, { title: string; abbr?: string; how: string }> = {
  'ajax-polling': { title: 'Ajax polling', how: 'asks every second; 304 when nothing changed' },
  'long-polling': { title: 'Long polling', how: 'one request held until a message, then ask again' },
  sse: { title: 'SSE', abbr: 'Server-Sent Events', how: 'one EventSource stream; the browser resumes it' },
  'http-streaming': { title: 'HTTP streaming', how: 'one never-ending fetch, a JSON line per message' },
  websocket: { title: 'WebSocket', how: 'one socket, frames both ways' },
};

/** Loads the folder's client module; the URL is built at run time, so the bundler leaves the import alone. */
async function importClient(path: string): Promise<ClientModule> {
  const url = new URL(`${path}browser.js`, document.baseURI).href;
  const module = (await import(url)) as Partial<ClientModule>;
  if (typeof module.createClient !== 'function') throw new Error(`${path}browser.js exports no createClient`);
  return module as ClientModule;
}

/** Creates `tag` with a class and text, the only way this page makes elements (no HTML strings). */
function element<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** One technique's pane: its figures, its state line, its messages, its Cut button. */
export class TechniquePane {
  readonly root: HTMLElement;
  readonly #messages: HTMLElement;
  readonly #view: ChatView;
  readonly #figures = new Map<string, HTMLElement>();
  readonly #latency = new LatencyFigures();
  readonly #cut: HTMLButtonElement;
  /** Messages published before the pane started are history, not deliveries: no latency for them. */
  readonly #startedAt = Date.now();
  #client: PushClient | undefined;
  #requests = 0;
  #bytes = 0;
  /** The last cut: from when, and until the client said it was open again. */
  #outage: { from: number; until?: number } | undefined;

  constructor(readonly entry: TechniqueEntry) {
    this.root = element('section', 'technique');
    this.root.dataset.technique = entry.name;

    const known = TECHNIQUES[entry.name];
    const header = element('header');
    const title = element('h2');
    if (known?.abbr) {
      const abbr = element('abbr', '', known.title);
      abbr.title = known.abbr;
      title.append(abbr);
    } else {
      title.textContent = known?.title ?? entry.name;
    }
    const alone = element('a', 'alone', 'own page\u00a0↗');
    alone.href = entry.path;
    alone.title = `This folder's own page, ${entry.path}`;
    this.#cut = element('button', 'cut', 'Cut');
    this.#cut.type = 'button';
    this.#cut.title = 'Drop this pane’s connection, as a network failure would';
    this.#cut.disabled = true;
    this.#cut.addEventListener('click', () => this.cut());
    header.append(title, this.#cut);

    const how = element('p', 'how', known ? `${known.how} · ` : '');
    how.append(alone);
    const status = element('p', 'state', 'not started');
    const figures = element('dl', 'figures');
    for (const [key, label, initial] of [
      ['latency', 'latency', '–'],
      ['median', 'median', '–'],
      ['requests', 'requests', '0'],
      ['bytes', 'received', '0 B'],
    ] as const) {
      const value = element('dd', '', initial);
      value.dataset.figure = key;
      this.#figures.set(key, value);
      figures.append(element('dt', '', label), value);
    }
    this.#messages = element('div', 'pane messages');
    this.#messages.setAttribute('role', 'log');
    this.#messages.setAttribute('aria-label', `${known?.abbr ?? known?.title ?? entry.name} messages`);
    this.#view = new ChatView(this.#messages, status);
    this.root.append(header, how, status, figures, this.#messages);
  }

  /** Imports the folder's client and starts it; a folder not there yet gets a note instead. */
  async start(): Promise<void> {
    if (!this.entry.mounted || !this.entry.client) {
      this.root.classList.add('missing');
      this.#view.showNotice(this.entry.note ?? 'Not available yet.');
      return;
    }
    try {
      const module = await importClient(this.entry.path);
      this.#client = module.createClient(new URL(this.entry.path, document.baseURI), this.#observer());
      this.#client.start();
      this.#cut.disabled = false;
    } catch (error) {
      // One folder's broken client must not take the other panes down.
      this.#view.showNotice(`Could not start the client: ${describe(error)}`);
    }
  }

  /** Drops the connection; the client recovers by itself. */
  cut(): void {
    if (!this.#client) return;
    this.#outage = { from: Date.now() };
    this.#view.showNotice('Connection cut here; the client reconnects by itself.');
    this.#client.cut();
  }

  #observer(): ClientObserver {
    return {
      message: (message) => this.#onMessage(message),
      gap: (missed, after) =>
        this.#view.showNotice(
          `${missed} message${missed === 1 ? '' : 's'} after #${after} could not be delivered (no longer held by the server).`,
        ),
      state: (state, detail) => this.#onState(state, detail),
      request: () => {
        this.#requests += 1;
        this.#show('requests', String(this.#requests), this.#requests);
      },
      bytes: (count) => {
        this.#bytes += count;
        this.#show('bytes', formatBytes(this.#bytes), this.#bytes);
      },
    };
  }

  #onMessage(message: ChatMessage): void {
    this.#view.showMessage(message);
    const time = typeof message.time === 'number' ? message.time : undefined;
    if (publishedDuringOutage(time, this.#outage)) {
      this.#messages.lastElementChild?.classList.add('recovered');
    }
    if (time === undefined || time < this.#startedAt) return;
    const latency = Math.max(0, Date.now() - time);
    this.#latency.add(latency);
    this.#show('latency', formatMs(latency), latency, message.id);
    this.#show('median', formatMs(this.#latency.median), this.#latency.median!, message.id);
  }

  #onState(state: ConnectionState, detail?: string): void {
    this.#view.showState(state, detail);
    const outage = this.#outage;
    if (state === 'open' && outage && outage.until === undefined) {
      outage.until = Date.now();
      this.#view.showNotice(`Open again after ${formatMs(outage.until - outage.from)}.`);
    }
  }

  /** Sets a figure's text, and its raw value in data-value (for people's tools and the tests). */
  #show(key: string, text: string, value: number, messageId?: number): void {
    const figure = this.#figures.get(key)!;
    figure.textContent = text;
    figure.dataset.value = String(value);
    if (messageId !== undefined) figure.dataset.message = String(messageId);
  }
}

/** Wires the page: panes from `control/techniques`, the publish form, the delay control. */
export async function startComparison(): Promise<TechniquePane[]> {
  const notices = document.getElementById('page-notice')!;
  const say = (text: string): void => {
    notices.textContent = text;
  };

  // One input, one POST, one log: every pane should receive it.
  const form = document.getElementById('publish') as HTMLFormElement;
  const input = form.elements.namedItem('message') as HTMLInputElement;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text) return;
    input.value = '';
    void publish('publish', text).then((problem) => say(problem ? `Not sent: ${problem}` : ''));
  });

  setUpDelayControl(say);

  let entries: TechniqueEntry[];
  try {
    const response = await fetch('control/techniques');
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    entries = (await response.json()) as TechniqueEntry[];
  } catch (error) {
    say(`Could not list the techniques: ${describe(error)}`);
    return [];
  }
  const container = document.getElementById('panes')!;
  const panes = entries.map((entry) => new TechniquePane(entry));
  container.replaceChildren(...panes.map((pane) => pane.root));
  document.getElementById('cut-all')!.addEventListener('click', () => {
    for (const pane of panes) pane.cut();
  });
  await Promise.all(panes.map((pane) => pane.start()));
  document.body.dataset.ready = 'true';
  return panes;
}

/** The "slow server" control: `POST control/delay` with the milliseconds as the body. */
function setUpDelayControl(say: (text: string) => void): void {
  const form = document.getElementById('delay') as HTMLFormElement;
  const input = form.elements.namedItem('delay') as HTMLInputElement;
  const current = document.getElementById('delay-current')!;
  const show = (ms: number): void => {
    current.textContent = ms === 0 ? 'no added delay' : `every request to a technique waits ${formatMs(ms)}`;
    current.dataset.value = String(ms);
  };
  const send = async (init?: RequestInit): Promise<void> => {
    try {
      const response = await fetch('control/delay', init);
      if (!response.ok) return say(`Delay not set: ${(await response.text()).trim()}`);
      const { delayMs } = (await response.json()) as { delayMs: number };
      input.value = String(delayMs);
      show(delayMs);
      say('');
    } catch (error) {
      say(`Delay not set: ${describe(error)}`);
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void send({ method: 'POST', body: input.value });
  });
  void send();
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
