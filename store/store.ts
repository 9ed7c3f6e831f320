/**
 * The storage port: chat history with per-room sequence numbers, and the accounts, rooms and
 * memberships that rooms, direct messages and sign-in build on.
 *
 * A room's sequence numbers (its messages' positions) increase but need not be dense: a message
 * may come with its position already given (its place in the room's log on the bus), and the
 * positions of one room may leave gaps between consecutive messages. No adapter and no caller may
 * count messages by subtracting positions or find one at "the previous position + 1".
 *
 * Adapters (memory, SQLite, PostgreSQL) are held to one contract suite,
 * `tests/store_contract.ts`.
 *
 * Lists of ids are sorted by Unicode code point (the byte order of their UTF-8, what SQLite's
 * BINARY and PostgreSQL's "C" collations give), the same in every adapter and every locale.
 *
 * Account and room ids are names people type: they are looked up without regard to case
 * (`nameKey` in protocol/names.ts), and each keeps the spelling it was created with. Two accounts or
 * rooms whose ids differ only by case cannot be created; ones a store held before it compared
 * without case stay reachable by their exact spelling, and the case-less name belongs to the
 * all-lower-case one among them, else to the oldest.
 */

import { ChatError, invalidArgument } from "../core/errors.ts";
import { nameKey } from "../protocol/names.ts";
import type { ChatMessage, MessageChange, Reaction, RoomEvent } from "../core/types.ts";

export interface HistoryQuery {
  readonly room: string;
  /** Only messages with a smaller sequence number; omitted means from the newest. */
  readonly beforeSeq?: number;
  readonly limit: number;
  /** The user reading: the messages of users they blocked ({@linkcode Store.setBlocked}) are left out. */
  readonly reader?: string;
}

export interface Account {
  readonly id: string;
  readonly displayName: string;
  readonly passwordHash: string;
  /** RFC 3339, kept exactly as given. */
  readonly createdAt: string;
}

export interface Room {
  readonly id: string;
  /** A direct-message room: never listed by {@linkcode Store.listRooms}. */
  readonly direct: boolean;
  readonly createdBy: string;
  /** RFC 3339, kept exactly as given. */
  readonly createdAt: string;
  /** What the room is about, set by its owner ({@linkcode Store.setTopic}); absent when none. */
  readonly topic?: string;
  /**
   * Only members and invited users may join ({@linkcode Store.setInviteOnly}); absent when anyone
   * may. Listed by {@linkcode Store.listRooms} only to its members.
   */
  readonly inviteOnly?: boolean;
}

/** A pending invitation: `userId` may join `roomId` (even an invite-only one) once. */
export interface Invitation {
  /** The room's stored spelling. */
  readonly roomId: string;
  readonly userId: string;
  readonly invitedBy: string;
  /** RFC 3339, kept exactly as given; the newest come first in {@linkcode Store.invitationsOf}. */
  readonly invitedAt: string;
}

/** Where a member is in a room: what they read, and how much from others came after it. */
export interface ReadState {
  readonly room: string;
  /** The newest message read (0: none). */
  readonly readSeq: number;
  /**
   * Messages of others after `readSeq`, counted among the newest {@linkcode UNREAD_COUNT_MAX};
   * those of users the member blocked do not count.
   */
  readonly unread: number;
  /** Of those, the ones that mention the member (`ChatMessage.mentions`). */
  readonly mentions: number;
}

/** How far one member read one room. */
export interface SeenBy {
  readonly userIds: string[];
  readonly count: number;
}

export interface ReadPosition {
  readonly room: string;
  readonly userId: string;
  readonly seq: number;
}

/** A member's role that is kept; the owner is the room's creator (`Room.createdBy`). */
export type MemberRole = "moderator" | "member";

/** A room event as kept: every stored event says when it happened. */
export type StoredRoomEvent = RoomEvent & { readonly at: string };

/** Which of a room's stored events to read: `after < at <= until`, the newest `limit` of them. */
export interface RoomEventSpan {
  /** RFC 3339; omitted: from the first. */
  readonly after?: string;
  /** RFC 3339; omitted: up to the newest. */
  readonly until?: string;
  readonly limit: number;
}

/**
 * The most messages an unread count looks at (the room's newest): a member who never read a long
 * room costs one bounded count, not a scan of its history. Clients show it as "1000+".
 */
export const UNREAD_COUNT_MAX = 1000;

