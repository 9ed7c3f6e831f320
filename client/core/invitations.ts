/**
 * Invitations and room actions as a client shows them: the rooms this user is invited to (from
 * ListRooms with invitations, kept in step with the "invited" events and with joining and
 * declining), and one line of words for each room action, the same on the terminal and the page.
 */

import { nameKey } from "../../protocol/names.ts";
import type { ChatUser, RoomAction, RoomInfo } from "./model.ts";

/** The rooms this user is invited to, newest invitation first. */
export class InvitationList {
  #rooms: readonly RoomInfo[] = [];

  get rooms(): readonly RoomInfo[] {
    return this.#rooms;
  }

  /** The server listed `rooms`. */
  listed(rooms: readonly RoomInfo[]): void {
    this.#rooms = rooms;
  }

  /** The invitation to `room` (any case) was used or declined; whether there was one. */
  drop(room: string): boolean {
    const kept = this.#rooms.filter((r) => nameKey(r.id) !== nameKey(room));
    const dropped = kept.length !== this.#rooms.length;
    this.#rooms = kept;
    return dropped;
  }
}

/** Whether `event` invites this user (`me`): news to show with a way to join. */
export function invitesMe(event: RoomAction, me: string): boolean {
  return event.action === "invited" && event.user.id === me;
}

/**
 * `event` in words for this user (`me`): "ann invited you to #plans", "ann made #plans
 * invite-only". `label` names the room and `name` a person as the view does.
 */
export function describeRoomAction(
  event: RoomAction,
  me: string,
  label: (room: string) => string = (room) => `#${room}`,
  name: (user: ChatUser) => string = (user) => user.displayName,
): string {
  const who = event.actor.id === me ? "you" : name(event.actor);
  const room = label(event.room);
  switch (event.action) {
    case "invited": {
      const whom = event.user.id === me ? "you" : name(event.user);
      return `${who} invited ${whom} to ${room}`;
    }
    case "invite-only":
      return `${who} made ${room} invite-only`;
    case "open":
      return `${who} opened ${room} to everyone`;
    default:
      return `${who}: ${event.action}${event.detail ? ` (${event.detail})` : ""} in ${room}`;
  }
}
