import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode, encodeClosePayload, encodeFrame, FrameParser, Opcode, ProtocolError, type Frame } from './frame.ts';
import { isValidCloseCode, MessageAssembler, parseClosePayload } from './message.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function frame(opcode: number, payload: Buffer | string, fin = true): Frame {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return { fin, opcode, payloadLength: bytes.length, payload: bytes };
}

function expectError(result: unknown, code: number) {
  assert.ok(result instanceof ProtocolError, `expected a protocol error, got ${JSON.stringify(result)}`);
  assert.equal(result.code, code);
}

function expectMessage(result: unknown, binary: boolean, data: string) {
  assert.ok(result && !(result instanceof ProtocolError), `expected a message, got ${JSON.stringify(result)}`);
  assert.deepEqual(result, { type: 'message', binary, data: Buffer.from(data) });
}

describe('message assembly (§5.4)', () => {
  test('a single final text frame is a text message', () => {
    expectMessage(new MessageAssembler(100).addFrame(frame(Opcode.TEXT, 'Hello')), false, 'Hello');
  });

  test('a single final binary frame is a binary message', () => {
    expectMessage(new MessageAssembler(100).addFrame(frame(Opcode.BINARY, 'data')), true, 'data');
  });

  test('fragments are joined in order, and control frames between them are handed on at once', () => {
    const assembler = new MessageAssembler(100);
    assert.equal(assembler.addFrame(frame(Opcode.TEXT, 'Hel', false)), undefined);
    assert.deepEqual(assembler.addFrame(frame(Opcode.PING, 'are you there')), { type: 'ping', payload: Buffer.from('are you there') });
    assert.equal(assembler.addFrame(frame(Opcode.CONTINUATION, 'l', false)), undefined);
    assert.deepEqual(assembler.addFrame(frame(Opcode.PONG, '')), { type: 'pong', payload: Buffer.alloc(0) });
    expectMessage(assembler.addFrame(frame(Opcode.CONTINUATION, 'o')), false, 'Hello');
    // The next message starts afresh.
    expectMessage(assembler.addFrame(frame(Opcode.BINARY, 'next')), true, 'next');
  });

  test('empty fragments are allowed and add nothing', () => {
    const assembler = new MessageAssembler(100);
    assert.equal(assembler.addFrame(frame(Opcode.BINARY, '', false)), undefined);
    assert.equal(assembler.addFrame(frame(Opcode.CONTINUATION, '', false)), undefined);
    expectMessage(assembler.addFrame(frame(Opcode.CONTINUATION, '')), true, '');
  });

  test('a continuation frame without a message to continue is a protocol error (1002)', () => {
    expectError(new MessageAssembler(100).addFrame(frame(Opcode.CONTINUATION, 'x')), CloseCode.PROTOCOL_ERROR);
    expectError(new MessageAssembler(100).addFrame(frame(Opcode.CONTINUATION, 'x', false)), CloseCode.PROTOCOL_ERROR);
  });

  test('a new text or binary frame inside a fragmented message is a protocol error (1002)', () => {
    for (const opcode of [Opcode.TEXT, Opcode.BINARY]) {
      const assembler = new MessageAssembler(100);
      assembler.addFrame(frame(Opcode.TEXT, 'Hel', false));
      expectError(assembler.addFrame(frame(opcode, 'lo')), CloseCode.PROTOCOL_ERROR);
    }
  });
});

