/**
 * The SQLite store: chat history in one file, through `node:sqlite` (built into Deno 2).
 *
 * Several processes may share one file: the database runs in WAL mode (readers never block the
 * writer) with a busy timeout, and {@linkcode SqliteStore.appendAll} takes the write lock up front
 * (`BEGIN IMMEDIATE`) before it reads the room's newest sequence number, so two appenders can never
 * pick the same number, nor store a given position that is not after the newest.
 *
 * Accounts, rooms and memberships live in tables `accounts`, `rooms` and `members` (schema version
 * 2); ids are compared and sorted with SQLite's BINARY collation, i.e. by code point. Since
 * version 3 accounts and rooms are also found by `name_key` (the id without case, unique), and
 * a message is unique per (user_id, id): a message id is the sender's, not the world's. Since
 * version 4 a message keeps whom it mentions (`mentions`, a JSON array of user ids), since
 * version 5 when it was edited (`edited_at`) and whether it was deleted (`deleted`), since
 * version 6 its reactions (`reactions`), since version 7 each member's read position per
 * room (`read_positions`), since version 8 a room's topic (`topic`), with its id and topic
 * folded for the directory's search (`id_key`, `topic_key`, see `searchKey`), and since version 9
 * a full-text index of the messages' words
 * (`messages_fts`, FTS5, contentless: it keeps no copy of the text, and with its secure-delete
 * option an edited or deleted text's words leave the index at once), kept in step with `messages`
 * by triggers; `search_keys` gives each indexed message the rowid FTS5 needs. Since version 10
 * rooms keep their moderators (`room_roles`) and mutes (`room_mutes`), since version 11 their
 * events (`room_events`: joined, left, removed, muted, role and topic changes). Since version 13
 * each user's blocked users (`blocks`), whose messages their history, search and unread counts
 * leave out.
 * Since version 12 a room may be invite-only (`invite_only`) and `invitations` keeps the pending
 * invitations.
 *
 * `node:sqlite` is synchronous: every call blocks the event loop for the length of one statement
 * (or, while another process holds the write lock, for up to the busy timeout).
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { ChatMessage, MessageChange } from "../core/types.ts";
import { preparePrivateDatabase } from "../core/private_files.ts";
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

/** The columns of `messages` up to version 3. */
const V3_COLUMNS = "room, seq, id, user_id, display_name, content, timestamp";
/** What an append writes; the others start at their defaults. */
const INSERT_COLUMNS = `${V3_COLUMNS}, mentions`;
const COLUMNS = `${INSERT_COLUMNS}, edited_at, deleted`;

/** The schema version this code writes (`PRAGMA user_version`); bump it with a migration. */
export const SQLITE_SCHEMA_VERSION = 13;

