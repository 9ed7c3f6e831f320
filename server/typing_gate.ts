/**
 * Which "is typing" signals of a gateway's clients go on to the bus: the coalescing that keeps a
 * client calling SetTyping on every key, or a hostile one calling it in a loop, from costing the
 * bus more than a few events per user and room. Pure: no bus, no store; the clock is passed in.
 *
 * Per user and room: a `true` goes on when none went on in the last `refreshMs` (a typer who
 * keeps typing refreshes the receivers' `expiresMs` before it runs out), or, after a `false`,
 * when none went on in the last `restartMs`; a `false` goes on only when a `true` went on and
 * has not expired, at once. So whatever a client sends, at most two events per `restartMs` go on
 * for each user and room. Memory stays bounded: an entry is forgotten once its `true` expired
 * (the oldest are swept as new ones come), and past `maxEntries` the oldest is dropped (a
 * receiver then just lets its `true` expire).
 */

export interface TypingGateOptions {
  /** How often a `true` goes on while it stays true. */
  refreshMs: number;
  /** How soon after the last `true` another may go on once a `false` ended it. */
  restartMs: number;
  /** How long a receiver shows a `true`; an entry older than that is forgotten. */
  expiresMs: number;
  /** The most users and rooms remembered at once (10 000 by default). */
  maxEntries?: number;
}

interface Forwarded {
  readonly userId: string;
  readonly room: string;
  /** When the last `true` went on. */
  readonly at: number;
  /** Whether receivers show it: no `false` went on since. */
  shown: boolean;
}

export class TypingGate {
  readonly #refreshMs: number;
  readonly #restartMs: number;
  readonly #expiresMs: number;
  readonly #maxEntries: number;
  /** By `userId` and `room`; insertion order is the order the last `true` went on. */
  readonly #entries = new Map<string, Forwarded>();
  /** The rooms of each user with an entry, to end them all when the user's streams are gone. */
  readonly #byUser = new Map<string, Set<string>>();

  constructor(options: TypingGateOptions) {
    const { refreshMs, restartMs, expiresMs } = options;
    if (!(restartMs > 0 && refreshMs >= restartMs && expiresMs > refreshMs)) {
      throw new Error(
        `Cannot create the typing gate: restartMs is ${restartMs}, refreshMs ${refreshMs} and expiresMs ${expiresMs}; each must be above the one before (and restartMs above 0)`,
      );
    }
    this.#refreshMs = refreshMs;
    this.#restartMs = restartMs;
    this.#expiresMs = options.expiresMs;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  /** Whether the signal `typing` of `userId` in `room` at `now` goes on to the bus. */
  pass(userId: string, room: string, typing: boolean, now: number): boolean {
    this.#sweep(now);
    const key = keyOf(userId, room);
    const last = this.#entries.get(key);
    if (!typing) {
      if (!last?.shown) return false;
      last.shown = false;
      return true;
    }
    if (last && now - last.at < (last.shown ? this.#refreshMs : this.#restartMs)) return false;
    if (last) this.#forget(key, last);
    this.#entries.set(key, { userId, room, at: now, shown: true });
    let rooms = this.#byUser.get(userId);
    if (!rooms) this.#byUser.set(userId, rooms = new Set());
    rooms.add(room);
    if (this.#entries.size > this.#maxEntries) {
      const [oldestKey, oldest] = this.#entries.entries().next().value!;
      this.#forget(oldestKey, oldest);
    }
    return true;
  }

  /**
   * The rooms where `userId` shows as typing, now forgotten: the caller tells them it stopped
   * (its last stream here closed).
   */
  end(userId: string, now: number): string[] {
    this.#sweep(now);
    const shown: string[] = [];
    for (const room of [...this.#byUser.get(userId) ?? []]) {
      const key = keyOf(userId, room);
      const entry = this.#entries.get(key)!;
      if (entry.shown) shown.push(room);
      this.#forget(key, entry);
    }
    return shown;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Drops the entries whose `true` has expired at the receivers: the oldest come first. */
  #sweep(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (now - entry.at < this.#expiresMs) return;
      this.#forget(key, entry);
    }
  }

  #forget(key: string, entry: Forwarded): void {
    this.#entries.delete(key);
    const rooms = this.#byUser.get(entry.userId);
    rooms?.delete(entry.room);
    if (rooms?.size === 0) this.#byUser.delete(entry.userId);
  }
}

/** User ids and room names hold no NUL (the name rules refuse control characters). */
const keyOf = (userId: string, room: string) => `${userId}\0${room}`;
