/**
 * The benchmark's four parts, as steps over the remotes of bench/remote.ts.
 * Each part starts fresh processes for what it measures and stops them after,
 * whatever happens; a folder that is missing or fails is reported, never fatal.
 */
import type { OpenResult, RequestsResult, RoundResult, RunResult, ThroughputResult } from './load.ts';
import type { Launcher, Remote } from './remote.ts';
import { folderExists, type ServerKind, type ServerOptions, type ServerStats } from './servers.ts';
import { distribution, median, sleep, waitUntil, type Distribution } from './stats.ts';
import { PUSH_TECHNIQUES, TECHNIQUES, type Technique } from './subscribers.ts';

export interface BenchParams {
  name: string;
  chat: {
    subscribers: number;
    ratePerSec: number;
    durationMs: number;
    warmupMs: number;
    messageBytes: number;
    pollIntervalMs: number;
    drainMs: number;
  };
  fanout: {
    levels: number[];
    rounds: number;
    messageBytes: number;
    /** Connections opened at once while building up a level. */
    concurrency: number;
    roundTimeoutMs: number;
    /** Longest wait for the server to hold every subscription. */
    settleMs: number;
    /** Pause for closed connections to be gone, and for the last opened to be taken in, before memory is read. */
    pauseMs: number;
  };
  echo: {
    /** Payload size → messages in flight per connection. */
    payloads: Array<{ bytes: number; window: number }>;
    warmupMs: number;
    durationMs: number;
    /** Each server measured this many times, in turn with the others; the median counts. */
    repeats: number;
    multi: { connections: number; bytes: number; window: number };
  };
  polling: { connections: number; warmupMs: number; durationMs: number };
}

export const FULL: BenchParams = {
  name: 'full',
  chat: { subscribers: 50, ratePerSec: 20, durationMs: 10_000, warmupMs: 2_000, messageBytes: 64, pollIntervalMs: 1_000, drainMs: 3_000 },
  fanout: { levels: [1_000, 5_000], rounds: 5, messageBytes: 64, concurrency: 250, roundTimeoutMs: 10_000, settleMs: 10_000, pauseMs: 300 },
  echo: {
    payloads: [
      { bytes: 16, window: 64 },
      { bytes: 1_024, window: 32 },
      { bytes: 64 * 1_024, window: 8 },
      { bytes: 1_024 * 1_024, window: 2 },
    ],
    warmupMs: 300,
    durationMs: 1_000,
    repeats: 3,
    multi: { connections: 16, bytes: 16, window: 1 },
  },
  polling: { connections: 8, warmupMs: 500, durationMs: 3_000 },
};

export const QUICK: BenchParams = {
  name: 'quick',
  chat: { ...FULL.chat, subscribers: 20, ratePerSec: 10, durationMs: 1_500, warmupMs: 200, drainMs: 2_000 },
  fanout: { ...FULL.fanout, levels: [1_000], rounds: 3, pauseMs: 200 },
  echo: { ...FULL.echo, warmupMs: 150, durationMs: 400, repeats: 1 },
  polling: { ...FULL.polling, warmupMs: 200, durationMs: 1_000 },
};

/** Where a figure could not be measured, the reason is printed in its place. */
export interface NotMeasured {
  notMeasured: string;
}

export interface ChatRow {
  technique: Technique;
  run: RunResult;
  serverCpuMicros: number;
}

/** Memory per connection, from the server's figures after a full GC. */
export interface Weight {
  opened: OpenResult;
  /** Subscriptions the server's log counted once the level was open (null for peers). */
  serverSubscribers: number | null;
  /** RSS delta / connections: what the targets are about. */
  memoryPerConnectionBytes: number;
  /** V8 heap in use (heapUsed delta): the JavaScript objects of a connection. */
  heapPerConnectionBytes: number;
  /**
   * Growth of V8's young generation (new space capacity): V8 enlarges it while
   * many objects survive, as when thousands of connections open, and a GC does
   * not shrink it. Part of it (the pages touched) would be in the RSS delta
   * without belonging to any connection: MEMORY_NODE_FLAGS fix its size, and
   * this figure shows that it stayed put (about 0).
   */
  youngGenerationPerConnectionBytes: number;
  collected: boolean;
}