export interface Store {
  /**
   * Stores a message at its position in the room: the `seq` it comes with when that is above 0
   * (the bus gave it), else the room's newest position + 1. Idempotent by sender and message id:
   * storing a message whose (userId, id) is stored already returns the first stored copy, with
   * its stored seq, whatever seq the repeat carries (a retried send). The same id from another
   * sender is another message.
   *
   * A given position that is not after the room's newest stored one (and is not a repeat) means
   * the room's log went backwards: refused with a `failed_precondition` {@linkcode ChatError}
   * ({@linkcode positionAfter}). A `seq` that is not a whole number from 0 to 2^53-1 is refused
   * as `invalid_argument`, repeat or not ({@linkcode checkPosition}).
   */
  append(message: ChatMessage): Promise<ChatMessage>;
  /**
   * `append` for several messages, in order, in one transaction: all are stored or none (a
   * refused one refuses the call). Positions given within the call must increase per room as
   * well. What the processor does with a run of messages from the bus.
   */
  appendAll(messages: readonly ChatMessage[]): Promise<ChatMessage[]>;
  /** Newest first. */
  history(query: HistoryQuery): Promise<ChatMessage[]>;
  /** Oldest first: the messages of `room` after `afterSeq`, at most `limit`. */
  since(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]>;
  /** The message at `seq` of `room`, or undefined (also for a position in a gap). */
  message(room: string, seq: number): Promise<ChatMessage | undefined>;
  /**
   * Applies an edit (new content and mentions, `editedAt` set) or a deletion (content and
   * mentions emptied, `deleted` set: the text is kept nowhere) to the stored message; returns it
   * as now stored, or undefined when there is none. A deleted message stays deleted: an edit of
   * it changes nothing (the caller sees `deleted` in what is returned).
   */
  changeMessage(change: MessageChange): Promise<ChatMessage | undefined>;
  /**
   * Adds `userId`'s reaction `emoji` to message `seq` of `room`, or takes it back when it is
   * there: true when added, false when taken back, undefined when there is no such message or it
   * was deleted (which takes its reactions with it). Messages come with their reactions.
   */
  toggleReaction(
    room: string,
    seq: number,
    userId: string,
    emoji: string,
  ): Promise<boolean | undefined>;

  /**
   * Creates the account if the id is free, in any case; returns the stored account and whether
   * this call created it. Atomic: two concurrent creations of one id (or of two spellings of
   * it) → exactly one `created: true`.
   */
  createAccount(account: Account): Promise<{ account: Account; created: boolean }>;
  /** The account with this id: the exact spelling, else the one that owns it without case. */
  getAccount(id: string): Promise<Account | undefined>;
  /** Creates the room if the id is free, in any case; same semantics as createAccount. */
  createRoom(room: Room): Promise<{ room: Room; created: boolean }>;
  /** The room with this id: the exact spelling, else the one that owns it without case. */
  getRoom(id: string): Promise<Room | undefined>;
  /**
   * Adds a member; false when already a member. The store checks neither that the room was
   * created nor that the user has an account: the caller does. Memberships, like messages, name
   * rooms and users by their stored spelling (the caller resolves a typed name first).
   */
  addMember(roomId: string, userId: string): Promise<boolean>;
  /** Removes a member; false when not a member. */
  removeMember(roomId: string, userId: string): Promise<boolean>;
  isMember(roomId: string, userId: string): Promise<boolean>;
  /** Member user ids, sorted. */
  members(roomId: string): Promise<string[]>;
  /** The rooms a user is a member of, sorted by id (only rooms that were created). */
  roomsOf(userId: string): Promise<Room[]>;
  /**
   * Rooms that are not direct, sorted by id, at most `limit`; with a `search`, only those whose
   * id or topic holds it, without regard to case ({@linkcode searchKey}). An invite-only room is
   * listed only when `viewer` is a member of it.
   */
  listRooms(limit: number, search?: string, viewer?: string): Promise<Room[]>;
  /**
   * Sets the topic of the room stored as `roomId` (its exact spelling; "" takes it away) and
   * returns the room as now stored, or undefined when there is no such room. A new room has none.
   */
  setTopic(roomId: string, topic: string): Promise<Room | undefined>;
  /**
   * Makes the room stored as `roomId` (its exact spelling) invite-only or open and returns it as
   * now stored, or undefined when there is no such room. A new room is open.
   */
  setInviteOnly(roomId: string, inviteOnly: boolean): Promise<Room | undefined>;
  /**
   * Stores a pending invitation; false when `userId` is invited to the room already (the first
   * invitation stays). Like memberships, the store checks neither the room nor the user.
   */
  invite(invitation: Invitation): Promise<boolean>;
  /** Drops `userId`'s invitation to `roomId` (used up, or declined); false when there was none. */
  uninvite(roomId: string, userId: string): Promise<boolean>;
  /** Whether `userId` has a pending invitation to `roomId`. */
  isInvited(roomId: string, userId: string): Promise<boolean>;
  /** How many pending invitations `roomId` has. */
  invitationCount(roomId: string): Promise<number>;
  /**
   * The rooms `userId` has pending invitations to (only rooms that were created), newest
   * invitation first (then by room id), at most `limit`.
   */
  invitationsOf(userId: string, limit: number): Promise<Room[]>;
  /** How many members each of `roomIds` has, in that order, in one query whatever their number. */
  memberCounts(roomIds: readonly string[]): Promise<number[]>;
  /** The highest sequence number stored in a room (0 when empty). */
  lastSeq(roomId: string): Promise<number>;

