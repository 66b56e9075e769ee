/**
 * Turns one run's results into what people read: the targets (met or not), a
 * Markdown report (bench/results.md) and an SVG chart (bench/results.svg) of
 * latency and bytes per message per technique. Pure functions of the results:
 * no I/O, so the smoke test checks them on made-up numbers too.
 */
import { formatBytes, isMeasured, MEMORY_NODE_FLAGS, type BenchParams, type BenchResults, type ChatRow, type NotMeasured, type Weight } from './bench.ts';
import type { ThroughputResult } from './load.ts';

export interface Environment {
  date: string;
  cpuModel: string;
  cpuCount: number;
  memoryBytes: number;
  os: string;
  node: string;
  /** `ulimit -n` of the orchestrator (soft / hard) and what the children asked for. */
  openFiles: { soft: string; hard: string; children: number };
  /** os.loadavg() at the start: other work on the machine skews every figure. */
  load: string;
  processes: string;
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** null: could not be measured in this run. */
  met: boolean | null;
}

const KIB = 1_024;

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

export function checkTargets(results: BenchResults, params: BenchParams): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ratio = (a: ThroughputResult | NotMeasured, b: ThroughputResult | NotMeasured): number | undefined =>
    isMeasured(a) && isMeasured(b) && !a.error && !b.error && b.perSecond > 0 ? a.perSecond / b.perSecond : undefined;

  for (const row of results.echo.filter((r) => r.connections === 1)) {
    const value = ratio(row.ours, row.ws);
    checks.push({
      target: `WebSocket echo, ${formatBytes(row.payloadBytes)}: ours ≥ 1.0 × ws`,
      measured: value === undefined ? reason(row.ours, row.ws) : `${value.toFixed(2)} ×`,
      met: value === undefined ? null : value >= 1.0,
    });
  }
  for (const row of results.echo.filter((r) => r.connections > 1)) {
    const value = ratio(row.ours, row.raw);
    checks.push({
      target: `WebSocket echo, ${row.label}: ours ≥ 0.75 × raw TCP`,
      measured: value === undefined ? reason(row.ours, row.raw) : `${value.toFixed(2)} ×`,
      met: value === undefined ? null : value >= 0.75,
    });
  }

  const largest = Math.max(...params.fanout.levels);
  const note = largest < 5_000 ? ` at ${largest.toLocaleString('en-US')} subscribers (run the full benchmark for 5,000)` : '';
  const fanoutRow = (technique: string) =>
    results.fanout.find((r) => r.technique === technique && r.level === largest);
  for (const technique of ['sse', 'websocket']) {
    const row = fanoutRow(technique);
    const measured = row && isMeasured(row) && row.received > 0;
    checks.push({
      target: `one message to 5,000 ${technique} subscribers: p99 < 250 ms`,
      measured: measured ? `${formatMs(row.arrivalMs.p99)}${row.reached ? '' : ', level not reached'}${note}` : reason(row),
      // Only a run at 5,000 can meet it: fewer subscribers are faster.
      met: measured && largest >= 5_000 ? row.arrivalMs.p99 < 250 && row.reached : null,
    });
  }
  const memory: Array<[string, number]> = [['websocket', 6], ['sse', 12], ['http-streaming', 12], ['long-polling', 11]];
  for (const [technique, limit] of memory) {
    const row = fanoutRow(technique);
    const measured = row && isMeasured(row) && row.opened.connected > 0;
    checks.push({
      target: `memory per idle ${technique === 'long-polling' ? 'held long-poll' : `${technique} connection`} ≤ ${limit} KiB`,
      measured: measured ? `${formatKib(row.memoryPerConnectionBytes)}${row.collected ? '' : ' (no GC: run without --expose-gc)'}${note}` : reason(row),
      met: measured ? row.memoryPerConnectionBytes <= limit * KIB : null,
    });
  }

  const { ours, bare } = results.polling;
  const value = ratio(ours, bare);
  checks.push({
    target: 'ajax-polling 304 path ≥ 0.8 × bare node:http',
    measured: value === undefined ? reason(ours, bare) : `${value.toFixed(2)} ×`,
    met: value === undefined ? null : value >= 0.8,
  });
  return checks;
}

