/**
 * The store contract over the PostgreSQL adapter, against the server of tests/fixtures.ts:
 * `DATABASE_URL` when set, else the throwaway local server (scripts/postgres.ts) it starts. Each
 * run works in a schema of its own, dropped at the end.
 */

import assert from "node:assert/strict";
import postgres from "postgres";
import { POSTGRES_SCHEMA_VERSION, PostgresStore } from "../store/postgres_store.ts";
import { openStore } from "../store/open_store.ts";
import { silentLogger } from "../core/logger.ts";
import { databaseUrl } from "./fixtures.ts";
import { newAccount, newMessage, newRoom, storeContract } from "./store_contract.ts";

const url = await databaseUrl();

const schema = `chat_test_${Date.now()}_${crypto.randomUUID().slice(0, 8)}`;
let dropped = false;

const dropSchema = async () => {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  dropped = true;
};

// When the last test does not run (--filter, a crash), drop the schema on the way out anyway;
// "unload" allows no waiting, so a child process does it.
globalThis.addEventListener("unload", () => {
  if (dropped) return;
  new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--quiet",
      `import postgres from "postgres";
       const sql = postgres(Deno.env.get("DATABASE_URL"), { max: 1, onnotice: () => {} });
       await sql.unsafe("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS ${schema} CASCADE");
       await sql.end({ timeout: 5 });`,
    ],
    cwd: new URL("..", import.meta.url).pathname,
    env: { DATABASE_URL: url },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).outputSync();
});

storeContract("postgres store", () => PostgresStore.open(url, { schema }));

Deno.test("postgres store: concurrent first opens of a new schema all succeed", async () => {
  const fresh = `${schema}_fresh`;
  const stores = await Promise.all(
    Array.from({ length: 4 }, () => PostgresStore.open(url, { schema: fresh })),
  );
  try {
    const results = await Promise.all(
      stores.map((store, i) => store.append(newMessage("fresh", { content: `from ${i}` }))),
    );
    assert.deepEqual(results.map((m) => m.seq).sort(), [1, 2, 3, 4]);
  } finally {
    await Promise.all(stores.map((store) => store.close()));
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    await sql.unsafe(`DROP SCHEMA IF EXISTS ${fresh} CASCADE`);
    await sql.end();
  }
});

