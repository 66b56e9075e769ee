/**
 * A conformance suite against /echo over raw TCP, its sections numbered like the
 * Autobahn testsuite's (1 framing, 2 ping/pong, 3 reserved bits, 4 opcodes,
 * 5 fragmentation, 6 UTF-8, 7 close, 9 limits, 10 auto-fragmentation), each case
 * written from the RFC sentence it checks, then 100 connections of seeded random
 * garbage. README.md tabulates the results.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../shared/testing/server.ts';
import type { RunningServer } from '../shared/lifecycle.ts';
import { createWebSocket, ECHO_MAX_MESSAGE_BYTES } from './server.ts';
import { encodeClosePayload, encodeFrame, encodeFrameHeader, Opcode } from './frame.ts';
import { RawClient } from './test-client.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

let server: RunningServer;
before(async () => {
  server = await startTestServer(createWebSocket);
});
after(() => server.close());

async function connect(): Promise<RawClient> {
  const client = await RawClient.connect(server.port);
  assert.equal(client.status, 101, client.response);
  return client;
}

/** Sends a message and expects it back unchanged. */
async function expectEcho(client: RawClient, opcode: number, payload: Buffer) {
  client.sendFrame(opcode, payload);
  const message = await client.nextMessage();
  assert.ok(message, 'an echo');
  assert.equal(message.binary, opcode === Opcode.BINARY);
  assert.ok(message.data.equals(payload), `payload of ${payload.length} bytes echoed`);
}

/** Closes normally and checks the server ends TCP first (§7.1.1). */
async function closeNormally(client: RawClient) {
  client.sendClose(1000);
  assert.equal(await client.closeCode(), 1000);
  assert.ok(client.serverEndedFirst, 'the server closes the TCP connection first');
  assert.equal(client.serverError, undefined);
}

/** Sends bytes that break a rule; expects a close frame with `code`, then TCP closed. */
async function expectFailure(send: (client: RawClient) => void, code: number) {
  const client = await connect();
  send(client);
  assert.equal(await client.closeCode(), code);
  assert.equal(client.serverError, undefined);
}

