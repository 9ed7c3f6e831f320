/**
 * The PostgreSQL store, through `npm:postgres` (a pool of connections per store).
 *
 * Sequence numbers come from a counter row per room (`room_seqs.last_seq`, the room's newest
 * position; the table was `rooms` in schema version 1): an append moves it (to the position the
 * message comes with, else one past it) and inserts the message in one transaction (a run of
 * messages: one transaction, a savepoint each), so concurrent appenders (in any number of
 * processes) queue on that row. A given position that is not after the counter does not move it,
 * and the message is refused unless it is a repeat. When the message id is already stored, its
 * savepoint is rolled back (the counter with it) and the stored copy is returned.
 *
 * Positions are `bigint` columns, which the driver reads back as text: `Number` of it is exact up
 * to 2^53-1, the most a position may be.
 *
 * Accounts, rooms and memberships live in tables `accounts`, `rooms` and `members` (schema version
 * 2). Their id columns use the "C" collation, so that ids sort by code point whatever the
 * database's locale, as in the other stores. Since version 3 accounts and rooms are also found by
 * `name_key` (the id without case, computed by protocol/names.ts `nameKey`, unique), and a message is
 * unique per (user_id, id): a message id is the sender's, not the world's. Since version 4 a
 * message keeps whom it mentions (`mentions`), since version 5 when it was edited and whether it
 * was deleted (`edited_at`, `deleted`), since version 6 its reactions (`reactions`), and since
 * version 7 each member's read position per room is kept in `read_positions`. Since version 8 a
 * room has a topic
 * (`topic`), and its id and topic folded by `searchKey` (`id_key`, `topic_key`) for the
 * directory's search, folded in JavaScript so that it matches the other stores in any locale.
 * Since version 9 each message's
 * words in `search` (a tsvector of its content with the "simple" configuration: no stemming, no
 * stop words, as SQLite's FTS5 finds them), generated from the content so that an edit or a
 * deletion (content emptied) changes it in the same statement, with a GIN index. Since version 10
 * rooms keep their moderators (`room_roles`) and mutes (`room_mutes`), since version 11 their
 * events (`room_events`: joined, left, removed, muted, role and topic changes). Since version
 * 13 each user's blocked users (`blocks`), whose messages their history, search and unread
 * counts leave out.
 * Since version 12 a room may be invite-only (`invite_only`) and `invitations` keeps the pending
 * invitations.
 *
 * Timestamps are kept as text, exactly as given (RFC 3339), like the other stores.
 */

