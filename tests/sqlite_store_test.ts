/** The store contract over the SQLite adapter, plus what only SQLite has: files and processes. */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { SQLITE_SCHEMA_VERSION, SqliteStore } from "../store/sqlite_store.ts";
import { openStore } from "../store/open_store.ts";
import { silentLogger } from "../core/logger.ts";
import type { Account } from "../store/store.ts";
import { newAccount, newMessage, newRoom, storeContract } from "./store_contract.ts";

const dir = await Deno.makeTempDir({ prefix: "chat-sqlite-test-" });
// Runs however the tests end (also with --filter); the files are only ours.
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // already gone
  }
});

const contractPath = `${dir}/contract/chat.db`;
storeContract("sqlite store", () => SqliteStore.open(contractPath));

const STORE_MODULE = new URL("../store/sqlite_store.ts", import.meta.url).href;
const REPO = new URL("..", import.meta.url).pathname;

Deno.test("sqlite store: creates parent directories, WAL mode, schema version", async () => {
  const path = `${dir}/nested/deeper/chat.db`;
  const store = await SqliteStore.open(path);
  await store.append(newMessage("wal"));
  await store.close();

  const db = new DatabaseSync(path);
  try {
    assert.deepEqual({ ...db.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
    assert.deepEqual({ ...db.prepare("PRAGMA user_version").get() }, {
      user_version: SQLITE_SCHEMA_VERSION,
    });
    const columns = db.prepare("SELECT name, pk FROM pragma_table_info('messages') ORDER BY cid")
      .all().map((r) => ({ ...r }));
    assert.deepEqual(columns, [
      { name: "room", pk: 1 },
      { name: "seq", pk: 2 },
      { name: "id", pk: 0 },
      { name: "user_id", pk: 0 },
      { name: "display_name", pk: 0 },
      { name: "content", pk: 0 },
      { name: "timestamp", pk: 0 },
      { name: "mentions", pk: 0 },
      { name: "edited_at", pk: 0 },
      { name: "deleted", pk: 0 },
    ]);
  } finally {
    db.close();
  }
});

Deno.test("sqlite store: refuses a database with a newer schema version", async () => {
  const path = `${dir}/newer.db`;
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
  db.close();
  await assert.rejects(
    SqliteStore.open(path),
    new RegExp(
      `schema version is ${SQLITE_SCHEMA_VERSION + 1}, newer than ${SQLITE_SCHEMA_VERSION} `,
    ),
  );
});

/** The schema of version 1 exactly as that code created it (frozen here: it must not change). */
const SCHEMA_V1 = `CREATE TABLE IF NOT EXISTS messages (
     room         TEXT    NOT NULL,
     seq          INTEGER NOT NULL,
     id           TEXT    NOT NULL UNIQUE,
     user_id      TEXT    NOT NULL,
     display_name TEXT    NOT NULL,
     content      TEXT    NOT NULL,
     timestamp    TEXT    NOT NULL,
     PRIMARY KEY (room, seq)
   ) WITHOUT ROWID;
   PRAGMA user_version = 1;`;

Deno.test("sqlite store: a version 1 database upgrades in place, keeping its messages", async () => {
  const path = `${dir}/v1/chat.db`;
  await Deno.mkdir(`${dir}/v1`);
  const old = new DatabaseSync(path);
  old.exec("PRAGMA journal_mode = WAL");
  old.exec(SCHEMA_V1);
  const insert = old.prepare(
    "INSERT INTO messages (room, seq, id, user_id, display_name, content, timestamp) " +
      "VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const messages = [1, 2, 3].map((seq) => ({
    ...newMessage("old-room", { content: `old ${seq} — ünïcode 😀` }),
    seq,
  }));
  for (const m of messages) {
    insert.run(m.room, m.seq, m.id, m.userId, m.displayName, m.content, m.timestamp);
  }
  old.close();

  const store = await SqliteStore.open(path);
  try {
    assert.deepEqual(await store.since("old-room", 0, 10), messages, "the messages are kept");
    assert.equal(await store.lastSeq("old-room"), 3);
    assert.deepEqual(
      (await store.search(["old-room"], messages[1]!.content, 10)).map((m) => m.seq),
      [2],
      "the messages from before the search index are found",
    );
    assert.equal((await store.append(newMessage("old-room"))).seq, 4, "seq goes on");
    assert.deepEqual(await store.append(messages[0]!), messages[0], "ids are remembered");
    const account = newAccount("upgraded-user");
    assert.deepEqual(await store.createAccount(account), { account, created: true });
    const room = newRoom("old-room");
    assert.deepEqual(await store.createRoom(room), { room, created: true });
    assert.equal(await store.addMember(room.id, account.id), true);
    assert.deepEqual(await store.roomsOf(account.id), [room]);
    assert.deepEqual(await store.listRooms(10), [room]);
  } finally {
    await store.close();
  }

  const db = new DatabaseSync(path);
  try {
    assert.deepEqual({ ...db.prepare("PRAGMA user_version").get() }, {
      user_version: SQLITE_SCHEMA_VERSION,
    });
    assert.deepEqual({ ...db.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
  } finally {
    db.close();
  }
  // Opening again finds nothing to migrate.
  const again = await SqliteStore.open(path);
  try {
    assert.equal(await again.lastSeq("old-room"), 4);
    assert.equal((await again.getAccount("upgraded-user"))?.id, "upgraded-user");
  } finally {
    await again.close();
  }
});

/** What version 2 added (frozen here: it must not change). */
const SCHEMA_V2 = `CREATE TABLE accounts (
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
   CREATE INDEX members_user_id ON members (user_id, room_id);
   PRAGMA user_version = 2;`;

Deno.test("sqlite store: a version 2 database upgrades: ids per sender, names without case, case twins kept", async () => {
  const path = `${dir}/v2/chat.db`;
  await Deno.mkdir(`${dir}/v2`);
  const old = new DatabaseSync(path);
  old.exec("PRAGMA journal_mode = WAL");
  old.exec(SCHEMA_V1);
  old.exec(SCHEMA_V2);
  const insert = old.prepare(
    "INSERT INTO messages (room, seq, id, user_id, display_name, content, timestamp) " +
      "VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const messages = [1, 2].map((seq) => ({ ...newMessage("Lobby", { userId: "ann" }), seq }));
  for (const m of messages) {
    insert.run(m.room, m.seq, m.id, m.userId, m.displayName, m.content, m.timestamp);
  }
  // Accounts and rooms that differ only by case, as version 2 allowed.
  const accounts = [
    newAccount("ALICE", { createdAt: "2024-01-01T00:00:00.000Z" }),
    newAccount("alice", { createdAt: "2024-02-01T00:00:00.000Z" }),
    newAccount("Bob", { createdAt: "2024-03-01T00:00:00.000Z" }),
    newAccount("BOB", { createdAt: "2024-01-01T00:00:00.000Z" }),
  ];
  for (const a of accounts) {
    old.prepare("INSERT INTO accounts VALUES (?, ?, ?, ?)").run(
      a.id,
      a.displayName,
      a.passwordHash,
      a.createdAt,
    );
  }
  const rooms = [newRoom("Lobby"), newRoom("LOBBY")];
  for (const r of rooms) {
    old.prepare("INSERT INTO rooms VALUES (?, ?, ?, ?)").run(r.id, 0, r.createdBy, r.createdAt);
  }
  old.prepare("INSERT INTO members VALUES (?, ?, ?)").run("Lobby", "ann", "2024-01-01");
  old.close();

  const store = await SqliteStore.open(path);
  try {
    assert.deepEqual(await store.since("Lobby", 0, 10), messages, "the messages are kept");
    const [alice, lowerAlice, bob, upperBob] = accounts as [Account, Account, Account, Account];
    // Every account stays reachable by its exact spelling; the case-less name belongs to the
    // lower-case one, else to the oldest.
    assert.deepEqual(await store.getAccount("ALICE"), alice);
    assert.deepEqual(await store.getAccount("alice"), lowerAlice);
    assert.deepEqual(await store.getAccount("Alice"), lowerAlice);
    assert.deepEqual(await store.getAccount("Bob"), bob);
    assert.deepEqual(await store.getAccount("BOB"), upperBob);
    assert.deepEqual(await store.getAccount("bob"), upperBob);
    assert.equal((await store.createAccount(newAccount("bOb"))).created, false, "no third Bob");
    assert.deepEqual(await store.getRoom("Lobby"), rooms[0]);
    assert.deepEqual(await store.getRoom("LOBBY"), rooms[1]);
    assert.deepEqual(await store.getRoom("lobby"), rooms[0], "the oldest owns the name");
    assert.deepEqual(await store.roomsOf("ann"), [rooms[0]]);
    // A message id is unique per sender now: the same id from someone else is another message.
    const clash = { ...messages[0]!, userId: "ben", seq: 0 };
    assert.equal((await store.append(clash)).seq, 3);
    assert.deepEqual(await store.append(messages[0]!), messages[0], "ann's copy stays");
    // Version 7: read positions start empty and are kept from now on.
    assert.deepEqual(await store.readStates("ben", ["Lobby"]), [
      { room: "Lobby", readSeq: 0, unread: 2, mentions: 0 },
    ]);
    assert.equal(await store.markRead("Lobby", "ben", 2), 2);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: schema of accounts, rooms and members", async () => {
  const path = `${dir}/schema-v3.db`;
  await (await SqliteStore.open(path)).close();
  const db = new DatabaseSync(path);
  try {
    const columns = (table: string) =>
      db.prepare(`SELECT name, pk FROM pragma_table_info('${table}') ORDER BY cid`).all()
        .map((r) => ({ ...r }));
    assert.deepEqual(columns("accounts"), [
      { name: "id", pk: 1 },
      { name: "display_name", pk: 0 },
      { name: "password_hash", pk: 0 },
      { name: "created_at", pk: 0 },
      { name: "name_key", pk: 0 },
    ]);
    assert.deepEqual(columns("rooms"), [
      { name: "id", pk: 1 },
      { name: "direct", pk: 0 },
      { name: "created_by", pk: 0 },
      { name: "created_at", pk: 0 },
      { name: "name_key", pk: 0 },
      { name: "topic", pk: 0 },
      { name: "topic_key", pk: 0 },
      { name: "id_key", pk: 0 },
      { name: "invite_only", pk: 0 },
    ]);
    assert.deepEqual(columns("invitations"), [
      { name: "room_id", pk: 1 },
      { name: "user_id", pk: 2 },
      { name: "invited_by", pk: 0 },
      { name: "invited_at", pk: 0 },
    ]);
    assert.deepEqual(columns("members"), [
      { name: "room_id", pk: 1 },
      { name: "user_id", pk: 2 },
      { name: "joined_at", pk: 0 },
    ]);
    const indexColumns = (index: string) =>
      db.prepare(`SELECT name FROM pragma_index_info('${index}') ORDER BY seqno`).all()
        .map((r) => r.name);
    assert.deepEqual(indexColumns("members_user_id"), ["user_id", "room_id"]);
    assert.deepEqual(indexColumns("invitations_user_id"), ["user_id", "invited_at"]);
    assert.deepEqual(indexColumns("accounts_name_key"), ["name_key"]);
    assert.deepEqual(indexColumns("rooms_name_key"), ["name_key"]);
    // Unique indexes: the case-less names, and a message id per sender (not per world).
    const unique = (table: string) =>
      db.prepare(`SELECT name FROM pragma_index_list('${table}') WHERE "unique" = 1`).all()
        .map((r) => indexColumns(String(r.name)).join(","));
    assert.deepEqual(unique("messages").sort(), ["room,seq", "user_id,id"]);
    assert.ok(unique("accounts").includes("name_key"));
    assert.ok(unique("rooms").includes("name_key"));
    const plan = db.prepare(
      "EXPLAIN QUERY PLAN SELECT room_id FROM members WHERE user_id = 'u'",
    ).all().map((r) => String(r.detail)).join("; ");
    assert.match(plan, /members_user_id/, "roomsOf finds a user's rooms through the index");
  } finally {
    db.close();
  }
});

Deno.test("sqlite store: account and room fields with a NUL character are refused", async () => {
  const store = await SqliteStore.open(":memory:");
  try {
    await assert.rejects(
      store.createAccount(newAccount("nul", { displayName: "a\u0000b" })),
      /Cannot create account: displayName contains a NUL character/,
    );
    assert.equal(await store.getAccount("nul"), undefined);
    await assert.rejects(
      store.createRoom(newRoom("nul\u0000room")),
      /Cannot create room: id contains a NUL character/,
    );
    await assert.rejects(
      store.addMember("room", "user\u0000"),
      /Cannot add member: userId contains a NUL character/,
    );
    assert.deepEqual(await store.members("room"), []);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: :memory: works without a file", async () => {
  const store = await SqliteStore.open(":memory:");
  try {
    await store.append(newMessage("mem"));
    await store.append(newMessage("mem"));
    assert.deepEqual((await store.since("mem", 0, 10)).map((m) => m.seq), [1, 2]);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: refuses NUL characters instead of cutting them off", async () => {
  const store = await SqliteStore.open(":memory:");
  try {
    await assert.rejects(
      store.append(newMessage("nul", { content: "a\u0000b" })),
      /Cannot store message: content contains a NUL character/,
    );
    assert.deepEqual(await store.since("nul", 0, 10), []);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: a closed store says so", async () => {
  const store = await SqliteStore.open(":memory:");
  await store.close();
  await store.close(); // twice is fine
  await assert.rejects(store.append(newMessage("closed")), /store :memory: is closed/);
});

Deno.test("sqlite store: openStore picks SQLite when no URL is set", async () => {
  const path = `${dir}/open-store/chat.db`;
  const store = await openStore({ databasePath: path, databaseUrl: undefined }, silentLogger);
  try {
    assert.ok(store instanceof SqliteStore);
    assert.equal((await store.append(newMessage("open"))).seq, 1);
  } finally {
    await store.close();
  }
  await Deno.stat(path);
});

/**
 * Runs `body` in `count` processes at once, each with `store` open on the SQLite file at `path`
 * and its own `name` ("p0", "p1", ...). Each says it is ready, then waits for "go", so that all
 * start together; `await pace(ms)` in `body` waits until `ms` after that common start, which keeps
 * the processes side by side even when the machine runs one of them late. `body` ends with
 * `return <JSON value>`; the values come back in process order.
 */
async function raceInProcesses(path: string, count: number, body: string): Promise<unknown[]> {
  const barrier = await Deno.makeTempDir({ dir, prefix: "barrier-" });
  await (await SqliteStore.open(path)).close(); // create it once, so the processes race on `body` only
  const code = `
    import { setTimeout as sleep } from "node:timers/promises";
    import { SqliteStore } from ${JSON.stringify(STORE_MODULE)};
    const barrier = Deno.env.get("BARRIER");
    const name = Deno.env.get("NAME");
    const store = await SqliteStore.open(Deno.env.get("DB"));
    Deno.writeTextFileSync(barrier + "/ready-" + name, "");
    let start;
    for (;;) {
      try { start = Number(Deno.readTextFileSync(barrier + "/go")); break; } catch { /* not yet */ }
      await sleep(1);
    }
    const pace = async (ms) => {
      const wait = start + ms - Date.now();
      if (wait > 0) await sleep(wait);
    };
    const result = await (async () => { ${body} })();
    await store.close();
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(result)));
  `;
  const children = Array.from({ length: count }, (_, p) =>
    new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", code],
      cwd: REPO,
      env: { DB: path, NAME: `p${p}`, BARRIER: barrier },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output());
  const deadline = Date.now() + 60_000;
  while ([...Deno.readDirSync(barrier)].length < count && Date.now() < deadline) await sleep(10);
  // Written whole under another name first, so that no process reads it half-written.
  await Deno.writeTextFile(`${barrier}/go.tmp`, String(Date.now() + 100));
  await Deno.rename(`${barrier}/go.tmp`, `${barrier}/go`);
  const outputs = await Promise.all(children);
  return outputs.map((output, p) => {
    assert.ok(output.success, `process p${p} failed: ${new TextDecoder().decode(output.stderr)}`);
    return JSON.parse(new TextDecoder().decode(output.stdout));
  });
}

Deno.test("sqlite store: appenders in four processes on one file never share or skip a seq", async () => {
  const path = `${dir}/processes.db`;
  const PROCESSES = 4;
  const OWN = 150; // messages only this process appends
  const SHARED = 30; // messages every process appends (same ids), interleaved with its own
  const outputs = await raceInProcesses(
    path,
    PROCESSES,
    `
    const message = (id) => ({ id, userId: "u", displayName: "U", content: id,
      timestamp: new Date().toISOString(), room: "race", seq: 0 });
    const out = {};
    for (let i = 0; i < ${OWN}; i++) {
      await pace(i * 2);
      const own = await store.append(message(name + "-" + i));
      out[own.id] = own.seq;
      if (i % 5 === 0 && i / 5 < ${SHARED}) {
        const shared = await store.append(message("shared-" + (i / 5)));
        out[shared.id] = shared.seq;
      }
    }
    return out;`,
  );

  const seen = new Map<string, number>();
  for (const result of outputs as Record<string, number>[]) {
    for (const [id, seq] of Object.entries(result)) {
      if (seen.has(id)) assert.equal(seq, seen.get(id), `every process got one seq for ${id}`);
      seen.set(id, seq);
    }
  }
  const total = PROCESSES * OWN + SHARED;
  assert.equal(seen.size, total);
  const seqs = [...seen.values()].sort((a, b) => a - b);
  assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1));

  const store = await SqliteStore.open(path);
  try {
    const stored = await store.since("race", 0, 10_000);
    assert.deepEqual(stored.map((m) => m.seq), seqs);
    for (const m of stored) assert.equal(m.seq, seen.get(m.id));
    // They really ran side by side: one after another would switch owner only PROCESSES - 1 times.
    const owners = stored.map((m) => m.id.split("-")[0]).filter((owner) => owner !== "shared");
    const switches = owners.filter((owner, i) => i > 0 && owner !== owners[i - 1]).length;
    assert.ok(switches > PROCESSES - 1, `the processes' appends interleave (${switches} switches)`);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: createAccount in four processes on one file creates each id once", async () => {
  const path = `${dir}/accounts-processes.db`;
  const IDS = 40;
  const outputs = await raceInProcesses(
    path,
    4,
    `
    const created = [];
    for (let i = 0; i < ${IDS}; i++) {
      const result = await store.createAccount({ id: "user-" + i, displayName: name,
        passwordHash: "h", createdAt: new Date().toISOString() });
      if (result.account.id !== "user-" + i) throw new Error("wrong account");
      if (result.created) created.push(i);
      if (result.created !== (result.account.displayName === name)) {
        throw new Error("created, but another process's account was returned (or the reverse)");
      }
    }
    return created;`,
  );

  const creator = new Map<number, string>();
  for (const [p, created] of (outputs as number[][]).entries()) {
    for (const i of created) {
      assert.ok(!creator.has(i), `user-${i} created by both ${creator.get(i)} and p${p}`);
      creator.set(i, `p${p}`);
    }
  }
  assert.equal(creator.size, IDS, "every id was created by exactly one process");
  const store = await SqliteStore.open(path);
  try {
    for (const [i, name] of creator) {
      assert.equal((await store.getAccount(`user-${i}`))?.displayName, name);
    }
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: a deleted message's text is nowhere in the database's files", async () => {
  const path = `${dir}/deleted/chat.db`;
  const store = await SqliteStore.open(path);
  const secret = `the-secret-${crypto.randomUUID()}`;
  const files = async () => {
    const bytes = [];
    for (const suffix of ["", "-wal", "-shm"]) {
      bytes.push(await Deno.readFile(path + suffix).catch(() => new Uint8Array()));
    }
    return new TextDecoder("latin1").decode(new Uint8Array(bytes.flatMap((b) => [...b])));
  };
  try {
    // Enough rows that the page holding the text also holds others, and is rewritten, not dropped.
    for (let i = 0; i < 20; i++) await store.append(newMessage("deleted", { content: `row ${i}` }));
    const message = await store.append(newMessage("deleted", { content: secret }));
    await store.append(newMessage("deleted", { content: "after" }));
    assert.ok((await files()).includes(secret), "the text is on disk before it is deleted");
    await store.changeMessage({
      room: "deleted",
      seq: message.seq,
      deleted: true,
      content: "",
      at: new Date().toISOString(),
      byUserId: message.userId,
      byDisplayName: message.displayName,
    });
    assert.ok(!(await files()).includes(secret), "no trace of the text in the file or its log");
    assert.equal((await store.message("deleted", message.seq))?.content, "");
  } finally {
    await store.close();
  }
});