describe('1 framing: text and binary messages of every length come back unchanged', () => {
  for (const opcode of [Opcode.TEXT, Opcode.BINARY]) {
    const kind = opcode === Opcode.TEXT ? 'text' : 'binary';
    test(`1.${opcode}: ${kind} payloads of 0, 125, 126, 127, 128, 65535 and 65536 bytes (7-, 16- and 64-bit lengths)`, async () => {
      const client = await connect();
      for (const length of [0, 125, 126, 127, 128, 65535, 65536]) await expectEcho(client, opcode, Buffer.alloc(length, '*'));
      await closeNormally(client);
    });
  }

  test('1.3: a frame sent one byte at a time is read whole', async () => {
    const client = await connect();
    const frame = encodeFrame(Opcode.TEXT, Buffer.from('Hello, byte by byte'), { maskKey: hex('01 02 03 04') });
    for (const byte of frame) {
      client.sendRaw(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal((await client.nextMessage())?.data.toString(), 'Hello, byte by byte');
    await closeNormally(client);
  });
});

describe('2 ping and pong (§5.5.2, §5.5.3)', () => {
  test('2.1: a ping is answered by a pong with identical application data', async () => {
    const client = await connect();
    for (const payload of [Buffer.alloc(0), Buffer.from('Hello'), Buffer.from([0, 255, 128, 10]), Buffer.alloc(125, 0xfe)]) {
      client.sendFrame(Opcode.PING, payload);
      const pong = await client.nextFrame();
      assert.equal(pong?.opcode, Opcode.PONG);
      assert.ok(pong.payload.equals(payload));
    }
    await closeNormally(client);
  });

  test('2.2: a ping with a payload of 126 bytes is a protocol error (1002)', async () => {
    await expectFailure((client) => client.sendFrame(Opcode.PING, Buffer.alloc(126)), 1002);
  });

  test('2.3: an unsolicited pong is ignored', async () => {
    const client = await connect();
    client.sendFrame(Opcode.PONG, 'unasked');
    await expectEcho(client, Opcode.TEXT, Buffer.from('still here'));
    assert.equal(client.frames.length, 1);
    await closeNormally(client);
  });

  test('2.4: ten pings in a row get ten pongs, in order', async () => {
    const client = await connect();
    for (let i = 0; i < 10; i++) client.sendFrame(Opcode.PING, `ping ${i}`);
    for (let i = 0; i < 10; i++) assert.equal((await client.nextFrame())?.payload.toString(), `ping ${i}`);
    await closeNormally(client);
  });

  test('2.5: a ping cut into 1-byte writes is still answered', async () => {
    const client = await connect();
    for (const byte of encodeFrame(Opcode.PING, Buffer.from('chopped'), { maskKey: hex('aa bb cc dd') })) {
      client.sendRaw(Buffer.from([byte]));
    }
    assert.equal((await client.nextFrame())?.payload.toString(), 'chopped');
    await closeNormally(client);
  });
});

describe('3 reserved bits (§5.2: MUST be 0 unless an extension is negotiated)', () => {
  for (const rsv of [1, 2, 3, 4, 5, 6, 7]) {
    test(`3.${rsv}: RSV bits ${rsv.toString(2).padStart(3, '0')} on a frame fail the connection with 1002`, async () => {
      const opcode = [Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.CLOSE][rsv % 4];
      await expectFailure((client) => client.sendFrame(opcode, 'x', { rsv }), 1002);
    });
  }

  test('3.8: a bad frame after a good one: the good one is echoed first, then the close', async () => {
    const client = await connect();
    client.sendFrame(Opcode.TEXT, 'good');
    client.sendFrame(Opcode.TEXT, 'bad', { rsv: 4 });
    assert.equal((await client.nextMessage())?.data.toString(), 'good');
    assert.equal(await client.closeCode(), 1002);
  });
});

describe('4 opcodes (§5.2: an unknown opcode MUST fail the connection)', () => {
  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    test(`4.${opcode}: reserved ${opcode < 8 ? 'data' : 'control'} opcode 0x${opcode.toString(16)} is a protocol error (1002)`, async () => {
      await expectFailure((client) => client.sendFrame(opcode, 'x'), 1002);
    });
  }
});

describe('5 fragmentation (§5.4)', () => {
  test('5.1: a fragmented ping or pong is a protocol error (1002)', async () => {
    await expectFailure((client) => client.sendFrame(Opcode.PING, 'frag', { fin: false }), 1002);
    await expectFailure((client) => client.sendFrame(Opcode.PONG, 'frag', { fin: false }), 1002);
  });

  test('5.2: a text message in fragments comes back as the whole message', async () => {
    const client = await connect();
    client.sendFrame(Opcode.TEXT, 'frag', { fin: false });
    client.sendFrame(Opcode.CONTINUATION, 'men', { fin: false });
    client.sendFrame(Opcode.CONTINUATION, 'ted');
    assert.equal((await client.nextMessage())?.data.toString(), 'fragmented');
    await closeNormally(client);
  });

  test('5.3: a ping between fragments is answered before the message completes', async () => {
    const client = await connect();
    client.sendFrame(Opcode.BINARY, 'one', { fin: false });
    client.sendFrame(Opcode.PING, 'between');
    const pong = await client.nextFrame();
    assert.equal(pong?.opcode, Opcode.PONG);
    client.sendFrame(Opcode.CONTINUATION, 'two');
    assert.equal((await client.nextMessage())?.data.toString(), 'onetwo');
    await closeNormally(client);
  });

  test('5.4: fragments and a ping cut into 1-byte writes', async () => {
    const client = await connect();
    const key = hex('10 20 30 40');
    const bytes = Buffer.concat([
      encodeFrame(Opcode.TEXT, Buffer.from('chop'), { fin: false, maskKey: key }),
      encodeFrame(Opcode.PING, Buffer.from('p'), { maskKey: key }),
      encodeFrame(Opcode.CONTINUATION, Buffer.from('ped'), { maskKey: key }),
    ]);
    for (const byte of bytes) client.sendRaw(Buffer.from([byte]));
    assert.equal((await client.nextFrame())?.opcode, Opcode.PONG);
    assert.equal((await client.nextMessage())?.data.toString(), 'chopped');
    await closeNormally(client);
  });

  test('5.5: a continuation frame with nothing to continue is a protocol error (1002)', async () => {
    await expectFailure((client) => client.sendFrame(Opcode.CONTINUATION, 'orphan'), 1002);
    await expectFailure((client) => client.sendFrame(Opcode.CONTINUATION, 'orphan', { fin: false }), 1002);
  });

  test('5.6: a new text frame inside a fragmented message is a protocol error (1002)', async () => {
    await expectFailure((client) => {
      client.sendFrame(Opcode.TEXT, 'start', { fin: false });
      client.sendFrame(Opcode.TEXT, 'again');
    }, 1002);
  });

  test('5.7: a fragmented message whose fragments are all empty is an empty message', async () => {
    const client = await connect();
    client.sendFrame(Opcode.TEXT, '', { fin: false });
    client.sendFrame(Opcode.CONTINUATION, '', { fin: false });
    client.sendFrame(Opcode.CONTINUATION, '');
    assert.equal((await client.nextMessage())?.data.length, 0);
    await closeNormally(client);
  });
});

describe('6 UTF-8 (§8.1: invalid text fails the connection with 1007)', () => {
  test('6.1: valid UTF-8 of 1 to 4 bytes per character, including the extremes, is echoed', async () => {
    const client = await connect();
    for (const text of ['κόσμε', '\u{80}\u{7ff}\u{800}\u{ffff}', '\u{10000}\u{10ffff}', '\u{d7ff}\u{e000}\u{fffd}']) {
      await expectEcho(client, Opcode.TEXT, Buffer.from(text));
    }
    await closeNormally(client);
  });

  test('6.2: a character split across fragments is fine', async () => {
    const client = await connect();
    client.sendFrame(Opcode.TEXT, hex('ce ba e1'), { fin: false });
    client.sendFrame(Opcode.CONTINUATION, hex('bd b9 cf'), { fin: false });
    client.sendFrame(Opcode.CONTINUATION, hex('83 ce bc ce b5'));
    assert.equal((await client.nextMessage())?.data.toString('hex'), 'cebae1bdb9cf83cebcceb5');
    await closeNormally(client);
  });

  const INVALID = [
    ['a surrogate', 'ed a0 80'],
    ['an overlong form', 'c0 af'],
    ['a code point over U+10FFFF', 'f4 90 80 80'],
    ['a lone continuation byte', '80'],
    ['a character cut short at the end', 'ce ba e1 bd'],
    ['a byte that never appears', 'fe'],
  ];
  INVALID.forEach(([name, bytes], index) => {
    test(`6.${index + 3}: ${name} in a text message is 1007`, async () => {
      await expectFailure((client) => client.sendFrame(Opcode.TEXT, hex(bytes)), 1007);
    });
  });

  test('6.9: fail fast: a fragment that makes the text impossible closes with 1007 before the message ends', async () => {
    const client = await connect();
    client.sendFrame(Opcode.TEXT, hex('ce ba e1 bd b9 cf 83 ce bc ce b5 f4'), { fin: false });
    client.sendFrame(Opcode.CONTINUATION, hex('90 80 80 65 64'), { fin: false }); // U+110000: impossible now
    // The message never ends, yet the server closes.
    assert.equal(await client.closeCode(), 1007);
  });

  /** The close code, or 'still open' if none comes within `ms` (call it once per client). */
  async function closeCodeWithin(client: RawClient, ms: number): Promise<number | 'still open'> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'still open'>((resolve) => (timer = setTimeout(() => resolve('still open'), ms)));
    try {
      return await Promise.race([client.closeCode(), late]);
    } finally {
      clearTimeout(timer);
    }
  }
  const pause = () => new Promise((resolve) => setTimeout(resolve, 50));
  // One text frame of valid text, U+110000 (impossible: f4 90 80 80), then more
  // text; the frame's bytes are sent in chops, and the last chop never is.
  const VALID = Buffer.from('κόσμε');
  const frameWithInvalidText = () => {
    const payload = Buffer.concat([VALID, hex('f4 90 80 80'), Buffer.from('edited')]);
    return encodeFrame(Opcode.TEXT, payload, { maskKey: Buffer.from([0x37, 0xfa, 0x21, 0x3d]) });
  };
  const HEADER_BYTES = 2 + 4; // 7-bit length, masking key

  test('6.10 (Autobahn 6.4.3): fail fast inside one frame: the chop holding the impossible bytes closes with 1007, the frame unfinished', async () => {
    const client = await connect();
    const frame = frameWithInvalidText();
    const invalidEnd = HEADER_BYTES + VALID.length + 4;
    client.sendRaw(frame.subarray(0, HEADER_BYTES + VALID.length));
    await pause();
    client.sendRaw(frame.subarray(HEADER_BYTES + VALID.length, invalidEnd));
    // The rest of the frame never comes: the server must not wait for it.
    assert.equal(await closeCodeWithin(client, 5_000), 1007);
  });

  test('6.11 (Autobahn 6.4.4): fail fast one byte at a time: 1007 at the first byte after which the text cannot be UTF-8', async () => {
    const client = await connect();
    const frame = frameWithInvalidText();
    const start = HEADER_BYTES + VALID.length;
    client.sendRaw(frame.subarray(0, start + 1)); // ...then f4, which may still begin a character
    for (let i = 0; i < 4; i++) await pause();
    assert.equal(client.frames.length, 0, 'f4 may still begin a character: nothing sent back yet');
    client.sendRaw(frame.subarray(start + 1, start + 2)); // 90 after f4: past U+10FFFF
    assert.equal(await closeCodeWithin(client, 5_000), 1007);
  });
});

