/**
 * The endpoints, through an independent client (the npm `ws` package) and, where
 * a misbehaving peer is needed, through the raw test client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { rawRequest, startTestServer, waitFor } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import { CHAT_PROTOCOL, createWebSocket, ECHO_MAX_MESSAGE_BYTES, GITHUB_EVENT_INTERVAL_MS } from './server.ts';
import { encodeFrame, Opcode } from './frame.ts';
import { RawClient, upgradeRequest } from './test-client.ts';

const MAX_MESSAGE_BYTES = 1024;

/** A `ws` client that records what it receives. */
class Peer {
  readonly messages: Array<{ data: Buffer; binary: boolean }> = [];
  closeCode: number | undefined;
  /** How many of `messages` nextMessage() has handed out. */
  private taken = 0;
  readonly closed: Promise<number>;
  readonly opened: Promise<void>;

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, binary: boolean) => this.messages.push({ data, binary }));
    this.closed = new Promise((resolve) =>
      socket.on('close', (code: number) => {
        this.closeCode = code;
        resolve(code);
      }),
    );
    this.opened = new Promise((resolve, reject) => {
      socket.on('open', () => resolve());
      socket.on('error', reject);
    });
  }

  static async open(server: RunningServer, path: string, protocols?: string[]): Promise<Peer> {
    const peer = new Peer(new WebSocket(new URL(path, server.url.replace('http', 'ws')), protocols));
    await peer.opened;
    return peer;
  }

  /** Waits until `count` messages have arrived; returns them as JSON. */
  async json(count: number): Promise<Array<Record<string, unknown>>> {
    await waitFor(() => this.messages.length >= count, 5_000, `${count} messages`);
    return this.messages.slice(0, count).map((message) => JSON.parse(message.data.toString()));
  }

  async nextMessage(): Promise<{ data: Buffer; binary: boolean }> {
    const count = this.taken + 1;
    await waitFor(() => this.messages.length >= count || this.closeCode !== undefined, 20_000, 'a message');
    assert.ok(this.messages.length >= count, `closed with ${this.closeCode} instead`);
    return this.messages[this.taken++];
  }
}

