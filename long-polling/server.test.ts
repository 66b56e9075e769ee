// GET /subscribe, the long poll: answered at once from the backlog, held until
// a publish or the timeout, forgotten as soon as the client leaves, answered at
// shutdown; and no message lost when clients come and go while messages fly.
// (The shared contract, publish limits included, is in test/contract.test.ts.)
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { startTestServer, rawRequest, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import type { Config } from '../shared/config.ts';
import type { MessageLog } from '../shared/message-log.ts';
import createLongPolling, { type LongPolling } from './server.ts';

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));

const running: RunningServer[] = [];
after(() => Promise.all(running.map((server) => server.close())));

async function start(config: Partial<Config> = {}, log?: MessageLog): Promise<RunningServer & { technique: LongPolling }> {
  const server = await startTestServer(createLongPolling, config, log);
  running.push(server);
  return server as RunningServer & { technique: LongPolling };
}

interface Answer {
  status: number;
  headers: Headers;
  ids: number[];
  body: string;
}

async function subscribe(server: RunningServer, query: string, signal?: AbortSignal): Promise<Answer> {
  const response = await fetch(new URL(`subscribe${query}`, server.url), { signal });
  const body = await response.text();
  const ids = response.status === 200 ? (JSON.parse(body) as { id: number }[]).map((m) => m.id) : [];
  return { status: response.status, headers: response.headers, ids, body };
}

function publish(server: RunningServer, text: string): Promise<Response> {
  return fetch(new URL('publish', server.url), { method: 'POST', body: text });
}

/** Timers keeping this process alive: a held request's timeout must not outlive it. */
const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;

describe('GET /subscribe answers at once when the backlog has something newer', () => {
  test('200 with every message after `since`, oldest first; no `since` means all of them', async () => {
    const server = await start();
    for (const text of ['one', 'two', 'three']) server.log.publish(text);
    const answer = await subscribe(server, '?since=1');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.ids, [2, 3]);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual((await subscribe(server, '')).ids, [1, 2, 3]);
    assert.deepEqual((await subscribe(server, '?random=0.123&since=2')).ids, [3], "the documents' random parameter is ignored");
    assert.equal(server.technique.heldCount, 0);
    assert.equal(server.log.subscriberCount, 0);
  });

  test('no cache or proxy may store an answer (Cache-Control: no-store)', async () => {
    const server = await start({ pollTimeoutMs: 50 });
    server.log.publish('x');
    assert.equal((await subscribe(server, '?since=0')).headers.get('cache-control'), 'no-store');
    assert.equal((await subscribe(server, '?since=1')).headers.get('cache-control'), 'no-store', 'on a 204 too');
  });

  test('a `since` older than the backlog replays what the backlog still holds', async () => {
    const server = await start({ backlog: 3 });
    for (let i = 1; i <= 5; i++) server.log.publish(`m${i}`);
    assert.deepEqual((await subscribe(server, '?since=0')).ids, [3, 4, 5]);
  });
});

describe('GET /subscribe holds the request when there is nothing newer', () => {
  test('a publish ends every held request with the new message', async () => {
    const server = await start();
    server.log.publish('before');
    const polls = [1, 2, 3].map(() => subscribe(server, '?since=1'));
    await waitFor(() => server.technique.heldCount === 3, 5_000, 'three held requests');
    const published = await (await publish(server, 'hello')).json();
    for (const answer of await Promise.all(polls)) {
      assert.equal(answer.status, 200);
      assert.deepEqual(JSON.parse(answer.body), [published]);
    }
    assert.equal(server.technique.heldCount, 0);
    assert.equal(server.log.subscriberCount, 0);
  });

  test('nothing published within POLL_TIMEOUT_MS: 204 with no body, "ask again"', async () => {
    const server = await start({ pollTimeoutMs: 150 });
    const poll = subscribe(server, '?since=0');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'the request to be held');
    const answer = await poll;
    assert.equal(answer.status, 204);
    assert.equal(answer.body, '');
    assert.equal(server.technique.heldCount, 0);
    assert.equal(server.log.subscriberCount, 0);
  });

  test('each held request gets its 204 POLL_TIMEOUT_MS after it came, not when an earlier one times out', async () => {
    const pollTimeoutMs = 300;
    const server = await start({ pollTimeoutMs });
    const first = subscribe(server, '?since=0');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'the first request to be held');
    await new Promise((resolve) => setTimeout(resolve, pollTimeoutMs / 2));
    const sent = performance.now();
    const second = subscribe(server, '?since=0');
    assert.equal((await first).status, 204);
    const answer = await second;
    // A lower bound only: a loaded machine can make it later, never earlier.
    assert.equal(answer.status, 204);
    assert.ok(performance.now() - sent >= pollTimeoutMs, `answered after ${Math.round(performance.now() - sent)} ms`);
    assert.equal(server.technique.heldCount, 0);
  });

  test('a refused publish (413, empty) answers no held request; the next good one does', async () => {
    const server = await start({ maxMessageBytes: 8 });
    const poll = subscribe(server, '?since=0');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'the request to be held');
    assert.equal((await publish(server, 'x'.repeat(9))).status, 413);
    assert.equal((await publish(server, '')).status, 400);
    assert.equal(server.technique.heldCount, 1, 'still held');
    assert.equal((await publish(server, 'ok')).status, 201);
    assert.deepEqual((await poll).ids, [1]);
  });

  test('a cursor ahead of the log (from a previous run) gets only ids above it', async () => {
    const server = await start();
    const poll = subscribe(server, '?since=2');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'the request to be held');
    server.log.publish('1');
    server.log.publish('2');
    assert.equal(server.technique.heldCount, 1, 'ids 1 and 2 are not news to this client');
    server.log.publish('3');
    assert.deepEqual((await poll).ids, [3]);
  });
});