export const MEMORY_REFERENCES = ['bare-upgrade', 'ws-echo'] as const;

/**
 * Node flags for every server whose memory is weighed (the fan-out part: our
 * folders and the references alike; the other parts run with node's defaults).
 * V8 lets its young generation grow under allocation, up to 16 MiB per
 * semi-space on 64-bit, and no GC gives it back: up to ~24 MiB of RSS that
 * depends on how the connections happened to be opened, not on what they
 * hold. With the semi-space fixed at 1 MiB it cannot grow, and the RSS delta
 * is what the connections keep.
 */
export const MEMORY_NODE_FLAGS = ['--max-semi-space-size=1'] as const;
const WARM_CONNECTIONS = 20;

export interface FanoutRow extends Weight {
  technique: Technique;
  level: number;
  reached: boolean;
  arrivalMs: Distribution;
  /** Time for the whole round to reach everybody, median over rounds. */
  allReachedMs: number;
  received: number;
  expected: number;
}

export interface EchoRow {
  label: string;
  payloadBytes: number;
  connections: number;
  window: number;
  ours: ThroughputResult | NotMeasured;
  ws: ThroughputResult | NotMeasured;
  raw: ThroughputResult | NotMeasured;
}

export interface PollingResult {
  ours: (RequestsResult & { cpuMicrosPerRequest: number }) | NotMeasured;
  bare: (RequestsResult & { cpuMicrosPerRequest: number }) | NotMeasured;
}

export interface BenchResults {
  chat: Array<ChatRow | (NotMeasured & { technique: Technique })>;
  fanout: Array<FanoutRow | (NotMeasured & { technique: Technique; level: number })>;
  memoryReferences: Array<(Weight & { kind: string; level: number }) | (NotMeasured & { kind: string; level: number })>;
  echo: EchoRow[];
  polling: PollingResult;
}

export type Part = 'chat' | 'fanout' | 'echo' | 'polling';
export const PARTS: readonly Part[] = ['chat', 'fanout', 'echo', 'polling'];

export interface BenchOptions {
  launcher: Launcher;
  params: BenchParams;
  parts?: readonly Part[];
  techniques?: readonly Technique[];
  /** Progress lines. */
  progress?: (line: string) => void;
  /** Whether a folder can be measured (default: its server.ts exists). */
  folderExists?: (technique: Technique) => boolean;
}

export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const parts = options.parts ?? PARTS;
  const bench = new Bench(options);
  return {
    chat: parts.includes('chat') ? await bench.chat() : [],
    fanout: parts.includes('fanout') ? await bench.fanout() : [],
    memoryReferences: parts.includes('fanout') ? await bench.memoryReferences() : [],
    echo: parts.includes('echo') ? await bench.echo() : [],
    polling: parts.includes('polling') ? await bench.polling() : { ours: skipped, bare: skipped },
  };
}

const skipped: NotMeasured = { notMeasured: 'part not run' };

export function isMeasured<T extends object>(value: T): value is Exclude<T, NotMeasured> {
  return !('notMeasured' in value);
}

class Bench {
  readonly #launcher: Launcher;
  readonly #params: BenchParams;
  readonly #techniques: readonly Technique[];
  readonly #progress: (line: string) => void;
  readonly #folderExists: (technique: Technique) => boolean;

  constructor(options: BenchOptions) {
    this.#folderExists = options.folderExists ?? folderExists;
    this.#launcher = options.launcher;
    this.#params = options.params;
    this.#techniques = options.techniques ?? TECHNIQUES;
    this.#progress = options.progress ?? (() => {});
  }

