// The benchmark's smoke test: every code path of `npm run bench` on tiny
// parameters, checking that it works and reports, not how fast anything is.
// Servers and load generators run in this process (remote.ts's inProcess),
// except in the one test that checks the child processes themselves.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FULL, isMeasured, medianRun, MEMORY_NODE_FLAGS, QUICK, runBench, type BenchParams, type BenchResults } from './bench.ts';
import { getRequest, ResponseReader, type ResponseHead } from './http-response.ts';
import { childProcesses, inProcess, type Launcher } from './remote.ts';
import { checkTargets, escapeXml, formatMs, niceCeiling, renderMarkdown, renderSvg } from './report.ts';
import { main, parseArgs } from './run.ts';
import { distribution, percentile } from './stats.ts';
import { LineDecoder, SseDecoder, TECHNIQUES } from './subscribers.ts';
import { maskedFrame, OPCODE, ServerFrameReader } from './ws-frames.ts';
import { echoLoad, requestsLoad } from './load.ts';
import { startBenchServer } from './servers.ts';

const TINY: BenchParams = {
  name: 'smoke',
  chat: { subscribers: 2, ratePerSec: 40, durationMs: 150, warmupMs: 50, messageBytes: 32, pollIntervalMs: 50, drainMs: 2_000 },
  fanout: { levels: [3], rounds: 2, messageBytes: 32, concurrency: 2, roundTimeoutMs: 2_000, settleMs: 1_000, pauseMs: 20 },
  echo: {
    payloads: [
      { bytes: 16, window: 2 },
      { bytes: 70_000, window: 1 },
    ],
    warmupMs: 10,
    durationMs: 40,
    repeats: 1,
    multi: { connections: 2, bytes: 16, window: 1 },
  },
  polling: { connections: 2, warmupMs: 10, durationMs: 40 },
};

