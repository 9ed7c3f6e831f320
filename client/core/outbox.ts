/**
 * Messages waiting to be sent, in order: typed while offline, or queued behind others. Each keeps
 * the message id it was given when queued, so a send retried after a cut connection is stored
 * once (the server drops a repeated id). A send the server refuses is dropped and reported; one
 * that failed because the connection went down stays at the head for the next connection.
 */

import { type Clock, sleep } from "./clock.ts";
import { codeOf } from "./model.ts";

/** A message waiting to be sent. */
export interface Outgoing {
  readonly content: string;
  readonly room: string;
  readonly messageId: string;
}

/** What became of a queued message. */
export type QueueResult =
  /** Connected: it is on its way. */
  | { readonly kind: "sending" }
  /** Not connected: it goes once connected, after `waiting - 1` others. */
  | { readonly kind: "waiting"; readonly waiting: number }
  /** Not connected and `waiting` are already waiting: refused. */
  | { readonly kind: "full"; readonly waiting: number };

/** What the outbox needs from its session. */
export interface OutboxHost {
  connected(): boolean;
  stopped(): boolean;
  send(message: Outgoing): Promise<void>;
  /** The server refused `message` (or the session stopped under it): it is dropped. */
  refused(message: Outgoing, err: unknown): void;
}

/** Status codes of a send that may have failed only because the connection went down. */
const RETRYABLE_CODES = new Set(["UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"]);

export class Outbox {
  readonly #host: OutboxHost;
  readonly #max: number;
  readonly #queue: Outgoing[] = [];
  #pumping = false;
  #waiters: (() => void)[] = [];

  constructor(host: OutboxHost, max: number) {
    this.#host = host;
    this.#max = max;
  }

  get size(): number {
    return this.#queue.length;
  }

  /** The session's state changed: send what waits if connected, wake whoever waits. */
  wake(): void {
    if (this.#host.connected()) void this.#pump();
    this.#notify();
  }

  /**
   * Queues `message`. While connected and full, waits for room (backpressure); while not
   * connected and full, refuses it.
   */
  async push(message: Outgoing): Promise<QueueResult> {
    while (this.#host.connected() && !this.#host.stopped() && this.#queue.length >= this.#max) {
      await this.#changed();
    }
    if (this.#queue.length >= this.#max) return { kind: "full", waiting: this.#queue.length };
    this.#queue.push(message);
    if (!this.#host.connected()) return { kind: "waiting", waiting: this.#queue.length };
    void this.#pump();
    return { kind: "sending" };
  }

  /**
   * Waits until everything queued was sent, the session stopped, or `timeoutMs` passed;
   * resolves to how many messages still wait.
   */
  async drain(clock: Clock, timeoutMs: number): Promise<number> {
    if (this.#queue.length === 0 && !this.#pumping) return 0;
    const timeout = new AbortController();
    let timedOut = false;
    void sleep(clock, timeoutMs, timeout.signal).then(() => {
      timedOut = true;
      this.#notify();
    });
    try {
      while (!this.#host.stopped() && !timedOut && (this.#queue.length > 0 || this.#pumping)) {
        await this.#changed();
      }
    } finally {
      timeout.abort();
    }
    return this.#queue.length;
  }

  /** Sends queued messages in order while connected; one pump at a time. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#host.connected() && !this.#host.stopped() && this.#queue.length > 0) {
        const message = this.#queue[0]!;
        try {
          await this.#host.send(message);
        } catch (err) {
          if (this.#host.stopped()) break;
          if (!this.#host.connected() && RETRYABLE_CODES.has(codeOf(err) ?? "")) break;
          this.#host.refused(message, err);
        }
        this.#queue.shift();
        this.#notify();
      }
    } finally {
      this.#pumping = false;
      this.#notify();
    }
  }

  #notify(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
