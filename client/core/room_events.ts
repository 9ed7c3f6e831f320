/**
 * A room event in words, the same in the terminal and the page: "ben left", "You joined",
 * "ann made ben a moderator", "ann muted carl until 14:05", "ann removed carl", "ann set the
 * topic to “…”", "ann invited ben". This user is "You" (or "you" after a verb).
 */

import type { ChatUser, RoomEvent } from "./model.ts";

/** `at` as the time of day (14:05), with the date (2026-12-03 14:05) when it is not `today`'s. */
export function clockTime(at: Date, today = new Date()): string {
  const two = (n: number) => String(n).padStart(2, "0");
  const time = `${two(at.getHours())}:${two(at.getMinutes())}`;
  return at.toDateString() === today.toDateString()
    ? time
    : `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())} ${time}`;
}

/** What happened, as one sentence without a full stop; `me` is this user's id. */
export function describeRoomEvent(event: RoomEvent, me: string, now = new Date()): string {
  const name = (u: ChatUser | undefined, start: boolean) =>
    u === undefined ? "someone" : u.id === me ? (start ? "You" : "you") : u.displayName || u.id;
  const who = name(event.user, true);
  const target = name(event.user, false);
  const actor = name(event.actor, true);
  switch (event.action) {
    case "removed":
      return `${actor} removed ${target}`;
    case "muted":
      return `${actor} muted ${target}${
        event.until ? ` until ${clockTime(event.until, now)}` : ""
      }`;
    case "unmuted":
      return `${actor} unmuted ${target}`;
    case "role":
      return event.detail === "moderator"
        ? `${actor} made ${target} a moderator`
        : `${actor} made ${target} a member again`;
    case "topic":
      return event.detail
        ? `${actor} set the topic to “${event.detail}”`
        : `${actor} took the topic away`;
    case "invite-only":
      return `${actor} made the room invite-only`;
    case "open":
      return `${actor} opened the room to everyone`;
    case "invited":
      return `${actor} invited ${target}`;
  }
  if (event.created) return `${who} created the room`;
  return event.joined ? `${who} joined` : `${who} left`;
}
