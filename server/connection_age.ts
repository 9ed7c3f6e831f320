/**
 * GOAWAY to gRPC connections older than the maximum age (`MAX_CONNECTION_AGE_MS`), without a
 * timer per connection.
 *
 * grpc-js's own `grpc.max_connection_age_ms` arms a timer per connection, with a random jitter,
 * and clears it when the connection closes. Deno's `node:timers` (2.9.3 and 2.9.6) keeps a list
 * for every distinct duration of a timeout that was cleared, so that cost about 190 bytes of heap
 * per connection for the life of the process (the churn fault scenarios measured it).
 *
 * Here grpc-js gets its connections through one connection injector per generation: a connection
 * goes into the newest generation, a new one starts when the newest is a tenth of the age old,
 * and a generation is closed once it is the age old: grpc-js closes the injector's sessions
 * gracefully (a GOAWAY; open calls and streams go on) and forgets the injector. Checked every
 * tenth of the age, so a connection gets its GOAWAY between 0.9 and 1.1 times the age after it
 * came, as with grpc-js's jitter, and the clients reconnect spread out as they had arrived.
 */

import type { Duplex } from "node:stream";

/** What grpc-js's `Server.createConnectionInjector` returns, as far as this module uses it. */
export interface ConnectionInjector {
  injectConnection(connection: Duplex): void;
  /** Closes the injector and sends its sessions a GOAWAY, letting their open calls finish. */
  destroy(): void;
}

interface Generation {
  readonly injector: ConnectionInjector;
  readonly startedAt: number;
}

export class AgedConnections {
  readonly #create: () => ConnectionInjector;
  readonly #ageMs: number;
  readonly #periodMs: number;
  readonly #now: () => number;
  /** Oldest first. */
  readonly #generations: Generation[] = [];
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(
    create: () => ConnectionInjector,
    ageMs: number,
    now: () => number = () => performance.now(),
  ) {
    this.#create = create;
    this.#ageMs = ageMs;
    this.#periodMs = Math.max(1, Math.round(ageMs / 10));
    this.#now = now;
    this.#timer = setInterval(() => this.check(), this.#periodMs);
  }

  /** Generations not closed yet. */
  get generations(): number {
    return this.#generations.length;
  }

  /** Hands `socket` to grpc-js through the newest generation. */
  inject(socket: Duplex): void {
    const now = this.#now();
    let newest = this.#generations.at(-1);
    if (!newest || now - newest.startedAt >= this.#periodMs) {
      newest = { injector: this.#create(), startedAt: now };
      this.#generations.push(newest);
    }
    newest.injector.injectConnection(socket);
  }

  /** Closes the generations that reached the age; runs every tenth of it. */
  check(): void {
    const now = this.#now();
    while (this.#generations.length > 0 && now - this.#generations[0]!.startedAt >= this.#ageMs) {
      this.#generations.shift()!.injector.destroy();
    }
  }

  /** Stops the checks; the server's shutdown closes the connections. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
