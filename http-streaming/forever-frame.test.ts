import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  escapeForScript,
  FRAME_CALLBACK,
  FRAME_PADDING_BYTES,
  FRAME_TAIL,
  frameHead,
  frameHeartbeat,
  frameMessage,
} from './forever-frame.ts';

const NONCE = 'bm9uY2Ugbm9uY2Ugbm9uY2U=';

// Texts that would end the script element, open an HTML comment inside it, or
// break a pre-ES2019 string literal, if written as they are.
const HOSTILE = [
  '</script><script>parent.pwned = 1</script>',
  '</SCRIPT ><img src=x onerror="parent.pwned=1">',
  '<!--<script>',
  '<!-- --> -->',
  'line\u2028separator\u2029paragraph',
  '& &amp; &lt; > <',
  '"); parent.pwned = 1; ("',
  '\\u003c already escaped',
];

/** The argument of `p(…)` in one chunk. */
function argumentOf(chunk: string): string {
  const match = /^<script nonce="[^"]+">p\((.*)\)<\/script>\n$/s.exec(chunk);
  assert.ok(match, `not a call chunk: ${chunk}`);
  return match[1]!;
}

describe('escapeForScript', () => {
  test('leaves no <, >, &, U+2028 or U+2029, and is still the same JSON value', () => {
    for (const text of HOSTILE) {
      const json = JSON.stringify({ id: 1, text });
      const escaped = escapeForScript(json);
      assert.doesNotMatch(escaped, /[<>&\u2028\u2029]/, text);
      assert.deepEqual(JSON.parse(escaped), { id: 1, text }, text);
      // …and the same JavaScript value: evaluate it as a script would.
      assert.deepEqual(new Function(`return (${escaped});`)(), { id: 1, text }, text);
    }
  });

  test('writes the golden forms \\u003c \\u003e \\u0026 \\u2028 \\u2029', () => {
    assert.equal(escapeForScript('"</script>&\u2028\u2029"'), '"\\u003c/script\\u003e\\u0026\\u2028\\u2029"');
  });

  test('touches nothing else', () => {
    const json = JSON.stringify({ id: 2, text: 'plain text, "quotes", \\ and 한국어 🎉' });
    assert.equal(escapeForScript(json), json);
  });
});

describe('the forever-frame document', () => {
  test('a message chunk is one script element calling p() with the escaped message', () => {
    const chunk = frameMessage(NONCE, { id: 1, text: '</script><b>x</b>' });
    assert.equal(chunk, `<script nonce="${NONCE}">p({"id":1,"text":"\\u003c/script\\u003e\\u003cb\\u003ex\\u003c/b\\u003e"})</script>\n`);
  });

  test('no message can end the script element or open a comment in it', () => {
    for (const text of HOSTILE) {
      const chunk = frameMessage(NONCE, { id: 1, text });
      // Exactly one `<` opens our script, exactly one closes it; nothing else can form a tag.
      assert.equal(chunk.split('<').length - 1, 2, text);
      assert.equal(chunk.toLowerCase().indexOf('</script'), chunk.length - '</script>\n'.length, text);
      assert.ok(!chunk.includes('<!--'), text);
      assert.deepEqual(JSON.parse(argumentOf(chunk)), { id: 1, text });
    }
  });

  test('a heartbeat is p(null)', () => {
    assert.equal(argumentOf(frameHeartbeat(NONCE)), 'null');
  });

  test('the head is padded to at least FRAME_PADDING_BYTES, ends with the hello carrying the heartbeat, and names the callback', () => {
    const head = frameHead(NONCE, 15_000);
    assert.ok(Buffer.byteLength(head) >= FRAME_PADDING_BYTES, `${Buffer.byteLength(head)} bytes`);
    assert.ok(Buffer.byteLength(head) < FRAME_PADDING_BYTES + 64, 'padded, not bloated');
    assert.ok(head.startsWith('<!doctype html>'));
    assert.ok(head.endsWith(`<script nonce="${NONCE}">p(null, {"heartbeatMs":15000})</script>\n`));
    assert.ok(head.includes(`parent.${FRAME_CALLBACK}`));
    // Every script element carries the nonce the Content-Security-Policy allows.
    for (const tag of head.match(/<script[^>]*>/g)!) assert.equal(tag, `<script nonce="${NONCE}">`);
  });

  test('p() calls the parent callback with (frame window, message), and never a parent it cannot reach', () => {
    const head = frameHead(NONCE, 15_000);
    const source = /<script[^>]*>\n([^]*?)<\/script>/.exec(head)![1]!;
    const calls: unknown[][] = [];
    const removed: string[] = [];
    const run = (parent: unknown, self: unknown): void => {
      const document = { currentScript: { remove: () => removed.push('script') } };
      new Function('parent', 'window', 'document', `${source}; p(null, {"heartbeatMs":15000}); p({"id":1,"text":"x"}); p(null);`)(parent, self, document);
    };
    const frame = {};
    run({ [FRAME_CALLBACK]: (...args: unknown[]) => calls.push(args) }, frame);
    assert.deepEqual(calls, [
      [frame, null, { heartbeatMs: 15_000 }],
      [frame, { id: 1, text: 'x' }, undefined],
      [frame, null, undefined],
    ]);
    assert.deepEqual(removed, ['script', 'script', 'script'], 'spent scripts are removed');

    // Opened on its own (parent === window), or by a parent without the callback: nothing happens.
    const alone = { [FRAME_CALLBACK]: () => assert.fail('called itself') };
    run(alone, alone);
    run({}, frame);
    // A parent of another origin throws on access: p() gives up quietly.
    run(new Proxy({}, { get: () => { throw new Error('SecurityError'); } }), frame);
    assert.equal(calls.length, 3);
  });

  test('a nonce must be base64, since it lands in an attribute and a header', () => {
    assert.throws(() => frameHeartbeat('"><script>'), RangeError);
    assert.throws(() => frameHead('', 15_000), RangeError);
  });

  test('the tail closes the document', () => {
    assert.equal(FRAME_TAIL, '</body></html>\n');
  });
});
