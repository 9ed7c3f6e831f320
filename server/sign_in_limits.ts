/**
 * What keeps password guessing slow and a flood of sign-ins from delaying real users:
 *
 * - {@linkcode FailureThrottle}: per key (a username, a client address), a number of free
 *   wrong passwords, then one try per wait, the wait doubling with each further failure up to a
 *   limit. Tries in progress count as failures-to-be, so a burst of concurrent guesses gets no
 *   more tries than a patient guesser. Refused tries cost nothing: no hash, no store read.
 * - {@linkcode HashQueue}: password hashes run a few at once; the others wait in a bounded queue,
 *   and one that finds it full is refused at once. Waiting sign-ins are served one client
 *   address at a time in turn, and a newcomer whose address has nothing waiting takes the place
 *   of the newest waiter of the address holding the most places, so one address (or a few)
 *   cannot keep everyone else out. A call cancelled while it waits leaves the queue unhashed.
 * - {@linkcode addressKey}: the address a client is counted by.
 */

import { ChatError } from "../core/errors.ts";

/** "retry in 2.5 s", as the other limits say it. */
export function retryIn(ms: number): string {
  return `retry in ${(Math.max(ms, 100) / 1000).toFixed(1)} s`;
}

export interface FailureThrottleOptions {
  /** Failures before each further try must wait. */
  freeFailures: number;
  /** The wait after the last free failure; doubled with each further one. */
  delayMs: number;
  maxDelayMs: number;
  /** Failures are forgotten this long after the last one. */
  windowMs: number;
  /** The most keys kept; past it the least recently used is forgotten. */
  maxKeys?: number;
  /** Milliseconds, monotonic (for tests). */
  now?: () => number;
}

export type Admission =
  | { ok: true }
  | { ok: false; retryAfterMs: number; failures: number; pending: number };

interface Entry {
  failures: number;
  /** Tries in progress (admitted, outcome not yet known). */
  pending: number;
  lastFailureAt: number;
  /** No paid try before this time. */
  lockedUntil: number;
}

/** The most keys a throttle tracks by default: bounded memory however many names are tried. */
export const MAX_TRACKED_KEYS = 100_000;

export class FailureThrottle {
  readonly #options: Required<FailureThrottleOptions>;
  /** Insertion order is least-recently-used order. */
  readonly #entries = new Map<string, Entry>();

  constructor(options: FailureThrottleOptions) {
    this.#options = {
      maxKeys: MAX_TRACKED_KEYS,
      now: () => performance.now(),
      ...options,
    };
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The wait after failure number `failures` (counting from 1); 0 while failures are free. */
  delayAfter(failures: number): number {
    const { freeFailures, delayMs, maxDelayMs } = this.#options;
    if (failures < Math.max(freeFailures, 1)) return 0;
    return Math.min(maxDelayMs, delayMs * 2 ** Math.min(failures - Math.max(freeFailures, 1), 40));
  }

  /** Admits a try for `key` (counted as in progress until `settle`), or says how long to wait. */
  admit(key: string): Admission {
    const now = this.#options.now();
    const entry = this.#current(key, now);
    const { failures, pending, lockedUntil } = entry;
    const free = failures + pending < this.#options.freeFailures;
    // Past the free ones: one try at a time, once the wait is over.
    if (free || (pending === 0 && now >= lockedUntil)) {
      entry.pending++;
      this.#touch(key, entry);
      return { ok: true };
    }
    // Tries in progress may fail and start a wait of their own: the wait they would start.
    const retryAfterMs = pending === 0
      ? lockedUntil - now
      : Math.max(lockedUntil - now, this.delayAfter(failures + pending));
    return { ok: false, retryAfterMs: Math.ceil(retryAfterMs), failures, pending };
  }

  /**
   * The outcome of an admitted try: "failure" counts it (and starts a wait once the free ones are
   * used), "success" forgets the key's failures, "none" (no password was checked) only ends it.
   * Returns the wait a failure started (0 when none).
   */
  settle(key: string, outcome: "failure" | "success" | "none"): number {
    const now = this.#options.now();
    const entry = this.#entries.get(key);
    if (!entry) return 0; // forgotten meanwhile (too many keys): nothing to settle
    entry.pending = Math.max(0, entry.pending - 1);
    let wait = 0;
    if (outcome === "failure") {
      entry.failures++;
      entry.lastFailureAt = now;
      wait = this.delayAfter(entry.failures);
      entry.lockedUntil = now + wait;
    } else if (outcome === "success") {
      entry.failures = 0;
      entry.lockedUntil = 0;
    }
    if (entry.failures === 0 && entry.pending === 0) this.#entries.delete(key);
    return wait;
  }

  /** The key's entry, with failures older than the window forgotten. */
  #current(key: string, now: number): Entry {
    let entry = this.#entries.get(key);
    if (
      entry && entry.pending === 0 && now >= entry.lockedUntil &&
      now - entry.lastFailureAt >= this.#options.windowMs
    ) {
      this.#entries.delete(key);
      entry = undefined;
    }
    return entry ?? { failures: 0, pending: 0, lastFailureAt: now, lockedUntil: 0 };
  }

  #touch(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    while (this.#entries.size > this.#options.maxKeys) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }
}

export interface HashQueueOptions {
  /** Hashes run at once. */
  concurrency: number;
  /** Hashes that may wait; more are refused. */
  queueLimit: number;
  /** Milliseconds, monotonic (for tests). */
  now?: () => number;
}

