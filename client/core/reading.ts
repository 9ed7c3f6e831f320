/**
 * What this user has read, as a session learns it: each room's read position and unread count
 * from the server's room listing (so badges are right at once after a reload or a reconnect),
 * then kept up to date by the messages that arrive, by this user's own marks, by read events
 * from their other devices, and, in a direct room, by the other person's ("seen").
 *
 * Marks go to the server through {@linkcode ReadMarks}: one call per room at a time, the newest
 * position winning, and what could not be sent goes again after the next connection.
 */

import { directPeer, isDirect } from "./rooms.ts";
import { type ChatMessage, codeOf, type RoomInfo } from "./model.ts";

/** One room's reading state as a client shows it. */
export interface RoomReading {
  /** The newest message this user read, on any device (0: none). */
  readonly readSeq: number;
  /** Messages from others after `readSeq`. */
  readonly unread: number;
  /** Of those, the ones that mention this user. */
  readonly mentions: number;
  /** In a direct room: the newest message the other person read, as heard live (0: not yet). */
  readonly seenSeq: number;
}

const NOTHING: RoomReading = { readSeq: 0, unread: 0, mentions: 0, seenSeq: 0 };

/** The most unread messages a room counts (the server counts among the newest 1000 too). */
export const UNREAD_COUNT_SHOWN = 1000;

interface Room {
  readSeq: number;
  seenSeq: number;
  /** What the last listing said: its newest message and how many of others' it counted. */
  listedLast: number;
  listedUnread: number;
  listedMentions: number;
  /** Others' messages that arrived after the listing, and those of them that mention this user. */
  newer: number[];
  newerMentions: number[];
}

export class Reading {
  readonly #rooms = new Map<string, Room>();

  /** `me()` is this user. */
  constructor(readonly me: () => string) {}

  get(room: string): RoomReading {
    const r = this.#rooms.get(room);
    return r
      ? {
        readSeq: r.readSeq,
        unread: this.#unread(r),
        mentions: this.#mentions(r),
        seenSeq: r.seenSeq,
      }
      : NOTHING;
  }

  /** Every room's state that is known, by room id. */
  all(): ReadonlyMap<string, RoomReading> {
    return new Map([...this.#rooms.keys()].map((id) => [id, this.get(id)]));
  }

  /** The server listed `rooms` (ListRooms, or a room joined): what it says is the truth now. */
  listed(rooms: readonly RoomInfo[]): void {
    for (const info of rooms) {
      if (info.readSeq === undefined) continue;
      const known = this.#rooms.get(info.id);
      // A mark of this device that is on its way is newer than the answer.
      const readSeq = Math.max(info.readSeq, known?.readSeq ?? 0);
      this.#rooms.set(info.id, {
        readSeq,
        seenSeq: known?.seenSeq ?? 0,
        listedLast: info.lastSeq,
        listedUnread: readSeq > info.readSeq
          ? Math.min(info.unread ?? 0, Math.max(0, info.lastSeq - readSeq))
          : info.unread ?? 0,
        listedMentions: readSeq > info.readSeq
          ? Math.min(info.mentions ?? 0, Math.max(0, info.lastSeq - readSeq))
          : info.mentions ?? 0,
        // What arrived live past the listing's newest message is not in its count: an answer
        // read before a message was stored can come after the message itself.
        newer: known?.newer.filter((s) => s > info.lastSeq) ?? [],
        newerMentions: known?.newerMentions.filter((s) => s > info.lastSeq) ?? [],
      });
    }
  }

