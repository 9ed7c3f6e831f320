/**
 * Where a session stands in each room, so that a reconnect resumes without a gap and nothing is
 * shown twice: the newest sequence number per room (sent as `Connect.resume`) and the messages
 * already passed on.
 */

import { DEFAULT_MAX_RESUME_ROOMS } from "../../protocol/limits.ts";
import type { ChatMessage, RoomPosition } from "./model.ts";

/** How many keys (two per message) are remembered to drop repeats. */
const SEEN_LIMIT = 10_000;

export class RoomPositions {
  /** The newest sequence number known per room, in the order rooms were learned of. */
  readonly #lastSeq = new Map<string, number>();
  /**
   * (room, seq) keys, and (room, sender, message id) keys, of messages already passed on. The
   * second catches a retried send that the service logged twice, under two positions, when the
   * retry came later than the gateways remember sends (their last 10,000 per log partition).
   */
  readonly #seen = new Set<string>();
  readonly #seenOrder: string[] = [];

  /** Where a reconnect resumes, per room (as many rooms as the server takes). */
  get resume(): RoomPosition[] {
    return [...this.#lastSeq].slice(0, DEFAULT_MAX_RESUME_ROOMS)
      .map(([room, lastSeq]) => ({ room, lastSeq }));
  }

  has(room: string): boolean {
    return this.#lastSeq.has(room);
  }

  /**
   * A room learned of (from ListRooms, or one just joined) whose messages up to `lastSeq` are
   * history: a reconnect resumes after it at the latest.
   */
  startAt(room: string, lastSeq: number): void {
    if (!this.#lastSeq.has(room)) this.#lastSeq.set(room, lastSeq);
  }

  /** A room left: no resume there. */
  forget(room: string): void {
    this.#lastSeq.delete(room);
  }

  /**
   * Whether `message` is new, recording it if so. A live message at or below its room's
   * position was shown already or predates the session (resume and live can overlap); a
   * history message is new unless that very message was passed on.
   */
  accept(message: ChatMessage, source: "live" | "history"): boolean {
    const position = this.#lastSeq.get(message.room) ?? 0;
    if (source === "live" && message.seq > 0 && message.seq <= position) return false;
    const keys = [
      message.seq > 0 && `${message.room}\u0000${message.seq}`,
      message.messageId &&
      `id\u0000${message.room}\u0000${message.userId}\u0000${message.messageId}`,
    ].filter((key): key is string => Boolean(key));
    const repeat = keys.some((key) => this.#seen.has(key));
    // A repeat under a newer position still moves the resume point past it.
    if (message.seq > position) this.#lastSeq.set(message.room, message.seq);
    if (repeat) return false;
    for (const key of keys) {
      this.#seen.add(key);
      this.#seenOrder.push(key);
      if (this.#seenOrder.length > SEEN_LIMIT) this.#seen.delete(this.#seenOrder.shift()!);
    }
    return true;
  }
}
