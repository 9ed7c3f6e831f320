/**
 * Room topics in the chat service: the owner (creator) or a moderator of a group room says what
 * it is about, and everyone sees it in the room's listing (`Room.topic`) and finds the room by it
 * in the directory. A change is kept as a room event ("topic", with the new topic) and told to
 * the members' streams that asked for events (`room_events.ts`).
 */

import type { Config } from "../core/config.ts";
import { topicProblem } from "../protocol/directory.ts";
import type { Store } from "../store/store.ts";
import type { Callers } from "./chat_callers.ts";
import { notFound, refuse, sendingRate, takeOrRefuse } from "./chat_checks.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller, RoomView } from "./chat_types.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import type { RoomEventLog } from "./room_events.ts";
import type { RoomRoles } from "./room_roles.ts";

export interface TopicsOptions {
  store: Pick<Store, "setTopic">;
  limiter: RateLimiter;
  callers: Callers;
  rooms: Rooms;
  roles: Pick<RoomRoles, "managedRoom" | "refuseMuted">;
  events: RoomEventLog;
  config: Pick<Config, "rateLimitPerSecond" | "rateLimitBurst">;
}

export class Topics {
  readonly #options: TopicsOptions;

  constructor(options: TopicsOptions) {
    this.#options = options;
  }

  /** Sets (or, with "", takes away) the topic of `room`; only its owner and moderators may. */
  async setTopic(caller: Caller, room: string, topic: string): Promise<RoomView> {
    const { store, callers, rooms, roles, events, limiter, config } = this.#options;
    const action = "Cannot set topic";
    const me = await callers.identify(caller, undefined, action);
    const text = topic.trim();
    refuse(action, topicProblem(text));
    const { room: record } = await roles.managedRoom(action, room, me.userId, "moderator");
    // A topic is told to every member: a muted moderator may not say it this way either.
    await roles.refuseMuted(action, record.id, me.userId);
    // A topic is shown to everyone who lists rooms: changes count against the sending rate.
    takeOrRefuse(action, limiter, me.userId, sendingRate(config));
    const stored = await store.setTopic(record.id, text);
    if (!stored) throw notFound(`${action}: room "${record.id}" does not exist`);
    if ((record.topic ?? "") !== text) {
      const displayName = callers.nameOf(caller, me);
      await events.record({
        room: record.id,
        userId: me.userId,
        displayName,
        joined: true,
        action: "topic",
        actorId: me.userId,
        actorName: displayName,
        detail: text,
      });
    }
    return rooms.view(me.userId, stored);
  }
}
