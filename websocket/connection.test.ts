/**
 * WebSocketConnection on a bare TCP socket pair (no HTTP server): the closing
 * handshake from our side, the close deadline, what onClose reports, and a
 * handler that throws.
 */
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { OpenConnections, WebSocketConnection, type ConnectionHandlers, type ConnectionOptions } from './connection.ts';
import { Opcode } from './frame.ts';
import { RawClient } from './test-client.ts';
import { waitFor } from '../shared/testing/server.ts';

let listeners: net.Server[] = [];
afterEach(() => {
  for (const listener of listeners) listener.close();
  listeners = [];
});

/**
 * A listener that answers any request with a bare 101 and hands the socket to a
 * WebSocketConnection; resolves with both ends and what onClose reported.
 */
async function connectionPair(
  handlers: (connection: WebSocketConnection) => ConnectionHandlers = () => ({}),
  options: Partial<ConnectionOptions> = {},
) {
  let accepted!: (connection: WebSocketConnection) => void;
  const connectionReady = new Promise<WebSocketConnection>((resolve) => (accepted = resolve));
  let reportClose!: (close: { code: number; reason: string }) => void;
  const reported = new Promise<{ code: number; reason: string }>((resolve) => (reportClose = resolve));

  const listener = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.once('data', () => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\n\r\n');
      const connection = new WebSocketConnection(socket, {
        maxMessageBytes: 1024,
        maxBufferedBytes: 64 * 1024,
        connections: new OpenConnections(60_000),
        closeTimeoutMs: 50,
        ...options,
      });
      const own = handlers(connection);
      connection.start({ ...own, onClose: (code, reason) => reportClose({ code, reason }) });
      accepted(connection);
    });
  });
  listeners.push(listener);
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as net.AddressInfo;
  const client = await RawClient.connect(port, 'GET / HTTP/1.1\r\n\r\n');
  return { client, connection: await connectionReady, reported };
}

describe('closing from the server side (§7.1.2)', () => {
  test('close() sends a close frame; when the peer answers, the server ends TCP and reports the peer’s code', async () => {
    const { client, connection, reported } = await connectionPair();
    assert.equal(connection.state, 'open');
    connection.close(1000, 'done');
    assert.equal(connection.state, 'closing');
    const frame = await client.nextFrame();
    assert.equal(frame?.opcode, Opcode.CLOSE);
    assert.equal(frame.payload.toString('hex'), '03e8' + Buffer.from('done').toString('hex'));
    client.sendClose(1000);
    await client.closed;
    assert.ok(client.serverEndedFirst, 'the server closes TCP first (§7.1.1)');
    assert.deepEqual(await reported, { code: 1000, reason: '' });
    assert.equal(connection.state, 'closed');
  });

  test('a peer that never answers the close frame is cut at the close deadline (reported as 1006)', async () => {
    const { client, connection, reported } = await connectionPair();
    connection.close(1001, 'going away');
    assert.equal(await client.closeCode(), 1001);
    assert.deepEqual(await reported, { code: 1006, reason: '' });
  });

  test('once closing, messages and a second close() send nothing; a ping still gets its pong (§5.5.2)', async () => {
    const { client, connection, reported } = await connectionPair();
    connection.close(1000);
    connection.sendText('too late');
    connection.sendMessage(Buffer.from('too late'), true);
    connection.close(1002);
    client.sendFrame(Opcode.PING, 'are you there');
    client.sendClose(1000);
    await client.closed;
    assert.deepEqual(
      client.frames.map((frame) => frame.opcode),
      [Opcode.CLOSE, Opcode.PONG],
    );
    assert.equal((await reported).code, 1000);
  });
});

describe('what onClose reports (§7.1.5)', () => {
  test('a close frame without a code is reported as 1005', async () => {
    const { client, reported } = await connectionPair();
    client.sendClose();
    assert.deepEqual(await reported, { code: 1005, reason: '' });
  });

  test('a close frame with a code and reason reports both', async () => {
    const { client, reported } = await connectionPair();
    client.sendClose(4001, 'bye now');
    assert.deepEqual(await reported, { code: 4001, reason: 'bye now' });
  });

  test('a peer that ends TCP without a close frame is reported as 1006', async () => {
    const { client, reported } = await connectionPair();
    client.end();
    assert.deepEqual(await reported, { code: 1006, reason: '' });
  });
});

describe('OpenConnections: the set shutdown walks, and one heartbeat for all', () => {
  test('a connection joins at start and leaves once its TCP connection is gone', async () => {
    const connections = new OpenConnections(60_000);
    const first = await connectionPair(undefined, { connections });
    const second = await connectionPair(undefined, { connections });
    assert.equal(connections.size, 2);
    first.client.end();
    await first.reported;
    assert.equal(connections.size, 1);
    connections.closeAll(1001, 'going away');
    assert.equal(await second.client.closeCode(), 1001);
    await second.reported;
    assert.equal(connections.size, 0); // and its timer is gone: the test runner could not exit otherwise
  });

  test('one sweep pings every connection, and drops the one that has not answered by the next', async () => {
    // Long enough that a busy machine still gets the polite peer's pong back in time.
    const connections = new OpenConnections(300);
    const silent = await connectionPair(undefined, { connections });
    const polite = await connectionPair(undefined, { connections });
    // The polite peer answers each ping (§5.5.2), the silent one reads and never does.
    let answered = 0;
    polite.client.socket.on('data', () => {
      const pings = polite.client.frames.filter((frame) => frame.opcode === Opcode.PING).length;
      for (; answered < pings; answered++) polite.client.sendFrame(Opcode.PONG);
    });
    assert.equal((await silent.reported).code, 1006);
    assert.equal(silent.client.frames[0]?.opcode, Opcode.PING);
    assert.ok(!silent.client.frames.some((frame) => frame.opcode === Opcode.CLOSE), 'cut, not closed');
    assert.ok(answered >= 1, 'the polite peer was pinged too');
    assert.equal(polite.connection.state, 'open');
    assert.equal(connections.size, 1);
    polite.client.end();
    await polite.reported;
  });
});

