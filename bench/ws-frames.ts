/**
 * The client side of RFC 6455 framing, as little of it as the load generators
 * need: masked frames to send, and a reader for the server's unmasked frames.
 * Written apart from websocket/frame.ts on purpose: a benchmark that measured
 * our codec with our codec would hide a shared mistake.
 */
import { randomBytes } from 'node:crypto';

export const OPCODE = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** Header length of a frame of `length` payload bytes (§5.2), without the masking key. */
export function headerBytes(length: number): number {
  return length < 126 ? 2 : length < 65_536 ? 4 : 10;
}

/** One final, masked client frame (§5.3: every client frame is masked). */
export function maskedFrame(opcode: number, payload: Buffer, key: Buffer = randomBytes(4)): Buffer {
  const head = headerBytes(payload.length);
  const frame = Buffer.allocUnsafe(head + 4 + payload.length);
  frame[0] = 0x80 | opcode;
  if (head === 2) frame[1] = 0x80 | payload.length;
  else if (head === 4) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(payload.length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  key.copy(frame, head);
  for (let i = 0; i < payload.length; i++) frame[head + 4 + i] = payload[i]! ^ key[i & 3]!;
  return frame;
}

/** Size of the server's (unmasked) answer carrying `length` payload bytes in one frame. */
export function serverFrameBytes(length: number): number {
  return headerBytes(length) + length;
}

export interface ServerFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Reads unmasked frames from any chunking. */
export class ServerFrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): ServerFrame[] {
    this.#buffer = this.#buffer.length > 0 ? Buffer.concat([this.#buffer, chunk]) : chunk;
    const frames: ServerFrame[] = [];
    let at = 0;
    // Each pass takes one whole frame or stops: bounded by the buffer.
    while (this.#buffer.length - at >= 2) {
      const b0 = this.#buffer[at]!;
      const b1 = this.#buffer[at + 1]!;
      if (b1 & 0x80) throw new Error('a server frame must not be masked (RFC 6455 §5.1)');
      let length = b1 & 0x7f;
      let head = 2;
      if (length === 126) {
        if (this.#buffer.length - at < 4) break;
        length = this.#buffer.readUInt16BE(at + 2);
        head = 4;
      } else if (length === 127) {
        if (this.#buffer.length - at < 10) break;
        length = Number(this.#buffer.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (this.#buffer.length - at < head + length) break;
      frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload: this.#buffer.subarray(at + head, at + head + length) });
      at += head + length;
    }
    this.#buffer = this.#buffer.subarray(at);
    return frames;
  }
}

/** The upgrade request for `path` (§4.1), with a fresh key. */
export function upgradeRequest(path: string): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}