describe('the benchmark on tiny parameters, in one process', () => {
  let written: { markdown: string; svg: string; results: BenchResults };
  let directory: string;

  test('runs every part against every folder and writes results.md and results.svg', async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'bench-'));
    try {
      const lines: string[] = [];
      written = await main({ params: TINY, parts: ['chat', 'fanout', 'echo', 'polling'], techniques: [...TECHNIQUES], write: true }, inProcess, pathToFileURL(`${directory}/`), (line) => lines.push(line));
      assert.equal(readFileSync(path.join(directory, 'results.md'), 'utf8'), written.markdown);
      assert.equal(readFileSync(path.join(directory, 'results.svg'), 'utf8'), written.svg);
      assert.ok(lines.some((line) => line.startsWith('chat: websocket')), lines.join('\n'));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test('the chat reached every subscriber through every technique, with requests and bytes counted', () => {
    const { chat } = written.results;
    assert.deepEqual(chat.map((row) => row.technique), [...TECHNIQUES]);
    for (const row of chat) {
      assert.ok(isMeasured(row), `${row.technique}: ${JSON.stringify(row)}`);
      assert.ok(row.run.delivered > 0 && row.run.delivered === row.run.expected, `${row.technique}: ${row.run.delivered}/${row.run.expected}`);
      assert.equal(row.run.duplicates, 0);
      assert.ok(row.run.bytesRead > 0, row.technique);
      assert.ok(row.run.latencyMs.p50 >= 0 && row.run.latencyMs.p99 >= row.run.latencyMs.p50);
      assert.ok(row.serverCpuMicros >= 0);
    }
    const polls = chat.find((row) => row.technique === 'ajax-polling')!;
    const stream = chat.find((row) => row.technique === 'sse')!;
    assert.ok(isMeasured(polls) && isMeasured(stream));
    assert.ok(polls.run.requests > 0, 'ajax-polling makes requests during the run');
    assert.equal(stream.run.requests, 0, 'an open event stream makes none');
  });

  test('fan-out reached every level of every push technique, and the memory references were weighed', () => {
    const { fanout, memoryReferences } = written.results;
    assert.deepEqual(fanout.map((row) => row.technique), ['long-polling', 'sse', 'http-streaming', 'websocket']);
    for (const row of fanout) {
      assert.ok(isMeasured(row), JSON.stringify(row));
      assert.ok(row.reached, `${row.technique}: ${row.received}/${row.expected}`);
      assert.equal(row.arrivalMs.count, 3 * TINY.fanout.rounds);
      assert.ok(Number.isFinite(row.memoryPerConnectionBytes));
    }
    assert.deepEqual(memoryReferences.map((row) => row.kind), ['bare-upgrade', 'ws-echo']);
    for (const row of memoryReferences) assert.ok(isMeasured(row) && row.opened.connected === 3, JSON.stringify(row));
  });

  test('the echo part measured ours, ws and raw TCP at each payload', () => {
    const { echo } = written.results;
    assert.equal(echo.length, TINY.echo.payloads.length + 1);
    for (const row of echo) {
      for (const result of [row.ours, row.ws, row.raw]) {
        assert.ok(isMeasured(result) && result.error === undefined && result.completed > 0, `${row.label}: ${JSON.stringify(result)}`);
      }
    }
  });

  test('the polling part got 304s from ajax-polling and from the bare server', () => {
    const { ours, bare } = written.results.polling;
    for (const result of [ours, bare]) {
      assert.ok(isMeasured(result) && result.error === undefined, JSON.stringify(result));
      assert.ok((result.statuses['304'] ?? 0) > 0, JSON.stringify(result.statuses));
    }
  });

  test('the report prints the machine, the parameters, every target and a chart of every technique', () => {
    const { markdown, svg } = written;
    assert.match(markdown, /^# Benchmark results/);
    assert.match(markdown, /Node v\d+/);
    assert.match(markdown, /CPUs/);
    assert.equal(checkTargets(written.results, TINY).length, (markdown.match(/^\| (WebSocket echo|one message|memory per|ajax-polling 304)/gm) ?? []).length);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    for (const technique of TECHNIQUES) assert.ok(svg.includes(`>${technique}</text>`), technique);
  });
});

describe('the benchmark when a folder is missing or fails', () => {
  test('a missing folder is "not measured: <folder> missing"; a failing one is reported, not thrown', async () => {
    const failing: Launcher = {
      description: 'test',
      launch: (request) =>
        request.role === 'server' && request.kind === 'long-polling' ? Promise.reject(new Error('boom')) : inProcess.launch(request),
    };
    const results = await runBench({
      launcher: failing,
      params: { ...TINY, fanout: { ...TINY.fanout, rounds: 1 } },
      parts: ['chat', 'fanout', 'polling'],
      techniques: ['ajax-polling', 'long-polling', 'sse'],
      folderExists: (technique) => technique !== 'ajax-polling',
    });
    const reasons = results.chat.map((row) => ('notMeasured' in row ? row.notMeasured : 'measured'));
    assert.deepEqual(reasons, ['ajax-polling missing', 'long-polling failed: boom', 'measured']);
    assert.deepEqual(results.polling.ours, { notMeasured: 'ajax-polling missing' });
    const markdown = renderMarkdown(results, TINY, environment());
    assert.match(markdown, /not measured: ajax-polling missing/);
    assert.match(markdown, /\| ajax-polling 304 path ≥ 0\.8 × bare node:http \| not measured: ajax-polling missing \| not measured \|/);
    assert.match(renderSvg(results, environment()), /not measured: ajax-polling, long-polling/);
  });

  test('without the websocket folder the echo part still measures ws and raw TCP', async () => {
    const results = await runBench({
      launcher: inProcess,
      params: { ...TINY, echo: { ...TINY.echo, payloads: [{ bytes: 16, window: 1 }] } },
      parts: ['echo'],
      folderExists: (technique) => technique !== 'websocket',
    });
    assert.equal(results.echo.length, 2);
    for (const row of results.echo) {
      assert.deepEqual(row.ours, { notMeasured: 'websocket missing' });
      assert.ok(isMeasured(row.ws) && isMeasured(row.raw));
    }
    const targets = checkTargets(results, TINY);
    assert.ok(targets.filter((t) => t.target.startsWith('WebSocket echo')).every((t) => t.met === null));
  });
});

describe('child processes', () => {
  test('a server and a load generator in their own processes answer calls and are gone after stop()', async () => {
    const launcher = childProcesses(4_096);
    const server = await launcher.launch({ role: 'server', kind: 'bare-304', options: {} });
    const load = await launcher.launch({ role: 'load' });
    try {
      const stats = await server.call<{ rssBytes: number; collected: boolean }>('stats', { collect: true });
      assert.ok(stats.rssBytes > 0);
      assert.equal(stats.collected, true, 'children run with --expose-gc');
      const result = await load.call<{ statuses: Record<string, number> }>('requests', {
        port: server.port, path: '/messages?since=0', connections: 1, warmupMs: 10, durationMs: 50,
      });
      assert.ok((result.statuses['304'] ?? 0) > 0);
      await assert.rejects(load.call('nonsense'), /no such call: nonsense/);
    } finally {
      await load.stop();
      await server.stop();
    }
    for (const pid of [server.pid!, load.pid!]) assert.throws(() => process.kill(pid, 0), /ESRCH/, `process ${pid} is gone`);
  });

  test('node flags reach the server process: the memory flags keep the young generation small; a bad flag is an error', async () => {
    const launcher = childProcesses(4_096);
    const server = await launcher.launch({ role: 'server', kind: 'bare-upgrade', options: {}, nodeFlags: MEMORY_NODE_FLAGS });
    try {
      const stats = await server.call<{ newSpaceBytes: number; collected: boolean }>('stats', { collect: true });
      assert.equal(stats.collected, true);
      assert.ok(stats.newSpaceBytes <= 2 * 1_048_576, `young generation ${stats.newSpaceBytes} B`);
    } finally {
      await server.stop();
    }
    await assert.rejects(launcher.launch({ role: 'server', kind: 'bare-upgrade', options: {}, nodeFlags: ['--no-such-node-flag'] }), /exited/);
  });

  test('a server that cannot start is an error naming why, and leaves no process', async () => {
    await assert.rejects(childProcesses(4_096).launch({ role: 'server', kind: 'no-such-folder' as 'sse', options: {} }), /no-such-folder|exited/);
  });
});

describe('parts of the load generators', () => {
  const response = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n' +
    'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\n' +
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc' +
    'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' +
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi';

  test('ResponseReader reads chunked, 304, 100-continue, Content-Length and a 101 at every split', () => {
    const bytes = Buffer.from(response, 'latin1');
    for (let split = 0; split <= bytes.length; split++) {
      const seen: string[] = [];
      let body = '';
      const reader = new ResponseReader({
        head: (head: ResponseHead) => seen.push(`head ${head.status}`),
        body: (piece) => (body += piece.toString('latin1')),
        end: (head) => {
          seen.push(`end ${head.status} ${body}`);
          body = '';
        },
        upgrade: (_head, rest) => seen.push(`upgrade ${rest.toString('latin1')}`),
      });
      for (const piece of [bytes.subarray(0, split), bytes.subarray(split)]) if (!reader.upgraded && piece.length > 0) reader.push(piece);
      assert.deepEqual(seen.slice(0, 9), [
        'head 200', 'end 200 hello, world', 'head 304', 'end 304 ', 'head 200', 'end 200 abc', 'head 200', 'end 200 ', 'head 101',
      ], `split at ${split}`);
      assert.match(seen[9] ?? '', /^upgrade /, `split at ${split}`);
    }
  });

  test('ResponseReader reads a body without length until the connection closes, and refuses nonsense', () => {
    let body = '';
    new ResponseReader({ body: (piece) => (body += piece) }).push(Buffer.from('HTTP/1.0 200 OK\r\n\r\nuntil close'));
    assert.equal(body, 'until close');
    assert.throws(() => new ResponseReader({}).push(Buffer.from('SSH-2.0\r\n\r\n')), /not an HTTP response/);
    assert.throws(() => new ResponseReader({}).push(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')), /bad chunk size/);
    assert.throws(() => new ResponseReader({}).push(Buffer.alloc(70_000, 0x41)), /too large/);
    const upgraded = new ResponseReader({});
    upgraded.push(Buffer.from('HTTP/1.1 101 Switching Protocols\r\n\r\n'));
    assert.throws(() => upgraded.push(Buffer.from('x')), /upgraded/);
    assert.equal(getRequest('/a', { X: '1' }), 'GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\nX: 1\r\n\r\n');
  });

  test('the SSE and NDJSON decoders take any chunking and skip what is not a message', () => {
    const sse = ': hi\r\nretry: 1000\r\n\r\nevent: ping\ndata: {"time":1}\n\nid: 1\ndata: {"id":1,\ndata: "text":"a"}\n\ndata\n\n';
    for (let split = 0; split <= sse.length; split++) {
      const decoder = new SseDecoder();
      const out = [...decoder.push(sse.slice(0, split)), ...decoder.push(sse.slice(split))];
      assert.deepEqual(out, ['{"id":1,\n"text":"a"}', ''], `split at ${split}`);
    }
    const lines = new LineDecoder();
    assert.deepEqual([...lines.push('{"id":1}\n\n{"id"'), ...lines.push(':2}\n')], ['{"id":1}', '{"id":2}']);
  });

  test('ServerFrameReader reads 7-, 16- and 64-bit lengths at every split and refuses masked frames', () => {
    const frames = [Buffer.from([0x81, 0x02, 0x68, 0x69]), Buffer.concat([Buffer.from([0x02, 0x7e, 0x01, 0x00]), Buffer.alloc(256, 1)]),
      Buffer.concat([Buffer.from([0x80, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]), Buffer.alloc(65_536, 2)])];
    const bytes = Buffer.concat(frames);
    for (const split of [0, 1, 3, 4, 5, 7, 300, 262, 270, bytes.length]) {
      const reader = new ServerFrameReader();
      const out = [...reader.push(bytes.subarray(0, split)), ...reader.push(bytes.subarray(split))];
      assert.deepEqual(out.map((f) => [f.fin, f.opcode, f.payload.length]), [[true, 1, 2], [false, 2, 256], [true, 0, 65_536]], `split at ${split}`);
    }
    assert.throws(() => new ServerFrameReader().push(maskedFrame(OPCODE.TEXT, Buffer.from('x'))), /must not be masked/);
    const big = maskedFrame(OPCODE.BINARY, Buffer.alloc(70_000), Buffer.from([1, 2, 3, 4]));
    assert.deepEqual([...big.subarray(0, 2)], [0x82, 0xff]);
    assert.equal(big.length, 10 + 4 + 70_000);
  });

  test('load generators report an error instead of a figure when the server is wrong', async () => {
    const server = await startBenchServer('tcp-echo');
    try {
      // An upgrade to a TCP echo gets its own request back, which is no 101.
      const echo = await echoLoad({ port: server.port, mode: 'websocket', path: '/echo', connections: 1, payloadBytes: 16, window: 1, warmupMs: 10, durationMs: 20 });
      assert.match(echo.error ?? '', /not an HTTP response/);
    } finally {
      await server.close();
    }
    const upgrade = await startBenchServer('bare-upgrade');
    try {
      // A 101 but no echo: nothing completes; a GET answered 426 has no ETag.
      const echo = await echoLoad({ port: upgrade.port, mode: 'websocket', path: '/echo', connections: 1, payloadBytes: 16, window: 1, warmupMs: 10, durationMs: 20 });
      assert.equal(echo.completed, 0);
      const requests = await requestsLoad({ port: upgrade.port, path: '/', connections: 1, warmupMs: 10, durationMs: 20 });
      assert.match(requests.error ?? '', /no ETag/);
    } finally {
      await upgrade.close();
    }
  });

  test('the median of repeated runs is the middle rate, unless one failed', () => {
    const run = (perSecond: number, error?: string) => ({ perSecond, completed: 1, seconds: 1, error });
    assert.equal((medianRun([run(3), run(1), run(2)]) as { perSecond: number }).perSecond, 2);
    assert.equal((medianRun([run(3), run(1)]) as { perSecond: number }).perSecond, 1);
    assert.deepEqual(medianRun([run(3), { notMeasured: 'x' }]), { notMeasured: 'x' });
    assert.equal((medianRun([run(3), run(1, 'bad')]) as { error?: string }).error, 'bad');
  });

  test('percentiles are nearest-rank; formatting helpers', () => {
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
    assert.equal(percentile([1, 2, 3, 4], 99), 4);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.deepEqual(distribution([3, 1, 2]), { count: 3, p50: 2, p99: 3, max: 3 });
    assert.equal(formatMs(0.5), '0.50 ms');
    assert.equal(formatMs(55.55), '55.5 ms');
    assert.equal(formatMs(1234.4), '1234 ms');
    assert.equal(formatMs(Number.NaN), '–');
    assert.deepEqual([2, 3, 12, 40, 99, 100].map(niceCeiling), [2, 5, 20, 50, 100, 100]);
    assert.equal(escapeXml('<a & "b">'), '&#60;a &#38; &#34;b&#34;&#62;');
  });

  test('command-line options', () => {
    assert.equal(parseArgs([]).params, FULL);
    assert.equal(parseArgs(['--quick']).params, QUICK);
    assert.deepEqual(parseArgs(['--only=chat,echo', '--techniques=sse', '--no-write']), { params: FULL, parts: ['chat', 'echo'], techniques: ['sse'], write: false });
    assert.throws(() => parseArgs(['--only=nope']), /unknown part nope/);
    assert.throws(() => parseArgs(['--techniques=comet']), /unknown technique comet/);
    assert.throws(() => parseArgs(['--fast']), /unknown option --fast/);
  });
});

function environment() {
  return {
    date: '2026-01-01T00:00:00Z', cpuModel: 'Test CPU', cpuCount: 2, memoryBytes: 2 ** 30, os: 'Linux', node: 'v20.0.0',
    openFiles: { soft: '1024', hard: '4096', children: 4_096 }, processes: 'test', load: '0.00',
  };
}
