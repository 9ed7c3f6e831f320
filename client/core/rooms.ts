/** How a client names and orders rooms and people: the default room first, direct ones last. */

import { DEFAULT_ROOM, DIRECT_PREFIX, directRoomMembers } from "../../protocol/names.ts";
import type { ChatUser, RoomInfo } from "./model.ts";

export function isDirect(room: string): boolean {
  return room.startsWith(DIRECT_PREFIX);
}

/** The other person of a direct room `dm:<a>:<b>` (or the room id if it is not one). */
export function directPeer(room: string, myId: string): string {
  const members = directRoomMembers(room);
  if (!members) return room;
  return members[0] === myId ? members[1] : members[0];
}

/** The default room first, then rooms by name, then direct conversations by the other person. */
export function sortRooms(rooms: RoomInfo[], myId: string): RoomInfo[] {
  const rank = (r: RoomInfo) => (r.id === DEFAULT_ROOM ? 0 : r.direct ? 2 : 1);
  const name = (r: RoomInfo) => (r.direct ? directPeer(r.id, myId) : r.id);
  return rooms.sort((a, b) =>
    rank(a) - rank(b) || name(a).localeCompare(name(b), undefined, { sensitivity: "base" })
  );
}

/** By display name, then id. */
export function sortUsers(users: ChatUser[]): ChatUser[] {
  return users.sort((a, b) =>
    a.displayName.localeCompare(b.displayName, undefined, { sensitivity: "base" }) ||
    a.id.localeCompare(b.id)
  );
}

/** The default room, which has everybody. */
export function defaultRoom(): RoomInfo {
  return { id: DEFAULT_ROOM, direct: false, members: [], lastSeq: 0 };
}
