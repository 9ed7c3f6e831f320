/**
 * Who may do what in a group room, said once for every call that asks: its owner is its creator
 * (`Room.createdBy`), its moderators are kept by the store, everybody else in it is a member.
 * Owners and moderators may moderate: remove and mute members, set the topic, delete any
 * message. A muted member's sends, edits, reactions and typing in the room are refused until the
 * mute ends. General and direct rooms have no roles: nobody moderates them.
 *
 * Mutes are read through the store on every call they refuse, so every gateway sees a mute the
 * moment it is stored, and after a restart too.
 */

import { ChatError } from "../core/errors.ts";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import type { Room, Store } from "../store/store.ts";

/** A member's role in a group room. */
export type RoomRole = "owner" | "moderator" | "member";

export interface RoomRolesOptions {
  store: Pick<Store, "getRoom" | "moderators" | "mutedUntil">;
  /** The server's clock, in milliseconds since the epoch. */
  now: () => number;
}

export class RoomRoles {
  readonly #store: RoomRolesOptions["store"];
  readonly #now: () => number;

  constructor(options: RoomRolesOptions) {
    this.#store = options.store;
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