describe('failures in our own code', () => {
  test('a message handler that throws closes the connection with 1011, and nothing escapes', async (t) => {
    const logged = t.mock.method(console, 'error', () => {});
    const { client, reported } = await connectionPair(() => ({
      onMessage() {
        throw new Error('a bug');
      },
    }));
    client.sendFrame(Opcode.TEXT, 'trigger');
    assert.equal(await client.closeCode(), 1011);
    assert.equal((await reported).code, 1006);
    assert.equal(logged.mock.callCount(), 1);
  });
});

describe('backpressure', () => {
  const echo = (connection: WebSocketConnection): ConnectionHandlers => ({
    onMessage: (data, binary) => connection.sendMessage(data, binary),
  });
  // Far more than loopback TCP buffers hold, so unsent bytes must pile up somewhere.
  const BURST_BYTES = 16 * 1024 * 1024;
  const FRAME_BYTES = 1024;

  test('a peer that sends a burst without reading is read no faster than it reads: slowed, not failed, nothing lost', async () => {
    // The limit is far below the burst, but above what the echoes of one read add.
    const { client, connection } = await connectionPair(echo, { maxBufferedBytes: 1024 * 1024 });
    client.socket.pause(); // a client busy writing, reading nothing for now
    const count = BURST_BYTES / FRAME_BYTES;
    for (let i = 0; i < count; i++) client.sendFrame(Opcode.BINARY, Buffer.alloc(FRAME_BYTES, i & 0xff));
    // Give the server every chance to read the whole burst and queue its echoes.
    await waitFor(() => client.socket.writableLength === 0 || connection.state !== 'open', 2_000).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(connection.state, 'open', 'not failed for the echoes it could not send yet');
    client.socket.resume();
    await waitFor(() => client.frames.length >= count || connection.state !== 'open', 30_000, 'every echo');
    assert.equal(connection.state, 'open');
    assert.equal(client.frames.length, count);
    assert.ok(client.frames.every((frame, i) => frame.opcode === Opcode.BINARY && frame.payload[0] === (i & 0xff)));
    client.end();
    await client.closed;
  });

  test('a pong held up behind a read pause does not count against the peer: the heartbeat reads on first', async () => {
    const { client, connection } = await connectionPair(echo, { connections: new OpenConnections(100), maxBufferedBytes: 64 * 1024 * 1024 });
    client.socket.pause(); // a slow link: what the server sends piles up unread for a while
    connection.sendMessage(Buffer.alloc(BURST_BYTES), true);
    client.sendFrame(Opcode.TEXT, 'hi'); // its echo finds the queue long: the server stops reading this peer
    // Alive all along: pongs, unasked, as §5.5.3 allows; each one shows the peer is there.
    const pongs = setInterval(() => client.sendFrame(Opcode.PONG), 20);
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000)); // ten heartbeats
      assert.equal(connection.state, 'open', 'not dropped for pongs the server itself left unread');
    } finally {
      clearInterval(pongs);
    }
    client.socket.resume();
    await waitFor(() => client.frames.filter((frame) => frame.opcode !== Opcode.PING).length >= 2, 30_000, 'both messages');
    assert.equal(client.frames.find((frame) => frame.opcode === Opcode.TEXT)?.payload.toString(), 'hi');
    client.end();
    await client.closed;
  });

  test('a peer that stops reading is failed with 1008 past maxBufferedBytes; a slow one reads the close frame', async () => {
    const { client, connection, reported } = await connectionPair(() => ({}), {
      maxBufferedBytes: 64 * 1024,
      closeTimeoutMs: 60_000, // room for the client to come back and read
    });
    client.socket.pause();
    let sent = 0;
    // Send until the server gives up, letting the socket flush between batches.
    while (connection.state === 'open' && sent < BURST_BYTES / FRAME_BYTES) {
      for (let i = 0; i < 100 && connection.state === 'open'; i++, sent++) connection.sendMessage(Buffer.alloc(FRAME_BYTES), true);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(connection.state, 'closing', 'failed for not reading');
    connection.sendText('dropped: nothing is queued after the close frame');
    client.socket.resume();
    assert.equal(await client.closeCode(), 1008);
    assert.equal(client.frames.filter((frame) => frame.opcode !== Opcode.CLOSE).length, sent);
    assert.ok(client.serverEndedFirst, 'then the server ends TCP');
    assert.equal((await reported).code, 1006);
  });
});
