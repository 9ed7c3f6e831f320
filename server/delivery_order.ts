/**
 * Deliveries wait for the messages they name. A gateway reads messages from the room logs
 * (`RoomLogs.follow`) and what else changes in a room from the fan-out (`Fanout.onDelivery`):
 * two readers, each at its own pace, so an edit, a deletion, a reaction or a read mark that
 * names message N could reach the streams before N itself, and a client would get a change of
 * a message it does not have, then the message unchanged. Here a delivery of a room that names
 * a position is held until this gateway's follower has handed on the room's messages up to it,
 * and every later delivery of the same room waits behind it (a join or a typing event does not
 * overtake an edit); other rooms go on.
 *
 * Bounded twice:
 * - **In time.** A delivery is held at most `waitMs` (10 s by default) from its arrival, then
 *   shown anyway with a warning: its message may never come to this follower (Kafka away, a
 *   follower being replaced after a stall). A change shown early beats a change lost. It stays
 *   under the 15 s after which a subscription whose handler has not returned is taken for stuck
 *   (bus/kafka/subscription.ts): the fan-out's consumer, waiting here at the limit below, would
 *   be replaced and would hand its deliveries again.
 * - **In number.** At most `limit` deliveries (10 000 by default) are held at once; while that
 *   many are, the next one is not taken: the fan-out waits as it does for slow readers, and no
 *   longer than the time bound of the oldest held.
 */

import type { Logger } from "../core/logger.ts";
import type { Delivery } from "../core/types.ts";

/** How long a delivery waits for the message it names. */
export const DELIVERY_WAIT_MS = 10_000;
/** The most deliveries held at once. */
export const HELD_DELIVERIES_LIMIT = 10_000;

export interface DeliveryOrderOptions {
  /** How far this gateway's follower has handed on `room` (`Following.handed`). */
  handed(room: string): number;
  /** Shows a delivery on this gateway's streams, at once; never throws. */
  show(delivery: Delivery): void;
  logger: Logger;
  waitMs?: number;
  limit?: number;
}

/** The room a delivery is about and the position of the message it names (0: none). */
export function placeOf(delivery: Delivery): { room: string; seq: number } | undefined {
  switch (delivery.type) {
    case "message-change":
      return { room: delivery.change.room, seq: delivery.change.seq };
    case "reaction":
      return { room: delivery.event.room, seq: delivery.event.seq };
    case "read":
      return { room: delivery.read.room, seq: delivery.read.seq };
    case "room-event":
    case "room-action":
    case "typing":
      return { room: delivery.event.room, seq: 0 };
    case "block":
    case "resync":
    case "gateway-dead":
      return undefined;
  }
}

interface Held {
  readonly delivery: Delivery;
  readonly seq: number;
  /** `performance.now()` past which it is shown anyway. */
  readonly until: number;
}

interface HeldRoom {
  readonly items: Held[];
  timer?: ReturnType<typeof setTimeout>;
}

export class DeliveryOrder {
  readonly #options: DeliveryOrderOptions;
  readonly #waitMs: number;
  readonly #limit: number;
  readonly #rooms = new Map<string, HeldRoom>();
  #count = 0;
  /** Resolved when a held delivery is shown: `accept` waits on it at the limit. */
  #freed = Promise.withResolvers<void>();
  #closed = false;

  constructor(options: DeliveryOrderOptions) {
    this.#options = options;
    this.#waitMs = options.waitMs ?? DELIVERY_WAIT_MS;
    this.#limit = options.limit ?? HELD_DELIVERIES_LIMIT;
  }

  /** How many deliveries are held. */
  get held(): number {
    return this.#count;
  }

  /**
   * Shows `delivery` now, or holds it behind what it waits for. Resolves once it is shown or
   * held; at the limit, only once there is room.
   */
  async accept(delivery: Delivery): Promise<void> {
    const place = placeOf(delivery);
    if (!place) return this.#options.show(delivery);
    while (this.#count >= this.#limit && !this.#closed) await this.#freed.promise;
    const { room, seq } = place;
    const waiting = this.#rooms.get(room);
    if (this.#closed || (!waiting && seq <= this.#options.handed(room))) {
      return this.#options.show(delivery);
    }
    const held = { delivery, seq, until: performance.now() + this.#waitMs };
    this.#count++;
    if (waiting) return void waiting.items.push(held);
    this.#rooms.set(room, { items: [held] });
    this.#release(room);
  }

  /**
   * The follower handed on a message of `room`: shows what waited for it. Only that room: a
   * delivery waits for a message of its own room, and a follower catching up must not scan every
   * held room for each message.
   */
  advanced(room: string): void {
    this.#release(room);
  }

  /** Drops what is held, for a gateway that stopped (its streams are closed). */
  close(): void {
    this.#closed = true;
    for (const { timer } of this.#rooms.values()) clearTimeout(timer);
    this.#rooms.clear();
    this.#count = 0;
    this.#freed.resolve();
  }

  /** Shows the room's deliveries from the oldest on, up to one that still waits. */
  #release(room: string): void {
    const waiting = this.#rooms.get(room);
    if (!waiting) return;
    const handed = this.#options.handed(room);
    const now = performance.now();
    const { items } = waiting;
    const early: { count: number; first?: number } = { count: 0 };
    let shown = 0;
    for (; shown < items.length; shown++) {
      const { delivery, seq, until } = items[shown]!;
      if (seq > handed) {
        if (now < until) break;
        early.first ??= seq;
        early.count++;
      }
      this.#options.show(delivery);
    }
    if (early.count > 0) {
      // One line per room and pass: a follower away for long would otherwise log every change.
      this.#options.logger.warn(
        `Showing deliveries before the messages they name: this gateway's follower did not hand them on within ${this.#waitMs} ms`,
        { room, ...early, handed },
      );
    }
    if (shown === 0 && waiting.timer !== undefined) return;
    items.splice(0, shown);
    this.#count -= shown;
    if (shown > 0) {
      this.#freed.resolve();
      this.#freed = Promise.withResolvers();
    }
    clearTimeout(waiting.timer);
    if (items.length === 0) return void this.#rooms.delete(room);
    // Set again only when the oldest changed: the follower calls this for every message.
    waiting.timer = setTimeout(() => {
      waiting.timer = undefined;
      this.#release(room);
    }, items[0]!.until - now);
  }
}