describe('the message size limit (1009)', () => {
  test('a message exactly at the limit is accepted, one byte more is 1009', () => {
    expectMessage(new MessageAssembler(5).addFrame(frame(Opcode.TEXT, 'Hello')), false, 'Hello');
    expectError(new MessageAssembler(5).addFrame(frame(Opcode.TEXT, 'Hello!')), CloseCode.MESSAGE_TOO_BIG);
  });

  test('the limit counts all fragments: the fragment that crosses it is refused', () => {
    const assembler = new MessageAssembler(5);
    assert.equal(assembler.addFrame(frame(Opcode.BINARY, 'abc', false)), undefined);
    assert.equal(assembler.checkHeader({ fin: true, opcode: Opcode.CONTINUATION, payloadLength: 2 }), undefined);
    expectError(assembler.addFrame(frame(Opcode.CONTINUATION, 'def')), CloseCode.MESSAGE_TOO_BIG);
  });

  test('control frames do not count towards the limit', () => {
    const assembler = new MessageAssembler(5);
    assembler.addFrame(frame(Opcode.BINARY, 'abcd', false));
    assert.deepEqual(assembler.addFrame(frame(Opcode.PING, 'a ping longer than five')), {
      type: 'ping',
      payload: Buffer.from('a ping longer than five'),
    });
    expectMessage(assembler.addFrame(frame(Opcode.CONTINUATION, 'e')), true, 'abcde');
  });

  test('wired into the parser, an oversized continuation is refused from its header, payload unsent', () => {
    const assembler = new MessageAssembler(1000);
    const parser = new FrameParser({ role: 'server', maxPayloadBytes: 1000, checks: { checkHeader: (header) => assembler.checkHeader(header) } });
    const maskKey = hex('01 02 03 04');
    parser.push(encodeFrame(Opcode.BINARY, Buffer.alloc(600), { fin: false, maskKey }));
    assert.equal(assembler.addFrame(parser.next() as Frame), undefined);
    // Only the 8-byte header of a 600-byte continuation: 600 + 600 > 1000.
    const header = encodeFrame(Opcode.CONTINUATION, Buffer.alloc(600), { maskKey }).subarray(0, 8);
    parser.push(Buffer.from(header));
    expectError(parser.next(), CloseCode.MESSAGE_TOO_BIG);
  });

  test('wired into the parser, a first fragment and its continuation in one chunk are accepted', () => {
    // The continuation's header is checked only after the first fragment was added.
    const assembler = new MessageAssembler(1000);
    const parser = new FrameParser({ role: 'server', maxPayloadBytes: 1000, checks: { checkHeader: (header) => assembler.checkHeader(header) } });
    const maskKey = hex('01 02 03 04');
    parser.push(
      Buffer.concat([
        encodeFrame(Opcode.TEXT, Buffer.from('Hel'), { fin: false, maskKey }),
        encodeFrame(Opcode.CONTINUATION, Buffer.from('lo'), { maskKey }),
      ]),
    );
    assert.equal(assembler.addFrame(parser.next() as Frame), undefined);
    expectMessage(assembler.addFrame(parser.next() as Frame), false, 'Hello');
    assert.equal(parser.next(), undefined);
  });
});

describe('text messages must be UTF-8 (§8.1, 1007)', () => {
  test('a text message that is not UTF-8 is 1007', () => {
    expectError(new MessageAssembler(100).addFrame(frame(Opcode.TEXT, hex('ce ba ed a0 80'))), CloseCode.INVALID_PAYLOAD);
  });

  test('binary messages are not checked', () => {
    const result = new MessageAssembler(100).addFrame(frame(Opcode.BINARY, hex('ed a0 80')));
    assert.deepEqual(result, { type: 'message', binary: true, data: hex('ed a0 80') });
  });

  test('a character split across fragments is fine', () => {
    const assembler = new MessageAssembler(100);
    assert.equal(assembler.addFrame(frame(Opcode.TEXT, hex('e2'), false)), undefined);
    assert.equal(assembler.addFrame(frame(Opcode.CONTINUATION, hex('82'), false)), undefined);
    expectMessage(assembler.addFrame(frame(Opcode.CONTINUATION, hex('ac'))), false, '€');
  });

  test('a fragmented text message fails at the first fragment that cannot begin valid UTF-8, not at the end', () => {
    const assembler = new MessageAssembler(100);
    assert.equal(assembler.addFrame(frame(Opcode.TEXT, hex('ce ba e1 bd b9 cf 83 ce bc ce b5'), false)), undefined);
    assert.equal(assembler.addFrame(frame(Opcode.CONTINUATION, hex('f4'), false)), undefined);
    expectError(assembler.addFrame(frame(Opcode.CONTINUATION, hex('90'), false)), CloseCode.INVALID_PAYLOAD);
  });

  test('a text message that ends inside a character is 1007', () => {
    const assembler = new MessageAssembler(100);
    assembler.addFrame(frame(Opcode.TEXT, 'ok', false));
    expectError(assembler.addFrame(frame(Opcode.CONTINUATION, hex('e2 82'))), CloseCode.INVALID_PAYLOAD);
  });
});

