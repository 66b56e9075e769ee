/**
 * One WebSocket connection: the socket after the 101, and everything that happens
 * on it until the TCP connection is gone.
 *
 *     socket bytes → FrameParser → MessageAssembler → message / ping / pong / close
 *     send…()      → encodeFrameHeader + payload   → socket
 *
 * The object owns its socket and its close deadline; it joins its server's
 * `OpenConnections` when it starts (the set shutdown walks, and the one timer
 * that pings every connection), and leaves it in one place, `tearDown()`, which
 * runs once, on the socket's 'close' event, however the connection ended.
 *
 * Closing (§7):
 * - We close: send a close frame, keep reading until the peer's close frame
 *   arrives, then end TCP. §7.1.1: "the server SHOULD close [the TCP connection]
 *   first", so the server's port is the one left in TIME_WAIT, not the client's.
 * - The peer closes: answer with a close frame echoing its code (§5.5.1), end TCP.
 * - A protocol error: send a close frame with the error's code, end TCP at once
 *   without waiting for an answer (§7.1.7 "Fail the WebSocket Connection").
 * - In every case a peer that does not finish closing within the deadline is cut.
 *
 * Liveness: every `heartbeatMs` the server pings (one sweep over all connections,
 * `OpenConnections`); a peer that has not answered one ping by the time of the
 * next, and has neither sent nor taken any bytes meanwhile, is dropped (§5.5.2:
 * "a Pong frame sent in response to a Ping frame"; see checkPeerIsAlive; a peer
 * with bytes still queued for it gets a few intervals, as its ping may be
 * waiting behind them). It
 * is what keeps proxies from cutting an idle connection, and what finds a peer
 * whose network vanished without a FIN.
 *
 * Backpressure: unsent bytes pile up in the socket when a peer reads slower than
 * we write. Two rules keep that bounded without losing what a peer sends:
 * - A peer is not read faster than it reads. Once the answers to a chunk leave
 *   more than the socket's high-water mark unsent, reading stops until 'drain':
 *   a client sending a burst is slowed down by TCP itself, and none of its frames
 *   is dropped (the chat echoes every message to its sender, so a burst in is a
 *   burst out).
 * - A peer that reads nothing while other people's messages keep coming for it
 *   is failed once its unsent bytes pass `maxBufferedBytes` (see `checkUnsent()`).
 *   A burst the peer asked for (the chat's replay) may go over, once: see
 *   `allowBurst()`.
 * Unsent bytes are measured after each write, except while a chunk's answers are
 * corked (`receive()`): there every answer counts as unsent until the uncork, so
 * they are measured after it, when they have had their chance to leave.
 *
 * Memory: a server holds thousands of idle connections, so what one costs is
 * counted. The state of a connection is this one object and its parser and
 * assembler; its behaviour is prototype methods, not closures made per
 * connection. Closures are not free: each is a function object (and, under
 * tsx, one bound to a name such as `resumeReading = () => …` also gets its own
 * ~256-byte property store from esbuild's `__name`). Only the socket's
 * listeners are closures, passed straight to `on()`. Likewise no timer per
 * connection: `OpenConnections` pings them all from one.
 */
import type { Duplex } from 'node:stream';
import {
  CloseCode,
  encodeClosePayload,
  encodeFrame,
  encodeFrameHeader,
  FrameParser,
  Opcode,
  ProtocolError,
} from './frame.ts';
import { MessageAssembler, type MessageEvent } from './message.ts';
import { SHUTDOWN_GRACE_MS } from '../shared/lifecycle.ts';

/**
 * How long a peer gets to finish a close handshake (or to close TCP after ours).
 * Shorter than the server's shutdown grace, so a shutdown's 1001 closes end
 * cleanly before the server would cut them.
 */
export const CLOSE_TIMEOUT_MS = Math.floor((SHUTDOWN_GRACE_MS * 2) / 3);

/**
 * Below this size a frame's header and payload are copied into one buffer and
 * written once; above it they are written separately (corked into one writev), so
 * a large payload is never copied.
 */
