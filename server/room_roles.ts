/**
 * Who may do what in a group room, said once for every call that asks: its owner is its creator
 * (`Room.createdBy`), its moderators are kept by the store, everybody else in it is a member.
 * Owners and moderators may moderate: remove and mute members, set the topic and the access,
 * invite, delete any message; only the owner makes moderators. They manage a room from inside it:
 * an owner who left joins again first (an owner may always come back). A muted member's sends,
 * edits, reactions and typing in the room are refused until the mute ends. General and direct
 * rooms have no roles: nobody moderates them.
 *
 * Mutes are read through the store on every call they refuse, so every gateway sees a mute the
 * moment it is stored, and after a restart too.
 */

import type { Config } from "../core/config.ts";
import { ChatError } from "../core/errors.ts";
import { DEFAULT_ROOM, directRoomMembers } from "../protocol/names.ts";
import type { Room, Store } from "../store/store.ts";
import { checkRoomName, isDefaultRoom, notFound, permissionDenied } from "./chat_checks.ts";

/** A member's role in a group room. */
export type RoomRole = "owner" | "moderator" | "member";

/** A group room its manager acts on, as {@linkcode RoomRoles.managedRoom} read it. */
export interface ManagedRoom {
  readonly room: Room;
  readonly moderators: readonly string[];
  /** The manager's own role in it. */
  readonly role: "owner" | "moderator";
}

export interface RoomRolesOptions {
  store: Pick<Store, "getRoom" | "isMember" | "moderators" | "mutedUntil">;
  config: Pick<Config, "maxRoomNameLength">;
  /** The server's clock, in milliseconds since the epoch. */
  now: () => number;
}

export class RoomRoles {
  readonly #store: RoomRolesOptions["store"];
  readonly #config: RoomRolesOptions["config"];
  readonly #now: () => number;

  constructor(options: RoomRolesOptions) {
    this.#store = options.store;
    this.#config = options.config;
    this.#now = options.now;
  }

  /** `userId`'s role in the group room `room` (its record), given its `moderators`. */
  roleIn(room: Pick<Room, "createdBy">, moderators: readonly string[], userId: string): RoomRole {
    if (room.createdBy === userId) return "owner";
    return moderators.includes(userId) ? "moderator" : "member";
  }

  /** `userId`'s role in the room stored as `roomId`; undefined for general and direct rooms. */
  async roleOf(roomId: string, userId: string): Promise<RoomRole | undefined> {
    if (roomId === DEFAULT_ROOM) return undefined;
    const room = await this.#store.getRoom(roomId);
    if (!room || room.direct || room.id !== roomId) return undefined;
    return this.roleIn(room, await this.#store.moderators(roomId), userId);
  }

  /** Whether `userId` may moderate the room stored as `roomId`: its owner or a moderator. */
  async mayModerate(roomId: string, userId: string): Promise<boolean> {
    const role = await this.roleOf(roomId, userId);
    return role === "owner" || role === "moderator";
  }

  /** {@linkcode mayModerate} for a group room whose record the caller read already. */
  async mayModerateRoom(
    room: Pick<Room, "id" | "createdBy" | "direct">,
    userId: string,
  ): Promise<boolean> {
    if (room.direct || room.id === DEFAULT_ROOM) return false;
    return room.createdBy === userId || (await this.#store.moderators(room.id)).includes(userId);
  }

  /**
   * The stored group room `name` (any case) that `userId` is in with at least the role `needed`,
   * or the refusal of `action`: INVALID_ARGUMENT for a bad name, FAILED_PRECONDITION for general
   * and direct rooms, NOT_FOUND, PERMISSION_DENIED saying the caller's role and who may.
   */
  async managedRoom(
    action: string,
    name: string,
    userId: string,
    needed: "owner" | "moderator",
  ): Promise<ManagedRoom> {
    const typed = checkRoomName(action, name, this.#config.maxRoomNameLength);
    // Told by the name before any read: a stranger learns nothing of others' direct rooms. No
    // group room's name starts with the direct prefix, so a malformed direct name is not found.
    if (isDefaultRoom(typed) || directRoomMembers(typed)) throw notGroup(action, typed);
    const room = await this.#store.getRoom(typed);
    if (!room) throw notFound(`${action}: room "${typed}" does not exist`);
    if (room.direct) throw notGroup(action, room.id);
    const moderators = await this.#store.moderators(room.id);
    const role = this.roleIn(room, moderators, userId);
    const who = needed === "owner"
      ? `only its owner (${room.createdBy}) may`
      : `only its owner (${room.createdBy}) and moderators may`;
    if (!(await this.#store.isMember(room.id, userId))) {
      throw permissionDenied(
        role === "owner"
          ? `${action}: ${userId} is the owner of room "${room.id}" but left it; join it again first`
          : `${action}: ${userId} is not a member of room "${room.id}"; ${who}`,
      );
    }
    if (role === "member" || (needed === "owner" && role !== "owner")) {
      throw permissionDenied(`${action}: ${userId} is a ${role} of room "${room.id}"; ${who}`);
    }
    return { room, moderators, role };
  }

  /** When `userId`'s mute in `roomId` ends (RFC 3339), or undefined when not muted now. */
  async mutedUntil(roomId: string, userId: string): Promise<string | undefined> {
    if (roomId === DEFAULT_ROOM) return undefined;
    const until = await this.#store.mutedUntil(roomId, userId);
    return until !== undefined && Date.parse(until) > this.#now() ? until : undefined;
  }

  /** Refuses `action` with PERMISSION_DENIED, saying until when, while `userId` is muted in `roomId`. */
  async refuseMuted(action: string, roomId: string, userId: string): Promise<void> {
    const until = await this.mutedUntil(roomId, userId);
    if (until !== undefined) {
      throw new ChatError(
        "permission_denied",
        `${action}: ${userId} is muted in room "${roomId}" until ${until}`,
      );
    }
  }
}

/** The refusal of `action` on `name`, the default or a direct room, which have no roles. */
function notGroup(action: string, name: string): ChatError {
  return new ChatError(
    "failed_precondition",
    `${action}: "${name}" is ${
      isDefaultRoom(name) ? "the default room" : "a direct room"
    }; only group rooms have owners and moderators`,
  );
}
