/**
 * `npm run bench` (a few minutes) or `npm run bench -- --quick` (under a
 * minute): measures every technique folder, prints the machine, the
 * parameters and the results, checks the targets (a miss is reported, never a
 * failure), and rewrites bench/results.md and bench/results.svg.
 *
 *   --quick             smaller levels and shorter windows
 *   --only=chat,echo    some parts only (chat, fanout, echo, polling)
 *   --techniques=sse,websocket   some folders only (chat and fan-out)
 *   --no-write          print, leave results.md / results.svg alone
 *
 * Method and caveats: bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { isEntryPoint } from '../shared/lifecycle.ts';
import { FULL, PARTS, QUICK, runBench, type BenchParams, type BenchResults, type Part } from './bench.ts';
import { childProcesses, type Launcher } from './remote.ts';
import { isTechnique } from './servers.ts';
import { TECHNIQUES, type Technique } from './subscribers.ts';
import { checkTargets, renderMarkdown, renderSvg, type Environment } from './report.ts';

/** Enough for the largest fan-out level (5,000) plus the server's own files. */
export const CHILD_OPEN_FILES = 16_384;

export interface CliOptions {
  params: BenchParams;
  parts: Part[];
  techniques: Technique[];
  write: boolean;
}

export function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { params: FULL, parts: [...PARTS], techniques: [...TECHNIQUES], write: true };
  for (const arg of argv) {
    if (arg === '--quick') options.params = QUICK;
    else if (arg === '--no-write') options.write = false;
    else if (arg.startsWith('--only=')) {
      const parts = arg.slice('--only='.length).split(',');
      for (const part of parts) if (!(PARTS as readonly string[]).includes(part)) throw new Error(`unknown part ${part}: use ${PARTS.join(', ')}`);
      options.parts = parts as Part[];
    } else if (arg.startsWith('--techniques=')) {
      const techniques = arg.slice('--techniques='.length).split(',');
      for (const technique of techniques) if (!isTechnique(technique)) throw new Error(`unknown technique ${technique}: use ${TECHNIQUES.join(', ')}`);
      options.techniques = techniques as Technique[];
    } else throw new Error(`unknown option ${arg}: use --quick, --only=${PARTS.join(',')}, --techniques=${TECHNIQUES.join(',')}, --no-write`);
  }
  return options;
}

export function describeEnvironment(children: number, processes: string): Environment {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown CPU',
    cpuCount: cpus.length,
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    openFiles: { soft: shell('ulimit -n'), hard: shell('ulimit -Hn'), children },
    load: os.loadavg().map((n) => n.toFixed(2)).join(', '),
    processes,
  };
}

function shell(command: string): string {
  try {
    return execFileSync('/bin/sh', ['-c', command], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

export interface Written {
  markdown: string;
  svg: string;
  results: BenchResults;
}

/** The whole command, with the launcher and output directory as parameters (the smoke test passes its own). */
export async function main(
  options: CliOptions,
  launcher: Launcher,
  outputDirectory: URL | undefined,
  progress: (line: string) => void,
): Promise<Written> {
  const env = describeEnvironment(CHILD_OPEN_FILES, launcher.description);
  progress(`bench (${options.params.name}): ${env.cpuModel} × ${env.cpuCount}, ${(env.memoryBytes / 1_024 ** 3).toFixed(1)} GiB, Node ${env.node}, ulimit -n ${env.openFiles.soft}`);
  progress(`parameters: ${JSON.stringify(options.params)}`);
  const results = await runBench({ launcher, params: options.params, parts: options.parts, techniques: options.techniques, progress });
  const markdown = renderMarkdown(results, options.params, env);
  const svg = renderSvg(results, env);
  if (outputDirectory) {
    writeFileSync(new URL('results.md', outputDirectory), markdown);
    writeFileSync(new URL('results.svg', outputDirectory), svg);
  }
  return { markdown, svg, results };
}

if (isEntryPoint(import.meta.url)) {
  let options: CliOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
  const started = performance.now();
  const elapsed = (): string => `${((performance.now() - started) / 1_000).toFixed(0).padStart(4)} s`;
  const written = await main(options, childProcesses(CHILD_OPEN_FILES), options.write ? new URL('./', import.meta.url) : undefined, (line) =>
    console.error(`${elapsed()}  ${line}`),
  );
  console.log(written.markdown);
  const missed = checkTargets(written.results, options.params).filter((check) => check.met === false).length;
  console.error(
    `done in ${((performance.now() - started) / 1_000).toFixed(0)} s; ${missed} target(s) missed` +
      (options.write ? '; wrote bench/results.md and bench/results.svg' : ''),
  );
}