/** Migration N brings a database from version N-1 to N; index 0 is version 1. */
const MIGRATIONS: readonly (string | ((db: DatabaseSync) => void))[] = [
  `CREATE TABLE IF NOT EXISTS messages (
     room         TEXT    NOT NULL,
     seq          INTEGER NOT NULL,
     id           TEXT    NOT NULL UNIQUE,
     user_id      TEXT    NOT NULL,
     display_name TEXT    NOT NULL,
     content      TEXT    NOT NULL,
     timestamp    TEXT    NOT NULL,
     PRIMARY KEY (room, seq)
   ) WITHOUT ROWID`,
  // 2: accounts, rooms and membership.
  `CREATE TABLE accounts (
     id            TEXT NOT NULL PRIMARY KEY,
     display_name  TEXT NOT NULL,
     password_hash TEXT NOT NULL,
     created_at    TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE rooms (
     id         TEXT    NOT NULL PRIMARY KEY,
     direct     INTEGER NOT NULL CHECK (direct IN (0, 1)),
     created_by TEXT    NOT NULL,
     created_at TEXT    NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX rooms_listed ON rooms (id) WHERE direct = 0;
   CREATE TABLE members (
     room_id   TEXT NOT NULL,
     user_id   TEXT NOT NULL,
     joined_at TEXT NOT NULL,
     PRIMARY KEY (room_id, user_id)
   ) WITHOUT ROWID;
   CREATE INDEX members_user_id ON members (user_id, room_id);`,
  // 3: a message id is unique per sender (another user's id is no reason to drop a message),
  // and accounts and rooms are found without regard to case.
  (db) => {
    db.exec(`CREATE TABLE messages_v3 (
       room         TEXT    NOT NULL,
       seq          INTEGER NOT NULL,
       id           TEXT    NOT NULL,
       user_id      TEXT    NOT NULL,
       display_name TEXT    NOT NULL,
       content      TEXT    NOT NULL,
       timestamp    TEXT    NOT NULL,
       PRIMARY KEY (room, seq),
       UNIQUE (user_id, id)
     ) WITHOUT ROWID;
     INSERT INTO messages_v3 (${V3_COLUMNS}) SELECT ${V3_COLUMNS} FROM messages;
     DROP TABLE messages;
     ALTER TABLE messages_v3 RENAME TO messages;
     ALTER TABLE accounts ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
     ALTER TABLE rooms ADD COLUMN name_key TEXT NOT NULL DEFAULT '';`);
    for (const table of ["accounts", "rooms"]) {
      const rows = db.prepare(`SELECT id, created_at FROM ${table}`).all() as unknown as {
        id: string;
        created_at: string;
      }[];
      const keys = legacyNameKeys(rows.map((r) => ({ id: r.id, createdAt: r.created_at })));
      const update = db.prepare(`UPDATE ${table} SET name_key = ? WHERE id = ?`);
      for (const [id, key] of keys) update.run(key, id);
      db.exec(`CREATE UNIQUE INDEX ${table}_name_key ON ${table} (name_key)`);
    }
  },
  // 4: whom a message mentions, a JSON array of user ids (NULL: nobody).
  `ALTER TABLE messages ADD COLUMN mentions TEXT`,
  // 5: edited and deleted messages.
  `ALTER TABLE messages ADD COLUMN edited_at TEXT;
   ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1));`,
  // 6: reactions, one row per message, emoji and user; the rowid keeps the order they came in.
  `CREATE TABLE reactions (
     room    TEXT    NOT NULL,
     seq     INTEGER NOT NULL,
     emoji   TEXT    NOT NULL,
     user_id TEXT    NOT NULL,
     UNIQUE (room, seq, emoji, user_id)
   )`,
  // 7: read positions, one row per user and room they marked read.
  `CREATE TABLE read_positions (
     user_id TEXT    NOT NULL,
     room_id TEXT    NOT NULL,
     seq     INTEGER NOT NULL,
     PRIMARY KEY (user_id, room_id)
   ) WITHOUT ROWID;
   CREATE INDEX read_positions_room_id ON read_positions (room_id, user_id);`,
  // 8: a room's topic, and its id and topic folded by searchKey (in JavaScript: SQLite's lower()
  // knows only ASCII) for the directory's search.
  (db) => {
    db.exec(`ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';
             ALTER TABLE rooms ADD COLUMN topic_key TEXT NOT NULL DEFAULT '';
             ALTER TABLE rooms ADD COLUMN id_key TEXT NOT NULL DEFAULT '';`);
    const update = db.prepare("UPDATE rooms SET id_key = ? WHERE id = ?");
    for (const { id } of db.prepare("SELECT id FROM rooms").all() as { id: string }[]) {
      update.run(searchKey(id), id);
    }
  },
  // 9: full-text search. A message is indexed while it has text and is not deleted; an edit
  // replaces its words, a deletion takes them out.
  `CREATE TABLE search_keys (
     id   INTEGER PRIMARY KEY,
     room TEXT    NOT NULL,
     seq  INTEGER NOT NULL,
     UNIQUE (room, seq)
   );
   CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='', contentless_delete=1);
   INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
   INSERT INTO search_keys (room, seq) SELECT room, seq FROM messages WHERE deleted = 0;
   INSERT INTO messages_fts (rowid, content)
     SELECT k.id, m.content FROM search_keys k JOIN messages m ON m.room = k.room AND m.seq = k.seq;
   CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN NEW.deleted = 0 BEGIN
     INSERT INTO search_keys (room, seq) VALUES (NEW.room, NEW.seq);
     INSERT INTO messages_fts (rowid, content) VALUES (last_insert_rowid(), NEW.content);
   END;
   CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, deleted ON messages BEGIN
     DELETE FROM messages_fts
       WHERE rowid = (SELECT id FROM search_keys WHERE room = OLD.room AND seq = OLD.seq);
     INSERT INTO messages_fts (rowid, content)
       SELECT id, NEW.content FROM search_keys
       WHERE room = NEW.room AND seq = NEW.seq AND NEW.deleted = 0;
   END;`,
  // 10: room roles (the owner is the creator; moderators are kept) and mutes.
  `CREATE TABLE room_roles (
     room_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     role    TEXT NOT NULL,
     PRIMARY KEY (room_id, user_id)
   ) WITHOUT ROWID;
   CREATE TABLE room_mutes (
     room_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     until   TEXT NOT NULL,
     PRIMARY KEY (room_id, user_id)
   ) WITHOUT ROWID;`,
  // 11: room events (joined, left, removed, muted, roles, topics), read by time for history.
  `CREATE TABLE room_events (
     id           INTEGER PRIMARY KEY,
     room_id      TEXT NOT NULL,
     kind         TEXT NOT NULL,
     user_id      TEXT NOT NULL,
     display_name TEXT NOT NULL,
     actor_id     TEXT NOT NULL,
     actor_name   TEXT NOT NULL,
     detail       TEXT,
     until        TEXT,
     at           TEXT NOT NULL
   );
   CREATE INDEX room_events_room_at ON room_events (room_id, at);`,
  // 12: invite-only rooms and pending invitations.
  `ALTER TABLE rooms ADD COLUMN invite_only INTEGER NOT NULL DEFAULT 0 CHECK (invite_only IN (0, 1));
   CREATE TABLE invitations (
     room_id    TEXT NOT NULL,
     user_id    TEXT NOT NULL,
     invited_by TEXT NOT NULL,
     invited_at TEXT NOT NULL,
     PRIMARY KEY (room_id, user_id)
   ) WITHOUT ROWID;
   CREATE INDEX invitations_user_id ON invitations (user_id, invited_at);`,
  // 13: blocked users, one row per blocker and blocked user.
  `CREATE TABLE blocks (
     user_id    TEXT NOT NULL,
     blocked_id TEXT NOT NULL,
     PRIMARY KEY (user_id, blocked_id)
   ) WITHOUT ROWID;`,
];

