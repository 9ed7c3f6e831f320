/**
 * The terminal client's slash commands (`/rooms`, `/create`, `/join`, `/leave`, `/dm`, `/room`,
 * `/history`, `/search`, `/edit`, `/delete`, `/react`, `/seen`, `/topic`, `/mod`, `/unmod`, `/remove`,
 * `/mute`, `/unmute`, `/private`, `/public`, `/invite`, `/invites`, `/block`, `/unblock`, `/blocked`,
 * `/who`, `/help`, `/quit`): each asks the session and says what came of it in one line, `! ...`
 * when it failed. A command while not connected says so instead of waiting.
 */

import { DEFAULT_ROOM, nameKey } from "../protocol/names.ts";
import type { ChatSession } from "./core/chat_session.ts";
import type { RoomInfo } from "./core/model.ts";
import { directPeer } from "./core/rooms.ts";
import { describeRoomEvent } from "./core/room_events.ts";
import { QUICK_REACTIONS } from "../protocol/reactions.ts";
import { count, formatMessage, formatRoom, formatUser, roomLabel, sanitize } from "./format.ts";

export const HELP = [
  "Commands:",
  "  /rooms           list your rooms (/rooms all: every room; /rooms all <words>: those",
  "                   whose name or topic holds <words>)",
  "  /room <room>     write to <room>, one of yours, from now on (at first: general);",
  "                   /room @<user> for your direct messages with <user>",
  "  /create <room>   create a room",
  "  /join <room>     join a room",
  "  /leave <room>    leave a room (/leave @<user>: direct messages with <user>)",
  "  /dm <user>       direct messages with <user>; switches to them",
  "  /history [n]     the last n messages of the current room (default 20)",
  "  /search <words>  the messages of your rooms with all these words, best first",
  "  /edit <text>     replace the text of your last message in the current room",
  "  /delete          delete your last message in the current room",
  "  /react <emoji>   react to the last message in the current room (again: take it back)",
  "  /seen            who read your last message in the current room",
  "  /topic <text>    set the topic of the current room, if you own or moderate it (/topic -: none)",
  "  /mod <user>      make <user> a moderator of the current room (its owner only); /unmod <user>",
  "  /remove <user>   remove <user> from the current room (its owner and moderators)",
  "  /mute <user> <minutes>  mute <user> in the current room; /unmute <user>",
  "  /block <user>    hide <user>'s messages from you and refuse their direct messages",
  "  /unblock <user>  undo /block",
  "  /blocked         list the users you blocked",
  "  /private         make the current room invite-only, if you own or moderate it (/public: open)",
  "  /invite <user>   invite <user> to the current room, if you own or moderate it",
  "  /invites         the rooms you are invited to (/join <room> to join, /leave <room>",
  "                   to decline)",
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
  /** Whom we are opening direct rooms with (`nameKey` of the user): our joining is not news. */
  readonly openingDirect: Set<string>;
  /** Rooms we are leaving ourselves: our leaving them is not news. */
  readonly leaving: Set<string>;
  /** The sequence number of our last message in each room (what /edit and /delete change). */
  readonly mine: Map<string, number>;
  /** The sequence number of the last message in each room (what /react reacts to). */
  readonly latest: Map<string, number>;
  /** Resolves when the client stops, so that no command outlives it. */
  readonly stopped: Promise<void>;
}

