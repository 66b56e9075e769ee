import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyMask,
  CloseCode,
  encodeClosePayload,
  encodeFrame,
  encodeFrameHeader,
  FrameParser,
  Opcode,
  ProtocolError,
  type Frame,
  type FrameParserOptions,
} from './frame.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const MASK = hex('37 fa 21 3d'); // the key of the RFC 6455 §5.7 examples
const LIMIT = 1 << 20;

function serverParser(options: Partial<FrameParserOptions> = {}) {
  return new FrameParser({ role: 'server', maxPayloadBytes: LIMIT, ...options });
}

/** Pushes `chunk` and pulls every frame (and error) it completes. */
function feed(parser: FrameParser, chunk: Buffer) {
  parser.push(chunk);
  const results: Array<Frame | ProtocolError> = [];
  for (let result = parser.next(); result !== undefined; result = parser.next()) results.push(result);
  return results;
}

/** Feeds `bytes` cut at the given offsets; a fresh copy each time, since the parser unmasks in place. */
function parseInPieces(bytes: Buffer, cuts: number[], options: Partial<FrameParserOptions> = {}) {
  const parser = serverParser(options);
  const results: Array<Frame | ProtocolError> = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    results.push(...feed(parser, Buffer.from(bytes.subarray(start, cut))));
    start = cut;
  }
  return results;
}

function parseAll(bytes: Buffer, options: Partial<FrameParserOptions> = {}) {
  return parseInPieces(bytes, [], options);
}

/** What a test compares: the frame without the buffer identity. */
function summary(result: Frame | ProtocolError) {
  if (result instanceof ProtocolError) return { error: result.code, reason: result.reason };
  return { fin: result.fin, opcode: result.opcode, payload: result.payload.toString('hex') };
}

function expectError(bytes: Buffer, code: number, options: Partial<FrameParserOptions> = {}) {
  const results = parseAll(bytes, options);
  const last = results.at(-1);
  assert.ok(last instanceof ProtocolError, `expected a protocol error, got ${JSON.stringify(results.map(summary))}`);
  assert.equal(last.code, code);
  return last;
}

