/**
 * Incremental UTF-8 validation for text messages (RFC 6455 §8.1, §5.6).
 *
 * A text message may arrive in fragments cut anywhere, even inside a character:
 * "€" is E2 82 AC and may come as E2 | 82 AC. §8.1 asks an endpoint to fail the
 * connection (close 1007) when the bytes are not valid UTF-8, and a good endpoint
 * does it "fast": as soon as the bytes so far can no longer be the start of valid
 * UTF-8, not once the whole message is in.
 *
 * Each chunk is split in three: the end of a character left over from the last
 * chunk, a middle checked by node's native `isUtf8`, and up to 3 bytes starting a
 * character that the next chunk must finish. The first and last parts are checked
 * byte by byte against the table of RFC 3629 §4, which says which bytes may follow
 * which lead byte:
 *
 *     lead       2nd byte   then      what the 2nd-byte range rules out
 *     C2..DF     80..BF     -         (C0, C1: overlong 2-byte forms)
 *     E0         A0..BF     80..BF    overlong 3-byte forms
 *     E1..EC     80..BF     80..BF
 *     ED         80..9F     80..BF    UTF-16 surrogates D800..DFFF
 *     EE..EF     80..BF     80..BF
 *     F0         90..BF     80..BF x2 overlong 4-byte forms
 *     F1..F3     80..BF     80..BF x2
 *     F4         80..8F     80..BF x2 code points above U+10FFFF
 *                                     (F5..FF never appear in UTF-8)
 */
import { isUtf8 } from 'node:buffer';

/** How many bytes the character started by `lead` has; 0 if `lead` cannot start one. */
function sequenceLength(lead: number): number {
  if (lead <= 0x7f) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0; // a continuation byte 80..BF, or C0, C1, F5..FF
}

/** Whether `byte` may come at `position` (1, 2 or 3) of the character started by `lead`. */
function mayFollow(lead: number, position: number, byte: number): boolean {
  if (position === 1) {
    if (lead === 0xe0) return byte >= 0xa0 && byte <= 0xbf;
    if (lead === 0xed) return byte >= 0x80 && byte <= 0x9f;
    if (lead === 0xf0) return byte >= 0x90 && byte <= 0xbf;
    if (lead === 0xf4) return byte >= 0x80 && byte <= 0x8f;
  }
  return byte >= 0x80 && byte <= 0xbf;
}

/**
 * Validates one text message fed in pieces. `push()` answers false as soon as the
 * bytes so far cannot begin valid UTF-8; `end()` answers whether they also end on a
 * whole character. A validator serves one message; make a new one for the next.
 */
export class Utf8Validator {
  /** Bytes of a character begun at the end of an earlier chunk (0 to 3 of them). */
  private pending: number[] = [];

  push(bytes: Buffer): boolean {
    let start = 0;

    // 1. Finish the character left over from the last chunk, byte by byte.
    while (this.pending.length > 0 && start < bytes.length) {
      const lead = this.pending[0];
      if (!mayFollow(lead, this.pending.length, bytes[start])) return false;
      this.pending.push(bytes[start]);
      start++;
      if (this.pending.length === sequenceLength(lead)) this.pending = [];
    }
    if (start === bytes.length) return true;

    // 2. Find where a character starts that this chunk does not finish: look back
    //    over at most 3 continuation bytes for its lead byte.
    let tailStart = bytes.length;
    for (let back = 1; back <= 3 && back <= bytes.length - start; back++) {
      const byte = bytes[bytes.length - back];
      if ((byte & 0xc0) === 0x80) continue; // a continuation byte: keep looking
      if (sequenceLength(byte) > back) tailStart = bytes.length - back;
      break;
    }

    // 3. The whole characters in between: the native check.
    if (!isUtf8(bytes.subarray(start, tailStart))) return false;

    // 4. The unfinished character must be a possible beginning of one.
    for (let i = tailStart; i < bytes.length; i++) {
      if (i > tailStart && !mayFollow(bytes[tailStart], i - tailStart, bytes[i])) return false;
      this.pending.push(bytes[i]);
    }
    return true;
  }

  /** Whether the message ends on a whole character (call after the last `push`). */
  end(): boolean {
    return this.pending.length === 0;
  }
}