describe('7 closing (§5.5.1, §7)', () => {
  test('7.1: a close frame without a code is answered with an empty close, then the server closes TCP', async () => {
    const client = await connect();
    client.sendClose();
    assert.equal(await client.closeCode(), 1005);
    assert.ok(client.serverEndedFirst);
  });

  test('7.2: data sent after a close frame is ignored', async () => {
    const client = await connect();
    client.sendClose(1000);
    client.sendFrame(Opcode.TEXT, 'too late');
    client.sendFrame(Opcode.PING, 'too late');
    assert.equal(await client.closeCode(), 1000);
    assert.deepEqual(
      client.frames.map((frame) => frame.opcode),
      [Opcode.CLOSE],
    );
  });

  test('7.3: a close code and reason are answered with the same code', async () => {
    const client = await connect();
    client.sendClose(1001, 'going home');
    assert.equal(await client.closeCode(), 1001);
  });

  test('7.4: a reason of 123 bytes, the most that fits, is accepted', async () => {
    const client = await connect();
    client.sendFrame(Opcode.CLOSE, encodeClosePayload(1000, 'r'.repeat(123)));
    assert.equal(await client.closeCode(), 1000);
  });

  test('7.5: a close payload of 1 byte is a protocol error (1002)', async () => {
    await expectFailure((client) => client.sendFrame(Opcode.CLOSE, hex('03')), 1002);
  });

  test('7.6: a close reason that is not UTF-8 is 1007', async () => {
    await expectFailure((client) => client.sendFrame(Opcode.CLOSE, hex('03 e8 ce ba ed a0 80')), 1007);
  });

  test('7.7: every valid close code (1000–1003, 1007–1014, 3000, 3999, 4000, 4999) is echoed', async () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
      const client = await connect();
      client.sendClose(code);
      assert.equal(await client.closeCode(), code, `code ${code}`);
    }
  });

  test('7.8: invalid close codes (0, 999, 1004–1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535) are 1002', async () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
      await expectFailure((client) => client.sendFrame(Opcode.CLOSE, encodeClosePayload(code)), 1002);
    }
  });

  test('7.9: a close after a fragment of an unfinished message closes normally', async () => {
    const client = await connect();
    client.sendFrame(Opcode.TEXT, 'never finished', { fin: false });
    client.sendClose(1000);
    assert.equal(await client.closeCode(), 1000);
  });

  test('7.10: a peer that closes TCP without a close frame is simply gone', async () => {
    const client = await connect();
    await expectEcho(client, Opcode.TEXT, Buffer.from('bye'));
    client.end();
    await client.closed;
  });
});

