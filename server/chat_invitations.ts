/**
 * Invite-only rooms and invitations in the chat service. The managers of a group room (its owner
 * and moderators) make it invite-only or open again (`setAccess`) and invites people (`invite`); an invite-only
 * room takes new members only with a pending invitation, which joining uses up (`admit`) and
 * leaving declines (`decline`), and the directory lists it only to its members (the store's
 * `listRooms`). Each action is a room event ("invite-only", "open", "invited") that the room's
 * streams and the invitee's get live, and that is kept with the room's other events for its
 * history, through {@linkcode Invitations} `#tell` alone.
 */

import type { Config } from "../core/config.ts";
import { ChatError, describeError, invalidArgument, unavailable } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { RoomEvent } from "../core/types.ts";
import type { Bus } from "../bus/bus.ts";
import {
  DIRECTORY_DEFAULT_LIMIT,
  DIRECTORY_MAX_LIMIT,
  roomSearchProblem,
} from "../protocol/directory.ts";
import type { Room, Store } from "../store/store.ts";
import type { Auth } from "./auth.ts";
import type { Callers } from "./chat_callers.ts";
import {
  checkUserId,
  notFound,
  permissionDenied,
  refuse,
  sendingRate,
  takeOrRefuse,
} from "./chat_checks.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller, RoomListing, RoomView } from "./chat_types.ts";
import type { Hub } from "./hub.ts";
import type { RoomRoles } from "./room_roles.ts";
import type { RateLimiter } from "./rate_limiter.ts";

/**
 * The most pending invitations one room may have: each is a row and a line in someone's list,
 * so a manager cannot fill the store with them.
 */
export const MAX_PENDING_INVITATIONS = 1000;

/**
 * Lets `userId` into `room` (a stored group room they are not in): uses up their invitation if
 * they have one, and refuses an invite-only room without one, unless they may manage it.
 */
export async function admit(
  store: Pick<Store, "uninvite">,
  roles: Pick<RoomRoles, "mayModerateRoom">,
  action: string,
  room: Room,
  userId: string,
): Promise<void> {
  const invited = await store.uninvite(room.id, userId);
  if (room.inviteOnly && !invited && !(await roles.mayModerateRoom(room, userId))) {
    throw permissionDenied(
      `${action} ${room.id}: it is invite-only and you have no invitation; ask its owner (${room.createdBy}) or a moderator to invite you`,
    );
  }
}

/**
 * Declines `userId`'s invitation to the room `name` (any case) when they have one and are not in
 * it: what LeaveRoom does for an invitee. False when there was none to decline.
 */
export async function decline(
  store: Pick<Store, "getRoom" | "isMember" | "uninvite">,
  name: string,
  userId: string,
): Promise<boolean> {
  const room = await store.getRoom(name);
  if (!room || await store.isMember(room.id, userId)) return false;
  return await store.uninvite(room.id, userId);
}

export interface InviteRequest {
  readonly room: string;
  readonly userId: string;
}

export interface InvitationsOptions {
  bus: Pick<Bus, "deliver" | "ready">;
  hub: Pick<Hub, "roomAction">;
  store: Pick<
    Store,
    | "getAccount"
    | "isMember"
    | "setInviteOnly"
    | "invite"
    | "isInvited"
    | "invitationCount"
    | "invitationsOf"
    | "isBlocked"
    | "addRoomEvent"
  >;
  auth: Pick<Auth, "mode">;
  /** Who may manage a room: its owner and moderators. */
  roles: Pick<RoomRoles, "managedRoom">;
  limiter: RateLimiter;
  callers: Callers;
  rooms: Rooms;
  logger: Logger;
  config: Pick<Config, "rateLimitPerSecond" | "rateLimitBurst">;
  /** The server's clock, in milliseconds since the epoch. */
  now: () => number;
}

export class Invitations {
  readonly #options: InvitationsOptions;

  constructor(options: InvitationsOptions) {
    this.#options = options;
  }