describe('interop with the ws package', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createWebSocket, { maxMessageBytes: MAX_MESSAGE_BYTES });
  });
  after(() => server.close());

  test('/echo returns text and binary unchanged at every length boundary, up to 16 MiB', async () => {
    const peer = await Peer.open(server, '/echo');
    for (const length of [0, 1, 125, 126, 127, 65535, 65536, 1024 * 1024]) {
      const text = 'é'.repeat(length >> 1) + 'x'.repeat(length & 1);
      peer.socket.send(text);
      const echoed = await peer.nextMessage();
      assert.equal(echoed.binary, false);
      assert.equal(echoed.data.toString(), text, `text of ${length} bytes`);
      const binary = Buffer.alloc(length, length & 0xff);
      peer.socket.send(binary);
      const back = await peer.nextMessage();
      assert.equal(back.binary, true);
      assert.ok(back.data.equals(binary), `binary of ${length} bytes`);
    }
    const largest = Buffer.alloc(ECHO_MAX_MESSAGE_BYTES, 7);
    peer.socket.send(largest);
    assert.ok((await peer.nextMessage()).data.equals(largest), '16 MiB');
    peer.socket.close(1000);
    assert.equal(await peer.closed, 1000);
  });

  test('/echo closes with 1009 when a message is over 16 MiB', async () => {
    const peer = await Peer.open(server, '/echo');
    peer.socket.send(Buffer.alloc(ECHO_MAX_MESSAGE_BYTES + 1));
    assert.equal(await peer.closed, 1009);
  });

  test('a close code and reason from the client are echoed back', async () => {
    const peer = await Peer.open(server, '/echo');
    peer.socket.close(4000, 'done here');
    assert.equal(await peer.closed, 4000);
  });

  test('no extension is agreed: the offered permessage-deflate is declined', async () => {
    const peer = await Peer.open(server, '/echo');
    assert.equal(peer.socket.extensions, '');
    peer.socket.close();
  });

  test('two chat sockets both receive what one of them sends, as the message JSON with its sender', async () => {
    const alice = await Peer.open(server, `/chat?since=${server.log.lastId}`);
    const bob = await Peer.open(server, `/chat?since=${server.log.lastId}`);
    alice.socket.send('hello from alice');
    const [forAlice] = await alice.json(1);
    const [forBob] = await bob.json(1);
    assert.deepEqual(forAlice, forBob);
    assert.equal(forAlice.text, 'hello from alice');
    assert.equal(forAlice.id, server.log.lastId);
    assert.match(String(forAlice.from), /^[0-9a-f]{4}$/);
    alice.socket.close();
    bob.socket.close();
  });

  test('a message from POST /publish reaches every chat socket', async () => {
    const peer = await Peer.open(server, `/chat?since=${server.log.lastId}`);
    const response = await fetch(new URL('publish', server.url), { method: 'POST', body: 'from HTTP' });
    assert.equal(response.status, 201);
    const [message] = await peer.json(1);
    assert.deepEqual(message, await response.json());
    peer.socket.close();
  });

  test('?since=N replays the messages after N first, then goes live', async () => {
    const first = server.log.publish('one');
    server.log.publish('two');
    server.log.publish('three');
    const peer = await Peer.open(server, `/chat?since=${first.id}`);
    server.log.publish('four');
    const texts = (await peer.json(3)).map((message) => message.text);
    assert.deepEqual(texts, ['two', 'three', 'four']);
    peer.socket.close();
  });

  test('the chat subprotocol is agreed when the client offers it', async () => {
    const peer = await Peer.open(server, `/chat?since=${server.log.lastId}`, ['something-else', CHAT_PROTOCOL]);
    assert.equal(peer.socket.protocol, CHAT_PROTOCOL);
    peer.socket.close();
  });

  test('a binary frame on /chat closes with 1003', async () => {
    const peer = await Peer.open(server, `/chat?since=${server.log.lastId}`);
    peer.socket.send(Buffer.from('binary'));
    assert.equal(await peer.closed, 1003);
  });

  test('a chat message over MAX_MESSAGE_BYTES closes with 1009, and nothing is published', async () => {
    const before = server.log.lastId;
    const peer = await Peer.open(server, `/chat?since=${before}`);
    peer.socket.send('x'.repeat(MAX_MESSAGE_BYTES + 1));
    assert.equal(await peer.closed, 1009);
    assert.equal(server.log.lastId, before);
  });

  test('an empty chat message is not published', async () => {
    const before = server.log.lastId;
    const peer = await Peer.open(server, `/chat?since=${before}`);
    peer.socket.send('');
    peer.socket.send('not empty');
    await peer.json(1);
    assert.equal(server.log.lastId, before + 1);
    peer.socket.close();
  });

  test('/githubEvents sends GitHub-shaped event objects as JSON text frames, the first at once', async () => {
    const peer = await Peer.open(server, '/githubEvents');
    const [event] = await peer.json(1);
    assert.deepEqual(Object.keys(event).sort(), ['actor', 'created_at', 'id', 'payload', 'public', 'repo', 'type']);
    assert.equal(typeof event.id, 'string');
    assert.ok(!Number.isNaN(Date.parse(String(event.created_at))));
    peer.socket.close();
    await peer.closed;
  });
});

describe('/githubEvents on its timer', () => {
  test('every GITHUB_EVENT_INTERVAL_MS every listener gets the same next event', async (t) => {
    // Only setInterval is mocked: the feed's timer advances when the test says so.
    t.mock.timers.enable({ apis: ['setInterval'] });
    const server = await startTestServer(createWebSocket);
    try {
      const peers = [await Peer.open(server, '/githubEvents'), await Peer.open(server, '/githubEvents')];
      await Promise.all(peers.map((peer) => peer.json(1)));
      t.mock.timers.tick(GITHUB_EVENT_INTERVAL_MS);
      const [first, second] = await Promise.all(peers.map((peer) => peer.json(2)));
      assert.deepEqual(first[1], second[1], 'the same event to everybody');
      assert.notEqual(first[1].id, first[0].id);
      assert.notEqual(first[1].type, first[0].type, 'the next sample');
      for (const peer of peers) peer.socket.close();
      await Promise.all(peers.map((peer) => peer.closed));
    } finally {
      await server.close();
    }
  });
});