describe('a client that goes away while held is forgotten at once', () => {
  test('200 clients abort while held: nothing is left behind, and later publishes still work', async () => {
    const server = await start();
    const baseline = timers();
    const controllers = Array.from({ length: 200 }, () => new AbortController());
    const polls = controllers.map((controller) => subscribe(server, '?since=0', controller.signal));
    await waitFor(() => server.technique.heldCount === 200, 30_000, '200 held requests');
    assert.equal(server.log.subscriberCount, 200);
    // One timer for all of them (set for the oldest deadline), not one each.
    assert.ok(timers() >= baseline + 1 && timers() < baseline + 10, `one timeout for every held request, not ${timers() - baseline}`);

    for (const controller of controllers) controller.abort();
    const results = await Promise.allSettled(polls);
    assert.ok(results.every((result) => result.status === 'rejected'), 'every fetch was aborted');
    await waitFor(() => server.technique.heldCount === 0, 10_000, 'every aborted request to be dropped');
    assert.equal(server.log.subscriberCount, 0, 'unsubscribed from the log');
    // ≤: keep-alive timers of earlier connections may have run out meanwhile.
    assert.ok(timers() <= baseline, 'their timeouts cleared');

    // Nobody is subscribed, so this publish writes to no closed response.
    assert.equal((await publish(server, 'after')).status, 201);
    const poll = subscribe(server, '?since=1');
    await waitFor(() => server.technique.heldCount === 1, 5_000, 'a new held request');
    await publish(server, 'later');
    assert.deepEqual((await poll).ids, [2]);
  });
});

