/**
 * Room events that are kept: every join, leave and creation, and every moderation action
 * (removed, muted, unmuted, role and topic changes), is stored with its time, then told to every
 * gateway, whose streams that asked for events show it. A history page carries the stored events
 * of its span, so a client shows them among the messages after a reload too.
 */

import { describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ChatMessage, RoomEvent } from "../core/types.ts";
import type { Fanout } from "../bus/bus.ts";
import type { Store, StoredRoomEvent } from "../store/store.ts";
import type { Hub } from "./hub.ts";

/** The most stored events one history page carries (the newest of its span). */
export const EVENTS_PER_PAGE = 100;

export interface RoomEventLogOptions {
  bus: Fanout;
  hub: Hub;
  store: Pick<Store, "addRoomEvent" | "roomEvents" | "since">;
  logger: Logger;
  /** The server's clock, in milliseconds since the epoch. */
  now: () => number;
}

export class RoomEventLog {
  readonly #options: RoomEventLogOptions;

  constructor(options: RoomEventLogOptions) {
    this.#options = options;
  }

  /**
   * Stores `event`, stamped now, and tells every gateway (this one included). What is done is
   * done already (a membership, a mute): a store or bus that fails here is logged, and this
   * gateway's streams are told at least.
   */
  async record(event: RoomEvent): Promise<StoredRoomEvent> {
    const { bus, hub, store, logger, now } = this.#options;
    const stored: StoredRoomEvent = { ...event, at: new Date(now()).toISOString() };
    try {
      await store.addRoomEvent(stored);
    } catch (err) {
      logger.warn("Room event not stored", { room: event.room, error: describeError(err) });
    }
    try {
      await bus.deliver({ type: "room-event", event: stored });
    } catch (err) {
      // Streams elsewhere pick the membership up when they reconnect, the event from history.
      logger.warn("Room event not published", { room: event.room, error: describeError(err) });
      hub.roomEvent(stored);
    }
    return stored;
  }

  /**
   * The stored events of `room` in the span of a history page (`messages`, newest first): after
   * its oldest message (from the start when there are no older ones) up to the message after its
   * newest (up to now when it holds the newest). Each event so falls in exactly one page. A page
   * with no messages before `beforeSeq` has none; an empty room's page has all.
   */
  async forPage(
    room: string,
    messages: readonly ChatMessage[],
    more: boolean,
    beforeSeq: number | undefined,
  ): Promise<StoredRoomEvent[]> {
    const { store } = this.#options;
    const newest = messages[0];
    const oldest = messages.at(-1);
    if (!newest || !oldest) {
      return beforeSeq ? [] : await store.roomEvents(room, { limit: EVENTS_PER_PAGE });
    }
    // Positions may leave gaps: the next message is the first after the newest, not newest + 1.
    const [next] = await store.since(room, newest.seq, 1);
    return await store.roomEvents(room, {
      ...(more ? { after: oldest.timestamp } : {}),
      ...(next ? { until: next.timestamp } : {}),
      limit: EVENTS_PER_PAGE,
    });
  }
}