/** `#book-club` or `book-club` as typed → `book-club`. */
function roomArgument(text: string): string {
  return text.trim().replace(/^#/, "");
}

/** How `room` is named to this user: `#book-club`, `@ann`. */
function label(ctx: CommandContext, room: string): string {
  return roomLabel(room, ctx.session.user.id);
}

/**
 * The id of this user's room that `typed` names, as the session knows them: `book-club` or
 * `#book-club` in any case, `@ann` for the direct room with ann; undefined when none is.
 */
function findRoom(session: ChatSession, typed: string): string | undefined {
  const me = session.user.id;
  const text = typed.trim();
  const direct = text.startsWith("@");
  const key = nameKey(direct ? text.slice(1) : roomArgument(text));
  const found = session.rooms.find((room) =>
    direct ? room.direct && nameKey(directPeer(room.id, me)) === key : nameKey(room.id) === key
  );
  return found?.id;
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
    case "/room":
      return switchRoom(ctx, argument.trim());
    case "/history":
      return await history(ctx, argument);
    case "/search":
      return await search(ctx, argument.trim());
    case "/edit":
      return await change(ctx, argument);
    case "/delete":
      return await change(ctx, undefined);
    case "/react":
      return await react(ctx, argument.trim());
    case "/seen":
      return await seen(ctx);
    case "/topic":
      return await topic(ctx, argument.trim());
    case "/block":
    case "/unblock":
      return await block(ctx, command.toLowerCase() === "/block", argument.trim());
    case "/blocked":
      return await blocked(ctx);
    case "/mod":
    case "/unmod":
      return await setRole(ctx, argument.trim(), command.toLowerCase() === "/mod");
    case "/remove":
      return await remove(ctx, argument.trim());
    case "/mute":
    case "/unmute":
      return await mute(ctx, argument.trim(), command.toLowerCase() === "/mute");
    case "/private":
    case "/public":
      return await access(ctx, command.toLowerCase() === "/private");
    case "/invite":
      return await invite(ctx, argument.trim());
    case "/invites":
      return await invitations(ctx);
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

/** /edit <text> (`text` given) or /delete: our last message in the current room. */
async function change(ctx: CommandContext, text: string | undefined): Promise<void> {
  const room = ctx.room;
  const seq = ctx.mine.get(room);
  const what = text === undefined ? "Cannot delete" : "Cannot edit";
  if (seq === undefined) {
    return ctx.write(`! ${what}: you have no message in ${label(ctx, room)} since you connected`);
  }
  if (text !== undefined && text.trim() === "") {
    return ctx.write("! Cannot edit: type the new text after /edit");
  }
  const answer = await ask(
    ctx,
    what,
    async (s) => {
      if (text === undefined) await s.deleteMessage(room, seq);
      else await s.editMessage(room, seq, text);
    },
  );
  if (!answer) return;
  if (text === undefined) ctx.mine.delete(room);
  ctx.write(text === undefined ? "* Message deleted" : "* Message edited");
}

/** /seen: who read our last message in the current room ("seen by 2: ann, ben"). */
async function seen(ctx: CommandContext): Promise<void> {
  const room = ctx.room;
  const seq = ctx.mine.get(room);
  const what = "Cannot tell who saw it";
  if (seq === undefined) {
    return ctx.write(`! ${what}: you have no message in ${label(ctx, room)} since you connected`);
  }
  const answer = await ask(ctx, what, (s) => s.seenBy(room, seq));
  if (!answer) return;
  const { users, count: readers } = answer.value;
  if (readers === 0) return ctx.write("* Nobody has seen your last message yet");
  const more = readers > users.length ? ` and ${readers - users.length} more` : "";
  ctx.write(`* Seen by ${readers}: ${users.map(sanitize).join(", ")}${more}`);
}

/** /topic <text>: sets the current room's topic (the server lets its owner and moderators); "-" takes it away. */
async function topic(ctx: CommandContext, text: string): Promise<void> {
  if (text === "") return ctx.write("! Usage: /topic <text>, or /topic - to take it away");
  const room = ctx.room;
  const answer = await ask(
    ctx,
    "Cannot set topic",
    (s) => s.setTopic(room, text === "-" ? "" : text),
  );
  if (!answer) return;
  const set = answer.value.topic;
  ctx.write(
    set
      ? `* Topic of ${label(ctx, room)}: ${sanitize(set)}`
      : `* ${label(ctx, room)} has no topic now`,
  );
}

/** /block <user> or /unblock <user> (`@ann` works too). */
async function block(ctx: CommandContext, blocking: boolean, typed: string): Promise<void> {
  const verb = blocking ? "block" : "unblock";
  const user = typed.replace(/^@/, "");
  if (user === "" || /\s/.test(user)) return ctx.write(`! Usage: /${verb} <user>`);
  const answer = await ask(ctx, `Cannot ${verb} user`, (s) => s.block(user, blocking));
  if (!answer) return;
  ctx.write(
    blocking
      ? `* Blocked ${sanitize(user)}: you see nothing more from them, and they cannot message you`
      : `* Unblocked ${sanitize(user)}`,
  );
}

/** /blocked: the users this user blocked. */
async function blocked(ctx: CommandContext): Promise<void> {
  const answer = await ask(ctx, "Cannot list blocked users", (s) => s.listBlocked());
  if (!answer) return;
  const users = answer.value;
  ctx.write(
    users.length === 0
      ? "* You blocked nobody"
      : `* Blocked (${users.length}): ${users.map(sanitize).join(", ")}`,
  );
}

/** /mod <user> or /unmod <user>: the owner makes a member of the current room a moderator, or not. */
async function setRole(ctx: CommandContext, user: string, moderator: boolean): Promise<void> {
  const usage = moderator ? "/mod <user>" : "/unmod <user>";
  if (user === "" || /\s/.test(user)) return ctx.write(`! Usage: ${usage}`);
  const room = ctx.room;
  const role = moderator ? "moderator" : "member";
  const answer = await ask(ctx, "Cannot set role", (s) => s.setRole(room, user, role));
  if (answer) ctx.write(`* ${sanitize(user)} is a ${role} of ${label(ctx, room)} now`);
}

/** /remove <user>: removes a member from the current room. */
async function remove(ctx: CommandContext, user: string): Promise<void> {
  if (user === "" || /\s/.test(user)) return ctx.write("! Usage: /remove <user>");
  const room = ctx.room;
  const answer = await ask(ctx, "Cannot remove member", (s) => s.removeMember(room, user));
  if (answer) ctx.write(`* ${sanitize(user)} was removed from ${label(ctx, room)}`);
}

/** The longest mute the server allows, in minutes (a week). */
const MUTE_MAX_MINUTES = 7 * 24 * 60;

/** /mute <user> <minutes> or /unmute <user>, in the current room. */
async function mute(ctx: CommandContext, argument: string, muting: boolean): Promise<void> {
  const [user = "", minutes = "", ...rest] = argument.split(/\s+/);
  const n = muting && /^\d+$/.test(minutes) ? Number(minutes) : muting ? NaN : 0;
  if (
    user === "" || rest.length > 0 || (!muting && minutes !== "") ||
    (muting && !(n >= 1 && n <= MUTE_MAX_MINUTES))
  ) {
    return ctx.write(
      muting
        ? `! Usage: /mute <user> <minutes>, minutes from 1 to ${MUTE_MAX_MINUTES} (a week)`
        : "! Usage: /unmute <user>",
    );
  }
  const room = ctx.room;
  const answer = await ask(
    ctx,
    muting ? "Cannot mute member" : "Cannot unmute member",
    (s) => s.muteMember(room, user, n * 60),
  );
  if (!answer) return;
  ctx.write(
    muting
      ? `* ${sanitize(user)} is muted in ${label(ctx, room)} for ${count(n, "minute")}`
      : `* ${sanitize(user)} may speak in ${label(ctx, room)} again`,
  );
}

/** /react <emoji>: toggles our reaction to the last message of the current room. */
async function react(ctx: CommandContext, emoji: string): Promise<void> {
  const room = ctx.room;
  const seq = ctx.latest.get(room);
  if (emoji === "") {
    return ctx.write(`! Usage: /react <emoji>, for example /react ${QUICK_REACTIONS.join(" ")}`);
  }
  if (seq === undefined) {
    return ctx.write(`! Cannot react: no message in ${label(ctx, room)} since you connected`);
  }
  const answer = await ask(ctx, "Cannot react", (s) => s.react(room, seq, emoji));
  if (answer) ctx.write(`* Reaction ${sanitize(emoji)} toggled on the last message`);
}

async function who(ctx: CommandContext): Promise<void> {
  const answer = await ask(ctx, "Cannot list users", (s) => s.listOnline());
  if (!answer) return;
  const users = answer.value;
  const names = users.map((u) => sanitize(formatUser(u.id, u.displayName)));
  ctx.write(`* Online (${users.length}): ${names.join(", ") || "nobody"}`);
}

async function rooms(ctx: CommandContext, argument: string): Promise<void> {
  const [first = "", ...words] = argument.trim().split(/\s+/);
  const all = first.toLowerCase() === "all";
  if (!all && first !== "") return ctx.write("! Usage: /rooms, or /rooms all [words]");
  const query = words.join(" ");
  const answer = await ask(ctx, "Cannot list rooms", (s) => s.listRooms(all, query));
  if (!answer) return;
  const me = ctx.session.user.id;
  const mine = (room: RoomInfo) =>
    all && room.id !== DEFAULT_ROOM && room.members.includes(me) ? " - joined" : "";
  const title = !all ? "Your rooms" : query ? `Rooms matching "${sanitize(query)}"` : "All rooms";
  ctx.write([
    `* ${title} (${answer.value.length}):`,
    ...answer.value.map((room) =>
      `  ${formatRoom(room, ctx.room, me, ...unreadOf(ctx.session, room))}${mine(room)}`
    ),
  ].join("\n"));
}

/**
 * The unread and mention counts of a listed room: the server's, unless this client has read the room up to
 * the listing's newest message meanwhile (its mark may still be on its way).
 */
function unreadOf(session: ChatSession, room: RoomInfo): [number, number] {
  return session.reading(room.id).readSeq >= room.lastSeq
    ? [0, 0]
    : [room.unread ?? 0, room.mentions ?? 0];
}

/**
 * `/room <room>`: only to a room of this user's, so that a line typed next is not refused and
 * lost; otherwise says what to do, and lines keep going where they went.
 */
function switchRoom(ctx: CommandContext, typed: string): void {
  const found = typed === "" ? ctx.room : findRoom(ctx.session, typed);
  if (found !== undefined) {
    ctx.room = found;
    return ctx.write(`* Lines you type go to ${label(ctx, found)}`);
  }
  const still = `; lines you type still go to ${label(ctx, ctx.room)}`;
  if (typed.startsWith("@")) {
    const user = sanitize(typed.slice(1));
    return ctx.write(`! You have no direct messages with ${user}: /dm ${user} first${still}`);
  }
  const room = sanitize(roomArgument(typed));
  ctx.write(
    ctx.session.connected
      ? `! You are not in #${room}: /join ${room} (or /create ${room}) first${still}`
      : `! Cannot write to #${room}: not connected, and it is not one of your rooms known so far; /room ${room} again once connected${still}`,
  );
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

async function leave(ctx: CommandContext, typed: string): Promise<void> {
  if (typed === "") return ctx.write("! Usage: /leave <room>");
  // As the room is stored (the server takes any case), so that it compares with ctx.room.
  const room = findRoom(ctx.session, typed);
  if (room === undefined && typed.startsWith("@")) {
    return ctx.write(
      `! Cannot leave: you have no direct messages with ${sanitize(typed.slice(1))}`,
    );
  }
  const id = room ?? roomArgument(typed);
  const invited = room === undefined &&
    ctx.session.invitations.some((r) => nameKey(r.id) === nameKey(id));
  ctx.leaving.add(id);
  if (!await ask(ctx, "Cannot leave room", (s) => s.leaveRoom(id))) {
    ctx.leaving.delete(id);
    return;
  }
  if (invited) return ctx.write(`* Declined the invitation to #${sanitize(id)}`);
  if (ctx.room === id) {
    ctx.room = DEFAULT_ROOM;
    ctx.write(`* Left ${label(ctx, id)}; lines you type go to #${DEFAULT_ROOM}`);
  } else {
    ctx.write(`* Left ${label(ctx, id)}`);
  }
}

async function direct(ctx: CommandContext, typed: string): Promise<void> {
  const userId = typed.replace(/^@/, "");
  if (userId === "") return ctx.write("! Usage: /dm <user>");
  // Already in it: no joining will come to silence.
  const known = findRoom(ctx.session, `@${userId}`) !== undefined;
  const key = nameKey(userId);
  ctx.openingDirect.add(key);
  const answer = await ask(ctx, "Cannot open direct messages", (s) => s.openDirect(userId));
  if (!answer || known) ctx.openingDirect.delete(key);
  if (!answer) return;
  const room = answer.value.id;
  ctx.room = room;
  const peer = sanitize(directPeer(room, ctx.session.user.id));
  ctx.write(`* Direct messages with ${peer}: lines you type go to @${peer}`);
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
  const { messages, more, events = [] } = answer.value;
  if (messages.length === 0) return ctx.write(`* No messages in ${label(ctx, room)} yet`);
  ctx.write(
    `* The last ${count(messages.length, "message")} of ${label(ctx, room)}${
      more ? " (older ones exist)" : ""
    }:`,
  );
  const me = ctx.session.user.id;
  const now = ctx.now();
  // The kept events (joins, leaves, moderation) among the messages, by time.
  const lines = [
    ...messages.map((m) => ({
      at: m.timestamp?.getTime() ?? 0,
      line: formatMessage(m, now, room, me),
    })),
    ...events.map((e) => ({
      at: e.at?.getTime() ?? 0,
      line: `* ${sanitize(describeRoomEvent(e, me, new Date(now)))}`,
    })),
  ].sort((a, b) => a.at - b.at);
  for (const { line } of lines) ctx.write(line);
  const newest = messages.at(-1)!.seq;
  if (newest > 0) ctx.session.markRead(room, newest);
}

/** /search <words>: the messages of all our rooms holding every word, each with its room. */
async function search(ctx: CommandContext, query: string): Promise<void> {
  if (query === "") return ctx.write("! Usage: /search <words>");
  const answer = await ask(ctx, "Cannot search", (s) => s.search(query));
  if (!answer) return;
  const found = answer.value;
  const quoted = `"${sanitize(query)}"`;
  if (found.length === 0) return ctx.write(`* Nothing found for ${quoted}`);
  ctx.write(`* ${count(found.length, "message")} found for ${quoted}, best first:`);
  const me = ctx.session.user.id;
  // As seen from no room: every line names the room it is in.
  for (const message of found) ctx.write(formatMessage(message, ctx.now(), "", me));
}

/** /private or /public: makes the current room invite-only or open (its owner and moderators). */
async function access(ctx: CommandContext, inviteOnly: boolean): Promise<void> {
  const room = ctx.room;
  const answer = await ask(
    ctx,
    "Cannot set room access",
    (s) => s.setRoomAccess(room, inviteOnly),
  );
  if (!answer) return;
  ctx.write(
    answer.value.inviteOnly
      ? `* ${label(ctx, room)} is invite-only: only its members and those you /invite may join`
      : `* ${label(ctx, room)} is open: anyone may join`,
  );
}

/** /invite <user>: invites someone to the current room (its owner and moderators). */
async function invite(ctx: CommandContext, typed: string): Promise<void> {
  const userId = typed.replace(/^@/, "");
  if (userId === "") return ctx.write("! Usage: /invite <user>");
  const room = ctx.room;
  if (await ask(ctx, "Cannot invite", (s) => s.invite(room, userId))) {
    ctx.write(`* Invited ${sanitize(userId)} to ${label(ctx, room)}`);
  }
}

/** /invites: the rooms we are invited to, newest first. */
async function invitations(ctx: CommandContext): Promise<void> {
  const answer = await ask(ctx, "Cannot list invitations", (s) => s.listInvitations());
  if (!answer) return;
  const rooms = answer.value;
  if (rooms.length === 0) return ctx.write("* You have no invitations");
  ctx.write([
    `* Your invitations (${rooms.length}):`,
    ...rooms.map((room) => {
      const id = sanitize(room.id);
      const about = [
        room.owner ? `from ${sanitize(room.owner)}` : "",
        room.inviteOnly ? "invite-only" : "",
        count(room.memberCount ?? room.members.length, "member"),
      ].filter((part) => part !== "").join(", ");
      return `  #${id} (${about}): /join ${id}, or /leave ${id} to decline`;
    }),
  ].join("\n"));
}