describe('9 limits and large messages', () => {
  test('9.1: a 1 MiB text message and a 16 MiB binary message (the /echo limit) come back whole', async () => {
    const client = await connect();
    const text = Buffer.alloc(1024 * 1024, 'é');
    await expectEcho(client, Opcode.TEXT, text);
    const binary = Buffer.alloc(ECHO_MAX_MESSAGE_BYTES);
    for (let i = 0; i < binary.length; i += 4096) binary[i] = i & 0xff;
    await expectEcho(client, Opcode.BINARY, binary);
    await closeNormally(client);
  });

  test('9.2: a message over the limit is 1009, refused from its header alone', async () => {
    const client = await connect();
    // Only the header of a frame one byte too long: no payload is ever sent.
    client.sendRaw(encodeFrameHeader(Opcode.BINARY, ECHO_MAX_MESSAGE_BYTES + 1, { maskKey: hex('01 02 03 04') }));
    assert.equal(await client.closeCode(), 1009);
  });

  test('9.3: fragments that add up past the limit are 1009 at the fragment that crosses it', async () => {
    const client = await connect();
    client.sendFrame(Opcode.BINARY, Buffer.alloc(ECHO_MAX_MESSAGE_BYTES - 10), { fin: false });
    client.sendRaw(encodeFrameHeader(Opcode.CONTINUATION, 11, { maskKey: hex('01 02 03 04') }));
    assert.equal(await client.closeCode(), 1009);
  });

  test('9.4: a thousand small messages in one burst all come back, in order', async () => {
    const client = await connect();
    for (let i = 0; i < 1000; i++) client.sendFrame(Opcode.TEXT, `message ${i}`);
    for (let i = 0; i < 1000; i++) assert.equal((await client.nextMessage())?.data.toString(), `message ${i}`);
    await closeNormally(client);
  });
});