describe('encoding server frames (RFC 6455 §5.2, §5.7)', () => {
  test('a single-frame unmasked text message "Hello" is 81 05 48 65 6c 6c 6f', () => {
    assert.deepEqual(encodeFrame(Opcode.TEXT, Buffer.from('Hello')), hex('81 05 48 65 6c 6c 6f'));
  });

  test('a fragmented unmasked text message is 01 03 "Hel" then 80 02 "lo"', () => {
    assert.deepEqual(encodeFrame(Opcode.TEXT, Buffer.from('Hel'), { fin: false }), hex('01 03 48 65 6c'));
    assert.deepEqual(encodeFrame(Opcode.CONTINUATION, Buffer.from('lo')), hex('80 02 6c 6f'));
  });

  test('an unmasked ping with body "Hello" is 89 05 48 65 6c 6c 6f', () => {
    assert.deepEqual(encodeFrame(Opcode.PING, Buffer.from('Hello')), hex('89 05 48 65 6c 6c 6f'));
  });

  test('a client masks "Hello" with key 37 fa 21 3d into 81 85 37 fa 21 3d 7f 9f 4d 51 58', () => {
    const payload = Buffer.from('Hello');
    assert.deepEqual(encodeFrame(Opcode.TEXT, payload, { maskKey: MASK }), hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'));
    assert.equal(payload.toString(), 'Hello', 'the caller’s payload is not masked in place');
  });

  test('a masked pong with body "Hello" is 8a 85 37 fa 21 3d 7f 9f 4d 51 58', () => {
    assert.deepEqual(encodeFrame(Opcode.PONG, Buffer.from('Hello'), { maskKey: MASK }), hex('8a 85 37 fa 21 3d 7f 9f 4d 51 58'));
  });

  test('256 bytes of binary data take a 16-bit length: 82 7e 01 00', () => {
    assert.deepEqual(encodeFrameHeader(Opcode.BINARY, 256), hex('82 7e 01 00'));
  });

  test('64 KiB of binary data take a 64-bit length: 82 7f 00 00 00 00 00 01 00 00', () => {
    assert.deepEqual(encodeFrameHeader(Opcode.BINARY, 65536), hex('82 7f 00 00 00 00 00 01 00 00'));
  });

  test('the length uses the fewest bytes: 7 bits to 125, 16 bits to 65535, 64 bits beyond', () => {
    const cases: Array<[number, string]> = [
      [0, '82 00'],
      [125, '82 7d'],
      [126, '82 7e 00 7e'],
      [127, '82 7e 00 7f'],
      [65535, '82 7e ff ff'],
      [65536, '82 7f 00 00 00 00 00 01 00 00'],
      [2 ** 32 + 1, '82 7f 00 00 00 01 00 00 00 01'],
    ];
    for (const [length, expected] of cases) {
      assert.deepEqual(encodeFrameHeader(Opcode.BINARY, length), hex(expected), `length ${length}`);
    }
  });

  test('a frame with FIN clear and RSV bits set has them in the first byte', () => {
    assert.deepEqual(encodeFrameHeader(Opcode.TEXT, 0, { fin: false, rsv: 0b100 }), hex('41 00'));
  });

  test('a close payload is the code in 2 bytes big-endian then the reason in UTF-8 (§5.5.1)', () => {
    assert.deepEqual(encodeClosePayload(1000, 'bye'), hex('03 e8 62 79 65'));
    assert.deepEqual(encodeClosePayload(1001), hex('03 e9'));
  });

  test('a close reason is cut to 123 bytes without splitting a character', () => {
    const payload = encodeClosePayload(1000, 'é'.repeat(100)); // 200 bytes of 2-byte characters
    assert.equal(payload.length, 2 + 122);
    assert.equal(payload.subarray(2).toString('utf8'), 'é'.repeat(61));
    assert.equal(encodeClosePayload(1000, 'a'.repeat(200)).length, 125);
  });
});

describe('masking (§5.3)', () => {
  function bytewiseMask(data: Buffer, key: Buffer) {
    return Buffer.from(data.map((byte, i) => byte ^ key[i % 4]));
  }

  test('masking XORs byte i with key[i % 4], at every length and alignment', () => {
    const key = hex('a1 b2 c3 d4');
    const backing = Buffer.alloc(300);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 7) & 0xff;
    for (const start of [0, 1, 2, 3]) {
      for (let length = 0; length <= 100; length++) {
        const data = Buffer.from(backing.subarray(0, start + length)).subarray(start);
        const expected = bytewiseMask(data, key);
        applyMask(data, key);
        assert.deepEqual(data, expected, `start ${start}, length ${length}`);
      }
    }
  });

  test('masking twice gives back the original bytes', () => {
    const original = Buffer.alloc(100_003, 'WebSocket');
    const data = Buffer.from(original);
    applyMask(data, MASK);
    assert.notDeepEqual(data, original);
    applyMask(data, MASK);
    assert.deepEqual(data, original);
  });
});

