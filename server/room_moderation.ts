/**
 * Moderation in the chat service: a group room's owner makes members moderators (and members
 * again); owners and moderators remove and mute members. A moderator acts on members only, never
 * on the owner or another moderator; nobody acts on themself (LeaveRoom is for leaving). Each
 * action is stored first, then kept as a room event that every member's stream that asked for
 * events is told of (`room_events.ts`); a removed member's streams stop getting the room at once,
 * on every gateway, and get the "removed" event. A removed member may join again (JoinRoom); a
 * mute outlives leaving and joining again.
 */

import type { Config } from "../core/config.ts";
import { ChatError, invalidArgument, unavailable } from "../core/errors.ts";
import { nameKey } from "../protocol/names.ts";
import type { Bus } from "../bus/bus.ts";
import type { MemberRole, Room, Store } from "../store/store.ts";
import type { Callers } from "./chat_callers.ts";
import { checkUserId, permissionDenied, sendingRate, takeOrRefuse } from "./chat_checks.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller, RoomView } from "./chat_types.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import type { RoomEventLog } from "./room_events.ts";
import type { RoomRole, RoomRoles } from "./room_roles.ts";

/** The longest mute: a week. */
export const MUTE_MAX_SECONDS = 604_800;

export interface RoleRequest {
  readonly room: string;
  readonly userId: string;
  readonly role: string;
}

export interface MemberRequest {
  readonly room: string;
  readonly userId: string;
}

export interface MuteRequest extends MemberRequest {
  /** 1..MUTE_MAX_SECONDS; 0 lifts the mute. */
  readonly seconds: number;
}

export interface ModerationOptions {
  bus: Pick<Bus, "ready">;
  store: Pick<
    Store,
    "members" | "getAccount" | "setRole" | "removeMember" | "setMute"
  >;
  limiter: RateLimiter;
  callers: Callers;
  rooms: Rooms;
  roles: RoomRoles;
  events: RoomEventLog;
  config: Pick<Config, "rateLimitPerSecond" | "rateLimitBurst">;
  /** The server's clock, in milliseconds since the epoch. */
  now: () => number;
}

/** Who acts on whom in which room, once every check passed. */
interface Target {
  readonly me: { userId: string; displayName: string };
  readonly room: Room;
  readonly userId: string;
  readonly displayName: string;
  readonly role: RoomRole;
}

export class Moderation {
  readonly #o: ModerationOptions;

  constructor(options: ModerationOptions) {
    this.#o = options;
  }

  /** The owner makes `userId` a moderator, or a member again. */
  async setRole(caller: Caller, request: RoleRequest): Promise<RoomView> {
    const action = "Cannot set role";
    if (request.role !== "moderator" && request.role !== "member") {
      throw invalidArgument(
        `${action}: role is "${
          request.role.slice(0, 40)
        }"; it must be "moderator" or "member" (the owner is the room's creator)`,
      );
    }
    const role: MemberRole = request.role;
    const target = await this.#target(caller, action, request, "owner");
    if (target.role === role) return this.#o.rooms.view(target.me.userId, target.room);
    await this.#o.store.setRole(target.room.id, target.userId, role);
    await this.#o.events.record({
      ...this.#about(target),
      joined: true,
      action: "role",
      detail: role,
    });
    return this.#o.rooms.view(target.me.userId, target.room);
  }

  /** An owner or moderator removes `userId` from the room. */
  async remove(caller: Caller, request: MemberRequest): Promise<void> {
    const action = "Cannot remove member";
    const target = await this.#target(caller, action, request, "moderator");
    const { store, events } = this.#o;
    // A moderator who is removed is one no more, also when they join again; demoted first, so
    // that no join between the two steps gets into an invite-only room as a moderator.
    await store.setRole(target.room.id, target.userId, "member");
    if (!(await store.removeMember(target.room.id, target.userId))) return; // removed meanwhile
    await events.record({ ...this.#about(target), joined: false, action: "removed" });
  }

  /** An owner or moderator mutes `userId` for `seconds`, or (0) lifts the mute. */
  async mute(caller: Caller, request: MuteRequest): Promise<void> {
    const action = request.seconds === 0 ? "Cannot unmute member" : "Cannot mute member";
    if (
      !Number.isInteger(request.seconds) || request.seconds < 0 ||
      request.seconds > MUTE_MAX_SECONDS
    ) {
      throw invalidArgument(
        `${action}: seconds is ${request.seconds}; a mute lasts 1 to ${MUTE_MAX_SECONDS} seconds (a week), 0 lifts it`,
      );
    }
    const target = await this.#target(caller, action, request, "moderator");
    const until = request.seconds === 0
      ? undefined
      : new Date(this.#o.now() + request.seconds * 1000).toISOString();
    await this.#o.store.setMute(target.room.id, target.userId, until);
    await this.#o.events.record({
      ...this.#about(target),
      joined: true,
      ...(until ? { action: "muted", until } : { action: "unmuted" }),
    });
  }

  /**
   * Checks a moderation request: the caller (a member of the group room `request.room`, with at
   * least the role `needed`), and the member it names, whom the caller outranks. Counts against
   * the caller's sending rate, as every action is told to every member.
   */
  async #target(
    caller: Caller,
    action: string,
    request: MemberRequest,
    needed: "owner" | "moderator",
  ): Promise<Target> {
    const { callers, roles, store, limiter, config, bus } = this.#o;
    const me = await callers.identify(caller, undefined, action);
    const named = checkUserId(action, request.userId);
    const { room, moderators, role: mine } = await roles.managedRoom(
      action,
      request.room,
      me.userId,
      needed,
    );
    // Members are kept by their account's spelling: a name typed in another case finds them.
    const userId = (await store.members(room.id)).find((m) => nameKey(m) === nameKey(named));
    if (userId === undefined) {
      throw new ChatError(
        "failed_precondition",
        `${action}: ${named} is not a member of room "${room.id}"`,
      );
    }
    if (userId === me.userId) {
      throw new ChatError(
        "failed_precondition",
        `${action}: that is yourself${
          action === "Cannot remove member" ? "; leave the room with LeaveRoom instead" : ""
        }`,
      );
    }
    const theirs = roles.roleIn(room, moderators, userId);
    if (theirs === "owner" || (theirs === "moderator" && mine !== "owner")) {
      throw permissionDenied(
        `${action}: ${userId} is the ${theirs} of room "${room.id}"; ${
          theirs === "owner" ? "nobody acts on the owner" : "only the owner acts on a moderator"
        }`,
      );
    }
    if (!bus.ready()) throw unavailable(`${action}: Kafka is unavailable; try again shortly`);
    takeOrRefuse(action, limiter, me.userId, sendingRate(config));
    const account = await store.getAccount(userId);
    return {
      me: { userId: me.userId, displayName: callers.nameOf(caller, me) },
      room,
      userId,
      displayName: account?.id === userId ? account.displayName : userId,
      role: theirs,
    };
  }

  /** The fields of an event about `target`, done by the caller. */
  #about(target: Target) {
    return {
      room: target.room.id,
      userId: target.userId,
      displayName: target.displayName,
      actorId: target.me.userId,
      actorName: target.me.displayName,
    };
  }
}
