/**
 * What the SQL stores (SQLite and PostgreSQL) share: their tables' rows mapped to the port's
 * records, and the check that refuses text their columns cannot hold.
 *
 * Neither can keep a NUL character: SQLite's TEXT reads stop at it (the rest would be cut off
 * silently), PostgreSQL's text refuses it with a wire error. So a write that holds one is refused
 * up front, naming the field ({@linkcode refuseNul}); no stored id holds one, so a lookup by such
 * an id can answer "none" without asking ({@linkcode hasNul}).
 */

import { invalidArgument } from "../core/errors.ts";
import type { ChatMessage } from "../core/types.ts";
import type { Account, Room } from "./store.ts";

/** A row of `messages`; `seq` is a bigint column, which a driver may hand over as text. */
export interface MessageRow {
  room: string;
  seq: number | string;
  id: string;
  user_id: string;
  display_name: string;
  content: string;
  timestamp: string;
  /** A JSON array in SQLite, an array in PostgreSQL; NULL when the message mentions nobody. */
  mentions?: string | string[] | null;
  edited_at?: string | null;
  /** 0 or 1 in SQLite, a boolean in PostgreSQL. */
  deleted?: number | boolean;
}

export interface AccountRow {
  id: string;
  display_name: string;
  password_hash: string;
  created_at: string;
}

/** A row of `rooms`; `direct` is a boolean in PostgreSQL, 0 or 1 in SQLite. */
export interface RoomRow {
  id: string;
  direct: boolean | number;
  created_by: string;
  created_at: string;
  /** '' when none (schema version 8 on). */
  topic: string;
  /** 0 or 1 in SQLite, a boolean in PostgreSQL (schema version 12 on). */
  invite_only: boolean | number;
}

export function toMessage(row: MessageRow): ChatMessage {
  return {
    id: row.id,
    userId: row.user_id,
    displayName: row.display_name,
    content: row.content,
    timestamp: row.timestamp,
    room: row.room,
    seq: Number(row.seq),
    ...(row.mentions ? { mentions: mentionsOf(row.mentions) } : {}),
    ...(row.edited_at ? { editedAt: row.edited_at } : {}),
    ...(Number(row.deleted ?? 0) === 1 ? { deleted: true } : {}),
  };
}

function mentionsOf(column: string | string[]): string[] {
  return typeof column === "string" ? JSON.parse(column) as string[] : column;
}

export function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    displayName: row.display_name,
    passwordHash: row.password_hash,
    createdAt: row.created_at,
  };
}

export function toRoom(row: RoomRow): Room {
  return {
    id: row.id,
    direct: Number(row.direct) === 1,
    createdBy: row.created_by,
    createdAt: row.created_at,
    ...(row.topic ? { topic: row.topic } : {}),
    ...(Number(row.invite_only) === 1 ? { inviteOnly: true } : {}),
  };
}

/** Whether any of `values` holds a NUL character, which no stored text can. */
export function hasNul(...values: string[]): boolean {
  return values.some((value) => value.includes("\u0000"));
}

/** Refuses a NUL character in any of `fields`, naming the field: "Cannot {action}: ...". */
export function refuseNul(action: string, fields: Record<string, string>): void {
  for (const [field, value] of Object.entries(fields)) {
    if (hasNul(value)) {
      throw invalidArgument(`Cannot ${action}: ${field} contains a NUL character`);
    }
  }
}

/** Refuses a message to store with a NUL character in any of its text fields. */
export function refuseNulInMessage(message: ChatMessage): void {
  refuseNul("store message", {
    id: message.id,
    userId: message.userId,
    displayName: message.displayName,
    content: message.content,
    timestamp: message.timestamp,
    room: message.room,
    ...Object.fromEntries((message.mentions ?? []).map((id, i) => [`mentions[${i}]`, id])),
  });
}

/** Refuses an account to create with a NUL character in any of its fields. */
export function refuseNulInAccount(account: Account): void {
  refuseNul("create account", {
    id: account.id,
    displayName: account.displayName,
    passwordHash: account.passwordHash,
    createdAt: account.createdAt,
  });
}

/** Refuses a room to create with a NUL character in any of its text fields. */
export function refuseNulInRoom(room: Room): void {
  refuseNul("create room", { id: room.id, createdBy: room.createdBy, createdAt: room.createdAt });
}
