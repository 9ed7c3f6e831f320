/**
 * A token bucket per key (a user id, an address): each key may make `burst` calls at once and
 * `ratePerSecond` calls per second on average after that.
 *
 * Memory stays bounded: buckets are kept in least-recently-used order, each call drops the
 * idle buckets that have refilled completely (they hold nothing a new bucket would not), and
 * past `maxKeys` the least recently used bucket is dropped even if it is not full, which forgives
 * that key its debt. The latter happens only while more than `maxKeys` distinct keys are active
 * within one refill time (`burst / ratePerSecond` seconds).
 */

export interface RateLimiterOptions {
  /** Tokens added per second; at most this many calls per second on average. */
  ratePerSecond: number;
  /** The bucket's size: how many calls may be made at once. */
  burst: number;
  /** The most buckets kept (10 000 by default). */
  maxKeys?: number;
  /** The clock, in milliseconds (monotonic `performance.now` by default; for tests). */
  now?: () => number;
}

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  /** When `tokens` was computed, in clock milliseconds. */
  at: number;
}

/** Rounding slack, so that a bucket refilled to 0.9999999999 still grants a call. */
const EPSILON = 1e-9;

export class RateLimiter {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  /** Insertion order is the least-recently-used order: the first bucket was used longest ago. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    const { ratePerSecond, burst, maxKeys = 10_000 } = options;
    if (!Number.isFinite(ratePerSecond) || ratePerSecond <= 0) {
      throw new Error(
        `Cannot create the rate limiter: the rate is ${ratePerSecond} per second, it must be above 0`,
      );
    }
    if (!Number.isInteger(burst) || burst < 1) {
      throw new Error(
        `Cannot create the rate limiter: the burst is ${burst}, it must be a whole number of at least 1`,
      );
    }
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new Error(
        `Cannot create the rate limiter: maxKeys is ${maxKeys}, it must be a whole number of at least 1`,
      );
    }
    this.#ratePerMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#maxKeys = maxKeys;
    this.#now = options.now ?? (() => performance.now());
  }

  /** How many buckets are kept now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token from `key`'s bucket, or says how long until one is there. */
  take(key: string): TakeResult {
    const now = this.#now();
    this.#dropFull(now);
    const bucket = this.#buckets.get(key);
    let tokens = this.#burst;
    if (bucket) {
      this.#buckets.delete(key); // re-inserted below as the most recently used
      tokens = this.#refilled(bucket, now);
    }
    let result: TakeResult;
    if (tokens >= 1 - EPSILON) {
      tokens = Math.max(0, tokens - 1);
      result = { ok: true };
    } else {
      // Less half an EPSILON's worth of time, so float noise does not round 1 ms up to 2, while
      // a call made exactly `retryAfterMs` later still finds a token.
      const waitMs = (1 - tokens - EPSILON / 2) / this.#ratePerMs;
      result = { ok: false, retryAfterMs: Math.max(1, Math.ceil(waitMs)) };
    }
    this.#buckets.set(key, { tokens, at: now });
    while (this.#buckets.size > this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value!;
      this.#buckets.delete(oldest);
    }
    return result;
  }

  /**
   * Gives back the token `take` gave `key`, for a call that did not happen after all (a sign-in
   * refused later on): at most up to a full bucket.
   */
  refund(key: string): void {
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.#burst, bucket.tokens + 1);
  }

  #refilled(bucket: Bucket, now: number): number {
    const elapsed = Math.max(0, now - bucket.at); // a clock that steps back adds nothing
    return Math.min(this.#burst, bucket.tokens + elapsed * this.#ratePerMs);
  }

  /**
   * Drops the least recently used buckets while they have refilled completely. Stops at the
   * first that has not: amortized O(1) per call, since each bucket is dropped at most once.
   */
  #dropFull(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (this.#refilled(bucket, now) < this.#burst - EPSILON) return;
      this.#buckets.delete(key);
    }
  }
}
