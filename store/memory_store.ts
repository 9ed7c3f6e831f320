/** The in-memory store, for tests and for a process that keeps no history on disk. */

import { nameKey } from "../protocol/names.ts";
import { searchWords, wordsIn } from "../protocol/search.ts";
import type { ChatMessage, MessageChange } from "../core/types.ts";
import {
  type Account,
  applyChange,
  compareCodePoints,
  groupReactions,
  type HistoryQuery,
  type Invitation,
  type ReadPosition,
  type ReadState,
  type Room,
  searchKey,
  type Store,
  UNREAD_COUNT_MAX,
  withReactions,
} from "./store.ts";

export class MemoryStore implements Store {
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
  /** Room id → invited user id → the pending invitation. */
  readonly #invitations = new Map<string, Map<string, Invitation>>();

  append(message: ChatMessage): Promise<ChatMessage> {
    return Promise.resolve(this.#append(message));
  }

  appendAll(messages: readonly ChatMessage[]): Promise<ChatMessage[]> {
    return Promise.resolve(messages.map((message) => this.#append(message)));
  }

  message(room: string, seq: number): Promise<ChatMessage | undefined> {
    const stored = this.#rooms.get(room)?.[seq - 1];
    return Promise.resolve(stored && this.#reacted(room, [stored])[0]);
  }

  changeMessage(change: MessageChange): Promise<ChatMessage | undefined> {
    const log = this.#rooms.get(change.room);
    const stored = log?.[change.seq - 1];
    if (!log || !stored) return Promise.resolve(undefined);
    const changed = applyChange(stored, change);
    log[change.seq - 1] = changed;
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
    const stored = this.#rooms.get(room)?.[seq - 1];
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

  #append(message: ChatMessage): ChatMessage {
    let mine = this.#bySender.get(message.userId);
    const existing = mine?.get(message.id);
    if (existing) return existing;
    let log = this.#rooms.get(message.room);
    if (!log) this.#rooms.set(message.room, log = []);
    const stored = { ...message, seq: log.length + 1 };
    log.push(stored);
    if (!mine) this.#bySender.set(message.userId, mine = new Map());
    mine.set(stored.id, stored);
    return stored;
  }

  history(query: HistoryQuery): Promise<ChatMessage[]> {
    const log = this.#rooms.get(query.room) ?? [];
    const end = query.beforeSeq === undefined
      ? log.length
      : Math.min(log.length, query.beforeSeq - 1);
    const start = Math.max(0, end - query.limit);
    return Promise.resolve(
      this.#reacted(query.room, log.slice(start, Math.max(start, end)).reverse()),
    );
  }

  since(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]> {
    const log = this.#rooms.get(room) ?? [];
    return Promise.resolve(this.#reacted(room, log.slice(afterSeq, afterSeq + limit)));
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
    let rooms = this.#memberOf.get(userId);
    if (!rooms) this.#memberOf.set(userId, rooms = new Set());
    rooms.add(roomId);
    return Promise.resolve(true);
  }

  removeMember(roomId: string, userId: string): Promise<boolean> {
    const members = this.#members.get(roomId);
    if (!members?.delete(userId)) return Promise.resolve(false);
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
    return Promise.resolve(this.#rooms.get(roomId)?.length ?? 0);
  }

  markRead(roomId: string, userId: string, seq: number): Promise<number | undefined> {
    let mine = this.#readSeqs.get(userId);
    const next = Math.min(seq, this.#rooms.get(roomId)?.length ?? 0);
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
      const newest = log.slice(Math.max(readSeq, log.length - UNREAD_COUNT_MAX));
      const others = newest.filter((m) => m.userId !== userId);
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

  search(roomIds: readonly string[], query: string, limit: number): Promise<ChatMessage[]> {
    const words = searchWords(query);
    const max = Math.max(0, Math.trunc(limit));
    if (words.length === 0 || max === 0) return Promise.resolve([]);
    // Newest first: the memory store does not rank.
    const found = [...new Set(roomIds)].flatMap((room) =>
      (this.#rooms.get(room) ?? []).filter((m) => {
        if (m.deleted) return false;
        const own = wordsIn(m.content);
        return words.every((w) => own.has(w));
      })
    ).sort((a, b) => a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0);
    return Promise.resolve(found.slice(0, max));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
