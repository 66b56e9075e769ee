import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { Utf8Validator } from './utf8.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** Feeds `bytes` cut at `cuts`; returns the index of the first piece refused, or 'valid'/'incomplete'. */
function validateInPieces(bytes: Buffer, cuts: number[]): number | 'valid' | 'incomplete' {
  const validator = new Utf8Validator();
  let start = 0;
  const ends = [...cuts, bytes.length];
  for (let piece = 0; piece < ends.length; piece++) {
    if (!validator.push(bytes.subarray(start, ends[piece]))) return piece;
    start = ends[piece];
  }
  return validator.end() ? 'valid' : 'incomplete';
}

const VALID = [
  '',
  'Hello',
  'κόσμε', // the Autobahn 6.x sample: 2- and 3-byte characters
  '€ and ¢',
  '😀 U+1F600 takes 4 bytes',
  '\u{7f}\u{80}\u{7ff}\u{800}\u{d7ff}\u{e000}\u{fffd}\u{ffff}\u{10000}\u{10ffff}', // every boundary of RFC 3629
];

describe('UTF-8 validation of text messages (§8.1)', () => {
  test('valid UTF-8 is accepted whatever the fragmentation, even inside a character', () => {
    for (const text of VALID) {
      const bytes = Buffer.from(text, 'utf8');
      assert.equal(validateInPieces(bytes, []), 'valid', text);
      for (let cut = 0; cut <= bytes.length; cut++) assert.equal(validateInPieces(bytes, [cut]), 'valid', `${text} cut at ${cut}`);
      const everyByte = Array.from({ length: bytes.length }, (_, i) => i);
      assert.equal(validateInPieces(bytes, everyByte), 'valid', `${text} byte by byte`);
    }
  });

  // Each case: the bytes, and the index of the first byte after which they can no
  // longer be the beginning of valid UTF-8.
  const INVALID: Array<[string, string, number]> = [
    ['a lone continuation byte', '41 80', 1],
    ['C0 and C1 never appear (overlong 2-byte forms)', '41 c0 80', 1],
    ['an overlong 3-byte form of "/"', 'e0 80 af', 1],
    ['an overlong 4-byte form', 'f0 80 80 af', 1],
    ['a UTF-16 surrogate U+D800 written as UTF-8', 'ed a0 80', 1],
    ['a code point above U+10FFFF', 'f4 90 80 80', 1],
    ['F5 never appears', 'f5 80 80 80', 0],
    ['FF never appears', '61 62 ff', 2],
    ['a character cut short by an ASCII byte', 'e2 82 41', 2],
    ['a 4-byte character cut short at its last byte', 'f0 9f 98 41', 3],
    ['κόσμε then a surrogate (Autobahn 6.4.1)', 'ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64', 12],
    ['κόσμε then U+110000 (Autobahn 6.4.2)', 'ce ba e1 bd b9 cf 83 ce bc ce b5 f4 90 80 80 65 64 69 74 65 64', 12],
  ];

  test('invalid UTF-8 is refused, and by the first piece that holds the offending byte (fail fast)', () => {
    for (const [name, text, badByte] of INVALID) {
      const bytes = hex(text);
      assert.equal(validateInPieces(bytes, []), 0, name);
      for (let cut = 0; cut <= bytes.length; cut++) {
        // The piece [0, cut) holds the bad byte if badByte < cut; else the second piece does.
        const expected = badByte < cut ? 0 : 1;
        assert.equal(validateInPieces(bytes, [cut]), expected, `${name}, cut at ${cut}`);
      }
      const everyByte = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
      assert.equal(validateInPieces(bytes, everyByte), badByte, `${name}, byte by byte`);
    }
  });

  test('a message that ends inside a character is invalid', () => {
    for (const text of ['e2 82', 'f0 9f 98', 'c3', '41 f4 8f bf']) {
      const bytes = hex(text);
      assert.equal(validateInPieces(bytes, []), 'incomplete', text);
      for (let cut = 0; cut <= bytes.length; cut++) assert.equal(validateInPieces(bytes, [cut]), 'incomplete', `${text} cut ${cut}`);
    }
  });

  test('on random bytes cut at random points it agrees with a whole-buffer check', () => {
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    // Bytes drawn mostly from lead and continuation ranges, so valid strings occur too.
    const alphabet = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf4, 0xf5];
    let valid = 0;
    for (let round = 0; round < 3000; round++) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(next() * 8) }, () => alphabet[Math.floor(next() * alphabet.length)]));
      const cuts = [Math.floor(next() * (bytes.length + 1))];
      const result = validateInPieces(bytes, cuts);
      assert.equal(result === 'valid', isUtf8(bytes), bytes.toString('hex'));
      if (result === 'valid') valid++;
    }
    assert.ok(valid > 100, 'the sample holds valid strings too');
  });
});