describe('UTF-8 checked as a frame arrives, wired into the parser (§8.1 fail fast, Autobahn 6.4.3/6.4.4)', () => {
  const maskKey = hex('37 fa 21 3d');

  /** A parser and assembler wired as the connection wires them; feeds `bytes` cut at `cuts`. */
  function receive(bytes: Buffer, cuts: number[]) {
    const assembler = new MessageAssembler(1000);
    const parser = new FrameParser({ role: 'server', maxPayloadBytes: 1000, checks: assembler });
    const events: unknown[] = [];
    let start = 0;
    for (const cut of [...cuts, bytes.length]) {
      parser.push(Buffer.from(bytes.subarray(start, cut)));
      start = cut;
      for (let result = parser.next(); result !== undefined; result = parser.next()) {
        const event = result instanceof ProtocolError ? result : assembler.addFrame(result);
        if (event !== undefined) events.push(event);
      }
      if (events.at(-1) instanceof ProtocolError) return { events, bytesSent: cut };
    }
    return { events, bytesSent: bytes.length };
  }
  const everyCut = (bytes: Buffer) => [
    ...Array.from({ length: bytes.length - 1 }, (_, i) => [i + 1]),
    Array.from({ length: bytes.length - 1 }, (_, i) => i + 1),
  ];

  test('valid text cut at every offset, characters split between pieces and fragments, is one message, checked once', () => {
    const bytes = Buffer.concat([
      encodeFrame(Opcode.TEXT, hex('ce ba e1 bd b9 cf 83 ce'), { fin: false, maskKey }),
      encodeFrame(Opcode.PING, Buffer.from('ping'), { maskKey }),
      encodeFrame(Opcode.CONTINUATION, hex('bc ce b5 e2 82 ac f0 9d 84 9e'), { maskKey }),
      encodeFrame(Opcode.BINARY, hex('ed a0 80 ff'), { maskKey }), // binary: never checked
      encodeFrame(Opcode.TEXT, Buffer.from('€uro'), { maskKey }),
    ]);
    for (const cuts of everyCut(bytes)) {
      const { events } = receive(bytes, cuts);
      assert.equal(events.length, 4, `cuts ${cuts.join()}`);
      expectMessage(events[1], false, hex('ce ba e1 bd b9 cf 83 ce bc ce b5 e2 82 ac f0 9d 84 9e').toString()); // κόσμε€𝄞
      assert.deepEqual(events[2], { type: 'message', binary: true, data: hex('ed a0 80 ff') });
      expectMessage(events[3], false, '€uro');
    }
  });

  test('an impossible byte inside one frame is 1007 as soon as it arrives, the rest of the frame unsent', () => {
    const payload = Buffer.concat([Buffer.from('κόσμε'), hex('f4 90 80 80'), Buffer.from('edited')]);
    const bytes = encodeFrame(Opcode.TEXT, payload, { maskKey });
    const impossibleAt = 6 + Buffer.byteLength('κόσμε') + 1; // header and key, the text, then f4: 90 is the byte
    for (const cuts of everyCut(bytes)) {
      const { events, bytesSent } = receive(bytes, cuts);
      assert.equal(events.length, 1);
      expectError(events[0], CloseCode.INVALID_PAYLOAD);
      // Failed with the first piece that holds the impossible byte, whatever came before it.
      const pieceEnd = [...cuts, bytes.length].find((cut) => cut > impossibleAt);
      assert.equal(bytesSent, pieceEnd, `cuts ${cuts.join()}`);
    }
  });

  test('an impossible byte in a continuation still arriving is 1007 too', () => {
    const bytes = Buffer.concat([
      encodeFrame(Opcode.TEXT, Buffer.from('ok '), { fin: false, maskKey }),
      encodeFrame(Opcode.CONTINUATION, Buffer.concat([Buffer.from('fine, then '), hex('ff'), Buffer.from(' and more')]), { maskKey }),
    ]);
    const { events, bytesSent } = receive(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1));
    expectError(events.at(-1), CloseCode.INVALID_PAYLOAD);
    assert.ok(bytesSent < bytes.length, 'before the frame ended');
  });
});

describe('close frames (§5.5.1, §7.4)', () => {
  test('an empty close frame has no code (reported as 1005) and no reason', () => {
    assert.deepEqual(new MessageAssembler(100).addFrame(frame(Opcode.CLOSE, '')), { type: 'close', code: undefined, reason: '' });
  });

  test('a close frame carries a code and a UTF-8 reason', () => {
    assert.deepEqual(new MessageAssembler(100).addFrame(frame(Opcode.CLOSE, encodeClosePayload(1000, 'bye ✓'))), {
      type: 'close',
      code: 1000,
      reason: 'bye ✓',
    });
  });

  test('a close payload of 1 byte is a protocol error (1002)', () => {
    expectError(parseClosePayload(hex('03')), CloseCode.PROTOCOL_ERROR);
  });

  test('codes 1000–1003, 1007–1014 and 3000–4999 are valid', () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
      assert.ok(isValidCloseCode(code), `${code}`);
      assert.deepEqual(parseClosePayload(encodeClosePayload(code)), { code, reason: '' });
    }
  });

  test('codes 0–999, 1004–1006, 1015, 1016–2999 and 5000 up are a protocol error (1002)', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
      assert.ok(!isValidCloseCode(code), `${code}`);
      expectError(parseClosePayload(encodeClosePayload(code)), CloseCode.PROTOCOL_ERROR);
    }
  });

  test('a close reason that is not UTF-8 is 1007', () => {
    expectError(new MessageAssembler(100).addFrame(frame(Opcode.CLOSE, hex('03 e8 ce ba ed a0 80'))), CloseCode.INVALID_PAYLOAD);
  });

  test('a close frame may come between fragments', () => {
    const assembler = new MessageAssembler(100);
    assembler.addFrame(frame(Opcode.TEXT, 'Hel', false));
    assert.deepEqual(assembler.addFrame(frame(Opcode.CLOSE, encodeClosePayload(1001))), { type: 'close', code: 1001, reason: '' });
  });
});
