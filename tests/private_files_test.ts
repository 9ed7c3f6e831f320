/**
 * Data at rest on real files: the SQLite database (direct messages, password hashes), its -wal
 * and -shm files and the auth secret are 600 in a 700 directory, also under a umask of 000, and
 * the ones an older version left readable by others (644 in 755) are tightened at start-up, and
 * that is logged. Checked by `stat`, while the database is open and after a write.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import * as grpc from "@grpc/grpc-js";
import { memoryLogger } from "../core/logger.ts";
import { ChatClient } from "../client/chat_client.ts";
import { loadAuthSecret } from "../server/auth.ts";
import { SqliteStore } from "../store/sqlite_store.ts";
import { waitFor } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

const modeOf = (path: string) => (Deno.statSync(path).mode! & 0o7777).toString(8);

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "private_files_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const message = (id: string) => ({
  id,
  userId: "alice",
  displayName: "Alice",
  content: "a direct message",
  timestamp: new Date().toISOString(),
  room: "dm:alice:bob",
  seq: 0,
});

Deno.test("a new database: directory 700; database, -wal and -shm 600 after a write", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/data/nested/chat.db`;
    const logger = memoryLogger();
    const store = await SqliteStore.open(path, { logger });
    try {
      await store.append(message("m1"));
      await store.createAccount({
        id: "alice",
        displayName: "Alice",
        passwordHash: "$argon2id$not-a-real-hash",
        createdAt: new Date().toISOString(),
      });
      assert.equal(modeOf(`${dir}/data`), "700");
      assert.equal(modeOf(`${dir}/data/nested`), "700");
      for (const file of [path, `${path}-wal`, `${path}-shm`]) {
        assert.equal(modeOf(file), "600", file);
      }
    } finally {
      await store.close();
    }
    assert.doesNotMatch(logger.lines.join("\n"), /Tightened/, "nothing to tighten");
  });
});

Deno.test("files an older version left readable (644 in 755) are tightened at start-up, and that is logged", async () => {
  await withTempDir(async (dir) => {
    const data = `${dir}/data`;
    const path = `${data}/chat.db`;
    Deno.mkdirSync(data);
    Deno.writeTextFileSync(`${data}/auth-secret`, "f".repeat(64) + "\n");
    // An older version's database, open in another process (its -wal and -shm exist).
    const old = new DatabaseSync(path);
    old.exec("PRAGMA journal_mode = WAL");
    old.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    for (const file of [path, `${path}-wal`, `${path}-shm`, `${data}/auth-secret`]) {
      Deno.chmodSync(file, 0o644);
    }
    Deno.chmodSync(data, 0o755);
    try {
      // As main.ts does: the store first, then the secret.
      const logger = memoryLogger();
      const store = await SqliteStore.open(path, { logger });
      try {
        await store.append(message("m1"));
        for (const file of [path, `${path}-wal`, `${path}-shm`]) {
          assert.equal(modeOf(file), "600", file);
        }
        await loadAuthSecret(
          { authSecret: undefined, authSecretFile: `${data}/auth-secret` },
          logger,
        );
        assert.equal(modeOf(`${data}/auth-secret`), "600");
        assert.equal(modeOf(data), "700");
      } finally {
        await store.close();
      }
      const log = logger.lines.join("\n");
      for (const file of [path, `${path}-wal`, `${path}-shm`]) {
        assert.match(
          log,
          new RegExp(
            `WARN {2}Tightened the permissions of the database file: other users could read it path=${file} was=644 now=600`,
          ),
        );
      }
      assert.match(
        log,
        /WARN {2}Tightened the permissions of the auth secret file: other users could read it path=\S+auth-secret was=644 now=600/,
      );
      assert.match(
        log,
        /WARN {2}Tightened the permissions of the data directory: other users could list it path=\S+data was=755 now=700/,
      );
    } finally {
      old.close();
    }
  });
});

Deno.test("a directory holding other files is left as it is, with a warning; the database files are private", async () => {
  await withTempDir(async (dir) => {
    const shared = `${dir}/shared`;
    Deno.mkdirSync(shared);
    Deno.chmodSync(shared, 0o755);
    Deno.writeTextFileSync(`${shared}/notes.txt`, "someone else's\n");
    Deno.chmodSync(`${shared}/notes.txt`, 0o644);
    const logger = memoryLogger();
    const store = await SqliteStore.open(`${shared}/chat.db`, { logger });
    try {
      await store.append(message("m1"));
      assert.equal(modeOf(shared), "755", "not the service's to change");
      for (const file of ["chat.db", "chat.db-wal", "chat.db-shm"]) {
        assert.equal(modeOf(`${shared}/${file}`), "600", file);
      }
      assert.match(
        logger.lines.join("\n"),
        /WARN {2}The data directory is readable by other users and holds other files: left as it is .* other=notes\.txt/,
      );
    } finally {
      await store.close();
    }
  });
});

Deno.test("a gateway started under umask 000 keeps its data directory 700 and its database, -wal, -shm and secret 600", async () => {
  await withTempDir(async (dir) => {
    const data = `${dir}/data`;
    const child = new Deno.Command("sh", {
      args: ["-c", `umask 000 && exec "$0" run -A main.ts`, Deno.execPath()],
      cwd: ROOT,
      env: {
        NO_COLOR: "1",
        BUS: "memory",
        GRPC_PORT: "0",
        HTTP_PORT: "0",
        DATABASE_URL: "",
        DATABASE_PATH: `${data}/chat.db`,
        AUTH_SECRET: "",
        AUTH_SECRET_FILE: `${data}/auth-secret`,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines: string[] = [];
    const pump = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        lines.push(...text.split("\n"));
      }
    };
    const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
    let client: ChatClient | undefined;
    try {
      await waitFor(
        () => lines.some((l) => /Gateway listening/.test(l)),
        30_000,
        "the gateway to listen",
      ).catch((err) => {
        throw new Error(`${err.message}\n${lines.join("\n")}`);
      });
      const port = /grpc=[^ ]*:(\d+)/.exec(lines.find((l) => /Gateway listening/.test(l))!)![1];
      client = new ChatClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      // Writes: an account, a message (stored by the embedded processor).
      await client.signIn("alice", "a long password");
      await client.send("alice", "a message at rest");
      await waitFor(async () => (await client!.history("general")).messages.length === 1);
      assert.equal(modeOf(data), "700");
      for (const file of ["chat.db", "chat.db-wal", "chat.db-shm", "auth-secret"]) {
        assert.equal(modeOf(`${data}/${file}`), "600", file);
      }
    } finally {
      client?.close();
      child.kill("SIGTERM");
      await child.status;
      await pumped;
    }
  });
});