  /**
   * Moves `userId`'s read position in `roomId` forward to `seq`, capped at the room's newest
   * message. Returns the new position, or undefined when it did not move (`seq` is not past the
   * stored one, or the room is empty). Like memberships, the store does not check that the user
   * is a member.
   */
  markRead(roomId: string, userId: string, seq: number): Promise<number | undefined>;
  /**
   * `userId`'s read state in each of `roomIds` (any rooms, the default one too), in that order,
   * in one query whatever their number.
   */
  readStates(userId: string, roomIds: readonly string[]): Promise<ReadState[]>;
  /**
   * Every read position kept in `roomIds`, by room and then user, in one query: for direct rooms,
   * where a member may see how far the other read.
   */
  readPositions(roomIds: readonly string[]): Promise<ReadPosition[]>;
  /**
   * Who read message `seq` of `roomId`: the users whose read position there is at `seq` or
   * later, other than its sender; with `membersOnly`, only members of the room who joined no
   * later than the message was sent (a newcomer's position starts at the newest message, which
   * says nothing of older ones). `count` is all of them, `userIds` the first `limit` (at least 1) by id. In
   * one query; nobody when there is no such message.
   */
  seenBy(roomId: string, seq: number, limit: number, membersOnly: boolean): Promise<SeenBy>;

  /**
   * The messages of `roomIds` that contain every word of `query` (its `searchWords`, protocol/search.ts),
   * without regard to case, best first (each adapter ranks its own way), at most `limit`, without
   * their reactions. Deleted messages are never found, edited ones by their new text only. A
   * query without words finds nothing; no query is an error. With a `reader`, the messages of
   * users they blocked are not found.
   */
  search(
    roomIds: readonly string[],
    query: string,
    limit: number,
    reader?: string,
  ): Promise<ChatMessage[]>;

  /**
   * `userId` blocks `blockedId` (`blocked` true) or unblocks them; true when that changed what
   * is stored. Like memberships, the store checks neither account: the caller does.
   */
  setBlocked(userId: string, blockedId: string, blocked: boolean): Promise<boolean>;
  /** The users `userId` blocked, sorted. */
  blockedBy(userId: string): Promise<string[]>;
  /** Whether `userId` blocked `otherId`. */
  isBlocked(userId: string, otherId: string): Promise<boolean>;

  /**
   * Makes `userId` a moderator of `roomId`, or ("member") takes that away; true when it changed.
   * Like memberships, the store checks neither the room nor the user.
   */
  setRole(roomId: string, userId: string, role: MemberRole): Promise<boolean>;
  /** The moderators of `roomId`, sorted. */
  moderators(roomId: string): Promise<string[]>;
  /** Mutes `userId` in `roomId` until `until` (RFC 3339), or lifts the mute (undefined). */
  setMute(roomId: string, userId: string, until: string | undefined): Promise<void>;
  /** When `userId`'s mute in `roomId` ends (RFC 3339, maybe past), or undefined when none is kept. */
  mutedUntil(roomId: string, userId: string): Promise<string | undefined>;
  /** Keeps a room event (joined, left, created, and the moderation actions). */
  addRoomEvent(event: StoredRoomEvent): Promise<void>;
  /** The stored events of `roomId` in `span`, oldest first (ties in the order kept). */
  roomEvents(roomId: string, span: RoomEventSpan): Promise<StoredRoomEvent[]>;

  close(): Promise<void>;
}

/**
 * The position `message` (its `seq` passed {@linkcode checkPosition}) is stored at when its
 * room's newest stored position is `newest`: its own `seq` when given, else `newest + 1`. A given
 * position not after `newest` means the room's log went backwards (its topic recreated, say):
 * the store's state does not fit, the record is not bad, so the refusal is `failed_precondition`:
 * not `invalid_argument`, which would have the bus set the record aside and go on past the
 * mismatch, nor `unavailable`, which says a wait will mend it. Callers check for a repeat (same
 * sender and id) first: a repeat returns its stored copy whatever it carries.
 */
