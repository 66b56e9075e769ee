/**
 * The chat's message log: one per process, shared by every technique.
 *
 * Every message gets the next integer id (1, 2, 3, …), so a client that knows
 * the last id it saw can ask for exactly what it missed ("since") and can see
 * a gap when the backlog no longer holds it. The log keeps the newest
 * `capacity` messages in a ring; older ones are gone for good.
 *
 * Delivery rules, each with a test:
 * - Every subscriber gets every message exactly once, in id order, even when a
 *   subscriber publishes from inside its own callback (the new message waits
 *   until the current one has reached everybody).
 * - A subscriber that throws is reported and skipped; the others still get the
 *   message.
 * - subscribe(listener, since) replays and then goes live in one synchronous
 *   step, so no message published in between can be lost or doubled.
 *
 * It does not persist anything: a restart starts again at id 1.
 */

export interface Message {
  /** 1, 2, 3, … in publishing order. */
  id: number;
  /** The text as published. */
  text: string;
  /** Server clock when published, in ms since the epoch (for latency figures). */
  time: number;
  /** Techniques may add fields (a sender id, say); clients ignore what they do not know. */
  [field: string]: unknown;
}

export type Listener = (message: Message) => void;
export type Unsubscribe = () => void;

export class MessageLog {
  readonly capacity: number;
  /** Ring buffer: the message with id n lives at (n - 1) % capacity. */
  readonly #ring: Message[] = [];
  #lastId = 0;
  /**
   * One small object per subscription, so that the same function may
   * subscribe twice and each subscription ends on its own. (An object rather
   * than a wrapper closure: under tsx a named closure costs a few hundred bytes
   * more, and there is one subscription per open connection.)
   */
  readonly #listeners = new Set<{ readonly listener: Listener }>();
  /** Messages published while another was being delivered, in id order. */
  readonly #pending: Message[] = [];
  #delivering = false;
  /** Id of the newest message whose delivery has started (≤ lastId). */
  #announcedId = 0;
  readonly #onListenerError: (error: unknown) => void;

  constructor(capacity: number, options: { onListenerError?: (error: unknown) => void } = {}) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#onListenerError = options.onListenerError ?? ((error) => console.error('message listener failed:', error));
  }

  /** Id of the newest message; 0 before the first. */
  get lastId(): number {
    return this.#lastId;
  }

  /** Id of the oldest message still held; lastId + 1 when the log is empty. */
  get firstId(): number {
    return Math.max(1, this.#lastId - this.#ring.length + 1);
  }

  get subscriberCount(): number {
    return this.#listeners.size;
  }

  /** Appends a message and delivers it to every subscriber; returns it. */
  publish(text: string, fields: Record<string, unknown> = {}): Message {
    const message: Message = { ...fields, id: this.#lastId + 1, text, time: Date.now() };
    this.#lastId = message.id;
    this.#ring[(message.id - 1) % this.capacity] = message;
    this.#pending.push(message);
    this.#deliverPending();
    return message;
  }

  /** The messages with an id greater than `id` that the backlog still holds, oldest first. */
  since(id: number): Message[] {
    const from = Math.max(id + 1, this.firstId);
    const result: Message[] = [];
    for (let next = from; next <= this.#lastId; next++) {
      result.push(this.#ring[(next - 1) % this.capacity]!);
    }
    return result;
  }

  /**
   * Calls `listener` for every message published from now on. With `since`,
   * it is first called, synchronously, for each message newer than `since`
   * still in the backlog. Returns the function that ends the subscription;
   * calling it twice is harmless.
   */
  subscribe(listener: Listener, since?: number): Unsubscribe {
    if (since !== undefined) {
      // Only what has started going out: a message still waiting in #pending
      // will reach this subscriber live, and must not come twice.
      for (const message of this.since(since)) {
        if (message.id > this.#announcedId) break;
        this.#call(listener, message);
      }
    }
    const entry = { listener };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  #deliverPending(): void {
    if (this.#delivering) return; // the loop below, further up the stack, will get to it
    this.#delivering = true;
    try {
      let message: Message | undefined;
      while ((message = this.#pending.shift()) !== undefined) {
        this.#announcedId = message.id;
        // A snapshot: whoever subscribes during this delivery has already seen
        // this message through its replay (it is in the ring), and whoever
        // unsubscribes is skipped by the has() check.
        for (const entry of [...this.#listeners]) {
          if (this.#listeners.has(entry)) this.#call(entry.listener, message);
        }
      }
    } finally {
      this.#delivering = false;
    }
  }

  #call(listener: Listener, message: Message): void {
    try {
      listener(message);
    } catch (error) {
      this.#onListenerError(error);
    }
  }
}