function reason(...values: Array<object | undefined>): string {
  for (const value of values) {
    if (value === undefined) return 'not measured in this run';
    if ('notMeasured' in value) return `not measured: ${(value as NotMeasured).notMeasured}`;
    if ('error' in value && value.error) return `not measured: ${String(value.error)}`;
  }
  return 'not measured';
}

// ---------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------

export function renderMarkdown(results: BenchResults, params: BenchParams, env: Environment): string {
  const out: string[] = [];
  const line = (text = ''): void => void out.push(text);
  const table = (head: string[], rows: string[][]): void => {
    line(`| ${head.join(' | ')} |`);
    line(`| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
    for (const row of rows) line(`| ${row.join(' | ')} |`);
    line();
  };

  line('# Benchmark results');
  line();
  line(`Generated by \`npm run bench${params.name === 'full' ? '' : ` -- --${params.name}`}\` (${params.name} run) on ${env.date}. ` +
    'One run on one machine: read the ratios and the shapes, not the absolute numbers. Method and caveats: [README.md](README.md).');
  line();
  line(`- Machine: ${env.cpuModel}, ${env.cpuCount} CPUs, ${formatGib(env.memoryBytes)} memory, ${env.os}`);
  line(`- Node ${env.node}; open files (\`ulimit -n\`): ${env.openFiles.soft} soft / ${env.openFiles.hard} hard, children asked for ${env.openFiles.children}`);
  line(`- Load average when the run started: ${env.load} (other work on the machine skews every figure)`);
  line(`- Processes: ${env.processes}; loopback only`);
  line();

  const checks = checkTargets(results, params);
  line('## Targets');
  line();
  table(['target', 'measured', 'verdict'], checks.map((c) => [c.target, c.measured, c.met === null ? 'not measured' : c.met ? 'met' : '**not met**']));

  const chat = params.chat;
  line('## 1. The same chat through every technique');
  line();
  line(`One publisher (\`POST /publish\`, keep-alive) at ${chat.ratePerSec} messages/s for ${chat.durationMs / 1_000} s after a ` +
    `${chat.warmupMs / 1_000} s warm-up; ${chat.subscribers} subscribers on raw sockets; ${chat.messageBytes}-byte messages; ` +
    `ajax-polling polls every ${chat.pollIntervalMs} ms (its client's default). Latency: publish written → message decoded, same process and clock. ` +
    'Requests, bytes and CPU are divided by messages delivered (messages × subscribers); bytes are what the subscribers\' sockets read + wrote ' +
    '(HTTP heads, framing and heartbeats included, TCP/IP headers not); CPU is the server process\'s user + system time over the run.');
  line();
  table(
    ['technique', 'delivered', 'latency p50', 'latency p99', 'HTTP requests / msg', 'bytes / msg (down + up)', 'server CPU / msg'],
    results.chat.map((row) => {
      if (!isMeasured(row)) return [row.technique, `not measured: ${row.notMeasured}`, '', '', '', '', ''];
      const { run } = row;
      const per = (n: number): number => n / Math.max(1, run.delivered);
      return [
        row.technique,
        `${run.delivered} / ${run.expected}${run.lost > 0 ? ` (${run.lost} subscribers lost)` : ''}${run.duplicates > 0 ? `, ${run.duplicates} duplicates` : ''}`,
        formatMs(run.latencyMs.p50),
        formatMs(run.latencyMs.p99),
        per(run.requests).toFixed(3),
        `${Math.round(per(run.bytesRead + run.bytesWritten))} (${Math.round(per(run.bytesRead))} + ${Math.round(per(run.bytesWritten))})`,
        `${per(row.serverCpuMicros).toFixed(1)} µs`,
      ];
    }),
  );

  const fan = params.fanout;
  line('## 2. Fan-out and memory');
  line();
  line(`Each level on a fresh server, started (like the references below) with \`${MEMORY_NODE_FLAGS.join(' ')}\` so that V8's young generation cannot grow: ` +
    `connections opened ${fan.concurrency} at a time, then the server's RSS after a minor and two full GCs ` +
    '(minus the RSS after a warm-up on 20 connections that were then closed) divided by the connections; then ' +
    `${fan.rounds} rounds of one ${fan.messageBytes}-byte message, each timed from publish to arrival at every subscriber. ` +
    '"Reached": every connection opened and every round reached everyone.');
  line();
  table(
    ['technique', 'subscribers', 'reached', 'arrival p50', 'arrival p99', 'all reached (median round)', ...WEIGHT_HEAD],
    results.fanout.map((row) => {
      if (!isMeasured(row)) return [row.technique, row.level.toLocaleString('en-US'), `not measured: ${row.notMeasured}`, '', '', '', '', '', ''];
      const opened = `${row.opened.connected.toLocaleString('en-US')} open${row.opened.failed > 0 ? `, ${row.opened.failed} failed (${row.opened.firstError})` : ''}`;
      return [
        row.technique,
        row.level.toLocaleString('en-US'),
        row.reached ? 'yes' : `**no**: ${opened}, ${row.received} / ${row.expected} deliveries`,
        formatMs(row.arrivalMs.p50),
        formatMs(row.arrivalMs.p99),
        formatMs(row.allReachedMs),
        ...weightCells(row),
      ];
    }),
  );
  if (results.memoryReferences.length > 0) {
    line('The same weighing on reference servers (WebSocket clients, idle): `bare-upgrade` answers 101 and holds the socket ' +
      '(the floor for any WebSocket server on node:http), `ws-echo` is the `ws` package; same flags, same GCs.');
    line();
    table(
      ['server', 'connections', ...WEIGHT_HEAD],
      results.memoryReferences.map((row) =>
        isMeasured(row)
          ? [row.kind, row.opened.connected.toLocaleString('en-US'), ...weightCells(row)]
          : [row.kind, row.level.toLocaleString('en-US'), `not measured: ${row.notMeasured}`, '', ''],
      ),
    );
  }

  const echo = params.echo;
  line('## 3. WebSocket codec: `/echo` against `ws` and raw TCP');
  line();
  line(`Binary messages, masked as a browser sends them, a fixed number in flight per connection ("window"); ${echo.warmupMs} ms warm-up, ` +
    `${echo.durationMs} ms measured, ${echo.repeats} time(s) per server in turn, the median shown. Same load client (its own process, counting bytes) for the three servers; ` +
    'each server a `node --import tsx` child (ws-echo: the `ws` package, `perMessageDeflate: false`; raw TCP: every chunk written back as it is read).');
  line();
  table(
    ['messages', 'window', 'ours msg/s', 'ws msg/s', 'raw TCP msg/s', 'ours / ws', 'ours / raw', 'ws / raw'],
    results.echo.map((row) => [
      row.label,
      String(row.window),
      rate(row.ours),
      rate(row.ws),
      rate(row.raw),
      ratioText(row.ours, row.ws),
      ratioText(row.ours, row.raw),
      ratioText(row.ws, row.raw),
    ]),
  );
  if (results.echo.length === 0) line('(not measured in this run)\n');

  const poll = params.polling;
  line('## 4. Polling ceiling: the 304 path');
  line();
  line(`\`GET /messages?since=3\` with the matching \`If-None-Match\` on ${poll.connections} keep-alive connections, one request in flight each ` +
    `(no pipelining, as browsers), ${poll.warmupMs} ms warm-up, ${poll.durationMs} ms measured; the same client against a bare ` +
    '`node:http` server doing the same ETag check and nothing else.');
  line();
  const pollRow = (name: string, value: PollingValue): string[] =>
    isMeasured(value)
      ? [name, Math.round(value.perSecond).toLocaleString('en-US'), `${value.cpuMicrosPerRequest.toFixed(1)} µs`, Object.entries(value.statuses).map(([s, n]) => `${s}: ${n}`).join(', ')]
      : [name, `not measured: ${value.notMeasured}`, '', ''];
  table(['server', 'answers / s', 'server CPU / answer', 'statuses'], [
    pollRow('ajax-polling', results.polling.ours),
    pollRow('bare node:http', results.polling.bare),
  ]);
  line(`ajax-polling / bare: ${ratioText(results.polling.ours, results.polling.bare)}`);
  line();
  line('![latency and bytes per message](results.svg)');
  line();
  return out.join('\n');
}

type PollingValue = BenchResults['polling']['ours'];

const WEIGHT_HEAD = ['memory / connection (RSS)', 'JS heap / connection', 'young generation grown by'];

function weightCells(row: Weight): string[] {
  return [
    `${formatKib(row.memoryPerConnectionBytes)}${row.collected ? '' : ' (no GC)'}`,
    formatKib(row.heapPerConnectionBytes),
    `${formatKib(row.youngGenerationPerConnectionBytes)} / connection`,
  ];
}

function rate(value: ThroughputResult | NotMeasured): string {
  if (!isMeasured(value)) return `not measured: ${value.notMeasured}`;
  if (value.error) return `error: ${value.error}`;
  return Math.round(value.perSecond).toLocaleString('en-US');
}

function ratioText(a: ThroughputResult | NotMeasured, b: ThroughputResult | NotMeasured): string {
  if (!isMeasured(a) || !isMeasured(b) || a.error || b.error || b.perSecond === 0) return '–';
  return `${(a.perSecond / b.perSecond).toFixed(2)} ×`;
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

function formatKib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / KIB).toFixed(1)} KiB` : '–';
}

function formatGib(bytes: number): string {
  return `${(bytes / 1_024 ** 3).toFixed(1)} GiB`;
}

// ---------------------------------------------------------------------------
// SVG: two horizontal bar charts, one row per technique
// ---------------------------------------------------------------------------

const WIDTH = 760;
const LABEL = 130;
const RIGHT = 140; // room for the figures after the longest bar
const ROW = 26;
const BAR = 14;
const COLORS = { p50: '#2b6cb0', p99: '#90cdf4', down: '#2f855a', up: '#9ae6b4', grid: '#d0d7de', text: '#1f2328' };

export function renderSvg(results: BenchResults, env: Pick<Environment, 'cpuModel' | 'cpuCount' | 'node' | 'date'>): string {
  const rows = results.chat.filter((row): row is ChatRow => isMeasured(row) && row.run.delivered > 0);
  const missing = results.chat.filter((row) => !isMeasured(row) || row.run.delivered === 0).map((row) => row.technique);
  const plot = WIDTH - LABEL - RIGHT;
  const panelHeight = 50 + Math.max(1, rows.length) * ROW + 30;
  const height = 40 + panelHeight * 2 + 30;
  const parts: string[] = [];
  const text = (x: number, y: number, content: string, attrs = ''): void =>
    void parts.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(content)}</text>`);
  const rect = (x: number, y: number, w: number, h: number, fill: string, title: string): void =>
    void parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(0, w).toFixed(1)}" height="${h}" fill="${fill}"><title>${escapeXml(title)}</title></rect>`);
  // A bar's figure goes after its end, or inside it when it would leave the picture.
  const barLabel = (end: number, y: number, content: string): void =>
    end + 4 + content.length * 6.5 > WIDTH
      ? text(end - 4, y + BAR - 3, content, 'text-anchor="end" font-size="11" fill="#ffffff"')
      : text(end + 4, y + BAR - 3, content, 'font-size="11"');
  const gridLine = (x: number, top: number, bottom: number): void =>
    void parts.push(`<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${bottom}" stroke="${COLORS.grid}"/>`);

  text(WIDTH / 2, 22, 'The same chat through each technique (one run; see results.md)', 'text-anchor="middle" font-size="15" font-weight="bold"');

  // Panel 1: latency, log scale (ajax-polling's hundreds of ms beside sub-millisecond pushes).
  let top = 40;
  text(LABEL, top + 16, 'Delivery latency, ms (log scale): p50 dark, p99 light', 'font-size="13" font-weight="bold"');
  const latencies = rows.flatMap((row) => [row.run.latencyMs.p50, row.run.latencyMs.p99]).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...latencies, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...latencies, 10)));
  const xLog = (v: number): number => LABEL + (plot * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const plotTop = top + 30;
  const plotBottom = plotTop + Math.max(1, rows.length) * ROW;
  for (let tick = lo; tick <= hi * 1.0001; tick *= 10) {
    gridLine(xLog(tick), plotTop, plotBottom);
    text(xLog(tick), plotBottom + 14, formatTick(tick), 'text-anchor="middle" font-size="11"');
  }
  rows.forEach((row, i) => {
    const y = plotTop + i * ROW + (ROW - BAR) / 2;
    const { p50, p99 } = row.run.latencyMs;
    text(LABEL - 8, y + BAR - 3, row.technique, 'text-anchor="end" font-size="12"');
    rect(LABEL, y, xLog(p99) - LABEL, BAR, COLORS.p99, `${row.technique} p99 ${formatMs(p99)}`);
    rect(LABEL, y, xLog(p50) - LABEL, BAR, COLORS.p50, `${row.technique} p50 ${formatMs(p50)}`);
    barLabel(xLog(p99), y, `${formatMs(p50)} / ${formatMs(p99)}`);
  });

  // Panel 2: bytes per delivered message, linear.
  top += panelHeight;
  text(LABEL, top + 16, 'Bytes on the wire per delivered message: down dark, up light', 'font-size="13" font-weight="bold"');
  const perMessage = rows.map((row) => {
    const delivered = Math.max(1, row.run.delivered);
    return { down: row.run.bytesRead / delivered, up: row.run.bytesWritten / delivered };
  });
  const maxBytes = niceCeiling(Math.max(...perMessage.map((b) => b.down + b.up), 10));
  const xLin = (v: number): number => LABEL + (plot * v) / maxBytes;
  const plotTop2 = top + 30;
  const plotBottom2 = plotTop2 + Math.max(1, rows.length) * ROW;
  for (let i = 0; i <= 5; i++) {
    const tick = (maxBytes * i) / 5;
    gridLine(xLin(tick), plotTop2, plotBottom2);
    text(xLin(tick), plotBottom2 + 14, String(Math.round(tick)), 'text-anchor="middle" font-size="11"');
  }
  rows.forEach((row, i) => {
    const y = plotTop2 + i * ROW + (ROW - BAR) / 2;
    const { down, up } = perMessage[i]!;
    text(LABEL - 8, y + BAR - 3, row.technique, 'text-anchor="end" font-size="12"');
    rect(LABEL, y, xLin(down) - LABEL, BAR, COLORS.down, `${row.technique}: ${Math.round(down)} B down`);
    rect(xLin(down), y, xLin(down + up) - xLin(down), BAR, COLORS.up, `${row.technique}: ${Math.round(up)} B up`);
    barLabel(xLin(down + up), y, `${Math.round(down + up)} B`);
  });

  const footer = `${env.cpuModel} × ${env.cpuCount}, Node ${env.node}, ${env.date}` + (missing.length > 0 ? `; not measured: ${missing.join(', ')}` : '');
  text(WIDTH / 2, height - 10, footer, 'text-anchor="middle" font-size="11" fill="#57606a"');

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" fill="${COLORS.text}">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

function formatTick(ms: number): string {
  return ms >= 1_000 ? `${ms / 1_000} s` : ms >= 1 ? `${ms} ms` : `${Number(ms.toPrecision(1))} ms`;
}

/** 1, 2 or 5 times a power of ten, at least `value`. */
export function niceCeiling(value: number): number {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

