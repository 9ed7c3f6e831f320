/**
 * How the terminal client prints: messages, presence and room events, rooms, delays, all made
 * safe for a terminal (a control character in a name or a message cannot move the cursor or
 * change colours).
 */

import { DEFAULT_ROOM } from "../protocol/names.ts";
import type { ChatMessage, ChatUser, RoomEvent, RoomInfo } from "./core/model.ts";

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
 * `[15:04:05] alice: Hello World!`; continuation lines are indented under the text. A room
 * other than the default one is named (`[15:04:05] #book-club alice: ...`), and so is the
 * default room while `currentRoom` is another one. Without a timestamp, `now` is shown.
 */
export function formatMessage(
  message: ChatMessage,
  now: number = Date.now(),
  currentRoom: string = DEFAULT_ROOM,
): string {
  const at = message.timestamp ?? new Date(now);
  const room = message.room === DEFAULT_ROOM && currentRoom === DEFAULT_ROOM
    ? ""
    : `#${sanitize(message.room)} `;
  const prefix = `[${formatTime(at)}] ${room}${
    sanitize(formatUser(message.userId, message.displayName))
  }: `;
  const [first = "", ...rest] = sanitize(message.content).split("\n");
  const indent = " ".repeat(prefix.length);
  return [prefix + first, ...rest.map((line) => indent + line)].join("\n");
}

/** `* bob is online` / `* bob went offline`. */
export function formatPresence(user: ChatUser, online: boolean): string {
  const who = sanitize(formatUser(user.id, user.displayName));
  return online ? `* ${who} is online` : `* ${who} went offline`;
}

/** `* bob joined #book-club` / `* bob left #book-club`. */
export function formatRoomEvent(event: RoomEvent): string {
  const who = sanitize(formatUser(event.user.id, event.user.displayName));
  const room = sanitize(event.room);
  return event.joined ? `* ${who} joined #${room}` : `* ${who} left #${room}`;
}

/** `general (everybody)`, `book-club (2 members)`, `dm:alice:bob (direct, 2 members)`. */
export function formatRoom(room: RoomInfo, currentRoom?: string): string {
  const n = room.members.length;
  const who = room.id === DEFAULT_ROOM
    ? "everybody"
    : `${room.direct ? "direct, " : ""}${n} member${n === 1 ? "" : "s"}`;
  const current = currentRoom === room.id ? ", current" : "";
  return `${sanitize(room.id)} (${who}${current})`;
}

/** `1 message`, `2 messages`. */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