describe('parsing client frames (§5.2)', () => {
  test('the masked "Hello" of §5.7 is a final text frame holding "Hello"', () => {
    const [frame] = parseAll(hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'));
    assert.deepEqual(summary(frame), { fin: true, opcode: Opcode.TEXT, payload: Buffer.from('Hello').toString('hex') });
  });

  test('the same bytes give the same frame whatever the chunking: split at every offset, and one byte at a time', () => {
    const bytes = Buffer.concat([
      encodeFrame(Opcode.TEXT, Buffer.from('Hel'), { fin: false, maskKey: MASK }),
      encodeFrame(Opcode.PING, Buffer.from('ping'), { maskKey: MASK }),
      encodeFrame(Opcode.CONTINUATION, Buffer.from('lo'), { maskKey: MASK }),
      encodeFrame(Opcode.BINARY, Buffer.alloc(300, 7), { maskKey: MASK }),
      encodeFrame(Opcode.BINARY, Buffer.alloc(0), { maskKey: MASK }),
    ]);
    const expected = parseAll(bytes).map(summary);
    assert.equal(expected.length, 5);
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.deepEqual(parseInPieces(bytes, [cut]).map(summary), expected, `cut at ${cut}`);
    }
    const everyByte = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    assert.deepEqual(parseInPieces(bytes, everyByte).map(summary), expected);
  });

  test('many frames in one chunk all come out, in order', () => {
    const frames = Array.from({ length: 50 }, (_, i) => encodeFrame(Opcode.TEXT, Buffer.from(`message ${i}`), { maskKey: MASK }));
    const results = parseAll(Buffer.concat(frames));
    assert.deepEqual(
      results.map((frame) => (frame as Frame).payload.toString()),
      Array.from({ length: 50 }, (_, i) => `message ${i}`),
    );
  });

  test('payloads of 0, 125, 126, 127, 65535 and 65536 bytes come back whole', () => {
    for (const length of [0, 1, 125, 126, 127, 65535, 65536, 70_001]) {
      const payload = Buffer.alloc(length);
      for (let i = 0; i < length; i++) payload[i] = (i * 31) & 0xff;
      const bytes = encodeFrame(Opcode.BINARY, payload, { maskKey: hex('01 02 03 04') });
      const [frame] = parseAll(bytes);
      assert.ok(!(frame instanceof ProtocolError));
      assert.equal(frame.payloadLength, length);
      assert.deepEqual(frame.payload, payload, `length ${length}`);
      // The header and the first payload byte arriving apart change nothing.
      const [split] = parseInPieces(bytes, [1, 2, Math.min(bytes.length, 9)]);
      assert.deepEqual((split as Frame).payload, payload, `length ${length}, split`);
    }
  });

  test('a frame is not returned until its last byte has arrived', () => {
    const parser = serverParser();
    const bytes = encodeFrame(Opcode.TEXT, Buffer.from('Hello'), { maskKey: MASK });
    assert.deepEqual(feed(parser, Buffer.from(bytes.subarray(0, bytes.length - 1))), []);
    assert.equal(feed(parser, Buffer.from(bytes.subarray(bytes.length - 1))).length, 1);
  });

  test('an empty chunk changes nothing', () => {
    const parser = serverParser();
    assert.deepEqual(feed(parser, Buffer.alloc(0)), []);
    const bytes = encodeFrame(Opcode.TEXT, Buffer.from('Hi'), { maskKey: MASK });
    assert.deepEqual(feed(parser, Buffer.from(bytes.subarray(0, 3))), []);
    assert.deepEqual(feed(parser, Buffer.alloc(0)), []);
    assert.equal((feed(parser, Buffer.from(bytes.subarray(3)))[0] as Frame).payload.toString(), 'Hi');
  });

  test('a client reads unmasked server frames', () => {
    const parser = new FrameParser({ role: 'client', maxPayloadBytes: LIMIT });
    const [frame] = feed(parser, hex('81 05 48 65 6c 6c 6f'));
    assert.equal((frame as Frame).payload.toString(), 'Hello');
  });
});

describe('payload bytes shown as they arrive (checkPayloadPart)', () => {
  const bytes = Buffer.concat([
    encodeFrame(Opcode.TEXT, Buffer.from('κόσμε, hello'), { fin: false, maskKey: MASK }),
    encodeFrame(Opcode.PING, Buffer.from('ping'), { maskKey: MASK }),
    encodeFrame(Opcode.CONTINUATION, Buffer.from(' and more'), { maskKey: hex('01 02 03 04') }),
    encodeFrame(Opcode.BINARY, Buffer.alloc(300, 7), { maskKey: MASK }),
  ]);

  test('a frame cut anywhere shows its payload in order, unmasked, without the bytes that complete it; the frame is unchanged', () => {
    const expected = parseAll(bytes).map(summary);
    const splits = [
      ...Array.from({ length: bytes.length - 1 }, (_, i) => [i + 1]),
      Array.from({ length: bytes.length - 1 }, (_, i) => i + 1), // one byte at a time
    ];
    for (const cuts of splits) {
      const shown: Array<{ opcode: number; offset: number; part: string }> = [];
      const results = parseInPieces(bytes, cuts, {
        checks: { checkPayloadPart: (header, part, offset) => void shown.push({ opcode: header.opcode, offset, part: part.toString('hex') }) },
      });
      assert.deepEqual(results.map(summary), expected, `cuts ${cuts.join()}`);
      for (const frame of results as Frame[]) {
        const parts = shown.filter((part) => part.opcode === frame.opcode);
        shown.splice(0, parts.length);
        let offset = 0;
        for (const part of parts) {
          assert.equal(part.offset, offset, 'parts follow each other');
          offset += part.part.length / 2;
        }
        assert.ok(offset < frame.payload.length || frame.payload.length === 0, 'the completing bytes come with the frame');
        assert.ok(frame.payload.toString('hex').startsWith(parts.map((part) => part.part).join('')), 'unmasked, in order');
      }
    }
  });

  test('a whole frame in one chunk is not shown in parts', () => {
    let calls = 0;
    parseAll(bytes, { checks: { checkPayloadPart: () => void calls++ } });
    assert.equal(calls, 0);
  });

  test('a refusal fails the stream before the frame is whole, and nothing follows', () => {
    const parser = serverParser({
      checks: { checkPayloadPart: (_, part) => (part.includes(0x21) ? new ProtocolError(CloseCode.INVALID_PAYLOAD, 'no !') : undefined) },
    });
    const frame = encodeFrame(Opcode.TEXT, Buffer.from('fine so far! and then'), { maskKey: MASK });
    assert.deepEqual(feed(parser, Buffer.from(frame.subarray(0, 10))), []);
    const [error] = feed(parser, Buffer.from(frame.subarray(10, 20)));
    assert.deepEqual(summary(error), { error: CloseCode.INVALID_PAYLOAD, reason: 'no !' });
    assert.deepEqual(feed(parser, Buffer.from(frame.subarray(20))), []);
  });
});

