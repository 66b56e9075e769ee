import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { formatLine, LineSplitter, LineTooLongError, NdjsonDecoder, parseLine } from './ndjson.ts';

const MESSAGES = [
  { id: 1, text: 'hi', time: 1 },
  { id: 2, text: 'line\nbreak and "quotes" and \\', time: 2 },
  { id: 3, text: 'héllo wörld 🎉 \u2028\u2029 한국어', time: 3 },
];
// Two messages, a heartbeat, a message: the wire as server.ts writes it.
const TRANSCRIPT = formatLine(MESSAGES[0]!) + formatLine(MESSAGES[1]!) + '\n' + formatLine(MESSAGES[2]!);
const EXPECTED_LINES = [JSON.stringify(MESSAGES[0]), JSON.stringify(MESSAGES[1]), '', JSON.stringify(MESSAGES[2])];

/** Runs `chunks` through a fresh splitter and collects every line. */
function split(chunks: string[]): { lines: string[]; rest: string | undefined } {
  const splitter = new LineSplitter();
  const lines = chunks.flatMap((chunk) => splitter.push(chunk));
  return { lines, rest: splitter.end() };
}

function decode(chunks: Uint8Array[]): { lines: string[]; rest: string | undefined } {
  const decoder = new NdjsonDecoder();
  const lines = chunks.flatMap((chunk) => decoder.push(chunk));
  return { lines, rest: decoder.end() };
}

describe('formatLine', () => {
  test('a message is its JSON on one line: a newline in the text is escaped, never raw', () => {
    assert.equal(formatLine(MESSAGES[1]!), '{"id":2,"text":"line\\nbreak and \\"quotes\\" and \\\\","time":2}\n');
    for (const message of MESSAGES) assert.equal(formatLine(message).indexOf('\n'), formatLine(message).length - 1);
  });
});

describe('LineSplitter: any chunk boundary gives the same lines', () => {
  test('the whole transcript in one chunk', () => {
    assert.deepEqual(split([TRANSCRIPT]), { lines: EXPECTED_LINES, rest: undefined });
  });

  test('split in two at every offset', () => {
    for (let offset = 0; offset <= TRANSCRIPT.length; offset++) {
      const result = split([TRANSCRIPT.slice(0, offset), TRANSCRIPT.slice(offset)]);
      assert.deepEqual(result, { lines: EXPECTED_LINES, rest: undefined }, `offset ${offset}`);
    }
  });

  test('one character at a time', () => {
    assert.deepEqual(split([...TRANSCRIPT]), { lines: EXPECTED_LINES, rest: undefined });
  });

  test('split in three at every pair of offsets', () => {
    for (let a = 0; a <= TRANSCRIPT.length; a += 3) {
      for (let b = a; b <= TRANSCRIPT.length; b += 5) {
        const result = split([TRANSCRIPT.slice(0, a), TRANSCRIPT.slice(a, b), TRANSCRIPT.slice(b)]);
        assert.deepEqual(result.lines, EXPECTED_LINES, `offsets ${a}, ${b}`);
      }
    }
  });

  test('a chunk that completes a line holds back what follows its last newline', () => {
    const splitter = new LineSplitter();
    assert.deepEqual(splitter.push('{"id":1}\n{"i'), ['{"id":1}']);
    assert.equal(splitter.pendingLength, 3);
    assert.deepEqual(splitter.push('d":2}\n\n'), ['{"id":2}', '']);
    assert.equal(splitter.pendingLength, 0);
  });

  test('CRLF line ends read like LF', () => {
    assert.deepEqual(split(['{"id":1}\r', '\n\r\n{"id":2}\r\n']).lines, ['{"id":1}', '', '{"id":2}']);
  });

  test('an unterminated last line is handed back by end(), not as a line', () => {
    assert.deepEqual(split(['{"id":1}\n{"id":2']), { lines: ['{"id":1}'], rest: '{"id":2' });
  });

  test('a line longer than the limit throws instead of buffering without bound', () => {
    const splitter = new LineSplitter(10);
    assert.deepEqual(splitter.push('0123456789\n'), ['0123456789'], 'exactly the limit is fine');
    splitter.push('01234');
    assert.throws(() => splitter.push('567890'), LineTooLongError);
  });
});

describe('NdjsonDecoder: bytes split anywhere, even inside a UTF-8 character', () => {
  const bytes = new TextEncoder().encode(TRANSCRIPT);

  test('split in two at every byte offset', () => {
    for (let offset = 0; offset <= bytes.length; offset++) {
      const result = decode([bytes.subarray(0, offset), bytes.subarray(offset)]);
      assert.deepEqual(result, { lines: EXPECTED_LINES, rest: undefined }, `offset ${offset}`);
    }
  });

  test('one byte at a time', () => {
    const chunks = [...bytes].map((byte) => Uint8Array.of(byte));
    assert.deepEqual(decode(chunks), { lines: EXPECTED_LINES, rest: undefined });
  });

  test('a character cut off by the end of the stream is a U+FFFD in the unterminated rest', () => {
    const cut = new TextEncoder().encode('{"text":"🎉').subarray(0, -2);
    assert.deepEqual(decode([cut]), { lines: [], rest: '{"text":"\uFFFD' });
  });

  test('the line limit applies to decoded text', () => {
    const decoder = new NdjsonDecoder(4);
    assert.throws(() => decoder.push(new TextEncoder().encode('12345')), LineTooLongError);
  });
});

describe('parseLine', () => {
  test('an empty line is a heartbeat', () => {
    assert.deepEqual(parseLine(''), { kind: 'heartbeat' });
  });

  test('a message line gives the message, unknown fields kept', () => {
    assert.deepEqual(parseLine('{"id":7,"text":"x","from":"ab"}'), {
      kind: 'message',
      message: { id: 7, text: 'x', from: 'ab' },
    });
  });

  test('anything else is invalid: not JSON, or JSON that is not a message', () => {
    for (const line of ['{"id":1', 'hello', '[]', '{"id":0,"text":"x"}', '{"id":1}', ' ']) {
      assert.equal(parseLine(line).kind, 'invalid', line);
    }
  });
});
