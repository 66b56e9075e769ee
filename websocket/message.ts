/**
 * From frames to messages (RFC 6455 §5.4–§5.6): the rules that need more than one
 * frame to check. Pure: frames in, events out, no sockets.
 *
 * A message is one data frame with FIN set, or a first fragment (text or binary,
 * FIN clear), any number of continuation frames (opcode 0), and a last continuation
 * with FIN set. Control frames may come between fragments (§5.4) and are handed on
 * at once: that is how a ping gets its pong while a large message is still arriving.
 *
 *     01 03 "Hel"      text, FIN=0      first fragment
 *     89 00            ping             → event 'ping' now
 *     80 02 "lo"       continuation, FIN=1 → event 'message' "Hello"
 */
import { CloseCode, isControlOpcode, Opcode, ProtocolError, type Frame, type FrameHeader } from './frame.ts';
import { Utf8Validator } from './utf8.ts';
import { isUtf8 } from 'node:buffer';

export type MessageEvent =
  | { type: 'message'; binary: boolean; data: Buffer }
  | { type: 'ping'; payload: Buffer }
  | { type: 'pong'; payload: Buffer }
  /** `code` is undefined when the close frame had no payload (reported to apps as 1005). */
  | { type: 'close'; code: number | undefined; reason: string };

/**
 * Whether `code` may appear in a close frame (§7.4): the codes defined for use on
 * the wire (1000–1003, 1007–1011), the ones IANA registered since (1012–1014:
 * service restart, try again later, bad gateway), and the ranges for libraries and
 * applications (3000–4999). 1004 is reserved; 1005, 1006 and 1015 are for reporting
 * only and "MUST NOT be set as a status code in a Close control frame" (§7.4.1);
 * 1016–2999 are reserved for future RFCs; below 1000 and from 5000 are unused.
 */
export function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
  );
}

/**
 * Reads a close frame's payload (§5.5.1): empty, or a 2-byte code and a UTF-8 reason.
 * A single byte cannot hold a code, so it is a protocol error.
 */
export function parseClosePayload(payload: Buffer): { code: number | undefined; reason: string } | ProtocolError {
  if (payload.length === 0) return { code: undefined, reason: '' };
  if (payload.length === 1) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'close payload of 1 byte');
  const code = payload.readUInt16BE(0);
  if (!isValidCloseCode(code)) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'invalid close code');
  const reason = payload.subarray(2);
  // §5.5.1: the reason is UTF-8; §8.1 makes invalid UTF-8 a 1007.
  if (!isUtf8(reason)) return new ProtocolError(CloseCode.INVALID_PAYLOAD, 'close reason not UTF-8');
  return { code, reason: reason.toString('utf8') };
}

/**
 * Puts fragments back together and checks the rules across frames: continuation
 * only inside a message, no new message inside one (§5.4), the endpoint's size
 * limit over all fragments (1009), UTF-8 of text, failing at the first fragment
 * that makes it impossible (§8.1, 1007), and close payloads (§5.5.1, §7.4).
 *
 * Give it to `FrameParser` as its `checks`: `checkHeader` then refuses an
 * oversized or misplaced frame from its header, before its payload is buffered
 * (`addFrame` checks the same rules again, so the class is also correct used
 * alone), and `checkPayloadPart` checks text as its bytes arrive, even inside one
 * frame sent in pieces (Autobahn 6.4.3/6.4.4); `addFrame` then checks only the
 * bytes that part did not see.
 */
export class MessageAssembler {
  /** TEXT or BINARY while a fragmented message is open, else undefined. */
  private messageOpcode: number | undefined;
  /** The fragments of that message so far; none until a message is fragmented. */
  private fragments: Buffer[] | undefined;
  private messageBytes = 0;
  private utf8: Utf8Validator | undefined;
  /** Bytes of the frame being read that checkPayloadPart has validated already. */
  private partBytes = 0;

  constructor(private readonly maxMessageBytes: number) {}

  checkHeader(header: FrameHeader): ProtocolError | undefined {
    if (isControlOpcode(header.opcode)) return undefined;
    const continues = header.opcode === Opcode.CONTINUATION;
    // §5.4: a continuation frame continues something; a data frame starts a new message.
    if (continues && this.messageOpcode === undefined) {
      return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'continuation without a message');
    }
    if (!continues && this.messageOpcode !== undefined) {
      return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'new message inside a fragmented one');
    }
    const bytesSoFar = continues ? this.messageBytes : 0;
    if (bytesSoFar + header.payloadLength > this.maxMessageBytes) {
      return new ProtocolError(CloseCode.MESSAGE_TOO_BIG, 'message too big');
    }
    return undefined;
  }

  /**
   * Checks payload bytes of a frame still arriving (`part` starts at `offset` in
   * it): §8.1 fail fast, inside a frame as well as across fragments. Only text is
   * checked: a first text frame, or a continuation of a text message.
   */
  checkPayloadPart(header: FrameHeader, part: Buffer, offset: number): ProtocolError | undefined {
    if (header.opcode === Opcode.TEXT && offset === 0) this.utf8 = new Utf8Validator(); // a new message's first bytes
    else if (header.opcode !== Opcode.TEXT && header.opcode !== Opcode.CONTINUATION) return undefined;
    if (this.utf8 === undefined) return undefined; // a continuation of a binary message
    this.partBytes = offset + part.length;
    return this.utf8.push(part) ? undefined : new ProtocolError(CloseCode.INVALID_PAYLOAD, 'text is not UTF-8');
  }

  /** Takes one frame; returns an event, a protocol error, or undefined for a fragment kept. */
  addFrame(frame: Frame): MessageEvent | ProtocolError | undefined {
    const refusal = this.checkHeader(frame);
    if (refusal) return refusal;

    switch (frame.opcode) {
      case Opcode.CLOSE: {
        const close = parseClosePayload(frame.payload);
        return close instanceof ProtocolError ? close : { type: 'close', ...close };
      }
      case Opcode.PING:
        return { type: 'ping', payload: frame.payload };
      case Opcode.PONG:
        return { type: 'pong', payload: frame.payload };
      case Opcode.TEXT:
        if (this.partBytes === 0) this.utf8 = new Utf8Validator(); // else checkPayloadPart made it
        this.messageOpcode = Opcode.TEXT;
        break;
      case Opcode.BINARY:
        this.messageOpcode = Opcode.BINARY;
        break;
    }
    return this.addData(frame);
  }

  private addData(frame: Frame): MessageEvent | ProtocolError | undefined {
    const unchecked = frame.payload.subarray(this.partBytes);
    this.partBytes = 0;
    if (this.utf8 && !this.utf8.push(unchecked)) {
      return new ProtocolError(CloseCode.INVALID_PAYLOAD, 'text is not UTF-8');
    }
    if (!frame.fin) {
      (this.fragments ??= []).push(frame.payload);
      this.messageBytes += frame.payload.length;
      return undefined;
    }
    if (this.utf8 && !this.utf8.end()) {
      return new ProtocolError(CloseCode.INVALID_PAYLOAD, 'text ends inside a character');
    }
    const binary = this.messageOpcode === Opcode.BINARY;
    const data =
      this.fragments === undefined
        ? frame.payload
        : Buffer.concat([...this.fragments, frame.payload], this.messageBytes + frame.payload.length);
    this.messageOpcode = undefined;
    this.fragments = undefined;
    this.messageBytes = 0;
    this.utf8 = undefined;
    return { type: 'message', binary, data };
  }
}