export function positionAfter(message: ChatMessage, newest: number): number {
  if (message.seq === 0) return newest + 1;
  if (message.seq > newest) return message.seq;
  throw logWentBack(message, newest);
}

/**
 * Refuses a `seq` that is not a position at all (a whole number from 0 to 2^53-1), before
 * anything of the call is looked up or stored.
 */
export function checkPosition(message: ChatMessage): void {
  if (Number.isSafeInteger(message.seq) && message.seq >= 0) return;
  throw invalidArgument(
    `Cannot store message ${message.id} in room ${message.room}: position ${message.seq} is not a whole number from 0 to 2^53-1`,
  );
}

/** The refusal of a position given to `message` that is not after its room's `newest`. */
export function logWentBack(message: ChatMessage, newest: number): ChatError {
  return new ChatError(
    "failed_precondition",
    `Cannot store message ${message.id} in room ${message.room}: position ${message.seq} is not after the room's newest, ${newest}; the room log went backwards (was the topic recreated? Then raise KAFKA_LOG_EPOCH)`,
  );
}

/** `event`'s kind as the SQL adapters keep it: its action, or created, joined or left. */
export function roomEventKind(event: RoomEvent): string {
  return event.action ?? (event.created ? "created" : event.joined ? "joined" : "left");
}

/** `message` as `change` leaves it (what every adapter stores); a deleted one stays as it is. */
export function applyChange(message: ChatMessage, change: MessageChange): ChatMessage {
  if (message.deleted) return message;
  const { mentions: _mentions, editedAt: _editedAt, ...kept } = message;
  if (change.deleted) {
    const { reactions: _reactions, ...rest } = kept;
    return { ...rest, content: "", deleted: true };
  }
  return {
    ...kept,
    content: change.content,
    ...(change.mentions?.length ? { mentions: change.mentions } : {}),
    editedAt: change.at,
  };
}

/**
 * Reactions as rows (message, emoji, user), oldest first, grouped: each emoji once, placed by its
 * oldest row, with its users in the order they reacted. Keyed by sequence number.
 */
export function groupReactions(
  rows: readonly { seq: number | string; emoji: string; user_id: string }[],
): Map<number, Reaction[]> {
  const bySeq = new Map<number, Map<string, string[]>>();
  for (const row of rows) {
    const seq = Number(row.seq);
    let emojis = bySeq.get(seq);
    if (!emojis) bySeq.set(seq, emojis = new Map());
    const users = emojis.get(row.emoji);
    if (users) users.push(row.user_id);
    else emojis.set(row.emoji, [row.user_id]);
  }
  return new Map(
    [...bySeq].map((
      [seq, emojis],
    ) => [seq, [...emojis].map(([emoji, users]) => ({ emoji, users }))]),
  );
}

/** `messages` (of one room) with the reactions `bySeq` holds for them. */
export function withReactions(
  messages: ChatMessage[],
  bySeq: ReadonlyMap<number, Reaction[]>,
): ChatMessage[] {
  if (bySeq.size === 0) return messages;
  return messages.map((m) => {
    const reactions = bySeq.get(m.seq);
    return reactions ? { ...m, reactions } : m;
  });
}

/**
 * The form a room's id, its topic and a directory search are compared in: without case, by
 * JavaScript's Unicode rules, so every adapter folds alike whatever its database's locale.
 */
export function searchKey(text: string): string {
  return text.toLowerCase();
}

/**
 * Compares two strings by Unicode code point, as the SQL adapters sort (JavaScript's default
 * sort compares UTF-16 code units, which puts U+E000..U+FFFF after the astral planes).
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Moves surrogates (astral code points) above U+E000..U+FFFF, keeping every other order. */
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/**
 * The `nameKey` each of `rows` (accounts or rooms) is indexed by, when a store that compared ids
 * exactly starts comparing them without case: the all-lower-case spelling among ids that differ
 * only by case owns the case-less key, else the oldest (by creation time, then id). The others
 * keep their exact id as key, which no other name folds to (a key is lower case), so they stay
 * reachable by exactly their spelling and nothing is lost.
 */
export function legacyNameKeys(
  rows: readonly { id: string; createdAt: string }[],
): Map<string, string> {
  const groups = new Map<string, { id: string; createdAt: string }[]>();
  for (const row of rows) {
    const key = nameKey(row.id);
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  const keys = new Map<string, string>();
  for (const [key, group] of groups) {
    const owner = group.find((row) => row.id === key) ??
      [...group].sort((a, b) =>
        a.createdAt < b.createdAt
          ? -1
          : a.createdAt > b.createdAt
          ? 1
          : compareCodePoints(a.id, b.id)
      )[0]!;
    for (const row of group) keys.set(row.id, row === owner ? key : row.id);
  }
  return keys;
}