const COPY_PAYLOAD_BELOW_BYTES = 16 * 1024;

export interface ConnectionOptions {
  /** The server's open connections, which the connection joins until it closes; they set the ping interval. */
  connections: OpenConnections;
  /** Largest message accepted, over all its fragments; more is a 1009. */
  maxMessageBytes: number;
  /**
   * Unsent bytes allowed to pile up before the peer is failed for not reading. It
   * must be well above what the answers to one read of the socket can add at once
   * (they are all written before reading pauses).
   */
  maxBufferedBytes: number;
  /** Close handshake deadline; tests shorten it. */
  closeTimeoutMs?: number;
}

export interface ConnectionHandlers {
  /** A whole text (binary = false, data is valid UTF-8) or binary message. */
  onMessage?(data: Buffer, binary: boolean): void;
  /**
   * Called once, when the TCP connection is gone. `code` is the peer's close code,
   * 1005 if its close frame had none, 1006 if it sent no close frame (§7.1.5).
   */
  onClose?(code: number, reason: string): void;
}

export type ConnectionState = 'open' | 'closing' | 'closed';

/** Until start(): nothing to report to. */
const NO_HANDLERS: ConnectionHandlers = Object.freeze({});

/** An 'error' listener for any socket: ECONNRESET and the like; 'close' follows. */
export function destroySocket(this: Duplex): void {
  this.destroy();
}

/**
 * OpenConnections is the set of one server's open connections: each joins it in
 * `start()` and leaves it when its TCP connection is gone, so `shutdown()` can
 * close every one (`closeAll`). It also keeps them alive: one timer, running
 * while the set is not empty, pings every connection each `heartbeatMs`, and
 * drops those that have not answered the previous ping. (One timer for all
 * rather than one per connection, as `ws` users do: a timer and its closure are
 * a few hundred bytes per idle connection. The first ping comes within one
 * interval of opening rather than after exactly one; the peer still gets a
 * whole interval to answer each.)
 */
/**
 * How many heartbeat intervals a peer with bytes still queued for it may go
 * without a pong or any traffic before it is dropped (one, when nothing is queued).
 */
const QUIET_SWEEPS_WITH_QUEUE = 4;

export class OpenConnections {
  private readonly open = new Set<WebSocketConnection>();
  private heartbeat: NodeJS.Timeout | undefined;

  /** `heartbeatMs`: ping interval; a peer silent for a whole interval after a ping is dropped. */
  constructor(readonly heartbeatMs: number) {}

  get size(): number {
    return this.open.size;
  }

  add(connection: WebSocketConnection): void {
    this.open.add(connection);
    this.heartbeat ??= setInterval(() => this.sweep(), this.heartbeatMs);
  }

  delete(connection: WebSocketConnection): void {
    this.open.delete(connection);
    if (this.open.size > 0) return;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Starts the closing handshake on every open connection. */
  closeAll(code: number, reason: string): void {
    for (const connection of this.open) connection.close(code, reason);
  }

  private sweep(): void {
    // A connection dropped here leaves the set on its socket's 'close', later: the walk is safe.
    for (const connection of this.open) connection.checkPeerIsAlive();
  }
}

/**
 * WebSocketConnection runs the protocol on one upgraded socket (the 101 already
 * written) and reports whole messages and the final close to its handlers.
 *
 * It does not fragment outgoing messages (each is one frame), negotiate
 * extensions or subprotocols (handshake.ts does that), or queue messages for a
 * slow peer: past `maxBufferedBytes` unsent, the peer is failed with 1008.
 */
export class WebSocketConnection {
  private readonly assembler: MessageAssembler;
  private readonly parser: FrameParser;
  private handlers = NO_HANDLERS;
  private closeSent = false;
  private closeReceived = false;
  private failed = false;
  private tcpClosed = false;
  /** What `onClose` reports; stays 1006 unless a close frame arrives. */
  private peerCloseCode: number = CloseCode.ABNORMAL_CLOSURE;
  private peerCloseReason = '';
  private awaitingPong = false;
  /** trafficSoFar() when the last ping went out. */
  private readAtPing = 0;
  private takenAtPing = 0;
  /** Sweeps in a row without a pong or traffic while bytes were queued for the peer. */
  private quietSweeps = 0;
  /** Reading stopped until our queue drains (receive()); a pong may be waiting behind it. */
  private readingPaused = false;
  /** Extra unsent bytes allowed until the queue next drains (allowBurst). */
  private burstBytes = 0;
  private closeDeadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly options: ConnectionOptions,
  ) {
    this.assembler = new MessageAssembler(options.maxMessageBytes);
    this.parser = new FrameParser({
      role: 'server',
      maxPayloadBytes: options.maxMessageBytes,
      checks: this.assembler,
    });
  }

