// The event-stream format on bytes: the writer's exact output, the parser
// against WHATWG HTML §9.2.6 sentence by sentence, every chunk split, and the
// two together (whatever the writer is given, the parser gets back exactly
// that one event and no forged field).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  acceptsEventStream,
  EventStreamParser,
  formatComment,
  formatEvent,
  formatRetry,
  type ParsedEvent,
} from './event-stream.ts';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

interface Parsed {
  events: ParsedEvent[];
  retries: number[];
  comments: string[];
  lastEventId: string;
}

/** Feeds `input` in the chunks given by the cut offsets, collecting everything. */
function parse(input: Uint8Array, cuts: number[] = []): Parsed {
  const result: Parsed = { events: [], retries: [], comments: [], lastEventId: '' };
  const parser = new EventStreamParser({
    onEvent: (event) => result.events.push(event),
    onRetry: (ms) => result.retries.push(ms),
    onComment: (text) => result.comments.push(text),
  });
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    parser.feed(input.subarray(from, cut));
    from = cut;
  }
  result.lastEventId = parser.lastEventId;
  return result;
}

/** The same bytes must give the same result split at every offset, and one byte at a time. */
function assertAnySplit(input: Uint8Array, expected: Parsed): void {
  assert.deepEqual(parse(input), expected, 'whole');
  for (let cut = 1; cut < input.length; cut++) assert.deepEqual(parse(input, [cut]), expected, `split at ${cut}`);
  for (let cut = 1; cut + 1 < input.length; cut++) {
    assert.deepEqual(parse(input, [cut, cut + 1]), expected, `split at ${cut} and ${cut + 1}`);
  }
  assert.deepEqual(parse(input, [...Array(input.length).keys()].slice(1)), expected, 'byte by byte');
}

const message = (data: string, lastEventId = '', type = 'message'): ParsedEvent => ({ type, data, lastEventId });

describe('formatEvent: the writer, on bytes', () => {
  test('a chat message is id: then data: then the blank line that dispatches it', () => {
    assert.deepEqual(
      bytes(formatEvent({ id: 7, data: '{"id":7,"text":"hi"}' })),
      bytes('id: 7\ndata: {"id":7,"text":"hi"}\n\n'),
    );
  });

  test('a named event carries event: before its data (the documents\' ping)', () => {
    assert.equal(formatEvent({ event: 'ping', data: '{"time":"x"}' }), 'event: ping\ndata: {"time":"x"}\n\n');
    assert.equal(formatEvent({ event: '', data: 'x' }), 'data: x\n\n', "'' is the default type: no field");
  });

  test('retry: comes first and must be a non-negative integer', () => {
    assert.equal(formatEvent({ retry: 500, id: 1, data: 'x' }), 'retry: 500\nid: 1\ndata: x\n\n');
    assert.equal(formatRetry(0), 'retry: 0\n');
    for (const bad of [-1, 1.5, Number.NaN, Infinity]) assert.throws(() => formatRetry(bad), TypeError);
  });

  test('multi-line data becomes one data: line per line, whatever the line break (LF, CR, CRLF)', () => {
    assert.equal(formatEvent({ data: 'a\nb\rc\r\nd' }), 'data: a\ndata: b\ndata: c\ndata: d\n\n');
    assert.equal(formatEvent({ data: 'end\n' }), 'data: end\ndata: \n\n', 'a trailing break is an empty last line');
  });

  test('empty data is one empty data: line, which still dispatches an event with data ""', () => {
    assert.equal(formatEvent({ data: '' }), 'data: \n\n');
    assert.deepEqual(parse(bytes(formatEvent({ data: '' }))).events, [message('')]);
  });

  test('data that starts with a space keeps it (the parser strips exactly one)', () => {
    assert.equal(formatEvent({ data: ' x' }), 'data:  x\n\n');
    assert.deepEqual(parse(bytes(formatEvent({ data: ' x' }))).events, [message(' x')]);
  });

  test('unicode is written as UTF-8; U+2028, U+0085 and NUL in data are not line breaks', () => {
    const data = 'héllo 😀 \u2028 \u0085 \0 end';
    assert.deepEqual(bytes(formatEvent({ data })), Buffer.concat([bytes('data: '), Buffer.from(data, 'utf8'), bytes('\n\n')]));
    assert.deepEqual(parse(bytes(formatEvent({ data }))).events, [message(data)]);
  });

  test('an id or event type holding CR or LF is refused: it would inject a field or end the event early', () => {
    for (const id of ['1\n', '1\r', '1\r\ndata: forged', '\n\nid: 999']) {
      assert.throws(() => formatEvent({ id, data: 'x' }), TypeError, JSON.stringify(id));
    }
    for (const event of ['ping\n', 'a\rb', 'x\r\ndata: forged']) {
      assert.throws(() => formatEvent({ event, data: 'x' }), TypeError, JSON.stringify(event));
    }
  });

  test('§9.2.6: an id containing U+0000 would be ignored by the client, so it is refused', () => {
    assert.throws(() => formatEvent({ id: 'a\0b', data: 'x' }), /NUL/);
  });

  test('whatever the data holds, the parser gets back exactly one event with that data (line breaks as LF)', () => {
    const pieces = ['\n', '\r', '\r\n', '\n\n', 'data: forged', 'id: 999', 'event: x', 'retry: 1', ':', ' ', 'é', '😀', 'a'];
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 500; round++) {
      let data = '';
      for (let i = random(8); i > 0; i--) data += pieces[random(pieces.length)];
      const result = parse(bytes(formatEvent({ id: round, data })));
      assert.deepEqual(result.events, [message(data.replace(/\r\n|\r/g, '\n'), String(round))], JSON.stringify(data));
      assert.deepEqual(result.retries, [], 'no forged retry');
    }
  });
});

