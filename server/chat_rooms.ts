/**
 * Rooms in the chat service: group rooms (create, join, leave, list), direct rooms between two
 * users (open, and the block that leaving one puts on it), who of a room is online, and the
 * membership every call that names a room goes through (`memberRoom`).
 */

import type { Config } from "../core/config.ts";
import { ChatError, describeError, invalidArgument } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { Presence, RoomEvent } from "../core/types.ts";
import { DEFAULT_ROOM, DIRECT_PREFIX, directRoomId, directRoomMembers } from "../protocol/names.ts";
import {
  DIRECTORY_DEFAULT_LIMIT,
  DIRECTORY_MAX_LIMIT,
  roomSearchProblem,
} from "../protocol/directory.ts";
import { type Room, searchKey, type Store } from "../store/store.ts";
import type { Bus } from "../bus/bus.ts";
import type { Auth } from "./auth.ts";
import type { Callers } from "./chat_callers.ts";
import {
  checkRoomName,
  checkUserId,
  isDefaultRoom,
  notFound,
  permissionDenied,
  refuse,
  seconds,
} from "./chat_checks.ts";
import type { Caller, RoomListing, RoomView } from "./chat_types.ts";
import { admit, decline } from "./chat_invitations.ts";
import { RateLimiter } from "./rate_limiter.ts";
import type { RoomEventLog } from "./room_events.ts";
import type { RoomRoles } from "./room_roles.ts";

export interface RoomsOptions {
  store: Store;
  auth: Pick<Auth, "mode">;
  callers: Callers;
  logger: Logger;
  config: Pick<
    Config,
    | "maxRoomNameLength"
    | "maxRoomsPerUser"
    | "maxDirectRoomsPerUser"
    | "directRoomsPerMinute"
    | "directRoomsBurst"
  >;
  /** The current presence view (from the processor's registry). */
  online: () => Presence[];
  /** Where joins and leaves are kept and told. */
  events: RoomEventLog;
  roles: RoomRoles;
  /** Whether the store holds what this gateway's streams were shown (bus/bus.ts `stored`). */
  bus: Pick<Bus, "stored">;
}

/** What a view of a room takes from its record; the default room has none. */
type RoomRecord = Pick<Room, "direct"> & Partial<Pick<Room, "createdBy" | "topic" | "inviteOnly">>;

export class Rooms {
  readonly #store: Store;
  readonly #auth: Pick<Auth, "mode">;
  readonly #callers: Callers;
  readonly #logger: Logger;
  readonly #config: RoomsOptions["config"];
  readonly #online: () => Presence[];
  readonly #events: RoomEventLog;
  readonly #roles: RoomRoles;
  readonly #bus: Pick<Bus, "stored">;
  /** New direct rooms per initiator; none when `directRoomsPerMinute` is 0. */
  readonly #directLimiter: RateLimiter | undefined;

  constructor(options: RoomsOptions) {
    this.#store = options.store;
    this.#auth = options.auth;
    this.#callers = options.callers;
    this.#logger = options.logger;
    this.#config = options.config;
    this.#online = options.online;
    this.#events = options.events;
    this.#roles = options.roles;
    this.#bus = options.bus;
    this.#directLimiter = options.config.directRoomsPerMinute > 0
      ? new RateLimiter({
        ratePerSecond: options.config.directRoomsPerMinute / 60,
        burst: Math.max(1, options.config.directRoomsBurst),
      })
      : undefined;
  }