describe('the handshake over HTTP', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestServer(createWebSocket, { allowedOrigins: ['https://friend.example'] });
  });
  after(() => server.close());

  test('a malformed since is 400 and no upgrade', async () => {
    for (const since of ['abc', '-1', '1.5']) {
      const response = await rawRequest(server.port, upgradeRequest(`/chat?since=${since}`));
      assert.equal(response.status, 400, since);
      assert.match(response.body, /since/);
    }
  });

  test('a foreign Origin is 403; the server’s own and an allowed one are 101', async () => {
    const own = `http://127.0.0.1`; // the Host the raw request sends
    assert.equal((await rawRequest(server.port, upgradeRequest('/echo', { Origin: 'http://evil.example' }))).status, 403);
    for (const origin of [own, 'https://friend.example']) {
      const client = await RawClient.connect(server.port, upgradeRequest('/echo', { Origin: origin }));
      assert.equal(client.status, 101, origin);
      client.end();
    }
  });

  test('a wrong version is 426 with Sec-WebSocket-Version: 13', async () => {
    const request = upgradeRequest('/echo').replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 8');
    const response = await rawRequest(server.port, request);
    assert.equal(response.status, 426);
    assert.equal(response.headers['sec-websocket-version'], '13');
  });

  test('an upgrade over HTTP/1.0 is 400', async () => {
    const request = upgradeRequest('/echo').replace('HTTP/1.1', 'HTTP/1.0');
    assert.equal((await rawRequest(server.port, request)).status, 400);
  });

  test('an unknown path is 404', async () => {
    assert.equal((await rawRequest(server.port, upgradeRequest('/nowhere'))).status, 404);
  });

  test('a plain GET on a WebSocket endpoint (no Upgrade header) is a malformed handshake: 400', async () => {
    for (const path of ['/chat', '/echo', '/githubEvents']) {
      const response = await rawRequest(server.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(response.status, 400);
      assert.match(response.body, /Upgrade: websocket/);
    }
  });

  test('frames sent together with the handshake are read', async () => {
    const frame = Buffer.from('818537fa213d7f9f4d5158', 'hex'); // "Hello", §5.7
    const client = await RawClient.connect(server.port, Buffer.concat([Buffer.from(upgradeRequest('/echo')), frame]));
    assert.equal((await client.nextMessage())?.data.toString(), 'Hello');
    client.end();
  });
});

describe('a burst of frames from one chat client', () => {
  /**
   * Opens a sender and a second chat socket on a server with `maxMessageBytes`,
   * has the sender send `texts` (through `send`), and checks that every one was
   * published and reached both sockets once, in order, with no close.
   */
  async function burst(maxMessageBytes: number, texts: string[], send: (sender: WebSocket) => void): Promise<void> {
    const server = await startTestServer(createWebSocket, { maxMessageBytes });
    try {
      const sender = await Peer.open(server, '/chat');
      const other = await Peer.open(server, '/chat');
      send(sender.socket);
      for (const peer of [sender, other]) {
        await waitFor(() => peer.messages.length >= texts.length || peer.closeCode !== undefined, 20_000, 'the burst');
        assert.equal(peer.closeCode, undefined, 'not closed');
        const received = peer.messages.map((message) => JSON.parse(message.data.toString()) as { id: number; text: string });
        assert.deepEqual(
          received.map((message) => message.text),
          texts,
        );
        assert.deepEqual(
          received.map((message) => message.id),
          texts.map((_, i) => i + 1),
        );
      }
      assert.equal(server.log.lastId, texts.length, 'every frame was published');
      sender.socket.close();
      other.socket.close();
      await Promise.all([sender.closed, other.closed]);
    } finally {
      await server.close();
    }
  }
  const sendEach = (texts: string[]) => (socket: WebSocket) => {
    for (const text of texts) socket.send(text);
  };
  const numbered = (count: number, length: number) =>
    Array.from({ length: count }, (_, i) => `m${i}`.padEnd(length, '.'));

  test('50 small frames with MAX_MESSAGE_BYTES=100: all published, echoed to the sender and to the others, in order', async () => {
    const texts = Array.from({ length: 50 }, (_, i) => `m${i}`);
    await burst(100, texts, sendEach(texts));
  });

  test('600 frames of 100 bytes with MAX_MESSAGE_BYTES=4096', async () => {
    const texts = numbered(600, 100);
    await burst(4096, texts, sendEach(texts));
  });

  test('200 frames of 900 bytes with MAX_MESSAGE_BYTES=1000 (several TCP reads)', async () => {
    const texts = numbered(200, 900);
    await burst(1000, texts, sendEach(texts));
  });

  test('600 frames of 100 bytes in a single TCP write (one read on the server)', async () => {
    const texts = numbered(600, 100);
    const frames = Buffer.concat(texts.map((text) => encodeFrame(Opcode.TEXT, Buffer.from(text), { maskKey: randomBytes(4) })));
    // Below the 64 KiB node reads at a time, so the server handles them in one corked batch.
    assert.ok(frames.length < 64 * 1024);
    await burst(4096, texts, (sender) => (sender as unknown as { _socket: Socket })._socket.write(frames));
  });
});