describe('formatComment', () => {
  test('a comment is a line starting with a colon; multi-line text is several comment lines', () => {
    assert.equal(formatComment('keep-alive'), ': keep-alive\n');
    assert.equal(formatComment(), ':\n');
    assert.equal(formatComment('a\nb\r\n\rc'), ': a\n: b\n:\n: c\n');
  });

  test('a comment dispatches nothing, even one holding line breaks', () => {
    const result = parse(bytes(formatComment('x\n\ndata: forged\n') + 'data: real\n\n'));
    assert.deepEqual(result.events, [message('real')]);
    assert.deepEqual(result.comments, ['x', '', 'data: forged', '']);
  });
});

describe('EventStreamParser: WHATWG HTML §9.2.6, at every chunk split', () => {
  test('lines end at CRLF, LF or a lone CR, and a CRLF split across chunks is one line end', () => {
    assertAnySplit(bytes('data: a\r\ndata: b\rdata: c\n\r\n'), {
      events: [message('a\nb\nc')],
      retries: [],
      comments: [],
      lastEventId: '',
    });
  });

  test('"If the line is empty, dispatch the event": two events, the second named', () => {
    assertAnySplit(bytes('id: 1\ndata: one\n\nevent: ping\ndata: {"time":"t"}\n\n'), {
      events: [message('one', '1'), message('{"time":"t"}', '1', 'ping')],
      retries: [],
      comments: [],
      lastEventId: '1',
    });
  });

  test('the last event id buffer is not reset between events; an id alone dispatches nothing but is kept', () => {
    assertAnySplit(bytes('id: 5\ndata: a\n\ndata: b\n\nid: 9\n\n'), {
      events: [message('a', '5'), message('b', '5')],
      retries: [],
      comments: [],
      lastEventId: '9',
    });
    assert.deepEqual(parse(bytes('id: 5\n\nid\ndata: x\n\n')).events, [message('x', '')], '"id" with no colon resets it to ""');
  });

  test('"If the field value does not contain U+0000 NULL, set the last event ID buffer": an id with NUL is ignored', () => {
    assertAnySplit(bytes('id: 3\n\nid: 4\0\ndata: x\n\n'), {
      events: [message('x', '3')],
      retries: [],
      comments: [],
      lastEventId: '3',
    });
  });

  test('"If the data buffer is an empty string, return": an event without data is not dispatched', () => {
    assert.deepEqual(parse(bytes('event: ping\n\ndata: x\n\n')).events, [message('x')], 'and its type does not carry over');
  });

  test('exactly one space after the colon is removed; a line without a colon is a field with value ""', () => {
    assertAnySplit(bytes('data:x\ndata:  y\ndata\n\n'), {
      events: [message('x\n y\n')],
      retries: [],
      comments: [],
      lastEventId: '',
    });
  });

  test('retry: only ASCII digits count; unknown fields and comments are ignored', () => {
    assertAnySplit(bytes('retry: 500\nretry: 5s\nretry: -1\n: hello\nfoo: bar\ndata: x\n\n'), {
      events: [message('x')],
      retries: [500],
      comments: ['hello'],
      lastEventId: '',
    });
  });

  test('the stream is UTF-8: a leading BOM is dropped, a character split across chunks survives, bad bytes become U+FFFD', () => {
    assertAnySplit(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes('data: é😀\n\n')]), {
      events: [message('é😀')],
      retries: [],
      comments: [],
      lastEventId: '',
    });
    assert.deepEqual(parse(Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a])).events, [message('\ufffd')]);
  });

  test('an event unfinished when the stream ends is never dispatched', () => {
    assert.deepEqual(parse(bytes('data: complete\n\ndata: cut off\n')).events, [message('complete')]);
  });

  test('the server\'s opening bytes: retry, then a replayed message, then a ping and a heartbeat', () => {
    const stream =
      formatRetry(500) + '\n' +
      formatEvent({ id: 2, data: '{"id":2,"text":"hi"}' }) +
      formatEvent({ event: 'ping', data: '{"time":"t"}' }) +
      formatComment('keep-alive');
    assertAnySplit(bytes(stream), {
      events: [message('{"id":2,"text":"hi"}', '2'), message('{"time":"t"}', '2', 'ping')],
      retries: [500],
      comments: ['keep-alive'],
      lastEventId: '2',
    });
  });
});

describe('acceptsEventStream: Accept negotiation (RFC 9110 §12.5.1)', () => {
  test('EventSource\'s header, curl\'s */*, text/*, and no header at all accept the stream', () => {
    for (const accept of [undefined, '', 'text/event-stream', 'TEXT/Event-Stream', '*/*', 'text/*',
      'text/html, */*;q=0.1', 'text/event-stream; charset=utf-8', 'application/json, text/event-stream;q=0.5']) {
      assert.equal(acceptsEventStream(accept), true, String(accept));
    }
  });

  test('other types, and a q=0 on the most specific matching range, do not', () => {
    for (const accept of ['application/json', 'text/html', 'text/plain, application/*', 'text/event-stream;q=0',
      'text/event-stream;q=0, */*', 'text/*;q=0.0, */*', 'nonsense', ';;,,']) {
      assert.equal(acceptsEventStream(accept), false, accept);
    }
    assert.equal(acceptsEventStream('*/*;q=0, text/event-stream'), true, 'the specific range wins over */*');
  });
});
