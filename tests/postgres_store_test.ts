/**
 * The store contract over the PostgreSQL adapter, against the server at `DATABASE_URL`.
 *
 * `deno task test` starts a throwaway server (scripts/postgres.ts) and sets the variable. Each
 * run works in a schema of its own, dropped at the end.
 */

import assert from "node:assert/strict";
import postgres from "postgres";
import { PostgresStore } from "../store/postgres_store.ts";
import { openStore } from "../store/open_store.ts";
import { silentLogger } from "../core/logger.ts";
import { newMessage, storeContract } from "./store_contract.ts";

const url = Deno.env.get("DATABASE_URL");

if (!url) {
  Deno.test("postgres store: DATABASE_URL is set", () => {
    throw new Error(
      "Cannot test the PostgreSQL store: DATABASE_URL is not set. Run the tests with " +
        "`deno task test`, which starts PostgreSQL (scripts/postgres.ts) and sets it; or run " +
        "`deno run -A scripts/postgres.ts up` and pass the DATABASE_URL it prints.",
    );
  });
} else {
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
        { type: "u", columns: "id" },
      ]);
      const [version] = await sql`SELECT version FROM ${sql(schema)}.store_schema`;
      assert.equal(version?.version, 1);
    } finally {
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
}