describe('frame-level protocol errors (§5.1–§5.5)', () => {
  test('a server receiving an unmasked frame fails with 1002 (§5.1)', () => {
    expectError(hex('81 05 48 65 6c 6c 6f'), CloseCode.PROTOCOL_ERROR);
  });

  test('a client receiving a masked frame fails with 1002 (§5.1)', () => {
    expectError(hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'), CloseCode.PROTOCOL_ERROR, { role: 'client' });
  });

  test('RSV1, RSV2 or RSV3 set without a negotiated extension is a protocol error (1002, §5.2)', () => {
    for (const rsv of [0b100, 0b010, 0b001, 0b111]) {
      const error = expectError(encodeFrame(Opcode.TEXT, Buffer.from('x'), { rsv, maskKey: MASK }), CloseCode.PROTOCOL_ERROR);
      assert.equal(error.reason, 'reserved bits set');
    }
  });

  test('the reserved opcodes 0x3–0x7 and 0xB–0xF are protocol errors (1002, §5.2)', () => {
    for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
      const error = expectError(encodeFrame(opcode, Buffer.alloc(0), { maskKey: MASK }), CloseCode.PROTOCOL_ERROR);
      assert.equal(error.reason, 'unknown opcode', `opcode ${opcode}`);
    }
  });

  test('a fragmented control frame is a protocol error (1002, §5.5)', () => {
    for (const opcode of [Opcode.CLOSE, Opcode.PING, Opcode.PONG]) {
      const error = expectError(encodeFrame(opcode, Buffer.alloc(0), { fin: false, maskKey: MASK }), CloseCode.PROTOCOL_ERROR);
      assert.equal(error.reason, 'fragmented control frame');
    }
  });

  test('a control frame with a payload over 125 bytes is a protocol error (1002), seen from its header', () => {
    const header = encodeFrameHeader(Opcode.PING, 126, { maskKey: MASK });
    const error = expectError(header, CloseCode.PROTOCOL_ERROR);
    assert.equal(error.reason, 'control frame too long');
  });

  test('a control frame with exactly 125 bytes of payload is accepted', () => {
    const [frame] = parseAll(encodeFrame(Opcode.PING, Buffer.alloc(125, 1), { maskKey: MASK }));
    assert.equal((frame as Frame).payload.length, 125);
  });

  test('a 64-bit length with its most significant bit set is a protocol error (1002, §5.2)', () => {
    expectError(hex('82 ff 80 00 00 00 00 00 00 01'), CloseCode.PROTOCOL_ERROR);
  });

  test('a length not in the minimal number of bytes is a protocol error (1002, §5.2)', () => {
    expectError(hex('82 fe 00 7d'), CloseCode.PROTOCOL_ERROR); // 125 in 16 bits
    expectError(hex('82 ff 00 00 00 00 00 00 ff ff'), CloseCode.PROTOCOL_ERROR); // 65535 in 64 bits
  });

  test('a frame longer than the endpoint accepts is 1009 as soon as its length is read, before any payload', () => {
    const header16 = encodeFrameHeader(Opcode.BINARY, 1001, { maskKey: MASK });
    assert.equal(expectError(header16, CloseCode.MESSAGE_TOO_BIG, { maxPayloadBytes: 1000 }).reason, 'frame too big');
    const header64 = hex('82 ff 7f ff ff ff ff ff ff ff'); // 2^63 - 1 bytes announced
    expectError(header64, CloseCode.MESSAGE_TOO_BIG);
    const [frame] = parseAll(encodeFrame(Opcode.BINARY, Buffer.alloc(1000), { maskKey: MASK }), { maxPayloadBytes: 1000 });
    assert.equal((frame as Frame).payloadLength, 1000, 'exactly at the limit is fine');
  });

  test('the layer above can refuse a frame from its header, before the payload arrives', () => {
    const seen: unknown[] = [];
    const checkHeader = (header: unknown) => {
      seen.push(header);
      return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'refused');
    };
    const header = encodeFrameHeader(Opcode.CONTINUATION, 300, { maskKey: MASK });
    assert.equal(expectError(header, CloseCode.PROTOCOL_ERROR, { checks: { checkHeader } }).reason, 'refused');
    assert.deepEqual(seen, [{ fin: true, opcode: Opcode.CONTINUATION, payloadLength: 300 }]);
  });

  test('frames before a broken one are returned, then the error, then nothing more', () => {
    const parser = serverParser();
    const good = encodeFrame(Opcode.TEXT, Buffer.from('ok'), { maskKey: MASK });
    const bad = hex('81 05 48 65 6c 6c 6f'); // unmasked
    const results = feed(parser, Buffer.concat([good, bad, good]));
    assert.deepEqual(results.map(summary), [
      { fin: true, opcode: Opcode.TEXT, payload: Buffer.from('ok').toString('hex') },
      { error: CloseCode.PROTOCOL_ERROR, reason: 'frame not masked' },
    ]);
    assert.deepEqual(feed(parser, Buffer.from(good)), []);
  });
});