  /** A live message, not seen before: one more unread if it is someone else's. */
  message(m: ChatMessage): boolean {
    if (m.userId === this.me() || m.seq === 0) return false;
    const r = this.#room(m.room);
    // A room's live messages come in order, each once.
    if (m.seq <= Math.max(r.readSeq, r.listedLast, r.newer.at(-1) ?? 0)) return false;
    r.newer.push(m.seq);
    if (m.mentions.includes(this.me())) r.newerMentions.push(m.seq);
    // The count stops where the server's does: a room never read stays cheap.
    if (r.newer.length > UNREAD_COUNT_SHOWN) r.newer.shift();
    if (r.newerMentions.length > UNREAD_COUNT_SHOWN) r.newerMentions.shift();
    return true;
  }

  /**
   * `userId` read `room` up to `seq`: this user (here or on another device) moves the position;
   * the other person of a direct room moves what they have seen. Whether anything changed.
   */
  read(room: string, userId: string, seq: number): boolean {
    const r = this.#room(room);
    if (userId === this.me()) {
      if (seq <= r.readSeq) return false;
      r.readSeq = seq;
      r.newer = r.newer.filter((s) => s > seq);
      r.newerMentions = r.newerMentions.filter((s) => s > seq);
      return true;
    }
    if (!isDirect(room) || directPeer(room, this.me()) !== userId || seq <= r.seenSeq) {
      return false;
    }
    r.seenSeq = seq;
    return true;
  }

  /** This user left `room`. */
  forget(room: string): void {
    this.#rooms.delete(room);
  }

  #room(room: string): Room {
    let r = this.#rooms.get(room);
    if (!r) {
      this.#rooms.set(
        room,
        r = {
          readSeq: 0,
          seenSeq: 0,
          listedLast: 0,
          listedUnread: 0,
          listedMentions: 0,
          newer: [],
          newerMentions: [],
        },
      );
    }
    return r;
  }

  /**
   * The listing's count, less what was read of it since (a bound: which of the listed messages
   * were others' is not known), plus the others' messages that came later.
   */
  #unread(r: Room): number {
    const listed = r.readSeq >= r.listedLast
      ? 0
      : Math.min(r.listedUnread, r.listedLast - r.readSeq);
    return listed + r.newer.filter((s) => s > r.readSeq).length;
  }

  /** The same for the messages that mention this user. */
  #mentions(r: Room): number {
    const listed = r.readSeq >= r.listedLast
      ? 0
      : Math.min(r.listedMentions, r.listedLast - r.readSeq);
    return listed + r.newerMentions.filter((s) => s > r.readSeq).length;
  }
}

/**
 * Sends this user's marks: one call per room at a time, and only the newest position waiting
 * behind it. A mark that fails waits for `resend` (the next connection).
 */
export class ReadMarks {
  readonly #send: (room: string, seq: number) => Promise<void>;
  /** The newest position wanted per room, until the server took it. */
  readonly #wanted = new Map<string, number>();
  readonly #busy = new Set<string>();

  constructor(send: (room: string, seq: number) => Promise<void>) {
    this.#send = send;
  }

  /** Marks `room` read up to `seq`. */
  mark(room: string, seq: number): void {
    if (seq <= (this.#wanted.get(room) ?? 0)) return;
    this.#wanted.set(room, seq);
    this.#next(room);
  }

  /** Sends again what the server has not taken (after a reconnect). */
  resend(): void {
    for (const room of this.#wanted.keys()) this.#next(room);
  }

  /** This user left `room`: nothing more to send for it. */
  forget(room: string): void {
    this.#wanted.delete(room);
  }

  #next(room: string): void {
    const seq = this.#wanted.get(room);
    if (seq === undefined || this.#busy.has(room)) return;
    this.#busy.add(room);
    this.#send(room, seq).then(
      () => {
        this.#busy.delete(room);
        if (this.#wanted.get(room) === seq) this.#wanted.delete(room);
        else this.#next(room);
      },
      (err) => {
        this.#busy.delete(room);
        // Not connected: kept for `resend`. Refused (the room was left): dropped.
        if (codeOf(err) !== "UNAVAILABLE" && this.#wanted.get(room) === seq) {
          this.#wanted.delete(room);
        }
      },
    );
  }
}