interface Waiter {
  key: string;
  start(): void;
  refuse(error: ChatError): void;
}

/** The error a sign-in whose client went away gets (nobody reads it). */
export function cancelled(): ChatError {
  return new ChatError(
    "cancelled",
    "Cannot sign in: the call was cancelled before its password was checked",
  );
}

export class HashQueue {
  readonly #concurrency: number;
  readonly #queueLimit: number;
  readonly #now: () => number;
  #running = 0;
  #waiting = 0;
  /** Waiters by client address; the address first in the map is served next. */
  readonly #queues = new Map<string, Waiter[]>();
  /** The average time a task takes (exponentially weighted), for the retry advice. */
  #averageMs = 100;
  /** Tasks started, in all: what tests count. */
  #started = 0;

  constructor(options: HashQueueOptions) {
    const { concurrency, queueLimit } = options;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error(
        `Cannot create the hash queue: concurrency is ${concurrency}, it must be a whole number of at least 1`,
      );
    }
    if (!Number.isInteger(queueLimit) || queueLimit < 0) {
      throw new Error(
        `Cannot create the hash queue: the queue limit is ${queueLimit}, it must be a whole number of at least 0`,
      );
    }
    this.#concurrency = concurrency;
    this.#queueLimit = queueLimit;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Tasks running now, waiting now, and started since creation. */
  get stats(): { running: number; waiting: number; started: number } {
    return { running: this.#running, waiting: this.#waiting, started: this.#started };
  }

  /**
   * Runs `task` for client `key` when a slot is free. Refused with RESOURCE_EXHAUSTED when the
   * queue is full, with CANCELLED when `signal` is aborted before the task starts.
   */
  run<T>(key: string, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(cancelled());
    if (this.#running < this.#concurrency) return this.#start(task);
    if (this.#waiting >= this.#queueLimit && !this.#evictFor(key)) {
      return Promise.reject(this.#full());
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        if (!this.#remove(waiter)) return;
        reject(cancelled());
      };
      const waiter: Waiter = {
        key,
        start: () => {
          signal?.removeEventListener("abort", onAbort);
          this.#start(task).then(resolve, reject);
        },
        refuse: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const queue = this.#queues.get(key);
      if (queue) queue.push(waiter);
      else this.#queues.set(key, [waiter]);
      this.#waiting++;
    });
  }

  async #start<T>(task: () => Promise<T>): Promise<T> {
    this.#running++;
    this.#started++;
    const began = this.#now();
    try {
      return await task();
    } finally {
      this.#averageMs = 0.8 * this.#averageMs + 0.2 * (this.#now() - began);
      this.#running--;
      this.#next();
    }
  }

  /** Starts the next waiter: the first address's oldest, and that address goes to the back. */
  #next(): void {
    while (this.#running < this.#concurrency && this.#waiting > 0) {
      const [key, queue] = this.#queues.entries().next().value!;
      const waiter = queue.shift()!;
      this.#queues.delete(key);
      if (queue.length > 0) this.#queues.set(key, queue);
      this.#waiting--;
      waiter.start();
    }
  }

  #remove(waiter: Waiter): boolean {
    const queue = this.#queues.get(waiter.key);
    const index = queue?.indexOf(waiter) ?? -1;
    if (!queue || index < 0) return false;
    queue.splice(index, 1);
    if (queue.length === 0) this.#queues.delete(waiter.key);
    this.#waiting--;
    return true;
  }

  /**
   * Makes room for a waiter of `key` in a full queue: the newest waiter of the address holding
   * the most places is refused, if that address holds at least two more than `key` would.
   */
  #evictFor(key: string): boolean {
    const mine = (this.#queues.get(key)?.length ?? 0) + 1;
    let fullest: Waiter[] | undefined;
    for (const queue of this.#queues.values()) {
      if (!fullest || queue.length > fullest.length) fullest = queue;
    }
    if (!fullest || fullest.length <= mine) return false;
    const victim = fullest[fullest.length - 1]!;
    this.#remove(victim);
    victim.refuse(this.#full());
    return true;
  }

  #full(): ChatError {
    const rounds = Math.ceil((this.#waiting + 1) / this.#concurrency);
    return new ChatError(
      "resource_exhausted",
      `Cannot sign in: the server is busy checking passwords (${this.#running} running, ${this.#waiting} waiting, the limit is ${this.#queueLimit}); ${
        retryIn(rounds * this.#averageMs)
      }`,
    );
  }
}

/** "1.2.3.4" from a peer "1.2.3.4:5678", "::1" from "[::1]:5678" or "::1:5678" (as grpc-js has it). */
export function peerHost(peer: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed) return bracketed[1]!;
  const withPort = /^(.+):\d+$/.exec(peer);
  return withPort && withPort[1] !== ":" ? withPort[1]! : peer;
}

/**
 * The address a client is counted by: an IPv4 address as it is (also when mapped into IPv6), an
 * IPv6 address by its /64 network (one subscriber usually holds a whole /64), anything else as
 * given; "unknown" when there is none.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined || address.trim() === "") return "unknown";
  const host = address.trim().replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped) return mapped[1]!;
  if (!host.includes(":")) return host;
  const groups = expandIpv6(host);
  if (!groups) return host;
  return `${groups.slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, as hex without leading zeros; undefined if malformed. */
function expandIpv6(host: string): string[] | undefined {
  let text = host.toLowerCase();
  // A dotted IPv4 tail (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) is two groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) +
      `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => parseInt(g, 16).toString(16));
}