describe('liveness, backpressure and shutdown', () => {
  test('the server pings every HEARTBEAT_MS and drops a peer that has not answered by the next ping', async () => {
    // Long enough that a busy machine still gets the polite peer's pong back in time.
    const server = await startTestServer(createWebSocket, { heartbeatMs: 250 });
    try {
      const silent = await RawClient.connect(server.port); // reads, never answers
      const polite = await Peer.open(server, '/echo'); // ws answers pings by itself
      await silent.closed;
      assert.equal(silent.frames[0]?.opcode, Opcode.PING);
      assert.ok(!silent.frames.some((frame) => frame.opcode === Opcode.CLOSE), 'cut, not closed: it would not answer');
      // The polite peer has answered every ping meanwhile and is still there.
      polite.socket.send('still here');
      assert.equal((await polite.nextMessage()).data.toString(), 'still here');
      polite.socket.close();
    } finally {
      await server.close();
    }
  });

  test('a peer reading a long answer slowly is not dropped for a ping stuck behind that answer', async () => {
    // Our ping waits behind 16 MiB of echo that the peer takes 64 KiB at a time,
    // so no pong can come back within one interval; the bytes it takes show it
    // is there. (It never answers pings at all: a raw client.)
    const server = await startTestServer(createWebSocket, { heartbeatMs: 200 });
    try {
      const slow = await RawClient.connect(server.port);
      slow.socket.on('data', () => {
        slow.socket.pause();
        setTimeout(() => slow.socket.resume(), 20);
      });
      const payload = randomBytes(16 * 1024 * 1024);
      slow.sendFrame(Opcode.BINARY, payload);
      const echoed = await Promise.race([slow.nextMessage(), slow.closed.then(() => undefined)]);
      assert.ok(echoed, 'dropped before the echo arrived');
      assert.ok(echoed.data.equals(payload));
      assert.ok(slow.frames.some((frame) => frame.opcode === Opcode.PING), 'pinged meanwhile');
      // With nothing more to take and no pong, it is dropped like any silent peer.
      await slow.closed;
    } finally {
      await server.close();
    }
  });

  test('a replay far larger than the unsent-bytes limit is delivered whole: the peer asked for it', async () => {
    const server = await startTestServer(createWebSocket, { maxMessageBytes: MAX_MESSAGE_BYTES, backlog: 4000 });
    try {
      // 4000 messages of 1 KiB: about 4 MiB of replay against a 16 KiB limit.
      for (let i = 0; i < 4000; i++) server.log.publish(String(i).padEnd(MAX_MESSAGE_BYTES, '.'));
      const peer = await Peer.open(server, '/chat?since=0');
      await waitFor(() => peer.messages.length === 4000 || peer.closeCode !== undefined, 20_000, 'the replay');
      assert.equal(peer.messages.length, 4000);
      peer.socket.close();
    } finally {
      await server.close();
    }
  });

  test('a chat peer that stops reading is cut once its unsent bytes pass the limit; the others go on', async () => {
    const server = await startTestServer(createWebSocket, { maxMessageBytes: MAX_MESSAGE_BYTES });
    try {
      const stuck = await RawClient.connect(server.port, upgradeRequest('/chat'));
      stuck.socket.pause(); // stop reading: the kernel buffers fill, then the server's queue grows
      const reader = await Peer.open(server, `/chat?since=${server.log.lastId}`);
      // A paused socket does not see its own end, so watch the server let go of it:
      // each chat socket is one subscriber of the log.
      assert.equal(server.log.subscriberCount, 2);
      let published = 0;
      // Publish until the stuck peer is cut, in batches so its 'close' can run between them.
      // The reader drains each batch before the next one, so on a busy machine it never falls
      // a whole limit behind itself: only the peer that stopped reading may be cut.
      while (server.log.subscriberCount === 2 && published < 100_000) {
        for (let i = 0; i < 500; i++, published++) server.log.publish('x'.repeat(MAX_MESSAGE_BYTES));
        await waitFor(() => reader.messages.length === published || reader.closeCode !== undefined, 20_000, 'the reader drained a batch');
      }
      assert.equal(reader.closeCode, undefined, 'the reader that kept reading is still open');
      assert.equal(server.log.subscriberCount, 1, 'the stuck peer was cut');
      stuck.socket.resume();
      await stuck.closed;
      await waitFor(() => reader.messages.length === published, 20_000, 'the reader got every message');
      reader.socket.close();
    } finally {
      await server.close();
    }
  });

  test('shutdown closes every socket with 1001 and the server stops', async () => {
    const server = await startTestServer(createWebSocket);
    const peers = await Promise.all(['/chat', '/echo', '/githubEvents'].map((path) => Peer.open(server, path)));
    const raw = await RawClient.connect(server.port);
    await server.close();
    assert.deepEqual(await Promise.all(peers.map((peer) => peer.closed)), [1001, 1001, 1001]);
    // A client that never answers the close frame is cut at the close timeout.
    assert.equal(await raw.closeCode(), 1001);
  });
});
