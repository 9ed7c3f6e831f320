/**
 * Reactions in the chat service: a member of a room toggles an emoji on one of its messages. The
 * reaction is stored first, then told to every gateway, whose event streams show it; history and
 * replays carry each message's reactions.
 */

import type { Config } from "../core/config.ts";
import { ChatError, describeError, invalidArgument, unavailable } from "../core/errors.ts";
import type { ReactionEvent } from "../core/types.ts";
import {
  MAX_REACTIONS_PER_MESSAGE,
  MAX_REACTIONS_TOTAL,
  reactionProblem,
} from "../protocol/reactions.ts";
import type { Bus } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import type { Callers } from "./chat_callers.ts";
import { targetMessage } from "./chat_targets.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller } from "./chat_types.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import type { RoomRoles } from "./room_roles.ts";

export interface ReactRequest {
  readonly room: string;
  readonly seq: number;
  readonly emoji: string;
}

export interface ReactionsOptions {
  bus: Pick<Bus, "deliver" | "ready" | "stored">;
  store: Pick<Store, "message" | "toggleReaction">;
  limiter: RateLimiter;
  callers: Callers;
  rooms: Rooms;
  roles: RoomRoles;
  config: Pick<Config, "rateLimitPerSecond" | "rateLimitBurst">;
}

export class Reactions {
  readonly #options: ReactionsOptions;

  constructor(options: ReactionsOptions) {
    this.#options = options;
  }

  /** Toggles the caller's `emoji` on the message; resolves with whether it is now there. */
  async toggle(caller: Caller, request: ReactRequest): Promise<boolean> {
    const { bus, store, callers } = this.#options;
    const action = "Cannot react";
    const me = await callers.identify(caller, undefined, action);
    const problem = reactionProblem(request.emoji);
    if (problem) throw invalidArgument(`${action}: ${problem}`);
    const message = await targetMessage(this.#options, action, me.userId, request);
    const room = message.room;
    if (message.deleted) {
      throw new ChatError("not_found", `${action}: ${room} has no message ${request.seq}`);
    }
    await this.#options.roles.refuseMuted(action, room, me.userId);
    const reactions = message.reactions ?? [];
    const same = reactions.find((r) => r.emoji === request.emoji);
    const adding = !same?.users.includes(me.userId);
    const total = reactions.reduce((n, r) => n + r.users.length, 0);
    if (adding && total >= MAX_REACTIONS_TOTAL) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: message ${request.seq} of ${room} has ${total} reactions, the limit is ${MAX_REACTIONS_TOTAL}`,
      );
    }
    if (reactions.length >= MAX_REACTIONS_PER_MESSAGE && !same) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: message ${request.seq} of ${room} has ${reactions.length} different reactions, the limit is ${MAX_REACTIONS_PER_MESSAGE}; add to one of them`,
      );
    }
    if (!bus.ready()) throw unavailable(`${action}: Kafka is unavailable; try again shortly`);
    const added = await store.toggleReaction(room, request.seq, me.userId, request.emoji);
    if (added === undefined) {
      throw new ChatError("not_found", `${action}: ${room} has no message ${request.seq}`);
    }
    const event: ReactionEvent = {
      room,
      seq: request.seq,
      emoji: request.emoji,
      userId: me.userId,
      displayName: callers.nameOf(caller, me),
      added,
    };
    try {
      await bus.deliver({ type: "reaction", event });
    } catch (err) {
      throw unavailable(
        `${action}: it is saved, but not every reader was told (${
          describeError(err)
        }); look again before toggling it back`,
        err,
      );
    }
    return added;
  }
}