Deno.test("postgres store: schema and constraints", async () => {
  await (await PostgresStore.open(url, { schema })).close();
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const columns = await sql<{ column_name: string; data_type: string }[]>`
      SELECT column_name, data_type FROM information_schema.columns
      WHERE table_schema = ${schema} AND table_name = 'messages' ORDER BY ordinal_position`;
    assert.deepEqual(columns.map((c) => c.column_name), [
      "room",
      "seq",
      "id",
      "user_id",
      "display_name",
      "content",
      "timestamp",
      "mentions",
      "edited_at",
      "deleted",
      "search",
    ]);
    const constraints = await sql<{ type: string; columns: string }[]>`
      SELECT c.contype AS type, string_agg(a.attname, ',' ORDER BY k.ord) AS columns
      FROM pg_constraint c
      JOIN pg_class t ON t.oid = c.conrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
      WHERE n.nspname = ${schema} AND t.relname = 'messages' AND c.contype IN ('p', 'u')
      GROUP BY c.oid, c.contype ORDER BY c.contype`;
    assert.deepEqual([...constraints], [
      { type: "p", columns: "room,seq" },
      { type: "u", columns: "user_id,id" },
    ]);
    const [version] = await sql`SELECT version FROM ${sql(schema)}.store_schema`;
    assert.equal(version?.version, POSTGRES_SCHEMA_VERSION);

    const tableColumns = async (table: string) =>
      (await sql<{ column_name: string; data_type: string; collation_name: string | null }[]>`
        SELECT column_name, data_type, collation_name FROM information_schema.columns
        WHERE table_schema = ${schema} AND table_name = ${table} ORDER BY ordinal_position`)
        .map((c) =>
          `${c.column_name} ${c.data_type}${c.collation_name ? " " + c.collation_name : ""}`
        );
    assert.deepEqual(await tableColumns("room_seqs"), ["room text", "last_seq bigint"]);
    assert.deepEqual(await tableColumns("accounts"), [
      "id text C",
      "display_name text",
      "password_hash text",
      "created_at text",
      "name_key text C",
    ]);
    assert.deepEqual(await tableColumns("rooms"), [
      "id text C",
      "direct boolean",
      "created_by text",
      "created_at text",
      "name_key text C",
      "topic text",
      "topic_key text",
      "id_key text",
      "invite_only boolean",
    ]);
    assert.deepEqual(await tableColumns("invitations"), [
      "room_id text C",
      "user_id text C",
      "invited_by text",
      "invited_at text",
    ]);
    assert.deepEqual(await tableColumns("members"), [
      "room_id text C",
      "user_id text C",
      "joined_at text",
    ]);
    const indexes = await sql<{ indexname: string; indexdef: string }[]>`
      SELECT indexname, indexdef FROM pg_indexes
      WHERE schemaname = ${schema} AND tablename IN ('accounts', 'rooms', 'members', 'room_seqs')
      ORDER BY indexname`;
    assert.deepEqual(
      indexes.map((i) => i.indexdef.replace(` ${schema}.`, " ").replace(/^.*INDEX /, "")),
      [
        "accounts_name_key ON accounts USING btree (name_key)",
        "accounts_pkey ON accounts USING btree (id)",
        "members_pkey ON members USING btree (room_id, user_id)",
        "members_user_id ON members USING btree (user_id, room_id)",
        "room_seqs_pkey ON room_seqs USING btree (room)",
        "rooms_listed ON rooms USING btree (id) WHERE (NOT direct)",
        "rooms_name_key ON rooms USING btree (name_key)",
        "rooms_pkey ON rooms USING btree (id)",
      ],
    );
  } finally {
    await sql.end();
  }
});

Deno.test("postgres store: a version 1 schema upgrades in place, keeping messages and counters", async () => {
  const old = `${schema}_v1`;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    // Version 1 exactly as that code created it (frozen here: it must not change).
    await sql.unsafe(`
      CREATE SCHEMA ${old};
      SET search_path = ${old};
      CREATE TABLE store_schema (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        version  integer NOT NULL);
      CREATE TABLE IF NOT EXISTS rooms (
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
      );
      INSERT INTO store_schema (version) VALUES (1);`);
    const messages = [1, 2, 3].map((seq) => ({ ...newMessage("general"), seq }));
    for (const m of messages) {
      await sql`
        INSERT INTO ${sql(old)}.messages (room, seq, id, user_id, display_name, content, timestamp)
        VALUES (${m.room}, ${m.seq}, ${m.id}, ${m.userId}, ${m.displayName}, ${m.content},
                ${m.timestamp})`;
    }
    await sql`INSERT INTO ${sql(old)}.rooms (room, last_seq) VALUES ('general', 3)`;

    // Two new-version processes opening at once: one migrates, the other waits and finds it done.
    const [store, other] = await Promise.all([
      PostgresStore.open(url, { schema: old }),
      PostgresStore.open(url, { schema: old }),
    ]);
    try {
      assert.deepEqual(await store.since("general", 0, 10), messages, "the messages are kept");
      assert.equal(await store.lastSeq("general"), 3);
      assert.deepEqual(
        (await store.search(["general"], messages[1]!.content, 10)).map((m) => m.seq),
        [2],
        "the messages from before the search index are found",
      );
      assert.equal((await other.append(newMessage("general"))).seq, 4, "the counter is kept");
      assert.deepEqual(await store.append(messages[1]!), messages[1], "ids are remembered");
      const room = newRoom("general");
      assert.deepEqual(await store.createRoom(room), { room, created: true });
      const account = newAccount("upgraded");
      assert.deepEqual(await other.createAccount(account), { account, created: true });
      assert.equal(await store.addMember("general", "upgraded"), true);
      assert.deepEqual(await other.roomsOf("upgraded"), [room]);
      assert.equal((await store.append(newMessage("general"))).seq, 5);
    } finally {
      await Promise.all([store.close(), other.close()]);
    }
    const [version] = await sql`SELECT version FROM ${sql(old)}.store_schema`;
    assert.equal(version?.version, POSTGRES_SCHEMA_VERSION);
    const [counter] = await sql`SELECT last_seq FROM ${sql(old)}.room_seqs WHERE room = 'general'`;
    assert.equal(Number(counter?.last_seq), 5);
  } finally {
    await sql.unsafe(`DROP SCHEMA IF EXISTS ${old} CASCADE`);
    await sql.end();
  }
});

