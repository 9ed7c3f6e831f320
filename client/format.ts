/**
 * How the terminal client prints: messages, presence and room events, rooms, delays, all made
 * safe for a terminal (a control character in a name or a message cannot move the cursor or
 * change colours).
 */

import { DEFAULT_ROOM, directRoomMembers } from "../protocol/names.ts";
import type {
  ChatMessage,
  ChatUser,
  MessageChange,
  ReactionEvent,
  RoomAction,
  RoomEvent,
  RoomInfo,
} from "./core/model.ts";
import { describeRoomAction, invitesMe } from "./core/invitations.ts";
import { UNREAD_COUNT_SHOWN } from "./core/reading.ts";
import { directPeer } from "./core/rooms.ts";
import { clockTime, describeRoomEvent } from "./core/room_events.ts";

/** `1000` → `1s`, `1500` → `1.5s`. */
export function formatDelay(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** Local time as HH:MM:SS. */
export function formatTime(date: Date): string {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** `alice`, or `Alice Smith (alice)` when the display name says something the id does not. */
export function formatUser(id: string, displayName?: string): string {
  const name = displayName?.trim() ?? "";
  return name === "" || name === id ? id : `${name} (${id})`;
}

/** Makes text safe for a terminal: newlines normalised, other control characters shown as ^X. */
export function sanitize(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g,
    (c) => {
      const code = c.charCodeAt(0);
      if (code < 0x20) return `^${String.fromCharCode(code + 64)}`;
      if (code === 0x7f) return "^?";
      return "\uFFFD";
    },
  );
}

/**
 * How a room is named to the user `me`: `#book-club`, and a direct room of theirs by the other
 * person, `@ann` (its id, `dm:ann:carol`, means nothing to a reader).
 */
export function roomLabel(room: string, me: string): string {
  const members = directRoomMembers(room);
  if (members?.includes(me)) return `@${sanitize(directPeer(room, me))}`;
  return `#${sanitize(room)}`;
}

/**
 * `[15:04:05] alice: Hello World!`; continuation lines are indented under the text. A room
 * other than the default one is named (`[15:04:05] #book-club alice: ...`, `@ann` for a direct
 * room of `me`), and so is the default room while `currentRoom` is another one. Without a
 * timestamp, `now` is shown. A message that mentions `me` starts with `» ` so that it stands
 * out, in a pipe as on a terminal.
 */
export function formatMessage(
  message: ChatMessage,
  now: number = Date.now(),
  currentRoom: string = DEFAULT_ROOM,
  me = "",
): string {
  const at = message.timestamp ?? new Date(now);
  const room = message.room === DEFAULT_ROOM && currentRoom === DEFAULT_ROOM
    ? ""
    : `${roomLabel(message.room, me)} `;
  const mark = me !== "" && message.userId !== me && message.mentions.includes(me) ? "» " : "";
  const prefix = `${mark}[${formatTime(at)}] ${room}${
    sanitize(formatUser(message.userId, message.displayName))
  }: `;
  const text = message.deleted
    ? "(deleted)"
    : message.editedAt
    ? `${message.content} (edited)`
    : message.content;
  const reactions = message.reactions.length === 0
    ? ""
    : `  [${message.reactions.map((r) => `${r.emoji} ${r.users.length}`).join(" · ")}]`;
  const [first = "", ...rest] = sanitize(text + reactions).split("\n");
  const indent = " ".repeat(prefix.length);
  return [prefix + first, ...rest.map((line) => indent + line)].join("\n");
}

/** `* bob is online` / `* bob went offline`. */
export function formatPresence(user: ChatUser, online: boolean): string {
  const who = sanitize(formatUser(user.id, user.displayName));
  return online ? `* ${who} is online` : `* ${who} went offline`;
}

/** `* bob joined #book-club` / `* bob left #book-club`. */
export function formatRoomEvent(event: RoomEvent, me = ""): string {
  const who = sanitize(formatUser(event.user.id, event.user.displayName));
  const room = roomLabel(event.room, me);
  if (event.created) return `* ${who} created ${room}`;
  return event.joined ? `* ${who} joined ${room}` : `* ${who} left ${room}`;
}

/** `ann muted carl until 14:05 in #club`: a moderation event, its names made safe to print. */
export function formatModeration(event: RoomEvent, me: string, now: Date): string {
  return `${sanitize(describeRoomEvent(event, me, now))} in ${roomLabel(event.room, me)}`;
}

/**
 * `* ann invited you to #plans: /join plans, or /leave plans to decline`, `* ann made #plans
 * invite-only`.
 */
export function formatRoomAction(event: RoomAction, me = ""): string {
  const text = describeRoomAction(
    event,
    me,
    (room) => roomLabel(room, me),
    (user) => sanitize(formatUser(user.id, user.displayName)),
  );
  const room = sanitize(event.room);
  return invitesMe(event, me)
    ? `* ${text}: /join ${room}, or /leave ${room} to decline`
    : `* ${text}`;
}

/**
 * `* bob edited a message in #book-club: new text` / `* bob deleted a message in #book-club`
 * (the room is named unless it is `currentRoom`).
 */
export function formatChange(change: MessageChange, currentRoom: string, me = ""): string {
  const who = sanitize(formatUser(change.by.id, change.by.displayName));
  const where = change.room === currentRoom ? "" : ` in ${roomLabel(change.room, me)}`;
  return change.deleted
    ? `* ${who} deleted a message${where}`
    : `* ${who} edited a message${where}: ${sanitize(change.content).replaceAll("\n", " ")}`;
}

/** `* bob reacted 👍` (in another room: `* bob reacted 👍 in #book-club`). */
export function formatReaction(event: ReactionEvent, currentRoom: string, me = ""): string {
  const who = sanitize(formatUser(event.user.id, event.user.displayName));
  const where = event.room === currentRoom ? "" : ` in ${roomLabel(event.room, me)}`;
  return `* ${who} reacted ${sanitize(event.emoji)}${where}`;
}

/**
 * `general (everybody)`, `book-club (2 members, 3 unread, 1 mention): Sci-fi, one a month` (with
 * its topic), and a direct room of `me` by the other person: `@bob (direct messages)`.
 */
export function formatRoom(
  room: RoomInfo,
  currentRoom?: string,
  me = "",
  unread = 0,
  mentions = 0,
): string {
  const n = room.memberCount || room.members.length;
  const label = roomLabel(room.id, me);
  const name = label.startsWith("@") ? label : sanitize(room.id);
  const who = room.id === DEFAULT_ROOM
    ? "everybody"
    : label.startsWith("@")
    ? "direct messages"
    : `${room.direct ? "direct, " : ""}${n} member${n === 1 ? "" : "s"}`;
  const current = currentRoom === room.id ? ", current" : "";
  const news = unread > 0 ? `, ${unread >= UNREAD_COUNT_SHOWN ? "1000+" : unread} unread` : "";
  const named = mentions > 0 ? `, ${count(mentions, "mention")}` : "";
  const topic = room.topic ? `: ${sanitize(room.topic)}` : "";
  // Who may moderate here sees it: /mod, /remove and /mute are theirs.
  const role = room.role === "owner" || room.role === "moderator"
    ? `, you are its ${room.role}`
    : "";
  const muted = room.mutedUntil ? `, you are muted until ${clockTime(room.mutedUntil)}` : "";
  return `${name} (${who}${current}${news}${named}${role}${muted})${topic}`;
}

/** `1 message`, `2 messages`. */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