describe('randomized frames and garbage', () => {
  /** A small seeded generator (mulberry32), so a failure can be replayed from its seed. */
  function random(seed: number) {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const LENGTHS = [0, 1, 2, 3, 4, 5, 125, 126, 127, 128, 1000, 65535, 65536, 70_000];
  const OPCODES = [Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION, Opcode.PING, Opcode.PONG, Opcode.CLOSE];

  test('random frames, masked with random keys and cut at random points, come back unchanged', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const next = random(seed);
      const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)];
      const frames: Array<{ fin: boolean; opcode: number; payload: string }> = [];
      const wire: Buffer[] = [];
      for (let i = 0; i < 12; i++) {
        const opcode = pick(OPCODES);
        const control = opcode >= Opcode.CLOSE;
        const length = control ? Math.floor(next() * 126) : pick(LENGTHS);
        const payload = Buffer.alloc(length);
        for (let j = 0; j < length; j++) payload[j] = Math.floor(next() * 256);
        const fin = control || next() < 0.5;
        const maskKey = Buffer.from([0, 0, 0, 0].map(() => Math.floor(next() * 256)));
        frames.push({ fin, opcode, payload: payload.toString('hex') });
        wire.push(encodeFrame(opcode, payload, { fin, maskKey }));
      }
      const bytes = Buffer.concat(wire);
      const cuts = Array.from({ length: 1 + Math.floor(next() * 20) }, () => Math.floor(next() * bytes.length)).sort(
        (a, b) => a - b,
      );
      assert.deepEqual(parseInPieces(bytes, cuts).map(summary), frames, `seed ${seed}`);
    }
  });

  test('random garbage yields frames and at most one protocol error, last, and never throws', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const next = random(seed);
      const bytes = Buffer.alloc(1 + Math.floor(next() * 400));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
      // Half the time, start like a plausible frame (FIN, a known opcode, masked, short)
      // so the garbage gets past the first checks.
      if (next() < 0.5) {
        bytes[0] = 0x80 | [1, 2, 8, 9, 10][Math.floor(next() * 5)];
        bytes[1] = 0x80 | Math.floor(next() * 126);
      }
      const cuts = Array.from({ length: Math.floor(next() * 10) }, () => Math.floor(next() * bytes.length)).sort(
        (a, b) => a - b,
      );
      const results = parseInPieces(bytes, cuts, { maxPayloadBytes: 300 });
      const errors = results.filter((result) => result instanceof ProtocolError);
      assert.ok(errors.length <= 1, `seed ${seed}`);
      if (errors.length === 1) assert.ok(results.at(-1) instanceof ProtocolError, `seed ${seed}`);
    }
  });
});
