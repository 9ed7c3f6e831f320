/**
 * The in-memory store, for tests and for a process that keeps no history on disk.
 *
 * A room's messages are kept in an array sorted by seq; positions may leave gaps, so a message is
 * found by binary search over it, never by its seq as an index.
 */

import { nameKey } from "../protocol/names.ts";
import { searchWords, wordsIn } from "../protocol/search.ts";
import type { ChatMessage, MessageChange } from "../core/types.ts";
import {
  type Account,
  applyChange,
  checkPosition,
  compareCodePoints,
  groupReactions,
  type HistoryQuery,
  type Invitation,
  type MemberRole,
  positionAfter,
  type ReadPosition,
  type ReadState,
  type Room,
  type RoomEventSpan,
  searchKey,
  type SeenBy,
  type Store,
  type StoredRoomEvent,
  UNREAD_COUNT_MAX,
  withReactions,
} from "./store.ts";

export class MemoryStore implements Store {
  /** Room id → its messages, by seq. */
  readonly #rooms = new Map<string, ChatMessage[]>();
  /** Sender's user id → message id → the stored message. */
  readonly #bySender = new Map<string, Map<string, ChatMessage>>();
  /** By `nameKey` of the id: ids compare without regard to case. */
  readonly #accounts = new Map<string, Account>();
  /** By `nameKey` of the id. */
  readonly #roomRecords = new Map<string, Room>();
  /** Room id → member user ids. */
  readonly #members = new Map<string, Set<string>>();
  /** User id → the room ids they are a member of. */
  readonly #memberOf = new Map<string, Set<string>>();
  /** Room id → its reactions, one row per message, emoji and user, oldest first. */
  readonly #reactions = new Map<string, { seq: number; emoji: string; user_id: string }[]>();
  /** User id → room id → read position. */
  readonly #readSeqs = new Map<string, Map<string, number>>();
  /** `room\0user` → when the member joined (ISO). */
  readonly #joinedAt = new Map<string, string>();
  /** User id → the user ids they blocked. */
  readonly #blocked = new Map<string, Set<string>>();
  /** Room id → its moderators. */
  readonly #moderators = new Map<string, Set<string>>();
  /** Room id → user id → when the mute ends. */
  readonly #mutes = new Map<string, Map<string, string>>();
  /** Room id → its events, in the order kept. */
  readonly #events = new Map<string, StoredRoomEvent[]>();
  /** Room id → invited user id → the pending invitation. */
  readonly #invitations = new Map<string, Map<string, Invitation>>();

  async append(message: ChatMessage): Promise<ChatMessage> {
    return (await this.appendAll([message]))[0]!;
  }

