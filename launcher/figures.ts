/**
 * The numbers each pane of the comparison page shows, kept apart from the DOM
 * so they are tested in Node (figures.test.ts).
 *
 * Latency is `Date.now() − message.time`: the browser's clock minus the
 * server's at publish time. Page and server run on the same machine here, so
 * the two clocks are one; across machines the figure would include their skew.
 */

/** How many recent latencies the running median looks at: recent enough to follow a change of delay. */
export const MEDIAN_WINDOW = 200;

/** The last latency and the median of the last `window` ones. */
export class LatencyFigures {
  readonly #window: number;
  readonly #recent: number[] = [];
  #last: number | undefined;

  constructor(window = MEDIAN_WINDOW) {
    this.#window = window;
  }

  add(ms: number): void {
    this.#last = ms;
    this.#recent.push(ms);
    if (this.#recent.length > this.#window) this.#recent.shift();
  }

  get count(): number {
    return this.#recent.length;
  }

  get last(): number | undefined {
    return this.#last;
  }

  /** The middle value (the mean of the two middle ones for an even count); undefined before the first. */
  get median(): number | undefined {
    const n = this.#recent.length;
    if (n === 0) return undefined;
    const sorted = [...this.#recent].sort((a, b) => a - b);
    const middle = Math.floor(n / 2);
    return n % 2 === 1 ? sorted[middle] : (sorted[middle - 1]! + sorted[middle]!) / 2;
  }
}

/** `1234` → `"1.2 s"`, `56` → `"56 ms"`, undefined → `"–"`. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '–';
  if (Math.abs(ms) < 1_000) return `${Math.round(ms)} ms`;
  return `${(ms / 1_000).toFixed(1)} s`;
}

/** `512` → `"512 B"`, `2048` → `"2.0 KiB"`, `3 << 20` → `"3.0 MiB"`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1_024) return `${bytes} B`;
  if (bytes < 1_024 * 1_024) return `${(bytes / 1_024).toFixed(1)} KiB`;
  return `${(bytes / 1_024 / 1_024).toFixed(1)} MiB`;
}

/**
 * Whether a message was published while a pane was cut off: after the cut and
 * before the client reported its connection open again (or still not reopened).
 * Those are the messages the technique had to recover (a replay from `since`
 * or Last-Event-ID), and the page marks them.
 */
export function publishedDuringOutage(time: number | undefined, outage: { from: number; until?: number } | undefined): boolean {
  if (time === undefined || outage === undefined) return false;
  return time >= outage.from && (outage.until === undefined || time < outage.until);
}