  /** Checks a room name a request carries; returns it trimmed. */
  checkName(action: string, room: string): string {
    return checkRoomName(action, room, this.#config.maxRoomNameLength);
  }

  /**
   * The stored id of the room `name` (any case) that `userId` is a member of, or the error that
   * says why not. The default room is everybody's.
   */
  async memberRoom(action: string, name: string, userId: string): Promise<string> {
    const store = this.#store;
    const id = this.checkName(action, name);
    if (isDefaultRoom(id)) return DEFAULT_ROOM;
    // Memberships name rooms by their stored spelling: a member who typed it is done here.
    if (await store.isMember(id, userId)) return id;
    const room = await store.getRoom(id);
    if (!room) throw notFound(`${action}: room "${id}" does not exist`);
    if (room.id !== id && await store.isMember(room.id, userId)) return room.id;
    throw permissionDenied(
      `${action}: ${userId} is not a member of room "${room.id}"; join it first`,
    );
  }

  /**
   * A direct room takes messages only while both are in it: who left it blocked the other
   * (LeaveRoom on a direct room), until they open it again themselves. A user the other blocked
   * (Block, chat_blocks.ts) is told the same, so that a block shows no more than leaving does.
   */
  async requireBothInDirect(action: string, room: string, me: string): Promise<void> {
    const pair = directRoomMembers(room);
    if (!pair) return;
    const other = pair[0] === me ? pair[1] : pair[0];
    if (!(await this.#store.isMember(room, other)) || await this.#store.isBlocked(other, me)) {
      throw permissionDenied(
        `${action}: ${other} left the direct conversation with ${me}; only ${other} can open it again`,
      );
    }
  }

  async createRoom(caller: Caller, name: string): Promise<RoomView> {
    const action = "Cannot create room";
    const me = await this.#callers.identify(caller, undefined, action);
    const room = this.checkName(action, name);
    if (isDefaultRoom(room) || room.startsWith(DIRECT_PREFIX)) {
      throw new ChatError("already_exists", `${action}: "${room}" is a reserved name`);
    }
    await this.#checkRoomCount(action, me.userId);
    const { room: stored, created } = await this.#store.createRoom({
      id: room,
      direct: false,
      createdBy: me.userId,
      createdAt: new Date().toISOString(),
    });
    if (!created) {
      // Room names compare without case: "Book-Club" is taken by "book-club".
      throw new ChatError(
        "already_exists",
        `${action}: "${stored.id}" already exists; join it instead`,
      );
    }
    await this.#store.addMember(room, me.userId);
    await this.#announce({
      room,
      userId: me.userId,
      displayName: this.#callers.nameOf(caller, me),
      joined: true,
      created: true,
    });
    this.#logger.info("Room created", { room, by: me.userId });
    return this.#viewFor(me.userId, room, stored);
  }

  async joinRoom(caller: Caller, name: string): Promise<RoomView> {
    const action = "Cannot join room";
    const store = this.#store;
    const me = await this.#callers.identify(caller, undefined, action);
    const typed = this.checkName(action, name);
    if (isDefaultRoom(typed)) return this.#viewFor(me.userId, DEFAULT_ROOM);
    const found = await store.getRoom(typed);
    if (!found) throw notFound(`${action}: room "${typed}" does not exist; create it first`);
    const room = found.id;
    const member = await store.isMember(room, me.userId);
    if (found.direct && !member) {
      throw permissionDenied(
        directRoomMembers(room)?.includes(me.userId)
          ? `${action}: you left "${room}"; open it again with OpenDirect`
          : `${action}: "${room}" is a direct conversation of two other people`,
      );
    }
    if (!member) {
      await this.#checkRoomCount(action, me.userId);
      await admit(store, this.#roles, action, found, me.userId);
      await store.addMember(room, me.userId);
      // What was said before one joined is there to scroll, not unread.
      await store.markRead(room, me.userId, await store.lastSeq(room));
      await this.#announce({
        room,
        userId: me.userId,
        displayName: this.#callers.nameOf(caller, me),
        joined: true,
      });
    }
    return this.#viewFor(me.userId, room, found);
  }

  /**
   * Leaving a direct room also blocks it: the other can send nothing more to it, nor add the
   * leaver back with OpenDirect, until the leaver opens it again. Leaving a room one is only
   * invited to declines the invitation.
   */
  async leaveRoom(caller: Caller, name: string): Promise<void> {
    const action = "Cannot leave room";
    const me = await this.#callers.identify(caller, undefined, action);
    const typed = this.checkName(action, name);
    if (isDefaultRoom(typed)) {
      throw new ChatError("failed_precondition", `${action}: everybody is in "${DEFAULT_ROOM}"`);
    }
    let room = typed;
    if (!(await this.#store.removeMember(room, me.userId))) {
      if (await decline(this.#store, typed, me.userId)) return;
      room = await this.memberRoom(action, typed, me.userId);
      await this.#store.removeMember(room, me.userId);
    }
    // A moderator who leaves is one no more, also when they join again.
    await this.#store.setRole(room, me.userId, "member");
    await this.#announce({
      room,
      userId: me.userId,
      displayName: this.#callers.nameOf(caller, me),
      joined: false,
    });
  }

  /**
   * The caller's rooms, or the directory: the default room (when the query matches it) and the
   * stored rooms that are not direct, at most `limit` in all.
   */
  async listRooms(caller: Caller, listing: RoomListing): Promise<RoomView[]> {
    const action = "Cannot list rooms";
    const me = await this.#callers.identify(caller, undefined, action);
    const query = listing.query.trim();
    refuse(action, roomSearchProblem(query));
    if (listing.limit > DIRECTORY_MAX_LIMIT) {
      throw invalidArgument(
        `${action}: limit is ${listing.limit}, the most is ${DIRECTORY_MAX_LIMIT}`,
      );
    }
    const limit = listing.limit || DIRECTORY_DEFAULT_LIMIT;
    const mine = await this.#store.roomsOf(me.userId);
    const rooms = listing.all ? await this.#store.listRooms(limit, query, me.userId) : mine;
    const listed = [
      ...(!listing.all || DEFAULT_ROOM.includes(searchKey(query))
        ? [{ id: DEFAULT_ROOM, direct: false }]
        : []),
      ...rooms.filter((r) => r.id !== DEFAULT_ROOM),
    ];
    return this.#views(
      me.userId,
      listing.all ? listed.slice(0, limit) : listed,
      new Set([DEFAULT_ROOM, ...mine.map((r) => r.id)]),
    );
  }

  /** `room` (a stored record) as `userId` sees it. */
  view(userId: string, room: Room): Promise<RoomView> {
    return this.#viewFor(userId, room.id, room);
  }

  /** `rooms` (stored records) as `userId`, who is not in them, sees them: without read state. */
  viewsFromOutside(userId: string, rooms: readonly Room[]): Promise<RoomView[]> {
    return this.#views(userId, rooms, new Set());
  }

  /**
   * Opens (or reopens) the direct room with `other`. A new room counts against the opener's
   * `maxDirectRoomsPerUser` and `directRoomsPerMinute`, never against the other's allowance.
   * When the other left it (which blocks), only the other can open it again.
   */
  async openDirect(caller: Caller, other: string): Promise<RoomView> {
    const action = "Cannot open direct messages";
    const store = this.#store;
    const me = await this.#callers.identify(caller, undefined, action);
    const named = checkUserId(action, other);
    // Usernames compare without case: the room uses the account's own spelling.
    const account = await store.getAccount(named);
    if (this.#auth.mode === "on" && !account) {
      throw notFound(`${action}: there is no user "${named}"`);
    }
    const them = account?.id ?? named;
    if (them === me.userId) throw invalidArgument(`${action}: that is yourself`);
    if (them.includes(":") || me.userId.includes(":")) {
      throw invalidArgument(`${action}: a user id may not hold ":"`);
    }
    if (await store.isBlocked(them, me.userId)) {
      // Told as if they had left it: a block shows no more than leaving does.
      throw permissionDenied(
        `${action}: ${them} left the direct conversation with ${me.userId}; only ${them} can open it again`,
      );
    }
    const room = directRoomId(me.userId, them);
    if (!(await store.getRoom(room))) {
      await this.#checkDirectAllowance(action, me.userId);
      // The members first, then the room: whoever finds the room finds both in it, so a
      // missing member always means one who left (and blocked), never one not added yet.
      const joined: RoomEvent[] = [];
      const members = [
        [me.userId, this.#callers.nameOf(caller, me)],
        [them, account?.displayName ?? them],
      ];
      for (const [userId, displayName] of members as [string, string][]) {
        if (await store.addMember(room, userId)) {
          joined.push({ room, userId, displayName, joined: true });
        }
      }
      const { created } = await store.createRoom({
        id: room,
        direct: true,
        createdBy: me.userId,
        createdAt: new Date().toISOString(),
      });
      for (const event of joined) await this.#announce(event);
      if (created) this.#logger.info("Direct room opened", { room, by: me.userId });
      return this.#viewFor(me.userId, room, { direct: true });
    }
    // It exists. Opening it lifts my own block (I left it), whatever the other did...
    const back = await store.addMember(room, me.userId);
    if (back) {
      await this.#announce({
        room,
        userId: me.userId,
        displayName: this.#callers.nameOf(caller, me),
        joined: true,
      });
    }
    // ...but only the other can lift theirs: if both left, each opens it again for their side.
    if (!(await store.isMember(room, them))) {
      throw permissionDenied(
        `${action}: ${them} left the direct conversation with ${me.userId}; only ${them} can open it again${
          back ? ` (you are back in it for when ${them} does)` : ""
        }`,
      );
    }
    return this.#viewFor(me.userId, room, { direct: true });
  }

  /** Who is online: everybody for the default room, else the members of `room` (the caller's). */
  async online(caller: Caller, room: string): Promise<Presence[]> {
    const action = "Cannot list who is online";
    const me = await this.#callers.identify(caller, undefined, action).catch((err) => {
      // Classic clients ask without naming anybody: in classic mode that is allowed.
      if (
        this.#auth.mode === "off" && err instanceof ChatError && err.code === "unauthenticated"
      ) {
        return undefined;
      }
      throw err;
    });
    const everybody = this.#online();
    const id = room.trim();
    if (id === "" || isDefaultRoom(id)) return everybody;
    if (!me) throw invalidArgument(`${action}: name yourself to see who is in room "${id}"`);
    const members = new Set(
      await this.#store.members(await this.memberRoom(action, id, me.userId)),
    );
    return everybody.filter((p) => members.has(p.userId));
  }

  /** One room as `userId` (a member) sees it; its owner (creator) only for a group room. */
  async #viewFor(
    userId: string,
    room: string,
    record: RoomRecord = { direct: false },
  ): Promise<RoomView> {
    return (await this.#views(userId, [{ id: room, ...record }]))[0]!;
  }

  /**
   * `rooms` as `userId` sees them: with their read state in the rooms of `memberOf` (all of
   * them when omitted), read in one query for all, and their member counts in another.
   */
  async #views(
    userId: string,
    rooms: readonly ({ id: string } & RoomRecord)[],
    memberOf?: ReadonlySet<string>,
  ): Promise<RoomView[]> {
    const store = this.#store;
    const read = memberOf ? rooms.filter((r) => memberOf.has(r.id)) : rooms;
    // Unread counts and newest positions as the caller's streams were shown them: a listing right
    // after a message went by must count it. Processors away: after the wait, what the store has
    // (a client resumes from a position, and a resume waits for the store itself).
    await Promise.all(
      [...new Set(rooms.map((r) => r.id))].map((room) =>
        this.#bus.stored(room).catch((err) =>
          this.#logger.debug("Listing rooms from a store that lags", {
            room,
            error: describeError(err),
          })
        )
      ),
    );
    const states = new Map(
      (await store.readStates(userId, read.map((r) => r.id))).map((s) => [s.room, s]),
    );
    const counted = rooms.filter((r) => r.id !== DEFAULT_ROOM).map((r) => r.id);
    const counts = await store.memberCounts(counted);
    const memberCounts = new Map(counted.map((id, i) => [id, counts[i] ?? 0]));
    return Promise.all(rooms.map(async ({ id, direct, createdBy, topic, inviteOnly }) => {
      // Roles and mutes only where the caller is a member: a directory listing reads none.
      const grouped = id !== DEFAULT_ROOM && !direct && (memberOf?.has(id) ?? true);
      const moderators = grouped ? await store.moderators(id) : [];
      const mutedUntil = grouped ? await this.#roles.mutedUntil(id, userId) : undefined;
      return {
        id,
        direct,
        members: id === DEFAULT_ROOM ? [] : await store.members(id),
        lastSeq: await store.lastSeq(id),
        owner: direct ? "" : createdBy ?? "",
        readSeq: states.get(id)?.readSeq ?? 0,
        unread: states.get(id)?.unread ?? 0,
        mentions: states.get(id)?.mentions ?? 0,
        topic: direct ? "" : topic ?? "",
        memberCount: memberCounts.get(id) ?? 0,
        role: grouped ? this.#roles.roleIn({ createdBy: createdBy ?? "" }, moderators, userId) : "",
        moderators,
        ...(mutedUntil ? { mutedUntil } : {}),
        inviteOnly: inviteOnly ?? false,
        invited: false,
      };
    }));
  }

  /**
   * Refuses one more group room past `maxRoomsPerUser`. Direct rooms do not count: others can
   * open those with anybody, and they have their own bound, for the one who opens them.
   */
  async #checkRoomCount(action: string, userId: string): Promise<void> {
    const limit = this.#config.maxRoomsPerUser;
    const count = (await this.#store.roomsOf(userId)).filter((r) => !r.direct).length;
    if (count >= limit) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: ${userId} is in ${count} rooms, the limit is ${limit}; leave one first`,
      );
    }
  }

  /** Refuses a new direct room past `maxDirectRoomsPerUser` opened by `userId`, or too fast. */
  async #checkDirectAllowance(action: string, userId: string): Promise<void> {
    const config = this.#config;
    const mine = (await this.#store.roomsOf(userId)).filter((r) =>
      r.direct && r.createdBy === userId
    );
    if (mine.length >= config.maxDirectRoomsPerUser) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: ${userId} opened ${mine.length} direct conversations and is still in them, the limit is ${config.maxDirectRoomsPerUser}; leave one first`,
      );
    }
    const allowed = this.#directLimiter?.take(userId) ?? { ok: true };
    if (!allowed.ok) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: the limit is ${config.directRoomsPerMinute} new direct conversations per minute (${
          Math.max(1, config.directRoomsBurst)
        } at once); retry in ${seconds(allowed.retryAfterMs)} s`,
      );
    }
  }

  /** Keeps the event that a member joined or left, and tells every gateway (this one included). */
  async #announce(event: RoomEvent): Promise<void> {
    await this.#events.record(event);
  }
}
