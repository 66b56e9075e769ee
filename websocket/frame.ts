/**
 * The WebSocket frame codec (RFC 6455 §5): pure functions on Buffers, no I/O.
 *
 * A frame on the wire (§5.2):
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-------+-+-------------+-------------------------------+
 *     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *     | |1|2|3|       |K|             |                               |
 *     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *     |     Extended payload length continued, if payload len == 127  |
 *     + - - - - - - - - - - - - - - - +-------------------------------+
 *     |                               | Masking-key, if MASK set to 1 |
 *     +-------------------------------+-------------------------------+
 *     | Masking-key (continued)       |          Payload Data         |
 *     +-------------------------------- - - - - - - - - - - - - - - - +
 *
 * Worked example (§5.7), a client sending the text "Hello", masked with key 37 fa 21 3d:
 *
 *     81          FIN=1, opcode 0x1 (text)
 *     85          MASK=1, payload length 5
 *     37 fa 21 3d masking key
 *     7f 9f 4d 51 58   "Hello" XOR key, byte i with key[i % 4]
 *
 * The server answers the same text unmasked: 81 05 48 65 6c 6c 6f.
 *
 * `FrameParser` reads frames from bytes in any chunking and reports the first rule a
 * frame breaks as a `ProtocolError` carrying the close code to send. `encodeFrame`
 * and `encodeFrameHeader` write frames. Neither knows about messages (fragments put
 * together, UTF-8 of a whole text): that is message.ts.
 */

/** Opcodes (§5.2, registry in §11.8). 0x3–0x7 and 0xB–0xF are reserved. */
export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8, // §5.5.1
  PING: 0x9, // §5.5.2
  PONG: 0xa, // §5.5.3
} as const;

/** Close status codes (§7.4.1, registry in §11.7). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001, // server going down, or a browser leaving the page
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003, // e.g. binary sent to an endpoint that only takes text
  NO_STATUS_RECEIVED: 1005, // never on the wire: a close frame without a code
  ABNORMAL_CLOSURE: 1006, // never on the wire: TCP closed without a close frame
  INVALID_PAYLOAD: 1007, // e.g. a text message that is not UTF-8 (§8.1)
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
} as const;

/** §5.5: "All control frames MUST have a payload length of 125 bytes or less". */
export const MAX_CONTROL_PAYLOAD_BYTES = 125;

/** A close frame's payload is a 2-byte code then the reason, so the reason gets 123 bytes (§5.5.1). */
export const MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD_BYTES - 2;

// Bits of the first two header bytes (§5.2).
const FIN_BIT = 0x80;
const RSV_BITS = 0x70; // RSV1, RSV2, RSV3
const OPCODE_BITS = 0x0f;
const MASK_BIT = 0x80;
const LENGTH_BITS = 0x7f;

// The 7-bit length field holds the length itself up to 125; 126 and 127 announce
// a 16-bit or 64-bit extended length that follows (§5.2).
const LENGTH_IS_16_BIT = 126;
const LENGTH_IS_64_BIT = 127;
const MAX_16_BIT_LENGTH = 0xffff;
const MASK_KEY_BYTES = 4;

/** The longest header (§5.2): 2 bytes, a 64-bit length, a masking key. */
export const MAX_FRAME_HEADER_BYTES = 2 + 8 + MASK_KEY_BYTES;

/** Whether the opcode names a control frame: the ones with the high bit set (§5.5). */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

function isKnownOpcode(opcode: number): boolean {
  return (
    opcode === Opcode.CONTINUATION ||
    opcode === Opcode.TEXT ||
    opcode === Opcode.BINARY ||
    opcode === Opcode.CLOSE ||
    opcode === Opcode.PING ||
    opcode === Opcode.PONG
  );
}

/**
 * A broken rule, as the close frame that reports it: the code (§7.4.1) and a short
 * reason (at most 123 bytes, §5.5.1). A value, not an exception: parsers return it.
 */
export class ProtocolError {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {}
}

/** What the layer above needs to know about a frame before its payload arrives. */
export interface FrameHeader {
  fin: boolean;
  opcode: number;
  payloadLength: number;
}

/** A whole frame, payload unmasked. */
export interface Frame extends FrameHeader {
  payload: Buffer;
}

