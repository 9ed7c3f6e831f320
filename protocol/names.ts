/**
 * The rules every name follows (user ids and usernames, display names, stream names, rooms), in
 * one place that the gateway, the stores and the clients all use.
 *
 * A name:
 * - is not empty and not longer than its kind's limit, counted in characters (code points);
 * - holds no control character (C0 and NUL, DEL, C1), no line or paragraph separator
 *   (U+2028, U+2029) and no bidirectional control (U+061C, U+200E, U+200F, the embeddings and
 *   overrides U+202A–U+202E and the isolates U+2066–U+2069), which would let it break a line or
 *   make the text around it read backwards;
 * - is well-formed Unicode (no unpaired surrogate, which the stores would silently replace).
 *
 * Usernames and room names are compared without regard to case ({@linkcode nameKey}): `ALICE`
 * and `alice` are one account, `GENERAL` and `general` one room; each keeps the spelling its
 * owner chose for display.
 *
 * Pure: no Deno, no gRPC, so that a browser page can check a name before it sends it. The
 * functions return what is wrong as a phrase ("the display name is 70 characters, the limit is
 * 64"), for the caller to put after its action ("Cannot open stream: ...").
 */

/** The longest username an account may have (letters, digits, '.', '_' and '-'). */
export const USERNAME_MAX_LENGTH = 32;
/** The longest user id a request may name (with AUTH=off any id; with AUTH=on, a username). */
export const USER_ID_MAX_LENGTH = 128;
/** The longest display name: of an account, a stream, and so of the messages it shows on. */
export const DISPLAY_NAME_MAX_LENGTH = 64;
/** The longest room name by default; the server's is `MAX_ROOM_NAME_LENGTH`. */
export const ROOM_NAME_MAX_LENGTH = 64;
/** The longest client-chosen message id. */
export const MESSAGE_ID_MAX_LENGTH = 128;

/** What a username may hold. */
export const USERNAME_PATTERN = /^[A-Za-z0-9._-]+$/;
/** What a room name may hold (direct rooms, `dm:<a>:<b>`, are named by the server). */
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** The room every stream is in and a message without a room goes to. */
export const DEFAULT_ROOM = "general";
/** The start of a direct room's id: `dm:<a>:<b>`, the two user ids sorted. */
export const DIRECT_PREFIX = "dm:";

/**
 * The characters no name may hold: C0 controls (NUL included), DEL, C1 controls, the line and
 * paragraph separators, and the bidirectional controls (Unicode's Bidi_Control property).
 */
const FORBIDDEN =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** Length in characters (code points), as a person counts them. */
export function characters(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** `U+202E`. */
function codePoint(char: string): string {
  return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** What kind of character `char` (one of `FORBIDDEN`) is, for an error message. */
function kindOf(char: string): string {
  const c = char.codePointAt(0)!;
  if (c === 0) return "a NUL character";
  if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return "a control character";
  if (c === 0x2028 || c === 0x2029) return "a line separator";
  return "a bidirectional control character";
}

/**
 * What is wrong with `text` as something the service stores, or undefined: a NUL character
 * (PostgreSQL refuses it, SQLite would cut the text there) or an unpaired surrogate (both would
 * store U+FFFD instead). `what` names it ("the content").
 */
export function storableProblem(what: string, text: string): string | undefined {
  if (text.includes("\u0000")) return `${what} holds a NUL character (U+0000)`;
  if (!text.isWellFormed()) {
    return `${what} is not well-formed Unicode (it holds an unpaired surrogate)`;
  }
  return undefined;
}

/**
 * What is wrong with `name` (already trimmed) as a name of `what` ("the display name"), at most
 * `maxLength` characters long, or undefined when it is a good name.
 */
export function nameProblem(what: string, name: string, maxLength: number): string | undefined {
  if (name.trim() === "") return `${what} is empty`;
  const length = characters(name);
  if (length > maxLength) return `${what} is ${length} characters, the limit is ${maxLength}`;
  const bad = FORBIDDEN.exec(name);
  if (bad) return `${what} holds ${kindOf(bad[0])} (${codePoint(bad[0])}), which no name may hold`;
  return storableProblem(what, name);
}

/** What is wrong with `username` as an account's name, or undefined. */
export function usernameProblem(username: string): string | undefined {
  const problem = nameProblem("the username", username, USERNAME_MAX_LENGTH);
  if (problem) return problem;
  if (!USERNAME_PATTERN.test(username)) {
    return `the username ${
      JSON.stringify(username)
    } may only hold letters, digits, '.', '_' and '-'`;
  }
  return undefined;
}

/** What is wrong with `room` (trimmed) as the name of a room anyone may create, or undefined. */
export function roomNameProblem(
  room: string,
  maxLength = ROOM_NAME_MAX_LENGTH,
): string | undefined {
  const problem = nameProblem("the room name", room, maxLength);
  if (problem) return problem;
  if (!ROOM_NAME_PATTERN.test(room)) {
    return `the room name ${
      JSON.stringify(room)
    } may only hold letters, digits, '.', '_' and '-', and must start with a letter or digit`;
  }
  return undefined;
}

/**
 * The key two names are the same under: usernames and room names compare without regard to
 * case. Stores index accounts and rooms by it; the spelling shown is the one stored.
 */
export function nameKey(name: string): string {
  return name.toLowerCase();
}

/** The direct-message room of two users: the same id whoever opens it. */
export function directRoomId(a: string, b: string): string {
  return DIRECT_PREFIX + [a, b].sort().join(":");
}

/** The two user ids of a direct room's id, or undefined when `room` is not one. */
export function directRoomMembers(room: string): [string, string] | undefined {
  if (!room.startsWith(DIRECT_PREFIX)) return undefined;
  const parts = room.slice(DIRECT_PREFIX.length).split(":");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") return undefined;
  return [parts[0]!, parts[1]!];
}