Deno.test("postgres store: a version 2 schema upgrades: ids per sender, names without case, case twins kept", async () => {
  const old = `${schema}_v2`;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    // Version 2 exactly as that code left it (frozen here: it must not change).
    await sql.unsafe(`
      CREATE SCHEMA ${old};
      SET search_path = ${old};
      CREATE TABLE store_schema (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        version  integer NOT NULL);
      CREATE TABLE room_seqs (room text PRIMARY KEY, last_seq bigint NOT NULL);
      CREATE TABLE messages (
        room text NOT NULL, seq bigint NOT NULL, id text NOT NULL UNIQUE, user_id text NOT NULL,
        display_name text NOT NULL, content text NOT NULL, timestamp text NOT NULL,
        PRIMARY KEY (room, seq));
      CREATE TABLE accounts (
        id text COLLATE "C" PRIMARY KEY, display_name text NOT NULL,
        password_hash text NOT NULL, created_at text NOT NULL);
      CREATE TABLE rooms (
        id text COLLATE "C" PRIMARY KEY, direct boolean NOT NULL,
        created_by text NOT NULL, created_at text NOT NULL);
      CREATE INDEX rooms_listed ON rooms (id) WHERE NOT direct;
      CREATE TABLE members (
        room_id text COLLATE "C" NOT NULL, user_id text COLLATE "C" NOT NULL,
        joined_at text NOT NULL, PRIMARY KEY (room_id, user_id));
      CREATE INDEX members_user_id ON members (user_id, room_id);
      INSERT INTO store_schema (version) VALUES (2);`);
    const message = { ...newMessage("Lobby", { userId: "ann" }), seq: 1 };
    await sql`
      INSERT INTO ${sql(old)}.messages (room, seq, id, user_id, display_name, content, timestamp)
      VALUES (${message.room}, 1, ${message.id}, ${message.userId}, ${message.displayName},
              ${message.content}, ${message.timestamp})`;
    await sql`INSERT INTO ${sql(old)}.room_seqs (room, last_seq) VALUES ('Lobby', 1)`;
    // Accounts and rooms that differ only by case, as version 2 allowed.
    const accounts = [
      newAccount("ALICE", { createdAt: "2024-01-01T00:00:00.000Z" }),
      newAccount("alice", { createdAt: "2024-02-01T00:00:00.000Z" }),
      newAccount("Bob", { createdAt: "2024-03-01T00:00:00.000Z" }),
      newAccount("BOB", { createdAt: "2024-01-01T00:00:00.000Z" }),
    ];
    for (const a of accounts) {
      await sql`INSERT INTO ${sql(old)}.accounts VALUES
        (${a.id}, ${a.displayName}, ${a.passwordHash}, ${a.createdAt})`;
    }
    const rooms = [newRoom("Lobby"), newRoom("LOBBY")];
    for (const r of rooms) {
      await sql`INSERT INTO ${sql(old)}.rooms VALUES
        (${r.id}, false, ${r.createdBy}, ${r.createdAt})`;
    }

    const store = await PostgresStore.open(url, { schema: old });
    try {
      assert.deepEqual(await store.since("Lobby", 0, 10), [message], "the messages are kept");
      const [alice, lowerAlice, bob, upperBob] = accounts;
      assert.deepEqual(await store.getAccount("ALICE"), alice);
      assert.deepEqual(await store.getAccount("alice"), lowerAlice);
      assert.deepEqual(await store.getAccount("Alice"), lowerAlice);
      assert.deepEqual(await store.getAccount("Bob"), bob);
      assert.deepEqual(await store.getAccount("bob"), upperBob, "the oldest owns the name");
      assert.equal((await store.createAccount(newAccount("bOb"))).created, false);
      assert.deepEqual(await store.getRoom("LOBBY"), rooms[1]);
      assert.deepEqual(await store.getRoom("lobby"), rooms[0]);
      const clash = { ...message, userId: "ben", seq: 0 };
      assert.equal((await store.append(clash)).seq, 2, "another sender's id is another message");
      assert.deepEqual(await store.append(message), message, "ann's copy stays");
      // Version 7: read positions start empty and are kept from now on.
      assert.deepEqual(await store.readStates("ben", ["Lobby"]), [
        { room: "Lobby", readSeq: 0, unread: 1, mentions: 0 },
      ]);
      assert.equal(await store.markRead("Lobby", "ben", 2), 2);
    } finally {
      await store.close();
    }
    const [version] = await sql`SELECT version FROM ${sql(old)}.store_schema`;
    assert.equal(version?.version, POSTGRES_SCHEMA_VERSION);
  } finally {
    await sql.unsafe(`DROP SCHEMA IF EXISTS ${old} CASCADE`);
    await sql.end();
  }
});

