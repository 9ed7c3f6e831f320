/**
 * Who is online and which rooms this user is in, as a session learns it: from ListOnline and
 * ListRooms answers, and from the presence and room events that race them on the stream.
 */

import { DEFAULT_ROOM } from "../../protocol/names.ts";
import type { ChatUser, RoomEvent, RoomInfo } from "./model.ts";
import { defaultRoom, isDirect, sortRooms, sortUsers } from "./rooms.ts";

/** Presence events seen while a ListOnline was on its way. */
export type PendingPresence = { user: ChatUser; online: boolean }[];

export class Roster {
  /** Online users by id. */
  #online = new Map<string, ChatUser>();
  /** Presence events that arrived while ListOnline was on its way: newer than its answer. */
  #pendingPresence: PendingPresence | undefined;
  /** This user's rooms by id. */
  #rooms = new Map<string, RoomInfo>([[DEFAULT_ROOM, defaultRoom()]]);
  /** Rooms added since the last ListRooms was sent. */
  #joinedLately = new Set<string>();

  /** `me()` is this user, who stays listed while the stream is open. */
  constructor(readonly me: () => ChatUser) {}

  get online(): readonly ChatUser[] {
    return sortUsers([...this.#online.values()]);
  }

  get rooms(): readonly RoomInfo[] {
    return sortRooms([...this.#rooms.values()], this.me().id);
  }

  /** ListOnline was sent: presence events from now on are newer than its answer. */
  askingOnline(): PendingPresence {
    const during: PendingPresence = [];
    this.#pendingPresence = during;
    return during;
  }

  /** ListOnline answered `users` (undefined when it failed) to the ask that returned `during`. */
  answeredOnline(during: PendingPresence, users: readonly ChatUser[] | undefined): void {
    if (this.#pendingPresence === during) this.#pendingPresence = undefined;
    const me = this.me();
    if (users) {
      this.#online = new Map(users.map((u) => [u.id, u]));
      for (const e of during) this.#apply(e.user, e.online);
    }
    // The server's registry may not have seen this stream yet.
    this.#online.set(me.id, this.#online.get(me.id) ?? me);
  }

  presence(user: ChatUser, online: boolean): void {
    this.#pendingPresence?.push({ user, online });
    this.#apply(user, online);
  }

  #apply(user: ChatUser, online: boolean): void {
    if (online) this.#online.set(user.id, user);
    // This user stays listed while the stream is open, even if another device of theirs left.
    else if (user.id !== this.me().id) this.#online.delete(user.id);
  }

  /** ListRooms answered `rooms`; rooms joined while it was on its way stay. */
  listed(rooms: readonly RoomInfo[]): void {
    const next = new Map<string, RoomInfo>([[DEFAULT_ROOM, defaultRoom()]]);
    for (const room of rooms) next.set(room.id, room);
    for (const [id, room] of this.#rooms) {
      if (!next.has(id) && this.#joinedLately.has(id)) next.set(id, room);
    }
    this.#joinedLately.clear();
    this.#rooms = next;
  }

  add(room: RoomInfo): void {
    this.#rooms.set(room.id, room);
    this.#joinedLately.add(room.id);
  }

  /** Whether this user was in `room` (the default room is never left). */
  drop(room: string): boolean {
    return room !== DEFAULT_ROOM && this.#rooms.delete(room);
  }

  /** `room`, if this user is in it, became invite-only or open; whether it was known. */
  access(room: string, inviteOnly: boolean): boolean {
    const known = this.#rooms.get(room);
    if (known) this.#rooms.set(room, { ...known, inviteOnly });
    return known !== undefined;
  }

  /**
   * Applies a room event: `left` when this user left the room (or was removed), `unknown` when
   * this user is in a room not known yet (learn of it from ListRooms), `changed` when a member
   * list changed, `refresh` when a role, mute or topic of a known room changed (list it again).
   */
  roomEvent(event: RoomEvent): "left" | "unknown" | "changed" | "refresh" | undefined {
    const known = this.#rooms.get(event.room);
    const me = this.me().id;
    // A role, mute or topic changed: the room's listing says how it stands now.
    if (event.action !== undefined && event.action !== "removed") {
      return known ? "refresh" : undefined;
    }
    if (event.user.id === me) {
      // Joined or left here, on another device, or someone opened a direct conversation.
      if (!event.joined) return "left";
      if (known) return undefined;
      this.add({ id: event.room, direct: isDirect(event.room), members: [me], lastSeq: 0 });
      return "unknown";
    }
    if (!known) return undefined;
    const members = known.members.filter((id) => id !== event.user.id);
    if (event.joined) members.push(event.user.id);
    this.#rooms.set(event.room, { ...known, members });
    return "changed";
  }
}