describe('bad input', () => {
  test('a `since` that is not one non-negative integer is 400 with a plain-text line, and nothing is held', async () => {
    const server = await start();
    for (const query of ['?since=-1', '?since=abc', '?since=1.5', '?since=', '?since=1&since=2', '?since=0x10', '?since=99999999999999999999']) {
      const answer = await subscribe(server, query);
      assert.equal(answer.status, 400, query);
      assert.match(answer.headers.get('content-type') ?? '', /^text\/plain/, query);
      assert.match(answer.body, /since must be a non-negative integer/, query);
    }
    assert.equal(server.technique.heldCount, 0);
    assert.equal(server.log.subscriberCount, 0);
  });

  test('methods other than GET and HEAD on /subscribe are 405 with Allow', async () => {
    const server = await start();
    const answer = await rawRequest(server.port, 'POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    assert.equal(answer.status, 405);
    assert.equal(answer.headers.allow, 'GET, HEAD');
    assert.equal(server.technique.heldCount, 0);
  });
});

describe('shutdown', () => {
  test('every held request is answered 204 (and its connection closed) before the server closes', async () => {
    const server = await start();
    const polls = [1, 2, 3].map(() => subscribe(server, '?since=0'));
    await waitFor(() => server.technique.heldCount === 3, 5_000, 'three held requests');
    await server.close();
    for (const answer of await Promise.all(polls)) {
      assert.equal(answer.status, 204);
      assert.equal(answer.headers.get('connection'), 'close');
    }
    assert.equal(server.technique.heldCount, 0);
    assert.equal(server.log.subscriberCount, 0);
  });

  test('a poll arriving after shutdown() began is answered 204 at once, not held', async () => {
    const server = await start();
    server.technique.shutdown();
    const answer = await rawRequest(server.port, 'GET /subscribe?since=0 HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(answer.status, 204);
    assert.equal(answer.headers.connection, 'close');
    assert.equal(server.technique.heldCount, 0);
    assert.equal(server.log.subscriberCount, 0);
  });

  /** Runs the folder as `npx tsx long-polling/server.ts` does, with an IPC channel. */
  async function runFolder(): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null> }> {
    const child = spawn(process.execPath, [TSX, SERVER], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', POLL_TIMEOUT_MS: '60000' },
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let seen = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk) => {
        seen += chunk;
        const match = /http:\/\/127\.0\.0\.1:\d+\//.exec(seen);
        if (match) resolve(match[0]);
      });
      void exited.then(() => reject(new Error(`exited before listening: ${seen}`)));
    });
    return { child, url, exited };
  }

  /** `GET /subscribe?since=0` on a connection of its own: `sent` once written, `answer` with the whole response. */
  function heldPoll(url: URL): { sent: Promise<void>; answer: Promise<string> } {
    const socket = net.connect(Number(url.port), url.hostname);
    const sent = new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.write('GET /subscribe?since=0 HTTP/1.1\r\nHost: x\r\n\r\n', () => resolve());
    });
    const answer = new Promise<string>((resolve, reject) => {
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.once('error', reject);
      socket.once('close', () => resolve(text));
    });
    return { sent, answer };
  }

  for (const [name, stop] of [
    ['SIGINT', (child: ChildProcess) => child.kill('SIGINT')],
    ["the documents' IPC message 'shutdown'", (child: ChildProcess) => child.send('shutdown')],
  ] as const) {
    test(`${name}: the process answers its held request 204 and exits 0`, async () => {
      const { child, url, exited } = await runFolder();
      const held = heldPoll(new URL(url));
      // The held request cannot be observed from here, and a fixed wait is not
      // enough on a loaded machine (a signal before the server has read it
      // closes the listener and the poll is refused). So: once its bytes are
      // sent, one more request on a new connection, answered at once. The
      // server accepts and reads connections in order, so when that answer
      // comes back the poll has been read, and is held.
      await held.sent;
      assert.equal((await fetch(new URL('subscribe?since=-1', url))).status, 400);
      stop(child);
      assert.match(await held.answer, /^HTTP\/1\.1 204 /);
      assert.equal(await exited, 0);
    });
  }
});

describe('no message is lost between polls', () => {
  test('clients that abort and reconnect at random while messages are published at random each get every id once, in order', async () => {
    const server = await start({ pollTimeoutMs: 200 });
    const MESSAGES = 150;
    const CLIENTS = 20;
    const deadline = Date.now() + 60_000;
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    let aborted = 0;

    /** subscribe?since=last in a loop; a third of the polls are aborted at a random moment. */
    async function client(): Promise<number[]> {
      const ids: number[] = [];
      while (ids.length < MESSAGES && Date.now() < deadline) {
        const controller = new AbortController();
        const abort = Math.random() < 0.33 ? setTimeout(() => controller.abort(), Math.random() * 30) : undefined;
        try {
          // Deliberately naive: whatever comes is appended, so a duplicate or a
          // message out of order would show in the comparison below.
          const answer = await subscribe(server, `?since=${ids.at(-1) ?? 0}`, controller.signal);
          assert.ok(answer.status === 200 || answer.status === 204, `status ${answer.status}`);
          ids.push(...answer.ids);
        } catch (error) {
          if (!controller.signal.aborted) throw error;
          aborted++;
          await pause(Math.random() * 20); // reconnect after a random moment away
        } finally {
          clearTimeout(abort);
        }
      }
      return ids;
    }

    const clients = Array.from({ length: CLIENTS }, () => client());
    for (let i = 1; i <= MESSAGES; i++) {
      assert.equal((await publish(server, `message ${i}`)).status, 201);
      await pause(Math.random() * 10);
    }
    const expected = Array.from({ length: MESSAGES }, (_, i) => i + 1);
    for (const ids of await Promise.all(clients)) assert.deepEqual(ids, expected);
    assert.ok(aborted > 0, 'some polls were aborted');
    await waitFor(() => server.technique.heldCount === 0 && server.log.subscriberCount === 0, 5_000, 'nothing held');
  });
});
