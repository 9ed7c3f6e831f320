/**
 * The SQLite store: chat history in one file, through `node:sqlite` (built into Deno 2).
 *
 * Several processes may share one file: the database runs in WAL mode (readers never block the
 * writer) with a busy timeout, and {@linkcode SqliteStore.append} takes the write lock up front
 * (`BEGIN IMMEDIATE`) before it reads the room's last sequence number, so two appenders can never
 * pick the same number or leave a gap.
 *
 * `node:sqlite` is synchronous: every call blocks the event loop for the length of one statement
 * (or, while another process holds the write lock, for up to the busy timeout).
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { dirname } from "node:path";
import type { ChatMessage } from "../core/types.ts";
import { invalidArgument } from "../core/errors.ts";
import { type Logger, silentLogger } from "../core/logger.ts";
import type { HistoryQuery, Store } from "./store.ts";

/** The schema version this code writes (`PRAGMA user_version`); bump it with a migration. */
export const SQLITE_SCHEMA_VERSION = 1;

/** Migration N brings a database from version N-1 to N; index 0 is version 1. */
const MIGRATIONS: readonly string[] = [
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
];

const COLUMNS = "room, seq, id, user_id, display_name, content, timestamp";

export interface SqliteStoreOptions {
  /** How long to wait for another connection's write lock before failing; default 10 s. */
  busyTimeoutMs?: number;
  logger?: Logger;
}

interface Row {
  room: string;
  seq: number;
  id: string;
  user_id: string;
  display_name: string;
  content: string;
  timestamp: string;
}

function toMessage(row: Row): ChatMessage {
  return {
    id: row.id,
    userId: row.user_id,
    displayName: row.display_name,
    content: row.content,
    timestamp: row.timestamp,
    room: row.room,
    seq: Number(row.seq),
  };
}

/** SQLite TEXT reads stop at a NUL character, so one would be cut off silently: refuse it. */
function refuseNul(message: ChatMessage): void {
  const fields = {
    id: message.id,
    userId: message.userId,
    displayName: message.displayName,
    content: message.content,
    timestamp: message.timestamp,
    room: message.room,
  };
  for (const [field, value] of Object.entries(fields)) {
    if (value.includes("\u0000")) {
      throw invalidArgument(`Cannot store message: ${field} contains a NUL character`);
    }
  }
}

export class SqliteStore implements Store {
  /** Opens (and creates, with its parent directories) the database at `path`, or ":memory:". */
  static open(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
    try {
      return Promise.resolve(new SqliteStore(path, options));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #byId: StatementSync;
  readonly #lastSeq: StatementSync;
  readonly #insert: StatementSync;
  readonly #newest: StatementSync;
  readonly #before: StatementSync;
  readonly #after: StatementSync;
  #closed = false;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    const logger = options.logger ?? silentLogger;
    this.path = path;
    const inMemory = path === ":memory:" || path === "";
    if (!inMemory) Deno.mkdirSync(dirname(path), { recursive: true });
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
      }
      migrate(db, path, logger);
    } catch (error) {
      db.close();
      throw error;
    }
    this.#db = db;
    this.#byId = db.prepare(`SELECT ${COLUMNS} FROM messages WHERE id = ?`);
    this.#lastSeq = db.prepare("SELECT COALESCE(MAX(seq), 0) AS seq FROM messages WHERE room = ?");
    this.#insert = db.prepare(
      `INSERT INTO messages (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#newest = db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?`,
    );
    this.#before = db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
    );
    this.#after = db.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE room = ? AND seq > ? ORDER BY seq ASC LIMIT ?`,
    );
  }

  // The methods are async so that a thrown error becomes a rejected promise, as with the others.

  // deno-lint-ignore require-await
  async append(message: ChatMessage): Promise<ChatMessage> {
    this.#open("append");
    refuseNul(message);
    const existing = this.#byId.get(message.id) as Row | undefined;
    if (existing) return toMessage(existing);
    return transaction(this.#db, () => {
      // Read again under the write lock: another process may have stored it meanwhile.
      const stored = this.#byId.get(message.id) as Row | undefined;
      if (stored) return toMessage(stored);
      const { seq: last } = this.#lastSeq.get(message.room) as { seq: number };
      const seq = Number(last) + 1;
      this.#insert.run(
        message.room,
        seq,
        message.id,
        message.userId,
        message.displayName,
        message.content,
        message.timestamp,
      );
      return { ...message, seq };
    });
  }

  // deno-lint-ignore require-await
  async history(query: HistoryQuery): Promise<ChatMessage[]> {
    this.#open("read history");
    const limit = Math.max(0, Math.trunc(query.limit));
    if (limit === 0) return [];
    const rows = query.beforeSeq === undefined
      ? this.#newest.all(query.room, limit)
      : this.#before.all(query.room, query.beforeSeq, limit);
    return (rows as unknown as Row[]).map(toMessage);
  }

  // deno-lint-ignore require-await
  async since(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]> {
    this.#open("read history");
    const max = Math.max(0, Math.trunc(limit));
    if (max === 0) return [];
    return (this.#after.all(room, afterSeq, max) as unknown as Row[]).map(toMessage);
  }

  // deno-lint-ignore require-await
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #open(what: string): void {
    if (this.#closed) throw new Error(`Cannot ${what}: the SQLite store ${this.path} is closed`);
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
      db.exec(MIGRATIONS[version - 1]!);
      db.exec(`PRAGMA user_version = ${version}`);
      logger.info("Migrated the SQLite schema", { path, version });
    }
  });
}
