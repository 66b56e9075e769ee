/**
 * A raw WebSocket client for the tests, over node:net: it sends any bytes, legal or
 * not, and reads the server's frames with our own FrameParser in the client role.
 * Not an example of a client to copy: it trusts the server and keeps everything.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { encodeClosePayload, encodeFrame, FrameParser, Opcode, ProtocolError, type EncodeOptions, type Frame } from './frame.ts';
import { parseClosePayload } from './message.ts';

/** A handshake any server here accepts: the RFC's sample key. */
export function upgradeRequest(path: string, headers: Record<string, string> = {}): string {
  const lines = [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return lines.join('\r\n') + '\r\n\r\n';
}

export class RawClient {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  /** Set if the server's bytes broke a rule (it never should). */
  serverError: ProtocolError | undefined;
  /** Resolves when the TCP connection is closed. */
  readonly closed: Promise<void>;
  /** Whether the server ended TCP first (a FIN before we ended ours). */
  serverEndedFirst = false;
  /** The server's handshake answer, headers included. */
  readonly response: string;
  private clientEnded = false;
  /** How many of `frames` nextFrame() has handed out. */
  private taken = 0;
  private readonly parser = new FrameParser({ role: 'client', maxPayloadBytes: 64 * 1024 * 1024 });
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket, response: string, rest: Buffer) {
    this.response = response;
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('end', () => {
      if (!this.clientEnded) this.serverEndedFirst = true;
      this.wake();
    });
    socket.on('close', () => this.wake());
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    if (rest.length > 0) this.receive(rest);
  }

  /** Opens a connection and sends `request` (the upgrade); resolves once the answer's head is in. */
  static connect(port: number, request: string | Buffer = upgradeRequest('/echo')): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.setNoDelay(true); // small frames go out at once, as a test expects
      let received = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.off('error', reject);
        resolve(new RawClient(socket, received.subarray(0, end).toString('latin1'), received.subarray(end + 4)));
      };
      socket.on('data', onData);
      socket.on('error', reject);
      socket.write(request);
    });
  }

  get status(): number {
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(this.response)?.[1]);
  }

  /** Sends bytes as they are. */
  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Sends one frame, masked with a random key as a client must (§5.3). */
  sendFrame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options: EncodeOptions = {}): void {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
    this.socket.write(encodeFrame(opcode, bytes, { maskKey: randomBytes(4), ...options }));
  }

  sendClose(code?: number, reason = ''): void {
    this.sendFrame(Opcode.CLOSE, code === undefined ? Buffer.alloc(0) : encodeClosePayload(code, reason));
  }

  /** Ends our side of TCP. */
  end(): void {
    this.clientEnded = true;
    this.socket.end();
  }

  /** Waits for the next frame not yet taken; undefined if the connection closes first. */
  async nextFrame(): Promise<Frame | undefined> {
    while (this.taken >= this.frames.length) {
      if (this.socket.destroyed || this.socket.readableEnded) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.frames[this.taken++];
  }

  /** Waits for the next data message, joining fragments; control frames before it are skipped. */
  async nextMessage(): Promise<{ binary: boolean; data: Buffer } | undefined> {
    const parts: Buffer[] = [];
    let binary = false;
    for (;;) {
      const frame = await this.nextFrame();
      if (!frame) return undefined;
      if (frame.opcode >= Opcode.CLOSE) continue;
      if (frame.opcode !== Opcode.CONTINUATION) binary = frame.opcode === Opcode.BINARY;
      parts.push(frame.payload);
      if (frame.fin) return { binary, data: Buffer.concat(parts) };
    }
  }

  /**
   * Waits for the server's close frame and the end of TCP, skipping other frames;
   * returns the code: 1005 for a close frame without one, 1006 for no close frame.
   */
  async closeCode(): Promise<number> {
    for (;;) {
      const frame = await this.nextFrame();
      if (!frame) return 1006;
      if (frame.opcode !== Opcode.CLOSE) continue;
      await this.closed;
      const close = parseClosePayload(frame.payload);
      if (close instanceof ProtocolError) throw new Error(`server sent a bad close frame: ${close.reason}`);
      return close.code ?? 1005;
    }
  }

  private receive(chunk: Buffer): void {
    this.parser.push(chunk);
    for (let result = this.parser.next(); result !== undefined; result = this.parser.next()) {
      if (result instanceof ProtocolError) this.serverError = result;
      else this.frames.push(result);
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
