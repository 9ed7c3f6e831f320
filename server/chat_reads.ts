/**
 * Reading state in the chat service: a member marks a room read up to a message; the position
 * is kept by the store (so every device and every gateway sees it, after a reload too) and
 * told, as a read event over the bus, to the reader's other streams and, in a direct room, to
 * the other member ("seen"). Writes are coalesced (`read_coalescer.ts`): a client that marks
 * read on every message costs at most one write and one event per room and interval.
 */

import { describeError, invalidArgument } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ReadMark } from "../core/types.ts";
import { DEFAULT_ROOM, directRoomMembers } from "../protocol/names.ts";
import type { Fanout, RoomLogs } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import type { Callers } from "./chat_callers.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller } from "./chat_types.ts";
import type { Hub } from "./hub.ts";
import { ReadCoalescer } from "./read_coalescer.ts";

export interface ReadsOptions {
  bus: Fanout & Pick<RoomLogs, "stored">;
  hub: Hub;
  store: Store;
  callers: Callers;
  rooms: Rooms;
  logger: Logger;
  /** The shortest time between two writes of one user's position in one room; default 1 s. */
  readWriteIntervalMs?: number;
}

export const READ_WRITE_INTERVAL_MS = 1000;

export class Reads {
  readonly #options: ReadsOptions;
  readonly #coalescer: ReadCoalescer;

  constructor(options: ReadsOptions) {
    this.#options = options;
    this.#coalescer = new ReadCoalescer({
      intervalMs: options.readWriteIntervalMs ?? READ_WRITE_INTERVAL_MS,
      write: (mark) => this.#write(mark),
      logger: options.logger,
    });
  }

  /**
   * Marks `name` read up to `seq` for the caller, who must be a member. A `seq` past the room's
   * newest message counts as the newest (a client may race a message it has not yet been sent);
   * the position never moves back. Returns what was accepted: written now, or within the interval.
   */
  async markRead(caller: Caller, name: string, seq: number): Promise<ReadMark> {
    const { callers, rooms } = this.#options;
    const action = "Cannot mark read";
    const me = await callers.identify(caller, undefined, action);
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw invalidArgument(`${action}: seq is ${seq}; name the newest message read (1 or more)`);
    }
    const room = name.trim() ? await rooms.memberRoom(action, name, me.userId) : DEFAULT_ROOM;
    const mark: ReadMark = {
      room,
      userId: me.userId,
      displayName: callers.nameOf(caller, me),
      seq,
    };
    await this.#coalescer.mark(mark);
    return mark;
  }

  /**
   * A stream just opened that asked for events learns how far the other person read each of its
   * direct rooms, so that "seen" shows after a reload too; one store read for all its rooms.
   */
  async catchUp(streamId: string): Promise<void> {
    const { hub, store, logger } = this.#options;
    const stream = hub.stream(streamId);
    if (!stream?.presenceEvents) return;
    const me = stream.userId;
    const direct = [...stream.rooms].filter((room) => directRoomMembers(room)?.includes(me));
    if (direct.length === 0) return;
    try {
      for (const { room, userId, seq } of await store.readPositions(direct)) {
        if (userId === me) continue;
        // The name as streams here know it: "seen" needs only who.
        const displayName = hub.displayNameOf(userId) ?? userId;
        hub.readTo(streamId, { room, userId, displayName, seq });
      }
    } catch (err) {
      // Only "seen" waits for the other person's next read.
      logger.warn("Read positions not read", { user: me, error: describeError(err) });
    }
  }

  /** Writes the positions still waiting for their interval: for shutdown. */
  flush(): Promise<void> {
    return this.#coalescer.flush();
  }

  /** Stores a position and, when it moved, tells every gateway. */
  async #write(mark: ReadMark): Promise<void> {
    const { store, bus, hub, logger } = this.#options;
    // A read of a message just shown: the store may not have it yet, and would take the mark for
    // one past its newest. Without the processors, the mark is stored as far as the store goes.
    await bus.stored(mark.room).catch((err) =>
      logger.warn("Read position stored before the processors caught up", {
        room: mark.room,
        error: describeError(err),
      })
    );
    const seq = await store.markRead(mark.room, mark.userId, mark.seq);
    if (seq === undefined) return;
    const read = { ...mark, seq };
    try {
      await bus.deliver({ type: "read", read });
    } catch (err) {
      // Stored: other gateways' streams see it on their next room listing.
      logger.warn("Read event not published", { room: read.room, error: describeError(err) });
      hub.read(read);
    }
  }
}