  /** Starts remotes, runs `body`, stops them all, whatever happened. */
  async #with<T>(
    kinds: Array<ServerKind | 'load'>,
    body: (remotes: Remote[]) => Promise<T>,
    serverOptions: ServerOptions = {},
    nodeFlags: readonly string[] = [],
  ): Promise<T> {
    const remotes: Remote[] = [];
    try {
      for (const kind of kinds) {
        remotes.push(await this.#launcher.launch(kind === 'load' ? { role: 'load' } : { role: 'server', kind, options: serverOptions, nodeFlags }));
      }
      return await body(remotes);
    } finally {
      // The load side first: its sockets close before the servers go.
      for (const remote of remotes.reverse()) await remote.stop();
    }
  }

  /** A reason to skip `technique`, or undefined when it can be measured. */
  #missing(technique: Technique): NotMeasured | undefined {
    return this.#folderExists(technique) ? undefined : { notMeasured: `${technique} missing` };
  }

  async #guarded<T extends object>(label: string, body: () => Promise<T>): Promise<T | NotMeasured> {
    try {
      return await body();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#progress(`  ${label}: failed: ${reason}`);
      return { notMeasured: `${label} failed: ${reason}` };
    }
  }

  // 1. The same chat through every technique -----------------------------------

  async chat(): Promise<BenchResults['chat']> {
    const p = this.#params.chat;
    const rows: BenchResults['chat'] = [];
    for (const technique of this.#techniques) {
      this.#progress(`chat: ${technique}`);
      const missing = this.#missing(technique);
      if (missing) {
        rows.push({ technique, ...missing });
        continue;
      }
      const row = await this.#guarded(technique, () =>
        this.#with([technique, 'load'], async ([server, load]) => {
          const port = server!.port!;
          const opened = await load!.call<OpenResult>('open', {
            port, technique, count: p.subscribers, pollIntervalMs: p.pollIntervalMs, concurrency: p.subscribers, timeoutMs: 10_000,
          });
          if (opened.connected === 0) throw new Error(`no subscriber connected: ${opened.firstError}`);
          const runParams = { ratePerSec: p.ratePerSec, messageBytes: p.messageBytes, drainMs: p.drainMs };
          await load!.call<RunResult>('run', { ...runParams, durationMs: p.warmupMs });
          const before = await server!.call<ServerStats>('stats', { collect: false });
          const run = await load!.call<RunResult>('run', { ...runParams, durationMs: p.durationMs });
          const after = await server!.call<ServerStats>('stats', { collect: false });
          await load!.call('close');
          return { technique, run, serverCpuMicros: after.cpuMicros - before.cpuMicros };
        }),
      );
      rows.push(isMeasured(row) ? row : { technique, ...row });
    }
    return rows;
  }

  // 2. Fan-out and memory per connection ---------------------------------------

  async fanout(): Promise<BenchResults['fanout']> {
    const p = this.#params.fanout;
    const rows: BenchResults['fanout'] = [];
    for (const technique of this.#techniques.filter((t) => (PUSH_TECHNIQUES as readonly string[]).includes(t))) {
      for (const level of p.levels) {
        this.#progress(`fan-out: ${technique} × ${level}`);
        const missing = this.#missing(technique);
        if (missing) {
          rows.push({ technique, level, ...missing });
          continue;
        }
        const row = await this.#guarded(`${technique} × ${level}`, () =>
          this.#with([technique, 'load'], ([server, load]) => this.#fanoutLevel(technique, level, server!, load!), {}, MEMORY_NODE_FLAGS),
        );
        rows.push(isMeasured(row) ? row : { technique, level, ...row });
      }
    }
    return rows;
  }

  async #fanoutLevel(technique: Technique, level: number, server: Remote, load: Remote): Promise<FanoutRow> {
    const p = this.#params.fanout;
    const round = (): Promise<RoundResult> => load.call<RoundResult>('round', { messageBytes: p.messageBytes, timeoutMs: p.roundTimeoutMs });
    const stats = (collect: boolean): Promise<ServerStats> => server.call<ServerStats>('stats', { collect });
    const weighed = await this.#weigh(technique, level, server, load, round);

    const arrivals: number[] = [];
    const allReached: number[] = [];
    let received = 0;
    let expected = 0;
    for (let i = 0; i < p.rounds; i++) {
      if (i > 0) await this.#settle(stats, weighed.opened.connected); // long-polls ask again after each answer
      const result = await round();
      arrivals.push(...result.latenciesMs);
      received += result.received;
      expected += result.expected;
      if (result.received >= result.expected) allReached.push(Math.max(...result.latenciesMs));
    }
    await load.call('close');
    return {
      technique,
      level,
      ...weighed,
      reached: weighed.opened.connected === level && received === level * p.rounds,
      arrivalMs: distribution(arrivals),
      allReachedMs: allReached.length > 0 ? median(allReached) : Number.NaN,
      received,
      expected,
    };
  }

  /**
   * Opens `level` subscribers and weighs them: the server's memory after a full
   * GC with them open, minus its memory after a warm-up on a few connections
   * (every code path run once, then closed), divided by the connections.
   */
  async #weigh(technique: Technique, level: number, server: Remote, load: Remote, warmRound?: () => Promise<unknown>): Promise<Weight> {
    const p = this.#params.fanout;
    const open = (count: number): Promise<OpenResult> =>
      load.call<OpenResult>('open', { port: server.port, technique, count, pollIntervalMs: 1_000, concurrency: p.concurrency, timeoutMs: 15_000 });
    const stats = (collect: boolean): Promise<ServerStats> => server.call<ServerStats>('stats', { collect });

    const warm = Math.min(WARM_CONNECTIONS, level);
    await open(warm);
    await this.#settle(stats, warm);
    await warmRound?.();
    await load.call('close');
    await sleep(p.pauseMs);
    const base = await stats(true);

    const opened = await open(level);
    const serverSubscribers = await this.#settle(stats, opened.connected);
    await sleep(p.pauseMs); // the last connections' first bytes, for peers that have no log to count on
    const held = await stats(true);
    const per = (bytes: number): number => bytes / Math.max(1, opened.connected);
    return {
      opened,
      serverSubscribers,
      memoryPerConnectionBytes: per(held.rssBytes - base.rssBytes),
      heapPerConnectionBytes: per(held.heapUsedBytes - base.heapUsedBytes),
      youngGenerationPerConnectionBytes: per(held.newSpaceBytes - base.newSpaceBytes),
      collected: held.collected,
    };
  }

  /** The same weighing on reference servers: a bare upgraded socket, and `ws`. */
  async memoryReferences(): Promise<BenchResults['memoryReferences']> {
    const rows: BenchResults['memoryReferences'] = [];
    for (const kind of MEMORY_REFERENCES) {
      for (const level of this.#params.fanout.levels) {
        this.#progress(`memory: ${kind} × ${level}`);
        const row = await this.#guarded(`${kind} × ${level}`, () =>
          this.#with([kind, 'load'], async ([server, load]) => {
            const weight = await this.#weigh('websocket', level, server!, load!);
            await load!.call('close');
            return { kind, level, ...weight };
          }, {}, MEMORY_NODE_FLAGS),
        );
        rows.push(isMeasured(row) ? row : { kind, level, ...row });
      }
    }
    return rows;
  }

  /**
   * Waits until the server's log counts `count` subscriptions, or until the
   * count has not moved for a while (a technique may hold its clients in one
   * subscription of its own); returns the last count.
   */
  async #settle(stats: (collect: boolean) => Promise<ServerStats>, count: number): Promise<number | null> {
    let last: number | null = -1;
    let stableSince = performance.now();
    await waitUntil(async () => {
      const { subscribers } = await stats(false);
      if (subscribers === null || subscribers >= count) {
        last = subscribers;
        return true;
      }
      if (subscribers !== last) stableSince = performance.now();
      last = subscribers;
      return performance.now() - stableSince > 750;
    }, this.#params.fanout.settleMs, 25);
    return last;
  }

  // 3. The WebSocket codec against ws and raw TCP ------------------------------

  async echo(): Promise<EchoRow[]> {
    const p = this.#params.echo;
    const ours = this.#missing('websocket');
    const kinds: Array<ServerKind | 'load'> = [...(ours ? [] : ['websocket' as const]), 'ws-echo', 'tcp-echo', 'load'];
    // Heartbeats off for the run: a ping in the middle would upset the byte counts.
    const result = await this.#guarded('echo', () =>
      this.#with(
        kinds,
        async (remotes) => {
          const load = remotes[remotes.length - 1]!;
          const [oursServer, wsServer, tcpServer] = ours ? [undefined, ...remotes] : remotes;
          const cases = [
            ...p.payloads.map(({ bytes, window }) => ({ label: `${formatBytes(bytes)} × 1 connection`, bytes, window, connections: 1 })),
            { label: `${formatBytes(p.multi.bytes)} × ${p.multi.connections} connections`, ...p.multi },
          ];
          const rows: EchoRow[] = [];
          for (const c of cases) {
            this.#progress(`echo: ${c.label}`);
            const measure = (server: Remote | undefined, mode: 'websocket' | 'tcp'): Promise<ThroughputResult | NotMeasured> =>
              server === undefined
                ? Promise.resolve(ours!)
                : this.#guarded(`echo ${c.label}`, () =>
                    load.call<ThroughputResult>('echo', {
                      port: server.port, mode, path: '/echo', connections: c.connections, payloadBytes: c.bytes,
                      window: c.window, warmupMs: p.warmupMs, durationMs: p.durationMs,
                    }),
                  );
            // In turn, per payload and repeat, so that drift on a shared machine hits all three alike.
            const runs: Array<Array<ThroughputResult | NotMeasured>> = [[], [], []];
            for (let repeat = 0; repeat < p.repeats; repeat++) {
              runs[0]!.push(await measure(oursServer, 'websocket'));
              runs[1]!.push(await measure(wsServer, 'websocket'));
              runs[2]!.push(await measure(tcpServer, 'tcp'));
            }
            const [oursResult, wsResult, rawResult] = runs.map(medianRun) as [ThroughputResult | NotMeasured, ThroughputResult | NotMeasured, ThroughputResult | NotMeasured];
            rows.push({ label: c.label, payloadBytes: c.bytes, connections: c.connections, window: c.window, ours: oursResult, ws: wsResult, raw: rawResult });
          }
          return { rows };
        },
        { heartbeatMs: 3_600_000 },
      ),
    );
    return isMeasured(result) ? result.rows : [];
  }

  // 4. The ceiling of polling: 304s per second ---------------------------------

  async polling(): Promise<PollingResult> {
    const p = this.#params.polling;
    this.#progress('polling: 304 path');
    const measure = (kind: 'ajax-polling' | 'bare-304') =>
      this.#guarded(kind, () =>
        this.#with([kind, 'load'], async ([server, load]) => {
          // A client that is up to date at id 3: its next poll is answered 304.
          await load!.call('publish', { port: server!.port, count: 3 });
          const before = await server!.call<ServerStats>('stats', { collect: false });
          const result = await load!.call<RequestsResult>('requests', {
            port: server!.port, path: '/messages?since=3', connections: p.connections, warmupMs: p.warmupMs, durationMs: p.durationMs,
          });
          const after = await server!.call<ServerStats>('stats', { collect: false });
          const answers = Object.values(result.statuses).reduce((a, b) => a + b, 0);
          return { ...result, cpuMicrosPerRequest: (after.cpuMicros - before.cpuMicros) / Math.max(1, answers) };
        }),
      );
    const missing = this.#missing('ajax-polling');
    return { ours: missing ?? (await measure('ajax-polling')), bare: await measure('bare-304') };
  }
}

/** The run with the median rate; a failed run (no figure, or an error) wins, so that it is seen. */
export function medianRun(runs: Array<ThroughputResult | NotMeasured>): ThroughputResult | NotMeasured {
  const failed = runs.find((run) => !isMeasured(run) || run.error !== undefined);
  if (failed) return failed;
  const sorted = (runs as ThroughputResult[]).slice().sort((a, b) => a.perSecond - b.perSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1_048_576 && bytes % 1_048_576 === 0) return `${bytes / 1_048_576} MiB`;
  if (bytes >= 1_024 && bytes % 1_024 === 0) return `${bytes / 1_024} KiB`;
  return `${bytes} B`;
}