Deno.test("postgres store: a NUL character is refused with a clear error", async () => {
  const store = await PostgresStore.open(url, { schema });
  try {
    await assert.rejects(
      store.append(newMessage("nul", { content: "a\u0000b" })),
      /Cannot store message: content contains a NUL character/,
    );
  } finally {
    await store.close();
  }
});

Deno.test("postgres store: account and room fields with a NUL character are refused", async () => {
  const store = await PostgresStore.open(url, { schema });
  try {
    await assert.rejects(
      store.createAccount(newAccount("nul", { passwordHash: "a\u0000b" })),
      /Cannot create account: passwordHash contains a NUL character/,
    );
    await assert.rejects(
      store.createRoom(newRoom("nul", { createdBy: "\u0000" })),
      /Cannot create room: createdBy contains a NUL character/,
    );
    await assert.rejects(
      store.addMember("room\u0000", "user"),
      /Cannot add member: roomId contains a NUL character/,
    );
    // Reads of such an id find nothing instead of failing on the wire.
    assert.equal(await store.getAccount("nul\u0000"), undefined);
    assert.equal(await store.getRoom("nul\u0000"), undefined);
    assert.equal(await store.isMember("room\u0000", "user"), false);
    assert.equal(await store.removeMember("room\u0000", "user"), false);
    assert.deepEqual(await store.members("room\u0000"), []);
    assert.deepEqual(await store.roomsOf("user\u0000"), []);
    assert.equal(await store.lastSeq("room\u0000"), 0);
  } finally {
    await store.close();
  }
});

Deno.test("postgres store: an unreachable server gives a clear error", async () => {
  await assert.rejects(
    PostgresStore.open("postgres://nobody:secret@127.0.0.1:1/none?connect_timeout=2"),
    (error: Error) => {
      assert.match(error.message, /^Cannot open PostgreSQL store at postgres:\/\/nobody:\*\*\*@/);
      assert.doesNotMatch(error.message, /secret/);
      return true;
    },
  );
});

Deno.test("postgres store: openStore picks PostgreSQL when a URL is set", async () => {
  const withSchema = new URL(url);
  withSchema.searchParams.set("search_path", schema); // a connection parameter, as libpq's
  const store = await openStore(
    { databasePath: "/nonexistent/never-used.db", databaseUrl: withSchema.toString() },
    silentLogger,
  );
  try {
    assert.ok(store instanceof PostgresStore);
    const room = `open-store-${crypto.randomUUID()}`;
    assert.equal((await store.append(newMessage(room))).seq, 1);
  } finally {
    await store.close();
  }
});

// Last: tests run in the order they are registered.
Deno.test("postgres store: drop this run's schema", async () => {
  await dropSchema();
});
