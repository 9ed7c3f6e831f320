/**
 * The terminal client's slash commands (`/rooms`, `/create`, `/join`, `/leave`, `/dm`, `/room`,
 * `/history`, `/who`, `/help`, `/quit`): each asks the session and says what came of it in one
 * line, `! ...` when it failed. A command while not connected says so instead of waiting.
 */

import { DEFAULT_ROOM, directRoomId } from "../protocol/names.ts";
import type { ChatSession } from "./core/chat_session.ts";
import type { RoomInfo } from "./core/model.ts";
import { count, formatMessage, formatRoom, formatUser, sanitize } from "./format.ts";

export const HELP = [
  "Commands:",
  "  /rooms           list your rooms (/rooms all: every room)",
  "  /room <room>     write to <room> from now on (at first: general)",
  "  /create <room>   create a room",
  "  /join <room>     join a room",
  "  /leave <room>    leave a room",
  "  /dm <user>       direct messages with <user>; switches to them",
  "  /history [n]     the last n messages of the current room (default 20)",
  "  /who             list the users online",
  "  /help            show this list",
  "  /quit            leave (Ctrl-D and Ctrl-C also do)",
  "Any other line is sent to the current room; start it with // to send a line that begins with /.",
].join("\n");

const HISTORY_DEFAULT = 20;
const HISTORY_MAX = 200;

/** What the commands read and change in the terminal client. */
export interface CommandContext {
  readonly session: ChatSession;
  write(line: string): void;
  now(): number;
  /** Where typed lines go. */
  room: string;
  /** Direct rooms we are opening ourselves: our joining them is not news. */
  readonly openingDirect: Set<string>;
  /** Rooms we are leaving ourselves: our leaving them is not news. */
  readonly leaving: Set<string>;
  /** Resolves when the client stops, so that no command outlives it. */
  readonly stopped: Promise<void>;
}