  /** Makes `room` invite-only or open; only its manager may. Setting what it is tells nobody. */
  async setAccess(caller: Caller, name: string, inviteOnly: boolean): Promise<RoomView> {
    const { store, callers, rooms, limiter, config, now } = this.#options;
    const action = "Cannot set room access";
    const me = await callers.identify(caller, undefined, action);
    const { room } = await this.#options.roles.managedRoom(action, name, me.userId, "moderator");
    // Every member is told of a change: changes count against the sending rate.
    takeOrRefuse(action, limiter, me.userId, sendingRate(config));
    if ((room.inviteOnly ?? false) === inviteOnly) return rooms.view(me.userId, room);
    this.#requireBus(action);
    const stored = await store.setInviteOnly(room.id, inviteOnly);
    if (!stored) throw notFound(`${action}: room "${room.id}" does not exist`);
    const actorName = callers.nameOf(caller, me);
    await this.#tell({
      room: room.id,
      userId: me.userId,
      displayName: actorName,
      joined: false,
      action: inviteOnly ? "invite-only" : "open",
      actorId: me.userId,
      actorName,
      at: new Date(now()).toISOString(),
    });
    return rooms.view(me.userId, stored);
  }

  /**
   * Invites a user to `room`; only its manager may. Inviting someone invited already stores
   * nothing new but tells them again, so a retry after UNAVAILABLE is safe.
   */
  async invite(caller: Caller, request: InviteRequest): Promise<void> {
    const { store, auth, callers, limiter, config, now } = this.#options;
    const action = "Cannot invite";
    const me = await callers.identify(caller, undefined, action);
    const named = checkUserId(action, request.userId);
    const { room } = await this.#options.roles.managedRoom(
      action,
      request.room,
      me.userId,
      "moderator",
    );
    // Usernames compare without case: the invitation names the account's own spelling.
    const account = await store.getAccount(named);
    if (auth.mode === "on" && !account) throw notFound(`${action}: there is no user "${named}"`);
    const invitee = account?.id ?? named;
    if (await store.isMember(room.id, invitee)) {
      throw new ChatError(
        "already_exists",
        `${action}: ${invitee} is already a member of room "${room.id}"`,
      );
    }
    takeOrRefuse(action, limiter, me.userId, sendingRate(config));
    // Someone who blocked the inviter hears nothing of them, and is not told so: answered as done.
    if (await store.isBlocked(invitee, me.userId)) return;
    this.#requireBus(action);
    const at = new Date(now()).toISOString();
    if (!(await store.isInvited(room.id, invitee))) {
      const pending = await store.invitationCount(room.id);
      if (pending >= MAX_PENDING_INVITATIONS) {
        throw new ChatError(
          "resource_exhausted",
          `${action}: room "${room.id}" has ${pending} pending invitations, the limit is ${MAX_PENDING_INVITATIONS}; wait until some are used or declined`,
        );
      }
      await store.invite({ roomId: room.id, userId: invitee, invitedBy: me.userId, invitedAt: at });
    }
    await this.#tell({
      room: room.id,
      userId: invitee,
      displayName: account?.displayName ?? invitee,
      joined: false,
      action: "invited",
      actorId: me.userId,
      actorName: callers.nameOf(caller, me),
      at,
    });
  }

  /** The rooms the caller is invited to, newest invitation first, at most `listing.limit`. */
  async list(caller: Caller, listing: RoomListing): Promise<RoomView[]> {
    const { store, callers, rooms } = this.#options;
    const action = "Cannot list invitations";
    const me = await callers.identify(caller, undefined, action);
    if (listing.all) {
      throw invalidArgument(`${action}: all and invitations are two listings; ask for one`);
    }
    refuse(action, roomSearchProblem(listing.query.trim()));
    if (listing.limit > DIRECTORY_MAX_LIMIT) {
      throw invalidArgument(
        `${action}: limit is ${listing.limit}, the most is ${DIRECTORY_MAX_LIMIT}`,
      );
    }
    const invited = await store.invitationsOf(me.userId, listing.limit || DIRECTORY_DEFAULT_LIMIT);
    const views = await rooms.viewsFromOutside(me.userId, invited);
    return views.map((view) => ({ ...view, invited: true }));
  }

  /** UNAVAILABLE before anything is stored, when the bus could not tell anybody. */
  #requireBus(action: string): void {
    if (!this.#options.bus.ready()) {
      throw unavailable(`${action}: Kafka is unavailable; try again shortly`);
    }
  }

  /**
   * Tells every gateway of an action on a room: the room's streams and those of whom it is about
   * get it as a room event. The one way these events go out.
   */
  async #tell(event: RoomEvent & { at: string }): Promise<void> {
    const { bus, hub, store, logger } = this.#options;
    // Kept with the room's other events, so that its history shows it after a reload too.
    try {
      await store.addRoomEvent(event);
    } catch (err) {
      logger.warn("Room event not stored", { room: event.room, error: describeError(err) });
    }
    try {
      await bus.deliver({ type: "room-action", event });
    } catch (err) {
      // It is stored; streams elsewhere see its result when they list their rooms.
      logger.warn("Room event not published", {
        room: event.room,
        action: event.action,
        error: describeError(err),
      });
      hub.roomAction(event);
    }
  }
}
