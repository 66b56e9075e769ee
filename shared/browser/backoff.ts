/**
 * Retry delays that grow exponentially, are capped, and are jittered so that
 * a thousand clients cut off at the same moment do not all come back at the
 * same moment (the "thundering herd" after a server restart).
 *
 * The n-th delay (n from 0) is drawn uniformly from [base/2, base] with
 * base = min(maxMs, initialMs · 2^n). Pure, with an injectable random source.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  random?: () => number;
}

export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly #random: () => number;
  #failures = 0;

  constructor({ initialMs = 1_000, maxMs = 30_000, random = Math.random }: BackoffOptions = {}) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.#random = random;
  }

  /** Failures in a row so far. */
  get failures(): number {
    return this.#failures;
  }

  /** The delay before the next attempt, counting one more failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    return Math.round(base / 2 + (this.#random() * base) / 2);
  }

  /** A success: the next failure starts again from initialMs. */
  reset(): void {
    this.#failures = 0;
  }
}
