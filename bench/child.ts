/**
 * A benchmark child process: `child.ts server <kind> <options JSON>` runs one
 * server under test, `child.ts load` one load generator. Started by
 * bench/remote.ts, it answers `{id, method, params}` messages over IPC with
 * `{id, result}` or `{id, error}`, and exits on `exit` or when the orchestrator
 * goes away (IPC disconnect), so no process outlives a run.
 */
import { invoke, loadTarget, serverTarget, type ChildMessage, type Target } from './remote.ts';
import type { ServerKind, ServerOptions } from './servers.ts';

const send = (message: ChildMessage): void => {
  process.send?.(message);
};

async function main(): Promise<void> {
  const [role, kind, options] = process.argv.slice(2);
  let target: Target;
  try {
    target = role === 'server' ? await serverTarget(kind as ServerKind, JSON.parse(options ?? '{}') as ServerOptions) : loadTarget();
  } catch (error) {
    send({ failed: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
  const exit = async (): Promise<never> => {
    await Promise.race([target.dispose(), new Promise((resolve) => setTimeout(resolve, 1_000))]);
    process.exit(0);
  };
  process.on('disconnect', () => void exit());
  process.on('message', (message: { id: number; method: string; params: unknown }) => {
    if (message.method === 'exit') return void exit();
    invoke(target, message.method, message.params).then(
      (result) => send({ id: message.id, result: result ?? null }),
      (error: unknown) => send({ id: message.id, error: error instanceof Error ? error.message : String(error) }),
    );
  });
  send({ ready: target.ready });
}

void main();