  appendAll(messages: readonly ChatMessage[]): Promise<ChatMessage[]> {
    const added: ChatMessage[] = [];
    try {
      for (const message of messages) checkPosition(message);
      return Promise.resolve(messages.map((message) => this.#append(message, added)));
    } catch (error) {
      // All or none: what this call added is each room's newest, taken off newest first.
      for (const stored of added.reverse()) {
        this.#rooms.get(stored.room)!.pop();
        this.#bySender.get(stored.userId)!.delete(stored.id);
      }
      return Promise.reject(error);
    }
  }

  message(room: string, seq: number): Promise<ChatMessage | undefined> {
    const stored = this.#find(room, seq)?.stored;
    return Promise.resolve(stored && this.#reacted(room, [stored])[0]);
  }

  /** The message at `seq` of `room` and its index in the room's array, or undefined. */
  #find(
    room: string,
    seq: number,
  ): { log: ChatMessage[]; at: number; stored: ChatMessage } | undefined {
    const log = this.#rooms.get(room) ?? [];
    const at = firstIndex(log, (m) => m.seq >= seq);
    const stored = log[at];
    return stored?.seq === seq ? { log, at, stored } : undefined;
  }

  changeMessage(change: MessageChange): Promise<ChatMessage | undefined> {
    const found = this.#find(change.room, change.seq);
    if (!found) return Promise.resolve(undefined);
    const { log, at, stored } = found;
    const changed = applyChange(stored, change);
    log[at] = changed;
    this.#bySender.get(stored.userId)?.set(stored.id, changed);
    if (changed.deleted) {
      const rows = this.#reactions.get(change.room);
      if (rows) this.#reactions.set(change.room, rows.filter((r) => r.seq !== change.seq));
    }
    return Promise.resolve(this.#reacted(change.room, [changed])[0]);
  }

  toggleReaction(
    room: string,
    seq: number,
    userId: string,
    emoji: string,
  ): Promise<boolean | undefined> {
    const stored = this.#find(room, seq)?.stored;
    if (!stored || stored.deleted) return Promise.resolve(undefined);
    let rows = this.#reactions.get(room);
    if (!rows) this.#reactions.set(room, rows = []);
    const at = rows.findIndex((r) => r.seq === seq && r.emoji === emoji && r.user_id === userId);
    if (at >= 0) rows.splice(at, 1);
    else rows.push({ seq, emoji, user_id: userId });
    return Promise.resolve(at < 0);
  }

  /** `messages` of `room` with their reactions. */
  #reacted(room: string, messages: ChatMessage[]): ChatMessage[] {
    const seqs = new Set(messages.map((m) => m.seq));
    const rows = (this.#reactions.get(room) ?? []).filter((r) => seqs.has(r.seq));
    return withReactions(messages, groupReactions(rows));
  }

  /** Stores `message` (noting it in `added`) unless it is a repeat; throws when it is refused. */
  #append(message: ChatMessage, added: ChatMessage[]): ChatMessage {
    let mine = this.#bySender.get(message.userId);
    const existing = mine?.get(message.id);
    if (existing) return existing;
    let log = this.#rooms.get(message.room);
    if (!log) this.#rooms.set(message.room, log = []);
    const stored = { ...message, seq: positionAfter(message, log.at(-1)?.seq ?? 0) };
    log.push(stored);
    added.push(stored);
    if (!mine) this.#bySender.set(message.userId, mine = new Map());
    mine.set(stored.id, stored);
    return stored;
  }

  history(query: HistoryQuery): Promise<ChatMessage[]> {
    const log = this.#rooms.get(query.room) ?? [];
    const hidden = this.#hiddenFor(query.reader);
    const beforeSeq = query.beforeSeq;
    const end = beforeSeq === undefined ? log.length : firstIndex(log, (m) => m.seq >= beforeSeq);
    const page: ChatMessage[] = [];
    for (let i = end - 1; i >= 0 && page.length < query.limit; i--) {
      if (!hidden.has(log[i]!.userId)) page.push(log[i]!);
    }
    return Promise.resolve(this.#reacted(query.room, page));
  }

  since(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]> {
    const log = this.#rooms.get(room) ?? [];
    const start = firstIndex(log, (m) => m.seq > afterSeq);
    return Promise.resolve(this.#reacted(room, log.slice(start, start + limit)));
  }

  createAccount(account: Account): Promise<{ account: Account; created: boolean }> {
    const existing = this.#accounts.get(nameKey(account.id));
    if (existing) return Promise.resolve({ account: { ...existing }, created: false });
    const stored: Account = {
      id: account.id,
      displayName: account.displayName,
      passwordHash: account.passwordHash,
      createdAt: account.createdAt,
    };
    this.#accounts.set(nameKey(stored.id), stored);
    return Promise.resolve({ account: { ...stored }, created: true });
  }

  getAccount(id: string): Promise<Account | undefined> {
    const account = this.#accounts.get(nameKey(id));
    return Promise.resolve(account && { ...account });
  }

  createRoom(room: Room): Promise<{ room: Room; created: boolean }> {
    const existing = this.#roomRecords.get(nameKey(room.id));
    if (existing) return Promise.resolve({ room: { ...existing }, created: false });
    const stored: Room = {
      id: room.id,
      direct: room.direct,
      createdBy: room.createdBy,
      createdAt: room.createdAt,
    };
    this.#roomRecords.set(nameKey(stored.id), stored);
    return Promise.resolve({ room: { ...stored }, created: true });
  }

  getRoom(id: string): Promise<Room | undefined> {
    const room = this.#roomRecords.get(nameKey(id));
    return Promise.resolve(room && { ...room });
  }

  addMember(roomId: string, userId: string): Promise<boolean> {
    let members = this.#members.get(roomId);
    if (!members) this.#members.set(roomId, members = new Set());
    if (members.has(userId)) return Promise.resolve(false);
    members.add(userId);
    this.#joinedAt.set(`${roomId}\0${userId}`, new Date().toISOString());
    let rooms = this.#memberOf.get(userId);
    if (!rooms) this.#memberOf.set(userId, rooms = new Set());
    rooms.add(roomId);
    return Promise.resolve(true);
  }

  removeMember(roomId: string, userId: string): Promise<boolean> {
    const members = this.#members.get(roomId);
    if (!members?.delete(userId)) return Promise.resolve(false);
    this.#joinedAt.delete(`${roomId}\0${userId}`);
    if (members.size === 0) this.#members.delete(roomId);
    const rooms = this.#memberOf.get(userId);
    rooms?.delete(roomId);
    if (rooms?.size === 0) this.#memberOf.delete(userId);
    return Promise.resolve(true);
  }

  isMember(roomId: string, userId: string): Promise<boolean> {
    return Promise.resolve(this.#members.get(roomId)?.has(userId) ?? false);
  }

  members(roomId: string): Promise<string[]> {
    return Promise.resolve([...this.#members.get(roomId) ?? []].sort(compareCodePoints));
  }

  roomsOf(userId: string): Promise<Room[]> {
    const rooms: Room[] = [];
    for (const id of this.#memberOf.get(userId) ?? []) {
      const room = this.#roomRecords.get(nameKey(id));
      // Memberships name rooms by their stored spelling.
      if (room?.id === id) rooms.push({ ...room });
    }
    return Promise.resolve(rooms.sort((a, b) => compareCodePoints(a.id, b.id)));
  }

  listRooms(limit: number, search = "", viewer?: string): Promise<Room[]> {
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0) return Promise.resolve([]);
    const wanted = searchKey(search);
    const rooms = [...this.#roomRecords.values()].filter((room) =>
      !room.direct &&
      (!room.inviteOnly ||
        (viewer !== undefined && (this.#members.get(room.id)?.has(viewer) ?? false))) &&
      (searchKey(room.id).includes(wanted) || searchKey(room.topic ?? "").includes(wanted))
    ).sort((a, b) => compareCodePoints(a.id, b.id));
    return Promise.resolve(rooms.slice(0, max).map((room) => ({ ...room })));
  }

  setTopic(roomId: string, topic: string): Promise<Room | undefined> {
    const key = nameKey(roomId);
    const room = this.#roomRecords.get(key);
    if (room?.id !== roomId) return Promise.resolve(undefined);
    const { topic: _old, ...rest } = room;
    const stored: Room = topic === "" ? rest : { ...rest, topic };
    this.#roomRecords.set(key, stored);
    return Promise.resolve({ ...stored });
  }

  setInviteOnly(roomId: string, inviteOnly: boolean): Promise<Room | undefined> {
    const key = nameKey(roomId);
    const room = this.#roomRecords.get(key);
    if (room?.id !== roomId) return Promise.resolve(undefined);
    const { inviteOnly: _old, ...rest } = room;
    const stored: Room = inviteOnly ? { ...rest, inviteOnly: true } : rest;
    this.#roomRecords.set(key, stored);
    return Promise.resolve({ ...stored });
  }

  invite(invitation: Invitation): Promise<boolean> {
    let invited = this.#invitations.get(invitation.roomId);
    if (!invited) this.#invitations.set(invitation.roomId, invited = new Map());
    if (invited.has(invitation.userId)) return Promise.resolve(false);
    invited.set(invitation.userId, { ...invitation });
    return Promise.resolve(true);
  }

  uninvite(roomId: string, userId: string): Promise<boolean> {
    const invited = this.#invitations.get(roomId);
    if (!invited?.delete(userId)) return Promise.resolve(false);
    if (invited.size === 0) this.#invitations.delete(roomId);
    return Promise.resolve(true);
  }

  isInvited(roomId: string, userId: string): Promise<boolean> {
    return Promise.resolve(this.#invitations.get(roomId)?.has(userId) ?? false);
  }

  invitationCount(roomId: string): Promise<number> {
    return Promise.resolve(this.#invitations.get(roomId)?.size ?? 0);
  }

  invitationsOf(userId: string, limit: number): Promise<Room[]> {
    const max = Math.max(0, Math.trunc(limit));
    const mine: { room: Room; at: string }[] = [];
    for (const [roomId, invited] of this.#invitations) {
      const invitation = invited.get(userId);
      const room = this.#roomRecords.get(nameKey(roomId));
      if (invitation && room?.id === roomId) mine.push({ room, at: invitation.invitedAt });
    }
    mine.sort((a, b) =>
      a.at < b.at ? 1 : a.at > b.at ? -1 : compareCodePoints(a.room.id, b.room.id)
    );
    return Promise.resolve(mine.slice(0, max).map(({ room }) => ({ ...room })));
  }

  memberCounts(roomIds: readonly string[]): Promise<number[]> {
    return Promise.resolve(roomIds.map((id) => this.#members.get(id)?.size ?? 0));
  }

  lastSeq(roomId: string): Promise<number> {
    return Promise.resolve(this.#rooms.get(roomId)?.at(-1)?.seq ?? 0);
  }

  markRead(roomId: string, userId: string, seq: number): Promise<number | undefined> {
    let mine = this.#readSeqs.get(userId);
    const next = Math.min(seq, this.#rooms.get(roomId)?.at(-1)?.seq ?? 0);
    if (next <= (mine?.get(roomId) ?? 0)) return Promise.resolve(undefined);
    if (!mine) this.#readSeqs.set(userId, mine = new Map());
    mine.set(roomId, next);
    return Promise.resolve(next);
  }

  readStates(userId: string, roomIds: readonly string[]): Promise<ReadState[]> {
    const mine = this.#readSeqs.get(userId);
    return Promise.resolve(roomIds.map((room) => {
      const readSeq = mine?.get(room) ?? 0;
      const log = this.#rooms.get(room) ?? [];
      const unreadFrom = firstIndex(log, (m) => m.seq > readSeq);
      const newest = log.slice(Math.max(unreadFrom, log.length - UNREAD_COUNT_MAX));
      const hidden = this.#hiddenFor(userId);
      const others = newest.filter((m) => m.userId !== userId && !hidden.has(m.userId));
      return {
        room,
        readSeq,
        unread: others.length,
        mentions: others.filter((m) => m.mentions?.includes(userId)).length,
      };
    }));
  }

  readPositions(roomIds: readonly string[]): Promise<ReadPosition[]> {
    const rooms = new Set(roomIds);
    const positions: ReadPosition[] = [];
    for (const [userId, mine] of this.#readSeqs) {
      for (const [room, seq] of mine) if (rooms.has(room)) positions.push({ room, userId, seq });
    }
    return Promise.resolve(
      positions.sort((a, b) =>
        compareCodePoints(a.room, b.room) || compareCodePoints(a.userId, b.userId)
      ),
    );
  }

  seenBy(roomId: string, seq: number, limit: number, membersOnly: boolean): Promise<SeenBy> {
    const message = this.#find(roomId, seq)?.stored;
    const readers: string[] = [];
    for (const [userId, mine] of message ? this.#readSeqs : []) {
      if ((mine.get(roomId) ?? 0) < seq || userId === message!.userId) continue;
      const joinedAt = this.#joinedAt.get(`${roomId}\0${userId}`);
      if (membersOnly && (joinedAt === undefined || joinedAt > message!.timestamp)) continue;
      readers.push(userId);
    }
    readers.sort(compareCodePoints);
    return Promise.resolve({
      userIds: readers.slice(0, Math.max(1, limit)),
      count: readers.length,
    });
  }

  search(
    roomIds: readonly string[],
    query: string,
    limit: number,
    reader?: string,
  ): Promise<ChatMessage[]> {
    const words = searchWords(query);
    const max = Math.max(0, Math.trunc(limit));
    if (words.length === 0 || max === 0) return Promise.resolve([]);
    const hidden = this.#hiddenFor(reader);
    // Newest first: the memory store does not rank.
    const found = [...new Set(roomIds)].flatMap((room) =>
      (this.#rooms.get(room) ?? []).filter((m) => {
        if (m.deleted || hidden.has(m.userId)) return false;
        const own = wordsIn(m.content);
        return words.every((w) => own.has(w));
      })
    ).sort((a, b) => a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0);
    return Promise.resolve(found.slice(0, max));
  }

  setBlocked(userId: string, blockedId: string, blocked: boolean): Promise<boolean> {
    let mine = this.#blocked.get(userId);
    if (!blocked) return Promise.resolve(mine?.delete(blockedId) ?? false);
    if (mine?.has(blockedId)) return Promise.resolve(false);
    if (!mine) this.#blocked.set(userId, mine = new Set());
    mine.add(blockedId);
    return Promise.resolve(true);
  }

  blockedBy(userId: string): Promise<string[]> {
    return Promise.resolve([...this.#hiddenFor(userId)].sort(compareCodePoints));
  }

  isBlocked(userId: string, otherId: string): Promise<boolean> {
    return Promise.resolve(this.#hiddenFor(userId).has(otherId));
  }

  /** The senders `reader` blocked (none without a reader). */
  #hiddenFor(reader: string | undefined): ReadonlySet<string> {
    return (reader === undefined ? undefined : this.#blocked.get(reader)) ?? NOBODY;
  }

  setRole(roomId: string, userId: string, role: MemberRole): Promise<boolean> {
    let mods = this.#moderators.get(roomId);
    if (role === "member") return Promise.resolve(mods?.delete(userId) ?? false);
    if (!mods) this.#moderators.set(roomId, mods = new Set());
    const changed = !mods.has(userId);
    mods.add(userId);
    return Promise.resolve(changed);
  }

  moderators(roomId: string): Promise<string[]> {
    return Promise.resolve([...this.#moderators.get(roomId) ?? []].sort(compareCodePoints));
  }

  setMute(roomId: string, userId: string, until: string | undefined): Promise<void> {
    let mutes = this.#mutes.get(roomId);
    if (until === undefined) mutes?.delete(userId);
    else {
      if (!mutes) this.#mutes.set(roomId, mutes = new Map());
      mutes.set(userId, until);
    }
    return Promise.resolve();
  }

  mutedUntil(roomId: string, userId: string): Promise<string | undefined> {
    return Promise.resolve(this.#mutes.get(roomId)?.get(userId));
  }

  addRoomEvent(event: StoredRoomEvent): Promise<void> {
    let events = this.#events.get(event.room);
    if (!events) this.#events.set(event.room, events = []);
    events.push({ ...event });
    return Promise.resolve();
  }

  roomEvents(roomId: string, span: RoomEventSpan): Promise<StoredRoomEvent[]> {
    const max = Math.max(0, Math.trunc(span.limit));
    if (max === 0) return Promise.resolve([]);
    const inSpan = (this.#events.get(roomId) ?? []).map((e, i) => ({ e, i })).filter(({ e }) =>
      (span.after === undefined || e.at > span.after) &&
      (span.until === undefined || e.at <= span.until)
    ).sort((a, b) => a.e.at < b.e.at ? -1 : a.e.at > b.e.at ? 1 : a.i - b.i);
    return Promise.resolve(inSpan.slice(-max).map(({ e }) => ({ ...e })));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const NOBODY: ReadonlySet<string> = new Set();

/** The first index of `log` (by seq) whose message passes `from`; all after it pass too. */
function firstIndex(log: readonly ChatMessage[], from: (message: ChatMessage) => boolean): number {
  let low = 0;
  let high = log.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (from(log[mid]!)) high = mid;
    else low = mid + 1;
  }
  return low;
}