/**
 * The seq of the message just below the newest {@linkcode UNREAD_COUNT_MAX} of room `r.value`
 * (0 when the room holds no more than those).
 */
const BELOW_UNREAD_WINDOW = `COALESCE((SELECT seq FROM messages WHERE room = r.value
  ORDER BY seq DESC LIMIT 1 OFFSET ${UNREAD_COUNT_MAX}), 0)`;

/** What a query of messages adds to leave out those of the senders the reader (`?`) blocked. */
const NOT_BLOCKED = "user_id NOT IN (SELECT blocked_id FROM blocks WHERE blocks.user_id = ?)";

export interface SqliteStoreOptions {
  /** How long to wait for another connection's write lock before failing; default 10 s. */
  busyTimeoutMs?: number;
  logger?: Logger;
}

const ACCOUNT_COLUMNS = "id, display_name, password_hash, created_at";
const ROOM_COLUMNS = "id, direct, created_by, created_at";
/** What a room read back holds. */
const ROOM_FIELDS = `${ROOM_COLUMNS}, topic, invite_only`;

export class SqliteStore implements Store {
  /** Opens (and creates, with its parent directories) the database at `path`, or ":memory:". */
  static open(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
    return Promise.try(() => new SqliteStore(path, options));
  }

  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #byId: StatementSync;
  readonly #lastSeq: StatementSync;
  readonly #insert: StatementSync;
  readonly #newest: StatementSync;
  readonly #before: StatementSync;
  readonly #after: StatementSync;
  readonly #one: StatementSync;
  readonly #edit: StatementSync;
  readonly #delete: StatementSync;
  readonly #reactionsIn: StatementSync;
  readonly #unreact: StatementSync;
  readonly #react: StatementSync;
  readonly #clearReactions: StatementSync;
  readonly #insertAccount: StatementSync;
  readonly #account: StatementSync;
  readonly #insertRoom: StatementSync;
  readonly #room: StatementSync;
  readonly #addMember: StatementSync;
  readonly #removeMember: StatementSync;
  readonly #isMember: StatementSync;
  readonly #members: StatementSync;
  readonly #roomsOf: StatementSync;
  readonly #listRooms: StatementSync;
  readonly #setTopic: StatementSync;
  readonly #setInviteOnly: StatementSync;
  readonly #invite: StatementSync;
  readonly #uninvite: StatementSync;
  readonly #isInvited: StatementSync;
  readonly #invitationCount: StatementSync;
  readonly #invitationsOf: StatementSync;
  readonly #memberCounts: StatementSync;
  readonly #markRead: StatementSync;
  readonly #readStates: StatementSync;
  readonly #readPositions: StatementSync;
  readonly #seenBy: StatementSync;
  readonly #search: StatementSync;
  readonly #block: StatementSync;
  readonly #unblock: StatementSync;
  readonly #blockedBy: StatementSync;
  readonly #isBlocked: StatementSync;
  readonly #setModerator: StatementSync;
  readonly #unsetModerator: StatementSync;
  readonly #moderators: StatementSync;
  readonly #setMute: StatementSync;
  readonly #unmute: StatementSync;
  readonly #mutedUntil: StatementSync;
  readonly #addRoomEvent: StatementSync;
  readonly #roomEvents: StatementSync;
  #closed = false;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    const logger = options.logger ?? silentLogger;
    this.path = path;
    const inMemory = path === ":memory:" || path === "";
    // Direct messages and password hashes: the directory 700, the files 600 (older ones tightened).
    if (!inMemory) preparePrivateDatabase(path, logger);
    const db = new DatabaseSync(path);
    try {
      // The busy timeout first: switching to WAL and migrating both need locks another
      // process may hold for a moment.
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 10_000))}`);
      if (!inMemory) {
        const mode = db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string };
        if (mode.journal_mode.toLowerCase() !== "wal") {
          throw new Error(
            `Cannot open SQLite database ${path}: journal mode is "${mode.journal_mode}", not WAL`,
          );
        }
        db.exec("PRAGMA synchronous = NORMAL");
        // A deleted message's text must not linger in free pages of the file.
        db.exec("PRAGMA secure_delete = ON");
      }
      migrate(db, path, logger);
    } catch (error) {
      db.close();
      throw error;
    }
    this.#db = db;
    this.#byId = db.prepare(`SELECT ${COLUMNS} FROM messages WHERE user_id = ? AND id = ?`);
    this.#lastSeq = db.prepare("SELECT COALESCE(MAX(seq), 0) AS seq FROM messages WHERE room = ?");
    this.#insert = db.prepare(
      `INSERT INTO messages (${INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    // The reader is "" when there is none: no user id is empty, so nothing is left out.
    this.#newest = db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE room = ? AND ${NOT_BLOCKED}
       ORDER BY seq DESC LIMIT ?`,
    );
    this.#before = db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE room = ? AND seq < ? AND ${NOT_BLOCKED}
       ORDER BY seq DESC LIMIT ?`,
    );
    this.#after = db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE room = ? AND seq > ? ORDER BY seq ASC LIMIT ?`,
    );
    this.#one = db.prepare(`SELECT ${COLUMNS} FROM messages WHERE room = ? AND seq = ?`);
    this.#edit = db.prepare(
      `UPDATE messages SET content = ?, mentions = ?, edited_at = ?
       WHERE room = ? AND seq = ? AND deleted = 0`,
    );
    this.#delete = db.prepare(
      `UPDATE messages SET content = '', mentions = NULL, edited_at = NULL, deleted = 1
       WHERE room = ? AND seq = ?`,
    );
    this.#reactionsIn = db.prepare(
      `SELECT seq, emoji, user_id FROM reactions WHERE room = ? AND seq BETWEEN ? AND ?
       ORDER BY rowid`,
    );
    this.#unreact = db.prepare(
      "DELETE FROM reactions WHERE room = ? AND seq = ? AND emoji = ? AND user_id = ?",
    );
    this.#react = db.prepare(
      "INSERT INTO reactions (room, seq, emoji, user_id) VALUES (?, ?, ?, ?)",
    );
    this.#clearReactions = db.prepare("DELETE FROM reactions WHERE room = ? AND seq = ?");
    // A taken id or name key (another spelling of it) is a conflict: nothing is inserted.
    this.#insertAccount = db.prepare(
      `INSERT INTO accounts (${ACCOUNT_COLUMNS}, name_key) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    // The exact spelling first (a case variant kept from before version 3), else the case-less key.
    this.#account = db.prepare(
      `SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id = ? OR name_key = ? ORDER BY id = ? DESC LIMIT 1`,
    );
    this.#insertRoom = db.prepare(
      `INSERT INTO rooms (${ROOM_COLUMNS}, name_key, id_key) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    );
    this.#room = db.prepare(
      `SELECT ${ROOM_FIELDS} FROM rooms WHERE id = ? OR name_key = ? ORDER BY id = ? DESC LIMIT 1`,
    );
    this.#addMember = db.prepare(
      "INSERT INTO members (room_id, user_id, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    );
    this.#setModerator = db.prepare(
      `INSERT INTO room_roles (room_id, user_id, role) VALUES (?, ?, 'moderator')
       ON CONFLICT DO NOTHING`,
    );
    this.#unsetModerator = db.prepare("DELETE FROM room_roles WHERE room_id = ? AND user_id = ?");
    this.#moderators = db.prepare(
      "SELECT user_id FROM room_roles WHERE room_id = ? AND role = 'moderator' ORDER BY user_id",
    );
    this.#setMute = db.prepare(
      `INSERT INTO room_mutes (room_id, user_id, until) VALUES (?, ?, ?)
       ON CONFLICT (room_id, user_id) DO UPDATE SET until = excluded.until`,
    );
    this.#unmute = db.prepare("DELETE FROM room_mutes WHERE room_id = ? AND user_id = ?");
    this.#mutedUntil = db.prepare(
      "SELECT until FROM room_mutes WHERE room_id = ? AND user_id = ?",
    );
    this.#addRoomEvent = db.prepare(
      `INSERT INTO room_events (${ROOM_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    // The newest `limit` in the span, turned oldest first.
    this.#roomEvents = db.prepare(
      `SELECT ${ROOM_EVENT_COLUMNS} FROM (
         SELECT id, ${ROOM_EVENT_COLUMNS} FROM room_events
         WHERE room_id = ?1 AND (?2 IS NULL OR at > ?2) AND (?3 IS NULL OR at <= ?3)
         ORDER BY at DESC, id DESC LIMIT ?4
       ) ORDER BY at, id`,
    );
    this.#removeMember = db.prepare("DELETE FROM members WHERE room_id = ? AND user_id = ?");
    this.#isMember = db.prepare("SELECT 1 AS yes FROM members WHERE room_id = ? AND user_id = ?");
    this.#members = db.prepare(
      "SELECT user_id FROM members WHERE room_id = ? ORDER BY user_id",
    );
    this.#roomsOf = db.prepare(
      `SELECT ${ROOM_FIELDS.split(", ").map((c) => `r.${c}`).join(", ")}
       FROM members m JOIN rooms r ON r.id = m.room_id
       WHERE m.user_id = ? ORDER BY r.id`,
    );
    // instr, not LIKE: a search holding '%' or '_' means those characters. An invite-only room
    // only for its members (?3 NULL: nobody's).
    this.#listRooms = db.prepare(
      `SELECT ${ROOM_FIELDS} FROM rooms
       WHERE direct = 0 AND (?1 = '' OR instr(id_key, ?1) > 0 OR instr(topic_key, ?1) > 0)
         AND (invite_only = 0
              OR EXISTS (SELECT 1 FROM members WHERE room_id = rooms.id AND user_id = ?3))
       ORDER BY id LIMIT ?2`,
    );
    this.#setTopic = db.prepare(
      `UPDATE rooms SET topic = ?, topic_key = ? WHERE id = ? RETURNING ${ROOM_FIELDS}`,
    );
    this.#setInviteOnly = db.prepare(
      `UPDATE rooms SET invite_only = ? WHERE id = ? RETURNING ${ROOM_FIELDS}`,
    );
    this.#invite = db.prepare(
      `INSERT INTO invitations (room_id, user_id, invited_by, invited_at) VALUES (?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    );
    this.#uninvite = db.prepare("DELETE FROM invitations WHERE room_id = ? AND user_id = ?");
    this.#isInvited = db.prepare(
      "SELECT 1 AS yes FROM invitations WHERE room_id = ? AND user_id = ?",
    );
    this.#invitationCount = db.prepare(
      "SELECT COUNT(*) AS n FROM invitations WHERE room_id = ?",
    );
    this.#invitationsOf = db.prepare(
      `SELECT ${ROOM_FIELDS.split(", ").map((c) => `r.${c}`).join(", ")}
       FROM invitations i JOIN rooms r ON r.id = i.room_id
       WHERE i.user_id = ? ORDER BY i.invited_at DESC, r.id LIMIT ?`,
    );
    this.#memberCounts = db.prepare(
      `SELECT (SELECT COUNT(*) FROM members WHERE room_id = r.value) AS n
       FROM json_each(?) r ORDER BY r.key`,
    );
    // Forward only, and never past the room's newest message.
    this.#markRead = db.prepare(
      `INSERT INTO read_positions (user_id, room_id, seq)
       VALUES (?1, ?2, MIN(?3, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room = ?2)))
       ON CONFLICT (user_id, room_id) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > seq
       RETURNING seq`,
    );
    // The rooms come as a JSON array; each count walks the (room, seq) key from the later of the
    // read position and the newest UNREAD_COUNT_MAX messages (those after the one below them:
    // positions may leave gaps, so no subtraction finds it).
    this.#readStates = db.prepare(
      `SELECT r.value AS room, COALESCE(p.seq, 0) AS read_seq,
         (SELECT COUNT(*) FROM messages m
          WHERE m.room = r.value AND m.user_id <> ?1 AND m.${NOT_BLOCKED.replace("?", "?1")}
            AND m.seq > MAX(COALESCE(p.seq, 0), ${BELOW_UNREAD_WINDOW})
         ) AS unread,
         (SELECT COUNT(*) FROM messages m
          WHERE m.room = r.value AND m.user_id <> ?1 AND m.mentions IS NOT NULL
            AND m.${NOT_BLOCKED.replace("?", "?1")}
            AND m.seq > MAX(COALESCE(p.seq, 0), ${BELOW_UNREAD_WINDOW})
            AND EXISTS (SELECT 1 FROM json_each(m.mentions) WHERE value = ?1)
         ) AS mentions
       FROM json_each(?2) r
       LEFT JOIN read_positions p ON p.user_id = ?1 AND p.room_id = r.value
       ORDER BY r.key`,
    );
    this.#readPositions = db.prepare(
      `SELECT room_id AS room, user_id, seq FROM read_positions
       WHERE room_id IN (SELECT value FROM json_each(?)) ORDER BY room_id, user_id`,
    );
    // The count of all rows rides on each of the first `limit` (a window over the whole result).
    this.#seenBy = db.prepare(
      `SELECT p.user_id, COUNT(*) OVER () AS total
       FROM read_positions p JOIN messages msg ON msg.room = p.room_id AND msg.seq = ?2
       WHERE p.room_id = ?1 AND p.seq >= ?2 AND p.user_id <> msg.user_id
         AND (?4 = 0 OR EXISTS (SELECT 1 FROM members m WHERE m.room_id = ?1
           AND m.user_id = p.user_id AND m.joined_at <= msg.timestamp))
       ORDER BY p.user_id LIMIT ?3`,
    );
    // Best (bm25) first, then newest. The rooms come as a JSON array.
    this.#search = db.prepare(
      `SELECT ${COLUMNS.split(", ").map((c) => `m.${c}`).join(", ")}
       FROM messages_fts f
       JOIN search_keys k ON k.id = f.rowid
       JOIN messages m ON m.room = k.room AND m.seq = k.seq
       WHERE messages_fts MATCH ?1 AND k.room IN (SELECT value FROM json_each(?2))
         AND m.${NOT_BLOCKED.replace("?", "?4")}
       ORDER BY f.rank, m.timestamp DESC LIMIT ?3`,
    );
    this.#block = db.prepare(
      "INSERT INTO blocks (user_id, blocked_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
    );
    this.#unblock = db.prepare("DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?");
    this.#blockedBy = db.prepare(
      "SELECT blocked_id FROM blocks WHERE user_id = ? ORDER BY blocked_id",
    );
    this.#isBlocked = db.prepare("SELECT 1 AS b FROM blocks WHERE user_id = ? AND blocked_id = ?");
  }

  async append(message: ChatMessage): Promise<ChatMessage> {
    return (await this.appendAll([message]))[0]!;
  }

  appendAll(messages: readonly ChatMessage[]): Promise<ChatMessage[]> {
    return this.#call("append", () => {
      for (const message of messages) {
        refuseNulInMessage(message);
        checkPosition(message);
      }
      return transaction(this.#db, () =>
        messages.map((message) => {
          // Read under the write lock: another process may have stored it meanwhile.
          const stored = this.#byId.get(message.userId, message.id) as MessageRow | undefined;
          if (stored) return toMessage(stored);
          const { seq: newest } = this.#lastSeq.get(message.room) as { seq: number };
          const seq = positionAfter(message, Number(newest));
          this.#insert.run(
            message.room,
            seq,
            message.id,
            message.userId,
            message.displayName,
            message.content,
            message.timestamp,
            message.mentions?.length ? JSON.stringify(message.mentions) : null,
          );
          return { ...message, seq };
        }));
    });
  }

  history(query: HistoryQuery): Promise<ChatMessage[]> {
    return this.#call("read history", () => {
      const limit = Math.max(0, Math.trunc(query.limit));
      if (limit === 0) return [];
      const reader = query.reader ?? "";
      const rows = query.beforeSeq === undefined
        ? this.#newest.all(query.room, reader, limit)
        : this.#before.all(query.room, query.beforeSeq, reader, limit);
      return this.#reacted(query.room, (rows as unknown as MessageRow[]).map(toMessage));
    });
  }

  since(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]> {
    return this.#call("read history", () => {
      const max = Math.max(0, Math.trunc(limit));
      if (max === 0) return [];
      return this.#reacted(
        room,
        (this.#after.all(room, afterSeq, max) as unknown as MessageRow[]).map(toMessage),
      );
    });
  }

  message(room: string, seq: number): Promise<ChatMessage | undefined> {
    return this.#call("read message", () => {
      const row = this.#one.get(room, seq) as MessageRow | undefined;
      return row && this.#reacted(room, [toMessage(row)])[0];
    });
  }

  toggleReaction(
    room: string,
    seq: number,
    userId: string,
    emoji: string,
  ): Promise<boolean | undefined> {
    return this.#call("react", () => {
      refuseNul("react", { userId, emoji });
      return transaction(this.#db, () => {
        const row = this.#one.get(room, seq) as MessageRow | undefined;
        if (!row || Number(row.deleted) === 1) return undefined;
        if (Number(this.#unreact.run(room, seq, emoji, userId).changes) === 1) return false;
        this.#react.run(room, seq, emoji, userId);
        return true;
      });
    });
  }

  /** `messages` of `room` with their reactions, read in one query. */
  #reacted(room: string, messages: ChatMessage[]): ChatMessage[] {
    if (messages.length === 0) return messages;
    const seqs = messages.map((m) => m.seq);
    const rows = this.#reactionsIn.all(room, Math.min(...seqs), Math.max(...seqs)) as unknown as {
      seq: number;
      emoji: string;
      user_id: string;
    }[];
    return withReactions(messages, groupReactions(rows));
  }

  changeMessage(change: MessageChange): Promise<ChatMessage | undefined> {
    return this.#call("change message", () => {
      refuseNul("change message", {
        content: change.content,
        ...Object.fromEntries((change.mentions ?? []).map((id, i) => [`mentions[${i}]`, id])),
      });
      if (change.deleted) {
        transaction(this.#db, () => {
          this.#delete.run(change.room, change.seq);
          this.#clearReactions.run(change.room, change.seq);
        });
        // secure_delete zeroes the old text in the database file; the write-ahead log may still
        // hold pages with it until a checkpoint empties it.
        this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } else {
        this.#edit.run(
          change.content,
          change.mentions?.length ? JSON.stringify(change.mentions) : null,
          change.at,
          change.room,
          change.seq,
        );
      }
      const row = this.#one.get(change.room, change.seq) as MessageRow | undefined;
      return row && this.#reacted(change.room, [toMessage(row)])[0];
    });
  }

  createAccount(account: Account): Promise<{ account: Account; created: boolean }> {
    return this.#call("create account", () => {
      refuseNulInAccount(account);
      // One statement, so atomic across connections and processes; nothing deletes accounts, so
      // the row that won is there to read.
      const { changes } = this.#insertAccount.run(
        account.id,
        account.displayName,
        account.passwordHash,
        account.createdAt,
        nameKey(account.id),
      );
      const row = this.#account.get(account.id, nameKey(account.id), account.id) as
        | AccountRow
        | undefined;
      if (!row) throw new Error(`Cannot create account ${account.id}: it cannot be read back`);
      return { account: toAccount(row), created: Number(changes) === 1 };
    });
  }

  getAccount(id: string): Promise<Account | undefined> {
    return this.#call("read account", () => {
      const row = this.#account.get(id, nameKey(id), id) as AccountRow | undefined;
      return row && toAccount(row);
    });
  }

  createRoom(room: Room): Promise<{ room: Room; created: boolean }> {
    return this.#call("create room", () => {
      refuseNulInRoom(room);
      const { changes } = this.#insertRoom.run(
        room.id,
        room.direct ? 1 : 0,
        room.createdBy,
        room.createdAt,
        nameKey(room.id),
        searchKey(room.id),
      );
      const row = this.#room.get(room.id, nameKey(room.id), room.id) as RoomRow | undefined;
      if (!row) throw new Error(`Cannot create room ${room.id}: it cannot be read back`);
      return { room: toRoom(row), created: Number(changes) === 1 };
    });
  }

  getRoom(id: string): Promise<Room | undefined> {
    return this.#call("read room", () => {
      const row = this.#room.get(id, nameKey(id), id) as RoomRow | undefined;
      return row && toRoom(row);
    });
  }

  addMember(roomId: string, userId: string): Promise<boolean> {
    return this.#call("add member", () => {
      refuseNul("add member", { roomId, userId });
      const { changes } = this.#addMember.run(roomId, userId, new Date().toISOString());
      return Number(changes) === 1;
    });
  }

  removeMember(roomId: string, userId: string): Promise<boolean> {
    return this.#call(
      "remove member",
      () => Number(this.#removeMember.run(roomId, userId).changes) === 1,
    );
  }

  isMember(roomId: string, userId: string): Promise<boolean> {
    return this.#call("read members", () => this.#isMember.get(roomId, userId) !== undefined);
  }

  members(roomId: string): Promise<string[]> {
    return this.#call(
      "read members",
      () => (this.#members.all(roomId) as unknown as { user_id: string }[]).map((r) => r.user_id),
    );
  }

  roomsOf(userId: string): Promise<Room[]> {
    return this.#call(
      "read rooms",
      () => (this.#roomsOf.all(userId) as unknown as RoomRow[]).map(toRoom),
    );
  }

  listRooms(limit: number, search = "", viewer?: string): Promise<Room[]> {
    return this.#call("list rooms", () => {
      const max = Math.max(0, Math.trunc(limit));
      if (max === 0 || hasNul(search)) return [];
      const rows = this.#listRooms.all(searchKey(search), max, viewer ?? null);
      return (rows as unknown as RoomRow[]).map(toRoom);
    });
  }

  setTopic(roomId: string, topic: string): Promise<Room | undefined> {
    return this.#call("set topic", () => {
      refuseNul("set topic", { roomId, topic });
      const row = this.#setTopic.get(topic, searchKey(topic), roomId) as RoomRow | undefined;
      return row && toRoom(row);
    });
  }

  setInviteOnly(roomId: string, inviteOnly: boolean): Promise<Room | undefined> {
    return this.#call("set room access", () => {
      const row = this.#setInviteOnly.get(inviteOnly ? 1 : 0, roomId) as RoomRow | undefined;
      return row && toRoom(row);
    });
  }

  invite(invitation: Invitation): Promise<boolean> {
    return this.#call("invite", () => {
      refuseNul("invite", { ...invitation });
      const { roomId, userId, invitedBy, invitedAt } = invitation;
      return Number(this.#invite.run(roomId, userId, invitedBy, invitedAt).changes) === 1;
    });
  }

  uninvite(roomId: string, userId: string): Promise<boolean> {
    return this.#call(
      "drop invitation",
      () => Number(this.#uninvite.run(roomId, userId).changes) === 1,
    );
  }

  isInvited(roomId: string, userId: string): Promise<boolean> {
    return this.#call(
      "read invitations",
      () => this.#isInvited.get(roomId, userId) !== undefined,
    );
  }

  invitationCount(roomId: string): Promise<number> {
    return this.#call(
      "read invitations",
      () => Number((this.#invitationCount.get(roomId) as { n: number }).n),
    );
  }

  invitationsOf(userId: string, limit: number): Promise<Room[]> {
    return this.#call("read invitations", () => {
      const max = Math.max(0, Math.trunc(limit));
      if (max === 0) return [];
      return (this.#invitationsOf.all(userId, max) as unknown as RoomRow[]).map(toRoom);
    });
  }

  memberCounts(roomIds: readonly string[]): Promise<number[]> {
    return this.#call(
      "read members",
      () =>
        (this.#memberCounts.all(JSON.stringify(roomIds)) as { n: number }[]).map((r) =>
          Number(r.n)
        ),
    );
  }

  lastSeq(roomId: string): Promise<number> {
    return this.#call(
      "read history",
      () => Number((this.#lastSeq.get(roomId) as { seq: number }).seq),
    );
  }

  markRead(roomId: string, userId: string, seq: number): Promise<number | undefined> {
    return this.#call("mark read", () => {
      refuseNul("mark read", { roomId, userId });
      const row = this.#markRead.get(userId, roomId, seq) as { seq: number } | undefined;
      return row && Number(row.seq) > 0 ? Number(row.seq) : undefined;
    });
  }

  readStates(userId: string, roomIds: readonly string[]): Promise<ReadState[]> {
    return this.#call("read unread counts", () => {
      if (roomIds.length === 0) return [];
      const rows = this.#readStates.all(userId, JSON.stringify(roomIds)) as unknown as {
        room: string;
        read_seq: number;
        unread: number;
        mentions: number;
      }[];
      return rows.map((r) => ({
        room: r.room,
        readSeq: Number(r.read_seq),
        unread: Number(r.unread),
        mentions: Number(r.mentions),
      }));
    });
  }

  readPositions(roomIds: readonly string[]): Promise<ReadPosition[]> {
    return this.#call("read read positions", () => {
      if (roomIds.length === 0) return [];
      const rows = this.#readPositions.all(JSON.stringify(roomIds)) as unknown as {
        room: string;
        user_id: string;
        seq: number;
      }[];
      return rows.map((r) => ({ room: r.room, userId: r.user_id, seq: Number(r.seq) }));
    });
  }

  seenBy(roomId: string, seq: number, limit: number, membersOnly: boolean): Promise<SeenBy> {
    return this.#call("read read positions", () => {
      const rows = this.#seenBy.all(roomId, seq, Math.max(1, limit), membersOnly ? 1 : 0) as {
        user_id: string;
        total: number;
      }[];
      return { userIds: rows.map((r) => r.user_id), count: Number(rows[0]?.total ?? 0) };
    });
  }

  search(
    roomIds: readonly string[],
    query: string,
    limit: number,
    reader = "",
  ): Promise<ChatMessage[]> {
    return this.#call("search", () => {
      const words = searchWords(query);
      const max = Math.max(0, Math.trunc(limit));
      if (words.length === 0 || roomIds.length === 0 || max === 0) return [];
      // Each word a quoted FTS5 string (they hold only letters and digits): no operators.
      const match = words.map((w) => `"${w}"`).join(" ");
      const rows = this.#search.all(
        match,
        JSON.stringify(roomIds),
        max,
        reader,
      ) as unknown as MessageRow[];
      return rows.map(toMessage);
    });
  }

  setBlocked(userId: string, blockedId: string, blocked: boolean): Promise<boolean> {
    return this.#call(blocked ? "block" : "unblock", () => {
      refuseNul(blocked ? "block" : "unblock", { userId, blockedId });
      const changes = (blocked ? this.#block : this.#unblock).run(userId, blockedId).changes;
      return Number(changes) > 0;
    });
  }

  blockedBy(userId: string): Promise<string[]> {
    return this.#call(
      "read blocked users",
      () => (this.#blockedBy.all(userId) as { blocked_id: string }[]).map((r) => r.blocked_id),
    );
  }

  isBlocked(userId: string, otherId: string): Promise<boolean> {
    return this.#call(
      "read blocked users",
      () => this.#isBlocked.get(userId, otherId) !== undefined,
    );
  }

  close(): Promise<void> {
    return Promise.try(() => {
      if (this.#closed) return;
      this.#closed = true;
      this.#db.close();
    });
  }

  /**
   * Runs `body` (node:sqlite is synchronous) unless the store is closed; what it throws becomes a
   * rejected promise, as the port's other adapters report failures.
   */
  setRole(roomId: string, userId: string, role: MemberRole): Promise<boolean> {
    return this.#call("set role", () => {
      refuseNul("set role", { roomId, userId });
      const statement = role === "moderator" ? this.#setModerator : this.#unsetModerator;
      return Number(statement.run(roomId, userId).changes) === 1;
    });
  }

  moderators(roomId: string): Promise<string[]> {
    return this.#call(
      "read roles",
      () =>
        (this.#moderators.all(roomId) as unknown as { user_id: string }[]).map((r) => r.user_id),
    );
  }

  setMute(roomId: string, userId: string, until: string | undefined): Promise<void> {
    return this.#call("set mute", () => {
      if (until === undefined) this.#unmute.run(roomId, userId);
      else {
        refuseNul("set mute", { roomId, userId, until });
        this.#setMute.run(roomId, userId, until);
      }
    });
  }

  mutedUntil(roomId: string, userId: string): Promise<string | undefined> {
    return this.#call("read mute", () => {
      const row = this.#mutedUntil.get(roomId, userId) as { until: string } | undefined;
      return row?.until;
    });
  }

  addRoomEvent(event: StoredRoomEvent): Promise<void> {
    return this.#call("store room event", () => {
      this.#addRoomEvent.run(...roomEventValues(event));
    });
  }

  roomEvents(roomId: string, span: RoomEventSpan): Promise<StoredRoomEvent[]> {
    return this.#call("read room events", () => {
      const max = Math.max(0, Math.trunc(span.limit));
      if (max === 0) return [];
      const rows = this.#roomEvents.all(
        roomId,
        span.after ?? null,
        span.until ?? null,
        max,
      ) as unknown as RoomEventRow[];
      return rows.map(toRoomEvent);
    });
  }

  #call<T>(action: string, body: () => T): Promise<T> {
    return Promise.try(() => {
      if (this.#closed) {
        throw new Error(`Cannot ${action}: the SQLite store ${this.path} is closed`);
      }
      return body();
    });
  }
}

