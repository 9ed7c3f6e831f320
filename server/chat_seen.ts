/**
 * "Seen by" in the chat service: on request, who read a message of a room the caller is in. Read
 * positions (`chat_reads.ts`) already say it; this answers from them in one store query, so no
 * event per reader and message ever crosses the hot path. In a group room only members who were
 * in it when the message was sent count (a newcomer starts reading at the newest message, which
 * says nothing of older ones); the sender never counts. Reading far more than a send, it is kept
 * under a per-user rate of its own, with search's settings.
 */

import type { Config } from "../core/config.ts";
import { ChatError, invalidArgument } from "../core/errors.ts";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import type { RoomLogs } from "../bus/bus.ts";
import { storedMessage } from "./chat_targets.ts";
import type { SeenBy, Store } from "../store/store.ts";
import type { Callers } from "./chat_callers.ts";
import { LookupRate } from "./chat_checks.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller } from "./chat_types.ts";

/** The most readers named in an answer; `count` still counts them all. */
export const SEEN_BY_NAMES_MAX = 50;

export interface SeenOptions {
  store: Pick<Store, "message" | "seenBy">;
  bus: Pick<RoomLogs, "stored">;
  callers: Callers;
  rooms: Rooms;
  config: Pick<Config, "searchRatePerSecond" | "searchBurst">;
}

export class Seen {
  readonly #options: SeenOptions;
  readonly #rate: LookupRate;

  constructor(options: SeenOptions) {
    this.#options = options;
    this.#rate = new LookupRate(options.config, "lookups");
  }

  /** Who read message `seq` of `name` (empty: the default room); the caller must be a member. */
  async seenBy(caller: Caller, name: string, seq: number): Promise<SeenBy> {
    const { store, callers, rooms } = this.#options;
    const action = "Cannot tell who saw the message";
    const me = await callers.identify(caller, undefined, action);
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw invalidArgument(`${action}: seq is ${seq}; messages are numbered from 1`);
    }
    const room = name.trim() ? await rooms.memberRoom(action, name, me.userId) : DEFAULT_ROOM;
    this.#rate.take(action, me.userId);
    if (!await storedMessage(this.#options, room, seq)) {
      throw new ChatError("not_found", `${action}: ${room} has no message ${seq}`);
    }
    return await store.seenBy(room, seq, SEEN_BY_NAMES_MAX, room !== DEFAULT_ROOM);
  }
}