describe('10 auto-fragmentation: a message cut into many fragments is one message', () => {
  test('10.1: 64 KiB of text in fragments of 1, 100 and 1300 bytes come back as one text message', async () => {
    const client = await connect();
    const text = Buffer.alloc(65536, 'abcdefgh');
    for (const size of [1300, 100]) {
      for (let offset = 0; offset < text.length; offset += size) {
        const first = offset === 0;
        const last = offset + size >= text.length;
        client.sendFrame(first ? Opcode.TEXT : Opcode.CONTINUATION, text.subarray(offset, offset + size), { fin: last });
      }
      const message = await client.nextMessage();
      assert.ok(message?.data.equals(text), `fragments of ${size}`);
    }
    const small = Buffer.from('one byte per fragment');
    small.forEach((byte, i) =>
      client.sendFrame(i === 0 ? Opcode.TEXT : Opcode.CONTINUATION, Buffer.from([byte]), { fin: i === small.length - 1 }),
    );
    assert.equal((await client.nextMessage())?.data.toString(), 'one byte per fragment');
    await closeNormally(client);
  });
});

describe('random garbage after the handshake', () => {
  /** A small seeded generator (mulberry32), so a failure can be replayed from its seed. */
  function random(seed: number) {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  test('never crashes the server: each connection ends, with a close code or a dropped socket', async () => {
    for (let seed = 1; seed <= 100; seed++) {
      const next = random(seed);
      const garbage = Buffer.alloc(1 + Math.floor(next() * 300));
      for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(next() * 256);
      // Half the time, start like a plausible masked frame so the garbage gets further.
      if (next() < 0.5) {
        garbage[0] = [0x81, 0x82, 0x01, 0x88, 0x89, 0x8a][Math.floor(next() * 6)];
        garbage[1] = 0x80 | Math.floor(next() * 126);
      }
      const client = await connect();
      client.sendRaw(garbage);
      client.end(); // what the garbage leaves unfinished, the end of TCP finishes
      const code = await client.closeCode();
      assert.ok(code === 1006 || (code >= 1000 && code < 5000), `seed ${seed}: ${code}`);
      assert.equal(client.serverError, undefined, `seed ${seed}: the server's own frames are valid`);
    }
    // And the server still works.
    const client = await connect();
    await expectEcho(client, Opcode.TEXT, Buffer.from('still fine'));
    await closeNormally(client);
  });
});