/** Runs `body` inside `BEGIN IMMEDIATE ... COMMIT`, rolling back when it throws. */
function transaction<T>(db: DatabaseSync, body: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  let result: T;
  try {
    result = body();
  } catch (error) {
    try {
      db.exec("ROLLBACK");
    } catch {
      // SQLite may already have rolled back (for example after SQLITE_FULL).
    }
    throw error;
  }
  db.exec("COMMIT");
  return result;
}

/** Brings the schema up to {@linkcode SQLITE_SCHEMA_VERSION}, under the write lock. */
function migrate(db: DatabaseSync, path: string, logger: Logger): void {
  const current = () =>
    (db.prepare("PRAGMA user_version").get() as { user_version: number })
      .user_version;
  if (current() === SQLITE_SCHEMA_VERSION) return;
  transaction(db, () => {
    const from = current(); // again: another process may have migrated meanwhile
    if (from > SQLITE_SCHEMA_VERSION) {
      throw new Error(
        `Cannot open SQLite database ${path}: its schema version is ${from}, newer than ${SQLITE_SCHEMA_VERSION} which this build knows; upgrade the service`,
      );
    }
    for (let version = from + 1; version <= SQLITE_SCHEMA_VERSION; version++) {
      const migration = MIGRATIONS[version - 1]!;
      if (typeof migration === "string") db.exec(migration);
      else migration(db);
      db.exec(`PRAGMA user_version = ${version}`);
      logger.info("Migrated the SQLite schema", { path, version });
    }
  });
}
