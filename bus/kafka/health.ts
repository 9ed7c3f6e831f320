/**
 * Whether Kafka still answers: probed after any failure that may mean it is gone, and every few
 * seconds while the bus is ready. A bus whose probe fails is marked lost and reconnects.
 *
 * kafkajs sends a metadata request to one broker picked at random from its pool, which keeps a
 * stopped broker for a while: one failure while one broker of three is down says nothing, so
 * several attempts must fail before Kafka counts as gone.
 */

import type { Admin } from "kafkajs";
import { describeError } from "../../core/errors.ts";
import { pause, settleWithin, withTimeout } from "./waits.ts";

const PROBE_TIMEOUT_MS = 10_000;
const PROBE_ATTEMPTS = 6;

export interface HealthContext {
  /** The connected admin client, if any. */
  admin(): Admin | undefined;
  ready(): boolean;
  /** Kafka does not answer: stop accepting publishes and reconnect. */
  lost(reason: string): void;
  /** Aborted when the bus closes. */
  readonly signal: AbortSignal;
}

export class HealthWatch {
  #probing: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** `intervalMs` 0 turns the periodic check off. */
  constructor(private readonly context: HealthContext, private readonly intervalMs: number) {}

  /** Checks whether Kafka still answers after a failure; marks the bus lost if not. */
  suspect(reason: string): void {
    if (!this.context.ready() || this.#probing) return;
    const admin = this.context.admin();
    if (!admin) return this.context.lost(reason);
    this.#probing = this.#probe(admin)
      .then(
        () => {},
        (err) => {
          if (admin === this.context.admin()) this.context.lost(`${reason}; ${describeError(err)}`);
        },
      )
      .finally(() => {
        this.#probing = undefined;
      });
  }

  /** Resolves when any broker answers a metadata request. */
  async #probe(admin: Admin): Promise<void> {
    const deadline = Date.now() + PROBE_TIMEOUT_MS;
    for (let attempt = 1;; attempt++) {
      try {
        await withTimeout(admin.describeCluster(), Math.max(deadline - Date.now(), 1), "probe");
        return;
      } catch (err) {
        if (attempt >= PROBE_ATTEMPTS || Date.now() >= deadline || this.context.signal.aborted) {
          throw err;
        }
      }
      await pause(200, this.context.signal);
    }
  }

  /** Checks every `intervalMs` while the bus is ready. */
  schedule(): void {
    if (this.intervalMs <= 0 || this.context.signal.aborted || !this.context.ready()) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.suspect("health check");
      this.schedule();
    }, this.intervalMs);
  }

  /** Stops the periodic check (the bus was lost); a probe under way goes on. */
  pause(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Stops checking, waiting at most `ms` for a probe under way. */
  async stop(ms: number): Promise<void> {
    this.pause();
    if (this.#probing) await settleWithin(this.#probing, ms);
  }
}