// ---------------------------------------------------------------------------
// Masking (§5.3)
// ---------------------------------------------------------------------------

// Below this many bytes the byte loop is as fast as setting up the word loop.
const WORDWISE_MASKING_FROM_BYTES = 32;

/**
 * XORs `data` in place with the 4-byte `maskKey`: byte i with `maskKey[i % 4]`
 * (§5.3). The same call masks and unmasks.
 *
 * Large payloads are XORed 32 bits at a time. A Uint32Array view needs a start
 * address that is a multiple of 4, so the bytes before that address go one by one
 * and the mask word is rotated by their count: if 1 byte went first, the word
 * starts with key[1].
 */
export function applyMask(data: Buffer, maskKey: Uint8Array): void {
  const length = data.length;
  if (length < WORDWISE_MASKING_FROM_BYTES) {
    for (let i = 0; i < length; i++) data[i] ^= maskKey[i & 3];
    return;
  }
  const leadingBytes = (4 - (data.byteOffset % 4)) % 4;
  for (let i = 0; i < leadingBytes; i++) data[i] ^= maskKey[i & 3];

  const wordCount = (length - leadingBytes) >>> 2;
  const words = new Uint32Array(data.buffer, data.byteOffset + leadingBytes, wordCount);
  const maskWord = rotatedMaskWord(maskKey, leadingBytes);
  for (let i = 0; i < wordCount; i++) words[i] ^= maskWord;

  for (let i = leadingBytes + wordCount * 4; i < length; i++) data[i] ^= maskKey[i & 3];
}

/** The mask as one 32-bit word in this machine's byte order, starting at key[shift]. */
function rotatedMaskWord(maskKey: Uint8Array, shift: number): number {
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) bytes[i] = maskKey[(shift + i) & 3];
  return new Uint32Array(bytes.buffer)[0];
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

export interface EncodeOptions {
  /** false for every fragment of a message but the last (§5.4). Default true. */
  fin?: boolean;
  /**
   * Only for a client: §5.3 says a client masks every frame and a server never
   * does. The server code here never passes one; tests use it to play the client.
   */
  maskKey?: Uint8Array;
  /** RSV1–3 as the 3 high bits of a nibble (0–7). Only tests set it, to break §5.2. */
  rsv?: number;
}

/**
 * The header of a frame carrying `payloadLength` bytes, with the shortest length
 * encoding (§5.2: "the minimal number of bytes MUST be used"). Sending the header
 * and the payload as two writes spares copying a large payload into one buffer.
 */
export function encodeFrameHeader(opcode: number, payloadLength: number, options: EncodeOptions = {}): Buffer {
  const header = Buffer.allocUnsafe(headerLength(payloadLength, options));
  writeFrameHeader(header, opcode, payloadLength, options);
  return header;
}

/**
 * A whole frame in one buffer: header then payload. With a `maskKey` the payload is
 * masked in the copy; the caller's buffer is left alone.
 */
export function encodeFrame(opcode: number, payload: Buffer, options: EncodeOptions = {}): Buffer {
  const payloadStart = headerLength(payload.length, options);
  const frame = Buffer.allocUnsafe(payloadStart + payload.length);
  writeFrameHeader(frame, opcode, payload.length, options);
  payload.copy(frame, payloadStart);
  if (options.maskKey) applyMask(frame.subarray(payloadStart), options.maskKey);
  return frame;
}

function headerLength(payloadLength: number, options: EncodeOptions): number {
  return 2 + extendedLengthBytes(payloadLength) + (options.maskKey ? MASK_KEY_BYTES : 0);
}

/** 0, 2 or 8: the shortest extended length that holds `payloadLength` (§5.2). */
function extendedLengthBytes(payloadLength: number): number {
  if (payloadLength <= MAX_CONTROL_PAYLOAD_BYTES) return 0;
  return payloadLength <= MAX_16_BIT_LENGTH ? 2 : 8;
}