  /**
   * Starts reading and pinging, reporting to `handlers`. `head` is what the client
   * sent right after its handshake, before node handed over the socket: possibly
   * its first frames.
   */
  start(handlers: ConnectionHandlers, head: Buffer = Buffer.alloc(0)): void {
    this.handlers = handlers;
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.socket.on('drain', () => this.resumeReading()); // does nothing unless reading was paused
    this.socket.on('error', destroySocket);
    // node's HTTP server keeps sockets half-open; when the peer ends its side, end ours.
    this.socket.on('end', () => this.endTcp());
    this.socket.on('close', () => this.tearDown());
    this.options.connections.add(this);
    if (head.length > 0) this.receive(head);
  }

  get state(): ConnectionState {
    if (this.tcpClosed) return 'closed';
    return this.closeSent ? 'closing' : 'open';
  }

  /** Sends a text message; ignored once closing (§5.5.1: no data after a close frame). */
  sendText(text: string): void {
    this.sendFrame(Opcode.TEXT, Buffer.from(text, 'utf8'));
  }

  /** Sends a message as one frame: text (data must be UTF-8) or binary. */
  sendMessage(data: Buffer, binary: boolean): void {
    this.sendFrame(binary ? Opcode.BINARY : Opcode.TEXT, data);
  }

