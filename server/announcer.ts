/**
 * Publishes this gateway's connection events in order, and keeps them until
 * the bus takes them: a stream opened or closed while Kafka is down is
 * announced when it is back, so the processor's registry never misses one.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ConnectionEvent } from "../core/types.ts";
import type { RoomLogs } from "../bus/bus.ts";

export class Announcer {
  readonly #queue: ConnectionEvent[] = [];
  #running = false;
  #stopped = false;
  #wake: (() => void) | undefined;
  #idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly bus: Pick<RoomLogs, "announce">,
    private readonly logger: Logger,
    private readonly retryMs = 1000,
    /** Beyond this many waiting events the oldest are dropped; a resync restores the state. */
    private readonly limit = 100_000,
  ) {}

  announce(event: ConnectionEvent): void {
    if (this.#stopped) return;
    this.#queue.push(event);
    if (this.#queue.length > this.limit) this.#queue.shift();
    this.#drain();
  }

  /** Retries now instead of after the pause (the bus just became ready). */
  nudge(): void {
    this.#wake?.();
  }

  get waiting(): number {
    return this.#queue.length;
  }

  #drain(): void {
    if (this.#running) return;
    this.#running = true;
    this.#idle = this.#run().finally(() => this.#running = false);
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0) {
      const event = this.#queue[0]!;
      try {
        await this.bus.announce(event);
        this.#queue.shift();
      } catch (err) {
        if (this.#stopped) return;
        this.logger.warn("Connection event not published yet; will retry", {
          user: event.userId,
          error: describeError(err),
        });
        const wake = new AbortController();
        this.#wake = () => wake.abort();
        await sleep(this.retryMs, undefined, { signal: wake.signal }).catch(() => {});
        this.#wake = undefined;
      }
    }
  }

  /** Publishes what is waiting (bounded by `timeoutMs`), then stops taking events. */
  async flush(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#idle,
      new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
    this.#stopped = true;
    this.nudge();
  }
}