import postgres from "postgres";
import { maskUrl } from "../core/url_secrets.ts";
import type { ChatMessage, MessageChange } from "../core/types.ts";
import { type Logger, silentLogger } from "../core/logger.ts";
import { nameKey } from "../protocol/names.ts";
import { searchWords } from "../protocol/search.ts";
import {
  type AccountRow,
  hasNul,
  type MessageRow,
  refuseNul,
  refuseNulInAccount,
  refuseNulInMessage,
  refuseNulInRoom,
  type RoomRow,
  toAccount,
  toMessage,
  toRoom,
} from "./rows.ts";
import {
  ROOM_EVENT_COLUMNS,
  type RoomEventRow,
  roomEventValues,
  toRoomEvent,
} from "./room_event_rows.ts";
import {
  type Account,
  checkPosition,
  groupReactions,
  type HistoryQuery,
  type Invitation,
  legacyNameKeys,
  logWentBack,
  type MemberRole,
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

/** The schema version this code writes (table `store_schema`); bump it with a migration. */
export const POSTGRES_SCHEMA_VERSION = 13;

/** Migration N brings a schema from version N-1 to N; index 0 is version 1. */
const MIGRATIONS: readonly (string | ((q: postgres.TransactionSql) => Promise<void>))[] = [
  `CREATE TABLE IF NOT EXISTS rooms (
     room     text   PRIMARY KEY,
     last_seq bigint NOT NULL
   );
   CREATE TABLE IF NOT EXISTS messages (
     room         text   NOT NULL,
     seq          bigint NOT NULL,
     id           text   NOT NULL UNIQUE,
     user_id      text   NOT NULL,
     display_name text   NOT NULL,
     content      text   NOT NULL,
     timestamp    text   NOT NULL,
     PRIMARY KEY (room, seq)
   );`,
  // 2: accounts, rooms and membership. The name `rooms` goes to the room records, so the
  // sequence counters move to `room_seqs` (rows and all; a version-1 process still running
  // fails its appends loudly rather than writing elsewhere).
  `ALTER TABLE rooms RENAME TO room_seqs;
   ALTER TABLE room_seqs RENAME CONSTRAINT rooms_pkey TO room_seqs_pkey;
   CREATE TABLE accounts (
     id            text COLLATE "C" PRIMARY KEY,
     display_name  text NOT NULL,
     password_hash text NOT NULL,
     created_at    text NOT NULL
   );
   CREATE TABLE rooms (
     id         text COLLATE "C" PRIMARY KEY,
     direct     boolean NOT NULL,
     created_by text    NOT NULL,
     created_at text    NOT NULL
   );
   CREATE INDEX rooms_listed ON rooms (id) WHERE NOT direct;
   CREATE TABLE members (
     room_id   text COLLATE "C" NOT NULL,
     user_id   text COLLATE "C" NOT NULL,
     joined_at text NOT NULL,
     PRIMARY KEY (room_id, user_id)
   );
   CREATE INDEX members_user_id ON members (user_id, room_id);`,
  // 3: a message id is unique per sender (another user's id is no reason to drop a message),
  // and accounts and rooms are found without regard to case.
  async (q) => {
    await q.unsafe(`
      ALTER TABLE messages DROP CONSTRAINT messages_id_key;
      ALTER TABLE messages ADD CONSTRAINT messages_user_id_id_key UNIQUE (user_id, id);
      ALTER TABLE accounts ADD COLUMN name_key text COLLATE "C";
      ALTER TABLE rooms ADD COLUMN name_key text COLLATE "C";`);
    for (const table of ["accounts", "rooms"]) {
      const rows = await q<{ id: string; created_at: string }[]>`
        SELECT id, created_at FROM ${q(table)}`;
      const keys = legacyNameKeys(rows.map((r) => ({ id: r.id, createdAt: r.created_at })));
      for (const [id, key] of keys) {
        await q`UPDATE ${q(table)} SET name_key = ${key} WHERE id = ${id}`;
      }
      await q.unsafe(`
        ALTER TABLE ${table} ALTER COLUMN name_key SET NOT NULL;
        CREATE UNIQUE INDEX ${table}_name_key ON ${table} (name_key);`);
    }
  },
  // 4: whom a message mentions (NULL: nobody).
  `ALTER TABLE messages ADD COLUMN mentions text[]`,
  // 5: edited and deleted messages.
  `ALTER TABLE messages ADD COLUMN edited_at text,
                       ADD COLUMN deleted boolean NOT NULL DEFAULT false`,
  // 6: reactions, one row per message, emoji and user; the id keeps the order they came in.
  `CREATE TABLE reactions (
     id      bigserial PRIMARY KEY,
     room    text   NOT NULL,
     seq     bigint NOT NULL,
     emoji   text   NOT NULL,
     user_id text   COLLATE "C" NOT NULL,
     UNIQUE (room, seq, emoji, user_id)
   )`,
  // 7: read positions, one row per user and room they marked read.
  `CREATE TABLE read_positions (
     user_id text COLLATE "C" NOT NULL,
     room_id text COLLATE "C" NOT NULL,
     seq     bigint NOT NULL,
     PRIMARY KEY (user_id, room_id)
   );
   CREATE INDEX read_positions_room_id ON read_positions (room_id, user_id);`,
  // 8: a room's topic, and its id and topic folded by searchKey for the directory's search.
  async (q) => {
    await q.unsafe(`
      ALTER TABLE rooms ADD COLUMN topic text NOT NULL DEFAULT '',
                        ADD COLUMN topic_key text NOT NULL DEFAULT '',
                        ADD COLUMN id_key text NOT NULL DEFAULT '';`);
    for (const { id } of await q<{ id: string }[]>`SELECT id FROM rooms`) {
      await q`UPDATE rooms SET id_key = ${searchKey(id)} WHERE id = ${id}`;
    }
  },
  // 9: full-text search.
  `ALTER TABLE messages ADD COLUMN search tsvector
     GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, content)) STORED;
   CREATE INDEX messages_search ON messages USING GIN (search);`,
  // 10: room roles (the owner is the creator; moderators are kept) and mutes.
  `CREATE TABLE room_roles (
     room_id text COLLATE "C" NOT NULL,
     user_id text COLLATE "C" NOT NULL,
     role    text NOT NULL,
     PRIMARY KEY (room_id, user_id)
   );
   CREATE TABLE room_mutes (
     room_id text COLLATE "C" NOT NULL,
     user_id text COLLATE "C" NOT NULL,
     until   text NOT NULL,
     PRIMARY KEY (room_id, user_id)
   );`,
  // 11: room events (joined, left, removed, muted, roles, topics), read by time for history.
  `CREATE TABLE room_events (
     id           bigserial PRIMARY KEY,
     room_id      text COLLATE "C" NOT NULL,
     kind         text NOT NULL,
     user_id      text NOT NULL,
     display_name text NOT NULL,
     actor_id     text NOT NULL,
     actor_name   text NOT NULL,
     detail       text,
     until        text,
     at           text COLLATE "C" NOT NULL
   );
   CREATE INDEX room_events_room_at ON room_events (room_id, at);`,
  // 12: invite-only rooms and pending invitations.
  `ALTER TABLE rooms ADD COLUMN invite_only boolean NOT NULL DEFAULT false;
   CREATE TABLE invitations (
     room_id    text COLLATE "C" NOT NULL,
     user_id    text COLLATE "C" NOT NULL,
     invited_by text NOT NULL,
     invited_at text NOT NULL,
     PRIMARY KEY (room_id, user_id)
   );
   CREATE INDEX invitations_user_id ON invitations (user_id, invited_at);`,
  // 13: blocked users, one row per blocker and blocked user.
  `CREATE TABLE blocks (
     user_id    text COLLATE "C" NOT NULL,
     blocked_id text COLLATE "C" NOT NULL,
     PRIMARY KEY (user_id, blocked_id)
   );`,
];

export interface PostgresStoreOptions {
  /**
   * A schema to keep the tables in (created if missing), instead of the connection's default
   * search path; tests use one per run. Lower-case letters, digits and `_`.
   */
  schema?: string;
  /** Connections in the pool; default 10. */
  max?: number;
  logger?: Logger;
}

/**
 * `url` with its passwords replaced, for messages and logs: user-info and query parameters, as
 * the start-up banner shows it (core/config.ts `maskUrl`).
 */
export function redactUrl(url: string): string {
  return maskUrl(url);
}

/** What a room read back holds. */
const ROOM_COLUMNS = "id, direct, created_by, created_at, topic, invite_only";

const MESSAGE_COLUMNS =
  "room, seq, id, user_id, display_name, content, timestamp, mentions, edited_at, deleted";

/** {@linkcode ROOM_COLUMNS} of the table aliased `alias`. */
function roomColumnsOf(alias: string): string {
  return ROOM_COLUMNS.split(", ").map((c) => `${alias}.${c}`).join(", ");
}

/**
 * Thrown inside an append's savepoint to roll it back when the id is already stored, or (for a
 * position not after the room's newest) may be: either way the stored copy is looked for.
 */
class AlreadyStored extends Error {}

export class PostgresStore implements Store {
  /** Connects to `url` (a `postgres://` URL) and creates the schema if it is missing. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const logger = options.logger ?? silentLogger;
    const schema = options.schema;
    if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new Error(
        `Cannot open PostgreSQL store: schema "${schema}" is not lower-case letters, digits and _`,
      );
    }
    const sql = postgres(url, {
      max: options.max ?? 10,
      onnotice: (notice) => logger.debug("PostgreSQL notice", { message: notice.message }),
      ...(schema === undefined ? {} : { connection: { search_path: schema } }),
    });
    try {
      await migrate(sql, schema, logger);
    } catch (error) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw new Error(
        `Cannot open PostgreSQL store at ${redactUrl(url)}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
    return new PostgresStore(sql);
  }

  readonly #sql: postgres.Sql;
  #closed = false;

  private constructor(sql: postgres.Sql) {
    this.#sql = sql;
  }

  async append(message: ChatMessage): Promise<ChatMessage> {
    return (await this.appendAll([message]))[0]!;
  }

  async appendAll(messages: readonly ChatMessage[]): Promise<ChatMessage[]> {
    this.#open("append");
    for (const message of messages) {
      refuseNulInMessage(message);
      checkPosition(message);
    }
    if (messages.length === 0) return [];
    return await this.#sql.begin(async (q) => {
      const stored: ChatMessage[] = [];
      for (const message of messages) {
        const given = message.seq;
        try {
          // A savepoint per message: one already stored rolls back its own counter move, not
          // the others'. A given position moves the counter only forward; not moving it says the
          // position is not after the room's newest.
          stored.push(
            await q.savepoint(async (sp) => {
              const [counter] = given === 0
                ? await sp<{ last_seq: string }[]>`
                  INSERT INTO room_seqs (room, last_seq) VALUES (${message.room}, 1)
                  ON CONFLICT (room) DO UPDATE SET last_seq = room_seqs.last_seq + 1
                  RETURNING last_seq`
                : await sp<{ last_seq: string }[]>`
                  INSERT INTO room_seqs (room, last_seq) VALUES (${message.room}, ${given})
                  ON CONFLICT (room) DO UPDATE SET last_seq = EXCLUDED.last_seq
                  WHERE room_seqs.last_seq < EXCLUDED.last_seq
                  RETURNING last_seq`;
              if (!counter) throw new AlreadyStored();
              const seq = Number(counter.last_seq);
              const inserted = await sp`
                INSERT INTO messages (room, seq, id, user_id, display_name, content, timestamp,
                                      mentions)
                VALUES (${message.room}, ${seq}, ${message.id}, ${message.userId},
                        ${message.displayName}, ${message.content}, ${message.timestamp},
                        ${message.mentions?.length ? [...message.mentions] : null})
                ON CONFLICT (user_id, id) DO NOTHING
                RETURNING seq`;
              if (inserted.length === 0) throw new AlreadyStored();
              return { ...message, seq };
            }),
          );
        } catch (error) {
          if (!(error instanceof AlreadyStored)) throw error;
          // The sender stored this id already (in this run, or a concurrent append committed by now).
          const [row] = await q<MessageRow[]>`
            SELECT room, seq, id, user_id, display_name, content, timestamp, mentions, edited_at, deleted
            FROM messages WHERE user_id = ${message.userId} AND id = ${message.id}`;
          if (row) {
            stored.push(toMessage(row));
            continue;
          }
          if (given === 0) {
            throw new Error(
              `Cannot append message ${message.id}: it conflicted but cannot be read`,
            );
          }
          // Not a repeat: the room's log went backwards. The whole run is refused.
          const [counter] = await q<{ last_seq: string }[]>`
            SELECT last_seq FROM room_seqs WHERE room = ${message.room}`;
          throw logWentBack(message, Number(counter?.last_seq ?? 0));
        }
      }
      return stored;
    });
  }

  async history(query: HistoryQuery): Promise<ChatMessage[]> {
    this.#open("read history");
    const limit = Math.max(0, Math.trunc(query.limit));
    if (limit === 0) return [];
    // No user id is empty: without a reader nothing is left out.
    const hidden = this.#notBlocked(query.reader ?? "");
    const rows = query.beforeSeq === undefined
      ? await this.#sql<MessageRow[]>`
          SELECT room, seq, id, user_id, display_name, content, timestamp, mentions, edited_at, deleted FROM messages
          WHERE room = ${query.room} AND ${hidden} ORDER BY seq DESC LIMIT ${limit}`
      : await this.#sql<MessageRow[]>`
          SELECT room, seq, id, user_id, display_name, content, timestamp, mentions, edited_at, deleted FROM messages
          WHERE room = ${query.room} AND seq < ${query.beforeSeq} AND ${hidden}
          ORDER BY seq DESC LIMIT ${limit}`;
    return await this.#reacted(query.room, rows.map(toMessage));
  }

  async since(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]> {
    this.#open("read history");
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0) return [];
    const rows = await this.#sql<MessageRow[]>`
      SELECT room, seq, id, user_id, display_name, content, timestamp, mentions, edited_at, deleted FROM messages
      WHERE room = ${room} AND seq > ${afterSeq} ORDER BY seq ASC LIMIT ${max}`;
    return await this.#reacted(room, rows.map(toMessage));
  }

  async message(room: string, seq: number): Promise<ChatMessage | undefined> {
    this.#open("read message");
    const [row] = await this.#sql<MessageRow[]>`
      SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM messages
      WHERE room = ${room} AND seq = ${seq}`;
    return row && (await this.#reacted(room, [toMessage(row)]))[0];
  }

  async toggleReaction(
    room: string,
    seq: number,
    userId: string,
    emoji: string,
  ): Promise<boolean | undefined> {
    this.#open("react");
    refuseNul("react", { userId, emoji });
    return await this.#sql.begin(async (q) => {
      // Locks the message, so that a deletion cannot slip between the check and the insert.
      const [message] = await q<{ deleted: boolean }[]>`
        SELECT deleted FROM messages WHERE room = ${room} AND seq = ${seq} FOR UPDATE`;
      if (!message || message.deleted) return undefined;
      const gone = await q`
        DELETE FROM reactions
        WHERE room = ${room} AND seq = ${seq} AND emoji = ${emoji} AND user_id = ${userId}`;
      if (gone.count === 1) return false;
      await q`
        INSERT INTO reactions (room, seq, emoji, user_id)
        VALUES (${room}, ${seq}, ${emoji}, ${userId})`;
      return true;
    });
  }

  /** `messages` of `room` with their reactions, read in one query. */
  async #reacted(room: string, messages: ChatMessage[]): Promise<ChatMessage[]> {
    if (messages.length === 0) return messages;
    const seqs = messages.map((m) => m.seq);
    const rows = await this.#sql<{ seq: string; emoji: string; user_id: string }[]>`
      SELECT seq, emoji, user_id FROM reactions
      WHERE room = ${room} AND seq BETWEEN ${Math.min(...seqs)} AND ${Math.max(...seqs)}
      ORDER BY id`;
    return withReactions(messages, groupReactions(rows));
  }

  async changeMessage(change: MessageChange): Promise<ChatMessage | undefined> {
    this.#open("change message");
    refuseNul("change message", {
      content: change.content,
      ...Object.fromEntries((change.mentions ?? []).map((id, i) => [`mentions[${i}]`, id])),
    });
    // The old row version holding the text is dead at once and gone once vacuum prunes it.
    const [row] = change.deleted
      ? await this.#sql.begin(async (q) => {
        await q`DELETE FROM reactions WHERE room = ${change.room} AND seq = ${change.seq}`;
        return await q<MessageRow[]>`
          UPDATE messages SET content = '', mentions = NULL, edited_at = NULL, deleted = true
          WHERE room = ${change.room} AND seq = ${change.seq}
          RETURNING ${q.unsafe(MESSAGE_COLUMNS)}`;
      })
      : await this.#sql<MessageRow[]>`
          UPDATE messages SET content = ${change.content},
            mentions = ${change.mentions?.length ? [...change.mentions] : null},
            edited_at = ${change.at}
          WHERE room = ${change.room} AND seq = ${change.seq} AND NOT deleted
          RETURNING ${this.#sql.unsafe(MESSAGE_COLUMNS)}`;
    return row
      ? (await this.#reacted(change.room, [toMessage(row)]))[0]
      : await this.message(change.room, change.seq);
  }

  async createAccount(account: Account): Promise<{ account: Account; created: boolean }> {
    this.#open("create account");
    refuseNulInAccount(account);
    // A taken id or name key (another spelling of it) is a conflict: nothing is inserted.
    const [inserted] = await this.#sql<AccountRow[]>`
      INSERT INTO accounts (id, display_name, password_hash, created_at, name_key)
      VALUES (${account.id}, ${account.displayName}, ${account.passwordHash}, ${account.createdAt},
              ${nameKey(account.id)})
      ON CONFLICT DO NOTHING
      RETURNING id, display_name, password_hash, created_at`;
    if (inserted) return { account: toAccount(inserted), created: true };
    // Taken: DO NOTHING waited for a concurrent creator to commit, so this statement sees its row.
    const stored = await this.getAccount(account.id);
    if (!stored) {
      throw new Error(`Cannot create account ${account.id}: it conflicted but cannot be read`);
    }
    return { account: stored, created: false };
  }

  async getAccount(id: string): Promise<Account | undefined> {
    this.#open("read account");
    if (hasNul(id)) return undefined;
    // The exact spelling first (a case variant kept from before version 3), else the case-less key.
    const [row] = await this.#sql<AccountRow[]>`
      SELECT id, display_name, password_hash, created_at FROM accounts
      WHERE id = ${id} OR name_key = ${nameKey(id)} ORDER BY id = ${id} DESC LIMIT 1`;
    return row && toAccount(row);
  }

  async createRoom(room: Room): Promise<{ room: Room; created: boolean }> {
    this.#open("create room");
    refuseNulInRoom(room);
    const [inserted] = await this.#sql<RoomRow[]>`
      INSERT INTO rooms (id, direct, created_by, created_at, name_key, id_key)
      VALUES (${room.id}, ${room.direct}, ${room.createdBy}, ${room.createdAt}, ${nameKey(room.id)},
              ${searchKey(room.id)})
      ON CONFLICT DO NOTHING
      RETURNING ${this.#sql.unsafe(ROOM_COLUMNS)}`;
    if (inserted) return { room: toRoom(inserted), created: true };
    const stored = await this.getRoom(room.id);
    if (!stored) throw new Error(`Cannot create room ${room.id}: it conflicted but cannot be read`);
    return { room: stored, created: false };
  }

  async getRoom(id: string): Promise<Room | undefined> {
    this.#open("read room");
    if (hasNul(id)) return undefined;
    const [row] = await this.#sql<RoomRow[]>`
      SELECT ${this.#sql.unsafe(ROOM_COLUMNS)} FROM rooms
      WHERE id = ${id} OR name_key = ${nameKey(id)} ORDER BY id = ${id} DESC LIMIT 1`;
    return row && toRoom(row);
  }

  async addMember(roomId: string, userId: string): Promise<boolean> {
    this.#open("add member");
    refuseNul("add member", { roomId, userId });
    const inserted = await this.#sql`
      INSERT INTO members (room_id, user_id, joined_at)
      VALUES (${roomId}, ${userId}, ${new Date().toISOString()})
      ON CONFLICT DO NOTHING
      RETURNING 1`;
    return inserted.length === 1;
  }

  async removeMember(roomId: string, userId: string): Promise<boolean> {
    this.#open("remove member");
    if (hasNul(roomId, userId)) return false;
    const deleted = await this.#sql`
      DELETE FROM members WHERE room_id = ${roomId} AND user_id = ${userId} RETURNING 1`;
    return deleted.length === 1;
  }

  async isMember(roomId: string, userId: string): Promise<boolean> {
    this.#open("read members");
    if (hasNul(roomId, userId)) return false;
    const rows = await this.#sql`
      SELECT 1 FROM members WHERE room_id = ${roomId} AND user_id = ${userId}`;
    return rows.length === 1;
  }

  async members(roomId: string): Promise<string[]> {
    this.#open("read members");
    if (hasNul(roomId)) return [];
    const rows = await this.#sql<{ user_id: string }[]>`
      SELECT user_id FROM members WHERE room_id = ${roomId} ORDER BY user_id`;
    return rows.map((row) => row.user_id);
  }

  async roomsOf(userId: string): Promise<Room[]> {
    this.#open("read rooms");
    if (hasNul(userId)) return [];
    const rows = await this.#sql<RoomRow[]>`
      SELECT ${this.#sql.unsafe(roomColumnsOf("r"))}
      FROM members m JOIN rooms r ON r.id = m.room_id
      WHERE m.user_id = ${userId} ORDER BY r.id`;
    return rows.map(toRoom);
  }

  async listRooms(limit: number, search = "", viewer?: string): Promise<Room[]> {
    this.#open("list rooms");
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0 || hasNul(search)) return [];
    const wanted = searchKey(search);
    // A viewer with a NUL is nobody's member: no invite-only room for them.
    const member = viewer === undefined || hasNul(viewer) ? null : viewer;
    // strpos, not LIKE: a search holding '%' or '_' means those characters.
    const rows = await this.#sql<RoomRow[]>`
      SELECT ${this.#sql.unsafe(ROOM_COLUMNS)} FROM rooms
      WHERE NOT direct
        AND (${wanted} = '' OR strpos(id_key, ${wanted}) > 0 OR strpos(topic_key, ${wanted}) > 0)
        AND (NOT invite_only OR EXISTS (
          SELECT 1 FROM members WHERE room_id = rooms.id AND user_id = ${member}::text))
      ORDER BY id LIMIT ${max}`;
    return rows.map(toRoom);
  }

  async setTopic(roomId: string, topic: string): Promise<Room | undefined> {
    this.#open("set topic");
    refuseNul("set topic", { roomId, topic });
    const [row] = await this.#sql<RoomRow[]>`
      UPDATE rooms SET topic = ${topic}, topic_key = ${searchKey(topic)} WHERE id = ${roomId}
      RETURNING ${this.#sql.unsafe(ROOM_COLUMNS)}`;
    return row && toRoom(row);
  }

  async setInviteOnly(roomId: string, inviteOnly: boolean): Promise<Room | undefined> {
    this.#open("set room access");
    if (hasNul(roomId)) return undefined;
    const [row] = await this.#sql<RoomRow[]>`
      UPDATE rooms SET invite_only = ${inviteOnly} WHERE id = ${roomId}
      RETURNING ${this.#sql.unsafe(ROOM_COLUMNS)}`;
    return row && toRoom(row);
  }

  async invite(invitation: Invitation): Promise<boolean> {
    this.#open("invite");
    refuseNul("invite", { ...invitation });
    const inserted = await this.#sql`
      INSERT INTO invitations (room_id, user_id, invited_by, invited_at)
      VALUES (${invitation.roomId}, ${invitation.userId}, ${invitation.invitedBy},
              ${invitation.invitedAt})
      ON CONFLICT DO NOTHING
      RETURNING 1`;
    return inserted.length === 1;
  }

  async uninvite(roomId: string, userId: string): Promise<boolean> {
    this.#open("drop invitation");
    if (hasNul(roomId, userId)) return false;
    const deleted = await this.#sql`
      DELETE FROM invitations WHERE room_id = ${roomId} AND user_id = ${userId} RETURNING 1`;
    return deleted.length === 1;
  }

  async isInvited(roomId: string, userId: string): Promise<boolean> {
    this.#open("read invitations");
    if (hasNul(roomId, userId)) return false;
    const rows = await this.#sql`
      SELECT 1 FROM invitations WHERE room_id = ${roomId} AND user_id = ${userId}`;
    return rows.length === 1;
  }

  async invitationCount(roomId: string): Promise<number> {
    this.#open("read invitations");
    if (hasNul(roomId)) return 0;
    const [row] = await this.#sql<{ n: string }[]>`
      SELECT COUNT(*) AS n FROM invitations WHERE room_id = ${roomId}`;
    return Number(row?.n ?? 0);
  }

  async invitationsOf(userId: string, limit: number): Promise<Room[]> {
    this.#open("read invitations");
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0 || hasNul(userId)) return [];
    const rows = await this.#sql<RoomRow[]>`
      SELECT ${this.#sql.unsafe(roomColumnsOf("r"))}
      FROM invitations i JOIN rooms r ON r.id = i.room_id
      WHERE i.user_id = ${userId} ORDER BY i.invited_at DESC, r.id LIMIT ${max}`;
    return rows.map(toRoom);
  }

  async memberCounts(roomIds: readonly string[]): Promise<number[]> {
    this.#open("read members");
    if (roomIds.length === 0) return [];
    if (hasNul(...roomIds)) return roomIds.map(() => 0);
    const rows = await this.#sql<{ n: string }[]>`
      SELECT (SELECT COUNT(*) FROM members WHERE room_id = r.room) AS n
      FROM unnest(${roomIds as string[]}::text[]) WITH ORDINALITY AS r(room, i)
      ORDER BY r.i`;
    return rows.map((r) => Number(r.n));
  }

  async lastSeq(roomId: string): Promise<number> {
    this.#open("read history");
    if (hasNul(roomId)) return 0;
    const [row] = await this.#sql<{ seq: string | number }[]>`
      SELECT COALESCE(MAX(seq), 0) AS seq FROM messages WHERE room = ${roomId}`;
    return Number(row?.seq ?? 0);
  }

  async markRead(roomId: string, userId: string, seq: number): Promise<number | undefined> {
    this.#open("mark read");
    refuseNul("mark read", { roomId, userId });
    // Forward only, and never past the room's newest message.
    const [row] = await this.#sql<{ seq: string }[]>`
      INSERT INTO read_positions (user_id, room_id, seq)
      VALUES (${userId}, ${roomId}, LEAST(${seq}::bigint,
        (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room = ${roomId})))
      ON CONFLICT (user_id, room_id)
      DO UPDATE SET seq = EXCLUDED.seq WHERE read_positions.seq < EXCLUDED.seq
      RETURNING seq`;
    return row && Number(row.seq) > 0 ? Number(row.seq) : undefined;
  }

  async readStates(userId: string, roomIds: readonly string[]): Promise<ReadState[]> {
    this.#open("read unread counts");
    if (roomIds.length === 0) return [];
    if (hasNul(userId, ...roomIds)) {
      return roomIds.map((room) => ({ room, readSeq: 0, unread: 0, mentions: 0 }));
    }
    // Each count walks the (room, seq) key from the later of the read position and the newest
    // UNREAD_COUNT_MAX messages (those after the one below them: positions may leave gaps, so no
    // subtraction finds it).
    const belowUnreadWindow = this.#sql`COALESCE((SELECT seq FROM messages WHERE room = r.room
      ORDER BY seq DESC LIMIT 1 OFFSET ${UNREAD_COUNT_MAX}), 0)`;
    const rows = await this.#sql<
      { room: string; read_seq: string; unread: string; mentions: string }[]
    >`
      SELECT r.room, COALESCE(p.seq, 0) AS read_seq,
        (SELECT COUNT(*) FROM messages m
         WHERE m.room = r.room AND m.user_id <> ${userId} AND ${this.#notBlocked(userId)}
           AND m.seq > GREATEST(COALESCE(p.seq, 0), ${belowUnreadWindow})
        ) AS unread,
        (SELECT COUNT(*) FROM messages m
         WHERE m.room = r.room AND m.user_id <> ${userId} AND ${userId} = ANY(m.mentions)
           AND ${this.#notBlocked(userId)}
           AND m.seq > GREATEST(COALESCE(p.seq, 0), ${belowUnreadWindow})
        ) AS mentions
      FROM unnest(${roomIds as string[]}::text[]) WITH ORDINALITY AS r(room, i)
      LEFT JOIN read_positions p ON p.user_id = ${userId} AND p.room_id = r.room
      ORDER BY r.i`;
    return rows.map((r) => ({
      room: r.room,
      readSeq: Number(r.read_seq),
      unread: Number(r.unread),
      mentions: Number(r.mentions),
    }));
  }

  async readPositions(roomIds: readonly string[]): Promise<ReadPosition[]> {
    this.#open("read read positions");
    const rooms = roomIds.filter((id) => !hasNul(id));
    if (rooms.length === 0) return [];
    const rows = await this.#sql<{ room: string; user_id: string; seq: string }[]>`
      SELECT room_id AS room, user_id, seq FROM read_positions
      WHERE room_id = ANY(${rooms as string[]}::text[]) ORDER BY room_id, user_id`;
    return rows.map((r) => ({ room: r.room, userId: r.user_id, seq: Number(r.seq) }));
  }

  async seenBy(
    roomId: string,
    seq: number,
    limit: number,
    membersOnly: boolean,
  ): Promise<SeenBy> {
    this.#open("read read positions");
    if (hasNul(roomId)) return { userIds: [], count: 0 };
    // The count of all rows rides on each of the first `limit` (a window over the whole result).
    const rows = await this.#sql<{ user_id: string; total: string }[]>`
      SELECT p.user_id, COUNT(*) OVER () AS total
      FROM read_positions p JOIN messages msg ON msg.room = p.room_id AND msg.seq = ${seq}
      WHERE p.room_id = ${roomId} AND p.seq >= ${seq} AND p.user_id <> msg.user_id
        AND (NOT ${membersOnly} OR EXISTS (SELECT 1 FROM members m WHERE m.room_id = ${roomId}
          AND m.user_id = p.user_id AND m.joined_at <= msg.timestamp))
      ORDER BY p.user_id LIMIT ${Math.max(1, Math.trunc(limit))}`;
    return { userIds: rows.map((r) => r.user_id), count: Number(rows[0]?.total ?? 0) };
  }

  async search(
    roomIds: readonly string[],
    query: string,
    limit: number,
    reader = "",
  ): Promise<ChatMessage[]> {
    this.#open("search");
    const words = searchWords(query);
    const rooms = roomIds.filter((id) => !hasNul(id));
    const max = Math.max(0, Math.trunc(limit));
    if (words.length === 0 || rooms.length === 0 || max === 0) return [];
    // plainto_tsquery reads the words as plain text (ANDed), never as operators.
    const rows = await this.#sql<MessageRow[]>`
      SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM messages,
        plainto_tsquery('simple'::regconfig, ${words.join(" ")}) AS q
      WHERE search @@ q AND room = ANY(${rooms as string[]}::text[]) AND NOT deleted
        AND ${this.#notBlocked(reader)}
      ORDER BY ts_rank(search, q) DESC, timestamp DESC LIMIT ${max}`;
    return rows.map(toMessage);
  }

  async setBlocked(userId: string, blockedId: string, blocked: boolean): Promise<boolean> {
    const action = blocked ? "block" : "unblock";
    this.#open(action);
    refuseNul(action, { userId, blockedId });
    const rows = blocked
      ? await this.#sql`
          INSERT INTO blocks (user_id, blocked_id) VALUES (${userId}, ${blockedId})
          ON CONFLICT DO NOTHING RETURNING 1`
      : await this.#sql`
          DELETE FROM blocks WHERE user_id = ${userId} AND blocked_id = ${blockedId} RETURNING 1`;
    return rows.length === 1;
  }

  async blockedBy(userId: string): Promise<string[]> {
    this.#open("read blocked users");
    if (hasNul(userId)) return [];
    const rows = await this.#sql<{ blocked_id: string }[]>`
      SELECT blocked_id FROM blocks WHERE user_id = ${userId} ORDER BY blocked_id`;
    return rows.map((r) => r.blocked_id);
  }

  async isBlocked(userId: string, otherId: string): Promise<boolean> {
    this.#open("read blocked users");
    if (hasNul(userId, otherId)) return false;
    const rows = await this.#sql`
      SELECT 1 FROM blocks WHERE user_id = ${userId} AND blocked_id = ${otherId}`;
    return rows.length === 1;
  }

  /** The condition that leaves out the messages of the senders `reader` blocked. */
  #notBlocked(reader: string): postgres.Fragment {
    return this
      .#sql`user_id NOT IN (SELECT blocked_id FROM blocks WHERE blocks.user_id = ${reader})`;
  }

  async setRole(roomId: string, userId: string, role: MemberRole): Promise<boolean> {
    this.#open("set role");
    refuseNul("set role", { roomId, userId });
    const done = role === "moderator"
      ? await this.#sql`
        INSERT INTO room_roles (room_id, user_id, role) VALUES (${roomId}, ${userId}, 'moderator')
        ON CONFLICT DO NOTHING`
      : await this.#sql`DELETE FROM room_roles WHERE room_id = ${roomId} AND user_id = ${userId}`;
    return done.count === 1;
  }

  async moderators(roomId: string): Promise<string[]> {
    this.#open("read roles");
    if (hasNul(roomId)) return [];
    const rows = await this.#sql<{ user_id: string }[]>`
      SELECT user_id FROM room_roles WHERE room_id = ${roomId} AND role = 'moderator'
      ORDER BY user_id`;
    return rows.map((r) => r.user_id);
  }

  async setMute(roomId: string, userId: string, until: string | undefined): Promise<void> {
    this.#open("set mute");
    if (until === undefined) {
      if (hasNul(roomId, userId)) return;
      await this.#sql`DELETE FROM room_mutes WHERE room_id = ${roomId} AND user_id = ${userId}`;
      return;
    }
    refuseNul("set mute", { roomId, userId, until });
    await this.#sql`
      INSERT INTO room_mutes (room_id, user_id, until) VALUES (${roomId}, ${userId}, ${until})
      ON CONFLICT (room_id, user_id) DO UPDATE SET until = excluded.until`;
  }

  async mutedUntil(roomId: string, userId: string): Promise<string | undefined> {
    this.#open("read mute");
    if (hasNul(roomId, userId)) return undefined;
    const [row] = await this.#sql<{ until: string }[]>`
      SELECT until FROM room_mutes WHERE room_id = ${roomId} AND user_id = ${userId}`;
    return row?.until;
  }

  async addRoomEvent(event: StoredRoomEvent): Promise<void> {
    this.#open("store room event");
    await this.#sql.unsafe(
      `INSERT INTO room_events (${ROOM_EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      roomEventValues(event),
    );
  }

  async roomEvents(roomId: string, span: RoomEventSpan): Promise<StoredRoomEvent[]> {
    this.#open("read room events");
    const max = Math.max(0, Math.trunc(span.limit));
    if (max === 0 || hasNul(roomId, span.after ?? "", span.until ?? "")) return [];
    // The newest `limit` in the span, turned oldest first.
    const rows = await this.#sql<RoomEventRow[]>`
      SELECT ${this.#sql.unsafe(ROOM_EVENT_COLUMNS)} FROM (
        SELECT id, ${this.#sql.unsafe(ROOM_EVENT_COLUMNS)} FROM room_events
        WHERE room_id = ${roomId}
          AND (${span.after ?? null}::text IS NULL OR at > ${span.after ?? null}::text)
          AND (${span.until ?? null}::text IS NULL OR at <= ${span.until ?? null}::text)
        ORDER BY at DESC, id DESC LIMIT ${max}
      ) newest ORDER BY at, id`;
    return rows.map(toRoomEvent);
  }

  /** Ends the pool, letting running queries finish (for up to 5 s). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sql.end({ timeout: 5 });
  }

  #open(what: string): void {
    if (this.#closed) throw new Error(`Cannot ${what}: the PostgreSQL store is closed`);
  }
}

/** Brings the schema up to {@linkcode POSTGRES_SCHEMA_VERSION}; one opener at a time. */
async function migrate(sql: postgres.Sql, schema: string | undefined, logger: Logger) {
  await sql.begin(async (q) => {
    // Serialise concurrent openers: CREATE ... IF NOT EXISTS races with itself.
    await q`SELECT pg_advisory_xact_lock(hashtext(${"chat-store-schema:" + (schema ?? "")}))`;
    if (schema !== undefined) await q.unsafe(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await q`CREATE TABLE IF NOT EXISTS store_schema (
              only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
              version  integer NOT NULL)`;
    const [row] = await q<{ version: number }[]>`SELECT version FROM store_schema`;
    const from = row?.version ?? 0;
    if (from > POSTGRES_SCHEMA_VERSION) {
      throw new Error(
        `its schema version is ${from}, newer than ${POSTGRES_SCHEMA_VERSION} which this build knows; upgrade the service`,
      );
    }
    for (let version = from + 1; version <= POSTGRES_SCHEMA_VERSION; version++) {
      const migration = MIGRATIONS[version - 1]!;
      if (typeof migration === "string") await q.unsafe(migration);
      else await migration(q);
      logger.info("Migrated the PostgreSQL schema", { schema: schema ?? "(default)", version });
    }
    if (from === 0) await q`INSERT INTO store_schema (version) VALUES (${POSTGRES_SCHEMA_VERSION})`;
    else if (from < POSTGRES_SCHEMA_VERSION) {
      await q`UPDATE store_schema SET version = ${POSTGRES_SCHEMA_VERSION}`;
    }
  });
}
