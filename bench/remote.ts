/**
 * The orchestrator's view of the processes it drives: a server under test or a
 * load generator, each a "target" answering named calls. In a real run each
 * target lives in its own child process (bench/child.ts) and calls travel over
 * IPC; the smoke test runs the same targets in its own process, so every code
 * path but the spawn is exercised in a few seconds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { echoLoad, LoadSession, requestsLoad, type EchoParams, type OpenParams, type RequestsParams, type RoundParams, type RunParams } from './load.ts';
import { startBenchServer, type ServerKind, type ServerOptions } from './servers.ts';

export type Handlers = Record<string, (params: never) => unknown>;

export interface Target {
  /** Sent to the orchestrator once the target is ready (a server's port). */
  ready: { port?: number };
  handlers: Handlers;
  dispose(): Promise<void>;
}

export async function serverTarget(kind: ServerKind, options: ServerOptions): Promise<Target> {
  const server = await startBenchServer(kind, options);
  return {
    ready: { port: server.port },
    handlers: { stats: (params: { collect: boolean }) => server.stats(params.collect) },
    dispose: () => server.close(),
  };
}

export function loadTarget(): Target {
  const session = new LoadSession();
  return {
    ready: {},
    handlers: {
      open: (params: OpenParams) => session.open(params),
      run: (params: RunParams) => session.run(params),
      round: (params: RoundParams) => session.round(params),
      publish: (params: { port: number; count: number }) => session.publish(params.port, params.count),
      close: () => session.close(),
      echo: (params: EchoParams) => echoLoad(params),
      requests: (params: RequestsParams) => requestsLoad(params),
    },
    dispose: async () => session.close(),
  };
}

export interface Remote {
  readonly pid: number | undefined;
  readonly port: number | undefined;
  call<T>(method: string, params?: unknown): Promise<T>;
  /** Ends the target; safe to call twice. */
  stop(): Promise<void>;
}

export type LaunchRequest =
  | {
      role: 'server';
      kind: ServerKind;
      options: ServerOptions;
      /**
       * Extra flags for the server's `node` (V8 flags such as bench.ts's
       * MEMORY_NODE_FLAGS), put before the script. Ignored in one process.
       */
      nodeFlags?: readonly string[];
    }
  | { role: 'load' };

export interface Launcher {
  launch(request: LaunchRequest): Promise<Remote>;
  /** What the orchestrator prints about how the processes were run. */
  readonly description: string;
}

/** Targets in this process: for the smoke test. */
export const inProcess: Launcher = {
  description: 'in one process (smoke test)',
  async launch(request) {
    const target = request.role === 'server' ? await serverTarget(request.kind, request.options) : loadTarget();
    let stopped: Promise<void> | undefined;
    return {
      pid: process.pid,
      port: target.ready.port,
      call: async <T>(method: string, params?: unknown) => (await invoke(target, method, params)) as T,
      stop: () => (stopped ??= target.dispose()),
    };
  },
};

export async function invoke(target: Target, method: string, params: unknown): Promise<unknown> {
  const handler = target.handlers[method] as ((params: unknown) => unknown) | undefined;
  if (!handler) throw new Error(`no such call: ${method}`);
  return handler(params);
}

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
/** Start-up includes compiling TypeScript: generous on a loaded machine. */
const READY_TIMEOUT_MS = 30_000;
const CALL_TIMEOUT_MS = 180_000;
const EXIT_GRACE_MS = 3_000;

/**
 * Targets in child processes: `node --expose-gc [nodeFlags] --import tsx bench/child.ts …`,
 * started through `sh` to raise the open-files limit first (`ulimit -n`, up to
 * the hard limit) so that 5,000 connections fit.
 */
export function childProcesses(fdLimit: number): Launcher {
  return {
    description: `each server and each load generator in its own process: node --expose-gc --import tsx, ulimit -n ${fdLimit}`,
    launch: (request) => spawnChild(request, fdLimit),
  };
}

async function spawnChild(request: LaunchRequest, fdLimit: number): Promise<Remote> {
  const args = request.role === 'server' ? ['server', request.kind, JSON.stringify(request.options)] : ['load'];
  const nodeFlags = request.role === 'server' ? (request.nodeFlags ?? []) : [];
  const script = 'ulimit -n "$1" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; shift; exec "$@"';
  const child = spawn(
    '/bin/sh',
    ['-c', script, 'sh', String(fdLimit), process.execPath, '--expose-gc', ...nodeFlags, '--import', import.meta.resolve('tsx'), CHILD, ...args],
    { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 0;
  const ready = new Promise<{ port?: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} ${args[1] ?? ''} not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    child.on('message', (message: ChildMessage) => {
      if ('ready' in message) {
        clearTimeout(timer);
        resolve(message.ready);
      } else if ('failed' in message) {
        clearTimeout(timer);
        reject(new Error(message.failed));
      } else {
        const call = pending.get(message.id);
        if (!call) return;
        pending.delete(message.id);
        clearTimeout(call.timer);
        if ('error' in message) call.reject(new Error(message.error));
        else call.resolve(message.result);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${args.slice(0, 2).join(' ')} exited: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      for (const call of pending.values()) {
        clearTimeout(call.timer);
        call.reject(new Error(`the ${args[0]} process exited: ${stderr.trim().split('\n').pop() ?? ''}`));
      }
      pending.clear();
    });
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= stopChild(child, exited));
  let info: { port?: number };
  try {
    info = await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    pid: child.pid,
    port: info.port,
    stop,
    call<T>(method: string, params?: unknown): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${method} took over ${CALL_TIMEOUT_MS} ms`));
        }, CALL_TIMEOUT_MS);
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
        child.send({ id, method, params }, (error) => {
          if (!error) return;
          clearTimeout(timer);
          pending.delete(id);
          reject(error);
        });
      });
    },
  };
}

/** Asks the child to exit; kills it if it has not within the grace period. */
async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // The child may exit between the check and the send (EPIPE): the exit is what we wanted.
  if (child.connected) child.send({ id: -1, method: 'exit' }, () => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

export type ChildMessage =
  | { ready: { port?: number } }
  | { failed: string }
  | { id: number; result: unknown }
  | { id: number; error: string };
