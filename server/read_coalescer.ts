/**
 * Read positions on their way to the store: at most one write per user and room every
 * `intervalMs`, whatever the clients send. A client may mark a room read on every message it
 * shows; the first mark of a quiet spell is written at once, the ones that follow within the
 * interval only keep the newest position, which is written when the interval ends. So neither
 * the store nor the bus sees more than one write (and one read event) per user, room and
 * interval, and nothing waits longer than one interval.
 */

import { describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ReadMark } from "../core/types.ts";

export interface ReadCoalescerOptions {
  /** The shortest time between two writes of one user's position in one room. */
  intervalMs: number;
  /** Stores a position and tells whoever should know. */
  write: (mark: ReadMark) => Promise<void>;
  logger: Logger;
}

interface Slot {
  /** The newest position marked since the last write, if any. */
  pending: ReadMark | undefined;
  timer: ReturnType<typeof setTimeout>;
}

export class ReadCoalescer {
  readonly #options: ReadCoalescerOptions;
  /** By user and room; a slot lives while its interval runs, so idle pairs cost nothing. */
  readonly #slots = new Map<string, Slot>();

  constructor(options: ReadCoalescerOptions) {
    this.#options = options;
  }

  /**
   * Takes a position. Resolves once it is written when written now (its failure is the
   * caller's), else at once: it waits for the end of the interval, and only the newest waits.
   */
  mark(mark: ReadMark): Promise<void> {
    const key = JSON.stringify([mark.userId, mark.room]);
    const slot = this.#slots.get(key);
    if (slot) {
      if (!slot.pending || mark.seq > slot.pending.seq) slot.pending = mark;
      return Promise.resolve();
    }
    this.#slots.set(key, { pending: undefined, timer: this.#schedule(key) });
    return this.#options.write(mark);
  }

  /** How many user and room pairs are within their interval (for tests and metrics). */
  get size(): number {
    return this.#slots.size;
  }

  /** Writes every waiting position now and stops the timers: for shutdown. */
  async flush(): Promise<void> {
    const waiting = [...this.#slots.values()];
    this.#slots.clear();
    await Promise.all(waiting.map(async (slot) => {
      clearTimeout(slot.timer);
      if (slot.pending) await this.#writeLogged(slot.pending);
    }));
  }

  #schedule(key: string): ReturnType<typeof setTimeout> {
    return setTimeout(() => {
      const slot = this.#slots.get(key);
      if (!slot) return;
      if (!slot.pending) {
        this.#slots.delete(key);
        return;
      }
      const mark = slot.pending;
      slot.pending = undefined;
      slot.timer = this.#schedule(key);
      this.#writeLogged(mark);
    }, this.#options.intervalMs);
  }

  /** A later write has no caller left to answer: its failure is logged (the next mark retries). */
  async #writeLogged(mark: ReadMark): Promise<void> {
    try {
      await this.#options.write(mark);
    } catch (err) {
      this.#options.logger.warn("Read position not stored", {
        room: mark.room,
        user: mark.userId,
        error: describeError(err),
      });
    }
  }
}