/** Writes the header at the start of `header`, a buffer at least headerLength() long. */
function writeFrameHeader(header: Buffer, opcode: number, payloadLength: number, options: EncodeOptions): void {
  const { fin = true, maskKey, rsv = 0 } = options;
  const extendedLength = extendedLengthBytes(payloadLength);
  header[0] = (fin ? FIN_BIT : 0) | ((rsv & 0x7) << 4) | (opcode & OPCODE_BITS);
  const maskBit = maskKey ? MASK_BIT : 0;
  if (extendedLength === 0) {
    header[1] = maskBit | payloadLength;
  } else if (extendedLength === 2) {
    header[1] = maskBit | LENGTH_IS_16_BIT;
    header.writeUInt16BE(payloadLength, 2);
  } else {
    header[1] = maskBit | LENGTH_IS_64_BIT;
    header.writeBigUInt64BE(BigInt(payloadLength), 2);
  }
  if (maskKey) header.set(maskKey.subarray(0, MASK_KEY_BYTES), 2 + extendedLength);
}

/**
 * The payload of a close frame (§5.5.1): the code as 2 bytes big-endian, then the
 * reason in UTF-8, cut to 123 bytes at a character boundary.
 */
export function encodeClosePayload(code: number, reason = ''): Buffer {
  let reasonBytes = Buffer.from(reason, 'utf8');
  if (reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
    let end = MAX_CLOSE_REASON_BYTES;
    // Back off over continuation bytes (10xxxxxx) so no character is cut in half.
    while ((reasonBytes[end] & 0xc0) === 0x80) end--;
    reasonBytes = reasonBytes.subarray(0, end);
  }
  const payload = Buffer.alloc(2 + reasonBytes.length);
  payload.writeUInt16BE(code, 0);
  reasonBytes.copy(payload, 2);
  return payload;
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

export interface FrameParserOptions {
  /**
   * Which side reads. A server requires every frame masked, a client requires none
   * to be: §5.1 "a server MUST close the connection upon receiving a frame that is
   * not masked", "A client MUST close a connection if it detects a masked frame".
   */
  role: 'server' | 'client';
  /** Largest payload accepted for one frame; a longer one is a 1009, seen in its header. */
  maxPayloadBytes: number;
  /**
   * The layer above (a `MessageAssembler`), asked about each frame before it is
   * whole. An object rather than two callbacks, so a connection hands over the
   * assembler it already has instead of making two closures for it (see
   * connection.ts for what a closure per connection costs).
   */
  checks?: FrameChecks;
}

/** What `FrameParser` asks the layer above while a frame is still arriving. */
export interface FrameChecks {
  /**
   * Called once a frame's length is known, before its payload is read, so the
   * layer above can refuse it early (a continuation without a start, a message
   * grown past its limit) without buffering the payload.
   */
  checkHeader?(header: FrameHeader): ProtocolError | undefined;
  /**
   * Called with a frame's payload bytes, unmasked, as they arrive, while the
   * frame is not yet whole, so the layer above can refuse it early (text that can
   * no longer be UTF-8, §8.1) without waiting for the rest. The bytes that
   * complete the frame are not passed: they come with the frame from `next()`,
   * whose payload is whole. `offset` is where `part` starts in the payload.
   */
  checkPayloadPart?(header: FrameHeader, part: Buffer, offset: number): ProtocolError | undefined;
}

type ParserState = 'header' | 'extended-length-16' | 'extended-length-64' | 'mask-key' | 'payload' | 'failed';

/**
 * Reads frames from a byte stream cut anywhere. Bytes go in with `push()`, frames
 * come out with `next()`, one at a time:
 *
 *     parser.push(chunk);
 *     for (let frame = parser.next(); frame !== undefined; frame = parser.next()) …
 *
 * `next()` returns a whole frame, a `ProtocolError` for the first rule broken, or
 * undefined when it needs more bytes. After an error it returns undefined for
 * good: §7.1.7 says to fail the connection, so nothing after the error can be
 * trusted. Pulling one frame at a time matters: the caller handles a frame before
 * the next header is checked, so `checks.checkHeader` sees the message state that frame
 * left (a first fragment and its continuation often share a chunk).
 *
 * The states follow the wire: header (2 bytes) → extended length (0, 2 or 8 bytes)
 * → masking key (0 or 4 bytes) → payload. Each state first checks that enough bytes
 * are buffered, else waits for the next chunk.
 *
 * `push()` takes ownership of the chunk: payloads are unmasked in place, and a
 * frame's payload may be a view into the chunk rather than a copy.
 *
 * It does not check what needs more than one frame (fragments in order, UTF-8 of a
 * text message, close codes): that is `MessageAssembler`.
 */
export class FrameParser {
  private state: ParserState = 'header';
  private readonly chunks: Buffer[] = [];
  private bufferedBytes = 0;

  // The frame being read.
  private fin = false;
  private opcode = 0;
  private masked = false;
  private payloadLength = 0;
  private maskKey: Buffer | undefined;
  /** Payload bytes already unmasked and passed to `checkPayloadPart`. */
  private payloadChecked = 0;

  constructor(private readonly options: FrameParserOptions) {}

  /** Adds bytes; they are read by the following calls to `next()`. */
  push(chunk: Buffer): void {
    if (this.state === 'failed' || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  /** The next whole frame, the protocol error that stops the stream, or undefined for "need more bytes". */
  next(): Frame | ProtocolError | undefined {
    for (;;) {
      const result = this.step();
      if (result === 'need-more-bytes') return undefined;
      if (result === undefined) continue; // moved to the next state
      if (result instanceof ProtocolError) this.fail();
      return result;
    }
  }

  /** Advances by one state if enough bytes are buffered. */
  private step(): Frame | ProtocolError | 'need-more-bytes' | undefined {
    switch (this.state) {
      case 'header':
        return this.bufferedBytes < 2 ? 'need-more-bytes' : this.readHeader(this.take(2));
      case 'extended-length-16':
        return this.bufferedBytes < 2 ? 'need-more-bytes' : this.readLength16(this.take(2));
      case 'extended-length-64':
        return this.bufferedBytes < 8 ? 'need-more-bytes' : this.readLength64(this.take(8));
      case 'mask-key':
        if (this.bufferedBytes < MASK_KEY_BYTES) return 'need-more-bytes';
        this.maskKey = this.take(MASK_KEY_BYTES);
        this.state = 'payload';
        return undefined;
      case 'payload':
        if (this.bufferedBytes >= this.payloadLength) return this.readPayload();
        return this.checkPayloadPart() ?? 'need-more-bytes';
      case 'failed':
        return 'need-more-bytes';
    }
  }

  /** Byte 0: FIN, RSV1–3, opcode. Byte 1: MASK, 7-bit length. */
  private readHeader(bytes: Buffer): ProtocolError | undefined {
    this.fin = (bytes[0] & FIN_BIT) !== 0;
    this.opcode = bytes[0] & OPCODE_BITS;
    this.masked = (bytes[1] & MASK_BIT) !== 0;
    const length7 = bytes[1] & LENGTH_BITS;

    // §5.2: "MUST be 0 unless an extension is negotiated". None is (no permessage-deflate).
    if ((bytes[0] & RSV_BITS) !== 0) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'reserved bits set');
    // §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_."
    if (!isKnownOpcode(this.opcode)) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'unknown opcode');
    if (isControlOpcode(this.opcode)) {
      // §5.5: "Control frames themselves MUST NOT be fragmented."
      if (!this.fin) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'fragmented control frame');
      // §5.5: "All control frames MUST have a payload length of 125 bytes or less."
      if (length7 > MAX_CONTROL_PAYLOAD_BYTES) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'control frame too long');
    }
    // §5.1: servers read only masked frames, clients only unmasked ones.
    const mustBeMasked = this.options.role === 'server';
    if (this.masked !== mustBeMasked) {
      return new ProtocolError(CloseCode.PROTOCOL_ERROR, mustBeMasked ? 'frame not masked' : 'frame masked');
    }

    if (length7 === LENGTH_IS_16_BIT) this.state = 'extended-length-16';
    else if (length7 === LENGTH_IS_64_BIT) this.state = 'extended-length-64';
    else return this.lengthKnown(length7);
    return undefined;
  }

  private readLength16(bytes: Buffer): ProtocolError | undefined {
    const length = bytes.readUInt16BE(0);
    // §5.2: "the minimal number of bytes MUST be used to encode the length".
    if (length <= MAX_CONTROL_PAYLOAD_BYTES) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'length not minimally encoded');
    return this.lengthKnown(length);
  }

  private readLength64(bytes: Buffer): ProtocolError | undefined {
    const high = bytes.readUInt32BE(0);
    const low = bytes.readUInt32BE(4);
    // §5.2: "the most significant bit MUST be 0".
    if (high >= 0x8000_0000) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'length has its top bit set');
    // Past 2^53 this loses precision, but any such length is far over every limit.
    const length = high * 0x1_0000_0000 + low;
    if (length <= MAX_16_BIT_LENGTH) return new ProtocolError(CloseCode.PROTOCOL_ERROR, 'length not minimally encoded');
    return this.lengthKnown(length);
  }

  /** The length is read: refuse a frame that is too long before buffering any of it. */
  private lengthKnown(payloadLength: number): ProtocolError | undefined {
    this.payloadLength = payloadLength;
    if (payloadLength > this.options.maxPayloadBytes) return new ProtocolError(CloseCode.MESSAGE_TOO_BIG, 'frame too big');
    const refusal = this.options.checks?.checkHeader?.({ fin: this.fin, opcode: this.opcode, payloadLength });
    if (refusal) return refusal;
    this.state = this.masked ? 'mask-key' : 'payload';
    return undefined;
  }

  /**
   * The frame is not whole yet: unmask the payload bytes that arrived since the
   * last call, in place, and show them to `checkPayloadPart`. While the payload is
   * incomplete, every buffered byte belongs to it.
   */
  private checkPayloadPart(): ProtocolError | undefined {
    const checks = this.options.checks;
    if (!checks?.checkPayloadPart || this.bufferedBytes === this.payloadChecked) return undefined;
    const header = { fin: this.fin, opcode: this.opcode, payloadLength: this.payloadLength };
    // The new bytes are the last ones buffered: find their first chunk from the end,
    // so a frame dripped in many small reads costs time in proportion to its bytes.
    let first = this.chunks.length;
    let unseen = this.bufferedBytes - this.payloadChecked;
    while (unseen > 0) unseen -= this.chunks[--first].length;
    for (let i = first; i < this.chunks.length; i++) {
      const part = i === first ? this.chunks[i].subarray(-unseen) : this.chunks[i];
      this.unmask(part, this.payloadChecked);
      const refusal = checks.checkPayloadPart(header, part, this.payloadChecked);
      this.payloadChecked += part.length;
      if (refusal) return refusal;
    }
    return undefined;
  }

  private readPayload(): Frame {
    const payload = this.take(this.payloadLength);
    // Bytes shown to checkPayloadPart are unmasked already; unmask the rest.
    this.unmask(payload.subarray(this.payloadChecked), this.payloadChecked);
    this.state = 'header';
    this.maskKey = undefined;
    this.payloadChecked = 0;
    return { fin: this.fin, opcode: this.opcode, payloadLength: this.payloadLength, payload };
  }

  /** Unmasks `bytes` in place, the bytes starting at `offset` in the payload. */
  private unmask(bytes: Buffer, offset: number): void {
    if (!this.masked || !this.maskKey || bytes.length === 0) return;
    // Payload byte i is XORed with key[i % 4]: starting at `offset`, the key starts at key[offset % 4].
    const shift = offset % MASK_KEY_BYTES;
    const key = shift === 0 ? this.maskKey : Buffer.concat([this.maskKey.subarray(shift), this.maskKey.subarray(0, shift)]);
    applyMask(bytes, key);
  }

  private fail(): void {
    this.state = 'failed';
    this.chunks.length = 0;
    this.bufferedBytes = 0;
  }

  /**
   * Removes `count` buffered bytes from the front: a view when they sit in one
   * chunk, else one copy gathering them.
   */
  private take(count: number): Buffer {
    this.bufferedBytes -= count;
    const first = this.chunks[0];
    if (count === 0) return Buffer.alloc(0);
    if (first.length > count) {
      this.chunks[0] = first.subarray(count);
      return first.subarray(0, count);
    }
    if (first.length === count) {
      this.chunks.shift();
      return first;
    }
    const gathered = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[0];
      const used = Math.min(chunk.length, count - filled);
      chunk.copy(gathered, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    return gathered;
  }
}