/** `#book-club` or `book-club` as typed → `book-club`. */
function roomArgument(text: string): string {
  return text.trim().replace(/^#/, "");
}

/** Runs the command line `line` (starting with one `/`); "quit" for /quit. */
export async function runCommand(ctx: CommandContext, line: string): Promise<"quit" | void> {
  const [command = "", ...rest] = line.trim().split(/\s+/);
  const argument = rest.join(" ");
  switch (command.toLowerCase()) {
    case "/quit":
    case "/exit":
      return "quit";
    case "/help":
      return ctx.write(HELP);
    case "/who":
      return await who(ctx);
    case "/rooms":
      return await rooms(ctx, argument);
    case "/create":
    case "/join":
      return await enter(ctx, command.toLowerCase() === "/create", roomArgument(argument));
    case "/leave":
      return await leave(ctx, roomArgument(argument));
    case "/dm":
      return await direct(ctx, argument.trim());
    case "/room": {
      const room = roomArgument(argument);
      if (room !== "") ctx.room = room;
      return ctx.write(`* Lines you type go to #${sanitize(ctx.room)}`);
    }
    case "/history":
      return await history(ctx, argument);
    default:
      return ctx.write(`! Unknown command ${command}; /help lists the commands`);
  }
}

/**
 * A command's call: `! <what>: not connected` when offline, `! <server's words>` when refused
 * (prefixed with `what` unless they say "Cannot ..." already); undefined then, else the answer.
 */
async function ask<T>(
  ctx: CommandContext,
  what: string,
  call: (session: ChatSession) => Promise<T>,
): Promise<{ value: T } | undefined> {
  if (!ctx.session.connected) {
    ctx.write(`! ${what}: not connected`);
    return undefined;
  }
  try {
    return await Promise.race([call(ctx.session).then((value) => ({ value })), ctx.stopped]) ??
      undefined;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    ctx.write(`! ${reason.startsWith("Cannot ") ? reason : `${what}: ${reason}`}`);
    return undefined;
  }
}

async function who(ctx: CommandContext): Promise<void> {
  const answer = await ask(ctx, "Cannot list users", (s) => s.listOnline());
  if (!answer) return;
  const users = answer.value;
  const names = users.map((u) => sanitize(formatUser(u.id, u.displayName)));
  ctx.write(`* Online (${users.length}): ${names.join(", ") || "nobody"}`);
}

async function rooms(ctx: CommandContext, argument: string): Promise<void> {
  const all = argument.trim().toLowerCase() === "all";
  if (!all && argument.trim() !== "") return ctx.write("! Usage: /rooms, or /rooms all");
  const answer = await ask(ctx, "Cannot list rooms", (s) => s.listRooms(all));
  if (!answer) return;
  const me = ctx.session.user.id;
  const mine = (room: RoomInfo) =>
    all && room.id !== DEFAULT_ROOM && room.members.includes(me) ? " - joined" : "";
  ctx.write([
    `* ${all ? "All rooms" : "Your rooms"} (${answer.value.length}):`,
    ...answer.value.map((room) => `  ${formatRoom(room, ctx.room)}${mine(room)}`),
  ].join("\n"));
}

async function enter(ctx: CommandContext, create: boolean, room: string): Promise<void> {
  if (room === "") return ctx.write(`! Usage: ${create ? "/create" : "/join"} <room>`);
  const answer = await ask(
    ctx,
    create ? "Cannot create room" : "Cannot join room",
    (s) => create ? s.createRoom(room) : s.joinRoom(room),
  );
  if (!answer) return;
  const joined = answer.value;
  const id = sanitize(joined.id);
  const members = joined.id === DEFAULT_ROOM ? "everybody" : count(joined.members.length, "member");
  const hint = ctx.room === joined.id ? "" : `; /room ${id} to write there`;
  ctx.write(`* ${create ? "Created" : "Joined"} #${id} (${members})${hint}`);
}

async function leave(ctx: CommandContext, room: string): Promise<void> {
  if (room === "") return ctx.write("! Usage: /leave <room>");
  ctx.leaving.add(room);
  if (!await ask(ctx, "Cannot leave room", (s) => s.leaveRoom(room))) {
    ctx.leaving.delete(room);
    return;
  }
  if (ctx.room === room) {
    ctx.room = DEFAULT_ROOM;
    ctx.write(`* Left #${sanitize(room)}; lines you type go to #${DEFAULT_ROOM}`);
  } else {
    ctx.write(`* Left #${sanitize(room)}`);
  }
}

async function direct(ctx: CommandContext, userId: string): Promise<void> {
  if (userId === "") return ctx.write("! Usage: /dm <user>");
  const expected = directRoomId(ctx.session.user.id, userId);
  ctx.openingDirect.add(expected);
  const answer = await ask(ctx, "Cannot open direct messages", (s) => s.openDirect(userId));
  if (!answer) {
    ctx.openingDirect.delete(expected);
    return;
  }
  ctx.room = answer.value.id;
  ctx.write(
    `* Direct messages with ${sanitize(userId)}: lines you type go to #${
      sanitize(answer.value.id)
    }`,
  );
}

async function history(ctx: CommandContext, argument: string): Promise<void> {
  const text = argument.trim();
  const n = text === "" ? HISTORY_DEFAULT : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= HISTORY_MAX)) {
    return ctx.write(
      `! Usage: /history [n], n from 1 to ${HISTORY_MAX} (default ${HISTORY_DEFAULT})`,
    );
  }
  const room = ctx.room;
  const answer = await ask(ctx, "Cannot read history", (s) => s.history(room, n));
  if (!answer) return;
  const { messages, more } = answer.value;
  if (messages.length === 0) return ctx.write(`* No messages in #${sanitize(room)} yet`);
  ctx.write(
    `* The last ${count(messages.length, "message")} of #${sanitize(room)}${
      more ? " (older ones exist)" : ""
    }:`,
  );
  for (const message of messages) ctx.write(formatMessage(message, ctx.now(), room));
}