  /**
   * Starts the closing handshake (§7.1.2): a close frame now, TCP ends when the
   * peer answers, or after the close timeout if it does not.
   */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    if (this.closeSent || this.tcpClosed) return;
    this.sendClose(encodeClosePayload(code, reason));
    this.armCloseDeadline();
  }

  /**
   * Lets the unsent bytes exceed `maxBufferedBytes` by `bytes` until the queue has
   * drained once: for a burst the peer asked for, such as a replay of the backlog,
   * which a peer on a slow link cannot read as fast as it is written.
   */
  allowBurst(bytes: number): void {
    this.burstBytes += bytes;
  }

  /** Cuts the TCP connection without a close frame (the peer sees 1006). */
  terminate(): void {
    this.socket.destroy();
  }

  // -------------------------------------------------------------------------
  // Receiving
  // -------------------------------------------------------------------------

  private receive(chunk: Buffer): void {
    // After the peer's close frame or a protocol error nothing it sends matters.
    if (this.closeReceived || this.failed) return;
    this.parser.push(chunk);
    // A chunk often holds many small frames; corking gathers the answers to all of
    // them (echoes, pongs) into one write instead of one system call per frame.
    this.socket.cork();
    try {
      this.readFrames();
    } finally {
      this.socket.uncork();
    }
    // Measured only now: while corked, every answer to the chunk counted as unsent.
    this.checkUnsent();
    // The answers did not all leave: the peer reads slower than it sends. Read no
    // more of it until they have; meanwhile its frames wait in TCP's buffers and
    // TCP slows the sender down, which is the flow control it is there for.
    if (this.socket.writableNeedDrain && this.socket.writableLength > 0) this.pauseReading();
  }

  /** Stops reading until everything queued has left ('drain'), or the next heartbeat. */
  private pauseReading(): void {
    if (this.readingPaused || this.tcpClosed) return;
    this.readingPaused = true;
    this.socket.pause(); // until 'drain' calls resumeReading()
  }

  private resumeReading(): void {
    if (!this.readingPaused) return;
    this.readingPaused = false;
    this.socket.resume();
  }

  private readFrames(): void {
    for (let frame = this.parser.next(); frame !== undefined; frame = this.parser.next()) {
      if (frame instanceof ProtocolError) return this.fail(frame);
      const event = this.assembler.addFrame(frame);
      if (event === undefined) continue; // a fragment, kept for later
      if (event instanceof ProtocolError) return this.fail(event);
      this.dispatch(event);
      if (this.closeReceived || this.failed || this.tcpClosed) return;
    }
  }

  private dispatch(event: MessageEvent): void {
    switch (event.type) {
      case 'message':
        // §7.1.2: once our close frame is out we may discard what still arrives.
        if (this.closeSent) return;
        try {
          this.handlers.onMessage?.(event.data, event.binary);
        } catch (error) {
          console.error('websocket message handler failed:', error);
          this.fail(new ProtocolError(CloseCode.INTERNAL_ERROR, 'internal error'));
        }
        return;
      case 'ping':
        // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame
        // in response, unless it already received a Close frame", with "identical
        // Application data" (§5.5.3). Having sent our own close does not excuse it:
        // a pong is a control frame, not data.
        this.writeFrame(Opcode.PONG, event.payload);
        return;
      case 'pong':
        // §5.5.3: a pong may also come unasked; any pong shows the peer is there.
        this.awaitingPong = false;
        return;
      case 'close':
        this.closeReceived = true;
        this.peerCloseCode = event.code ?? CloseCode.NO_STATUS_RECEIVED;
        this.peerCloseReason = event.reason;
        // §5.5.1: answer with a close frame, "typically echoing the status code it
        // received"; an empty close is answered with an empty one.
        if (!this.closeSent) this.sendClose(event.code === undefined ? Buffer.alloc(0) : encodeClosePayload(event.code));
        this.endTcp();
        return;
    }
  }

  /** §7.1.7: send a close frame saying why (if none was sent yet), then end TCP. */
  private fail(error: ProtocolError): void {
    this.failed = true;
    if (!this.closeSent) this.sendClose(encodeClosePayload(error.code, error.reason));
    this.endTcp();
  }

  // -------------------------------------------------------------------------
  // Sending
  // -------------------------------------------------------------------------

  private sendFrame(opcode: number, payload: Buffer): void {
    if (this.closeSent || this.tcpClosed) return;
    this.writeFrame(opcode, payload);
    // While receive() has the socket corked, nothing has left yet: it checks after the uncork.
    if (this.socket.writableCorked === 0) this.checkUnsent();
  }

  /**
   * Fails a peer that has stopped reading: past `maxBufferedBytes` (plus any burst
   * allowed) of unsent bytes, instead of buffering for it without bound.
   *
   * The close code is 1008 (policy violation, §7.4.1): the peer broke this server's
   * rule of reading what it is sent, and 1008 is the generic code for that. 1011
   * would blame the server ("an unexpected condition"), and 1009 is about a
   * message received, not sent. The close frame joins the queue: a peer that is
   * only slow reads it and learns why; one that reads nothing is cut at the close
   * deadline (it then sees 1006). Either way nothing more is queued for it, so
   * its memory stays bounded.
   */
  private checkUnsent(): void {
    const unsent = this.socket.writableLength;
    if (unsent === 0) this.burstBytes = 0; // everything went out: any burst is over
    if (this.closeSent || this.tcpClosed || unsent <= this.options.maxBufferedBytes + this.burstBytes) return;
    this.fail(new ProtocolError(CloseCode.POLICY_VIOLATION, 'not reading fast enough'));
  }

  private sendClose(payload: Buffer): void {
    this.closeSent = true;
    this.writeFrame(Opcode.CLOSE, payload);
  }

  private writeFrame(opcode: number, payload: Buffer): void {
    if (this.tcpClosed || !this.socket.writable) return;
    if (payload.length < COPY_PAYLOAD_BELOW_BYTES) {
      this.socket.write(encodeFrame(opcode, payload));
      return;
    }
    this.socket.cork();
    this.socket.write(encodeFrameHeader(opcode, payload.length));
    this.socket.write(payload);
    this.socket.uncork();
  }

  // -------------------------------------------------------------------------
  // Timers and teardown
  // -------------------------------------------------------------------------

  /**
   * Every `heartbeatMs`, from `OpenConnections`: the verdict on the last ping,
   * then the next ping.
   *
   * The verdict asks for a sign of life, not only for the pong. A pong can be
   * late through no fault of the peer's: our ping may still sit behind a 16 MiB
   * echo the peer is reading slowly, or the peer's pong behind its own burst,
   * which we read only as fast as it reads ours. So a peer that has sent us
   * bytes, or taken bytes from us, since the last ping is alive; one that did
   * neither and sent no pong is gone or stuck, and is dropped.
   */
  checkPeerIsAlive(): void {
    if (this.closeSent) return; // closing: the close deadline decides now
    const traffic = this.trafficSoFar();
    const showedLife = traffic.read > this.readAtPing || traffic.taken > this.takenAtPing;
    if (!this.awaitingPong || showedLife) {
      this.quietSweeps = 0;
    } else if (this.socket.writableLength > 0 && ++this.quietSweeps < QUIET_SWEEPS_WITH_QUEUE) {
      // Bytes still queued for the peer: our ping may not have reached it yet,
      // and the kernel takes a slow reader's bytes in lumps (it wakes the writer
      // only once a good part of its buffer is free). Give it a few intervals.
    } else {
      this.terminate(); // no pong and no traffic since the last ping
      return;
    }
    // We may have stopped reading (receive()); read on, so a pong waiting
    // behind the pause can arrive. receive() pauses again if the queue is long.
    if (this.readingPaused) this.resumeReading();
    this.awaitingPong = true;
    this.writeFrame(Opcode.PING, Buffer.alloc(0));
    // Counted after the ping, so that the ping's own two bytes reaching the
    // kernel are not taken for the peer's doing.
    const after = this.trafficSoFar();
    this.readAtPing = after.read;
    this.takenAtPing = after.taken;
  }

  /**
   * Bytes read from the peer, and bytes it has taken from us: what the kernel
   * has accepted from this socket. node's public counters (bytesWritten,
   * writableLength) move a whole write at once, when it is handed to libuv or
   * when libuv finishes it, so a 16 MiB echo would look frozen while the peer
   * reads it; libuv's own queue (`_handle.writeQueueSize`, which node:net reads
   * itself) shrinks as the kernel takes bytes. On anything but a TCP socket
   * (tests' stream pairs) these are absent and count as 0.
   */
  private trafficSoFar(): { read: number; taken: number } {
    const socket = this.socket as Duplex & {
      bytesRead?: number;
      _bytesDispatched?: number;
      _handle?: { writeQueueSize?: number } | null;
    };
    return {
      read: socket.bytesRead ?? 0,
      taken: (socket._bytesDispatched ?? 0) - (socket._handle?.writeQueueSize ?? 0),
    };
  }

  /** Ends our side of TCP (a FIN after what is queued) and waits for the peer's. */
  private endTcp(): void {
    this.socket.end();
    this.armCloseDeadline();
  }

  private armCloseDeadline(): void {
    clearTimeout(this.closeDeadline);
    this.closeDeadline = setTimeout(() => this.terminate(), this.options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS);
  }

  private tearDown(): void {
    if (this.tcpClosed) return;
    this.tcpClosed = true;
    this.options.connections.delete(this);
    clearTimeout(this.closeDeadline);
    this.handlers.onClose?.(this.peerCloseCode, this.peerCloseReason);
  }
}
