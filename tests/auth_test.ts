import assert from "node:assert/strict";
import { ChatError } from "../core/errors.ts";
import { memoryLogger, silentLogger } from "../core/logger.ts";
import { createAuth, loadAuthSecret } from "../server/auth.ts";
import { MemoryStore } from "../store/memory_store.ts";

const SECRET = new TextEncoder().encode("s".repeat(32));
const OTHER_SECRET = new TextEncoder().encode("o".repeat(32));
const TTL = 3600;
const START = Date.parse("2030-01-02T03:04:05Z");

function setup(options: { mode?: "on" | "off"; secret?: Uint8Array; store?: MemoryStore } = {}) {
  const store = options.store ?? new MemoryStore();
  const clock = { now: START };
  const auth = createAuth({
    mode: options.mode ?? "on",
    secret: options.secret ?? SECRET,
    store,
    logger: silentLogger,
    tokenTtlSeconds: TTL,
    now: () => clock.now,
  });
  return { auth, store, clock };
}

/** Asserts that `promise` rejects with a ChatError of `code` whose message matches `message`. */
async function rejectsWith(
  promise: Promise<unknown>,
  code: ChatError["code"],
  message: string | RegExp,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ChatError, `expected a ChatError, got ${err}`);
    assert.equal(err.code, code);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

const bearer = (token: string) => `Bearer ${token}`;

Deno.test("auth: the first sign-in creates the account, later ones check the password", async () => {
  const { auth, store } = setup();
  const first = await auth.signIn("alice", "correct horse", "Alice A.");
  assert.equal(first.created, true);
  assert.deepEqual(first.identity, { userId: "alice", displayName: "Alice A." });
  assert.equal(first.expiresAt.getTime(), START + TTL * 1000);

  const account = await store.getAccount("alice");
  assert.ok(account);
  assert.equal(account.displayName, "Alice A.");
  assert.match(account.passwordHash, /^\$argon2id\$/);
  assert.doesNotMatch(account.passwordHash, /correct horse/);
  assert.equal(account.createdAt, new Date(START).toISOString());

  // A later sign-in keeps the stored display name.
  const again = await auth.signIn("alice", "correct horse", "Someone Else");
  assert.equal(again.created, false);
  assert.deepEqual(again.identity, { userId: "alice", displayName: "Alice A." });

  // Usernames compare without case: "Alice" is alice's account, spelled as she chose it.
  await assert.rejects(auth.signIn("Alice", "another password"), /wrong password for Alice/);
  const sameAlice = await auth.signIn("ALICE", "correct horse");
  assert.equal(sameAlice.created, false);
  assert.deepEqual(sameAlice.identity, { userId: "alice", displayName: "Alice A." });

  // The display name defaults to the username.
  const bob = await auth.signIn("Bob", "another password");
  assert.equal(bob.created, true);
  assert.deepEqual(bob.identity, { userId: "Bob", displayName: "Bob" });
});

Deno.test("auth: a wrong password is refused", async () => {
  const { auth } = setup();
  await auth.signIn("alice", "correct horse");
  await rejectsWith(
    auth.signIn("alice", "wrong horse"),
    "unauthenticated",
    "Cannot sign in: wrong password for alice",
  );
});

Deno.test("auth: concurrent first sign-ins make one account", async () => {
  const { auth, store } = setup();
  const results = await Promise.allSettled([
    auth.signIn("carol", "password one", "Carol 1"),
    auth.signIn("carol", "password two", "Carol 2"),
    auth.signIn("carol", "password one", "Carol 3"),
  ]);
  const fulfilled = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  assert.equal(fulfilled.filter((r) => r.created).length, 1, "exactly one created the account");
  const account = await store.getAccount("carol");
  assert.ok(account);
  // Every sign-in whose password matches the winner's succeeds, the others are refused.
  const winnerPassword = account.displayName === "Carol 2" ? "password two" : "password one";
  for (const [i, result] of results.entries()) {
    const password = ["password one", "password two", "password one"][i];
    if (password === winnerPassword) {
      assert.equal(result.status, "fulfilled", `sign-in ${i}`);
      assert.equal(result.value.identity.displayName, account.displayName);
    } else {
      assert.equal(result.status, "rejected", `sign-in ${i}`);
      assert.ok(result.reason instanceof ChatError);
      assert.equal(result.reason.message, "Cannot sign in: wrong password for carol");
    }
  }
});

Deno.test("auth: usernames, passwords and display names are checked", async () => {
  const { auth, store } = setup();
  await rejectsWith(
    auth.signIn("x y", "long enough"),
    "invalid_argument",
    `Cannot sign in: the username "x y" may only hold letters, digits, '.', '_' and '-'`,
  );
  await rejectsWith(
    auth.signIn("", "long enough"),
    "invalid_argument",
    "Cannot sign in: the username is empty",
  );
  await rejectsWith(
    auth.signIn("a".repeat(33), "long enough"),
    "invalid_argument",
    "Cannot sign in: the username is 33 characters, the limit is 32",
  );
  await rejectsWith(
    auth.signIn("élodie", "long enough"),
    "invalid_argument",
    /the username "élodie" may only hold/,
  );
  await rejectsWith(
    auth.signIn("dave", "short"),
    "invalid_argument",
    "Cannot sign in: the password is 5 characters, it must be at least 8",
  );
  await rejectsWith(
    auth.signIn("dave", "p".repeat(129)),
    "invalid_argument",
    "Cannot sign in: the password is 129 characters, the limit is 128",
  );
  await rejectsWith(
    auth.signIn("dave", "long enough", "d".repeat(65)),
    "invalid_argument",
    "Cannot sign in: the display name is 65 characters, the limit is 64",
  );
  await rejectsWith(
    auth.signIn("dave", "long enough", "Dave\nAdmin"),
    "invalid_argument",
    "Cannot sign in: the display name holds a control character (U+000A), which no name may hold",
  );
  await rejectsWith(
    auth.signIn("dave", "long enough", "\u202eevaD"),
    "invalid_argument",
    "Cannot sign in: the display name holds a bidirectional control character (U+202E), which no name may hold",
  );
  assert.equal(await store.getAccount("dave"), undefined, "no account for a refused sign-in");

  // The limits themselves are accepted.
  const edge = await auth.signIn("a.b_c-D9".padEnd(32, "z"), "p".repeat(8), "n".repeat(64));
  assert.equal(edge.created, true);
  assert.equal((await auth.signIn("e", "p".repeat(128), "  Eve  ")).identity.displayName, "Eve");
});

Deno.test("auth: a token identifies its user", async () => {
  const { auth } = setup();
  const { token } = await auth.signIn("alice", "correct horse", "Alice");
  const [header, payload] = token.split(".").slice(0, 2).map((part) =>
    JSON.parse(new TextDecoder().decode(decodeBase64Url(part)))
  );
  assert.deepEqual(header, { alg: "HS256", typ: "JWT" });
  assert.deepEqual(payload, {
    name: "Alice",
    iss: "chat",
    sub: "alice",
    iat: START / 1000,
    exp: START / 1000 + TTL,
  });

  assert.deepEqual(await auth.identify(bearer(token), "", "Cannot send message"), {
    userId: "alice",
    displayName: "Alice",
  });
  assert.deepEqual(await auth.identify(`bearer  ${token} `, "alice", "Cannot send message"), {
    userId: "alice",
    displayName: "Alice",
  });
});

Deno.test("auth: calls without a token are refused when auth is on", async () => {
  const { auth } = setup();
  const message = "Cannot send message: sign in first and send the token as " +
    "`authorization: Bearer <token>`";
  await rejectsWith(
    auth.identify(undefined, "alice", "Cannot send message"),
    "unauthenticated",
    message,
  );
  await rejectsWith(auth.identify("", "alice", "Cannot send message"), "unauthenticated", message);
  await rejectsWith(
    auth.identify("Basic abc", "alice", "Cannot send message"),
    "unauthenticated",
    message,
  );
  await rejectsWith(
    auth.identify("Bearer ", "alice", "Cannot send message"),
    "unauthenticated",
    message,
  );
});

Deno.test("auth: an expired token is refused", async () => {
  const { auth, clock } = setup();
  const { token, expiresAt } = await auth.signIn("alice", "correct horse");
  clock.now = expiresAt.getTime() - 1000;
  assert.equal((await auth.identify(bearer(token), "", "Cannot join room")).userId, "alice");
  clock.now = expiresAt.getTime();
  await rejectsWith(
    auth.identify(bearer(token), "", "Cannot join room"),
    "unauthenticated",
    `Cannot join room: the token expired at ${expiresAt.toISOString()}, sign in again`,
  );
});

Deno.test("auth: a tampered token is refused", async () => {
  const { auth } = setup();
  const { token } = await auth.signIn("alice", "correct horse");
  const [header, payload, signature] = token.split(".") as [string, string, string];
  const claims = JSON.parse(new TextDecoder().decode(decodeBase64Url(payload)));
  const forged = encodeBase64Url(
    new TextEncoder().encode(JSON.stringify({ ...claims, sub: "bob" })),
  );
  await rejectsWith(
    auth.identify(bearer(`${header}.${forged}.${signature}`), "", "Cannot send message"),
    "unauthenticated",
    "Cannot send message: the token is invalid (its signature does not match), sign in again",
  );
  // A flipped signature character, garbage, and an unsigned ("alg: none") token.
  const flipped = signature[0] === "A" ? "B" + signature.slice(1) : "A" + signature.slice(1);
  await rejectsWith(
    auth.identify(bearer(`${header}.${payload}.${flipped}`), "", "Cannot send message"),
    "unauthenticated",
    /the token is invalid/,
  );
  await rejectsWith(
    auth.identify(bearer("not-a-token"), "", "Cannot send message"),
    "unauthenticated",
    "Cannot send message: the token is invalid (it is malformed), sign in again",
  );
  const none = encodeBase64Url(new TextEncoder().encode(JSON.stringify({ alg: "none" })));
  await rejectsWith(
    auth.identify(bearer(`${none}.${payload}.`), "", "Cannot send message"),
    "unauthenticated",
    /the token is invalid/,
  );
});

Deno.test("auth: a token signed with another secret is refused", async () => {
  const store = new MemoryStore();
  const { auth: other } = setup({ secret: OTHER_SECRET, store });
  const { auth } = setup({ store });
  const { token } = await other.signIn("alice", "correct horse");
  await rejectsWith(
    auth.identify(bearer(token), "", "Cannot send message"),
    "unauthenticated",
    "Cannot send message: the token is invalid (its signature does not match), sign in again",
  );
});

Deno.test("auth: a signed-in user cannot act as another", async () => {
  for (const mode of ["on", "off"] as const) {
    const { auth } = setup({ mode });
    const { token } = await auth.signIn("alice", "correct horse");
    await rejectsWith(
      auth.identify(bearer(token), "bob", "Cannot send message"),
      "permission_denied",
      "Cannot send message: signed in as alice, cannot act as bob",
    );
  }
});

Deno.test("auth: mode off trusts the claimed user id, but a sent token still counts", async () => {
  const { auth, clock } = setup({ mode: "off" });
  assert.equal(auth.mode, "off");
  assert.deepEqual(await auth.identify(undefined, "bob", "Cannot send message"), {
    userId: "bob",
    displayName: "bob",
  });
  assert.deepEqual(await auth.identify("", "", "Cannot send message"), {
    userId: "",
    displayName: "",
  });
  const { token } = await auth.signIn("alice", "correct horse", "Alice");
  assert.deepEqual(await auth.identify(bearer(token), "", "Cannot send message"), {
    userId: "alice",
    displayName: "Alice",
  });
  clock.now += (TTL + 1) * 1000;
  await rejectsWith(
    auth.identify(bearer(token), "alice", "Cannot send message"),
    "unauthenticated",
    /the token expired/,
  );
  await rejectsWith(
    auth.identify("Bearer garbage", "alice", "Cannot send message"),
    "unauthenticated",
    /the token is invalid/,
  );
});

Deno.test("auth: createAuth refuses a short secret or a bad lifetime", () => {
  const options = {
    mode: "on" as const,
    store: new MemoryStore(),
    logger: silentLogger,
    tokenTtlSeconds: TTL,
  };
  assert.throws(
    () => createAuth({ ...options, secret: new Uint8Array(16) }),
    /the secret is 16 bytes, it must be at least 32/,
  );
  assert.throws(
    () => createAuth({ ...options, secret: SECRET, tokenTtlSeconds: 0 }),
    /the token lifetime is 0 seconds/,
  );
});

Deno.test("auth: a sign-in takes a bounded time", async () => {
  const { auth } = setup();
  await auth.signIn("timer", "correct horse");
  const started = performance.now();
  await auth.signIn("timer", "correct horse");
  const elapsed = performance.now() - started;
  // About 50–90 ms here; generous for a loaded 2-core machine.
  assert.ok(elapsed < 2000, `sign-in took ${elapsed.toFixed(0)} ms`);
});

// loadAuthSecret

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "auth_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadAuthSecret: AUTH_SECRET is used when set", async () => {
  await withTempDir(async (dir) => {
    const logger = memoryLogger();
    const value = "x".repeat(40);
    const secret = await loadAuthSecret(
      { authSecret: value, authSecretFile: `${dir}/secret` },
      logger,
    );
    assert.deepEqual(secret, new TextEncoder().encode(value));
    assert.equal(logger.lines.length, 1);
    assert.match(logger.lines[0]!, /Auth secret: from AUTH_SECRET/);
    assert.doesNotMatch(logger.lines.join("\n"), /xxxx/);
    await assert.rejects(Deno.stat(`${dir}/secret`), Deno.errors.NotFound);
  });
});

Deno.test("loadAuthSecret: a short AUTH_SECRET is refused", async () => {
  await assert.rejects(
    loadAuthSecret({ authSecret: "too-short", authSecretFile: "unused" }, silentLogger),
    /Cannot load the auth secret: AUTH_SECRET is 9 characters, it must be at least 32/,
  );
});

Deno.test("loadAuthSecret: the file is created once, private, and read back", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/nested/auth-secret`;
    const logger = memoryLogger();
    const secret = await loadAuthSecret({ authSecret: undefined, authSecretFile: path }, logger);
    const text = await Deno.readTextFile(path);
    assert.match(text, /^[0-9a-f]{64}\n$/);
    assert.deepEqual(secret, new TextEncoder().encode(text.trim()));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual([...Deno.readDirSync(`${dir}/nested`)].map((e) => e.name), ["auth-secret"]);
    assert.equal(logger.lines.length, 1);
    assert.match(logger.lines[0]!, /Auth secret: created file/);
    assert.ok(!logger.lines[0]!.includes(text.trim()), "the secret is never logged");

    const again = memoryLogger();
    assert.deepEqual(
      await loadAuthSecret({ authSecret: undefined, authSecretFile: path }, again),
      secret,
    );
    assert.equal(again.lines.length, 1);
    assert.match(again.lines[0]!, /Auth secret: read from file/);
  });
});

Deno.test("loadAuthSecret: concurrent loads agree on one secret", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/auth-secret`;
    const logger = memoryLogger();
    const secrets = await Promise.all(
      Array.from(
        { length: 8 },
        () => loadAuthSecret({ authSecret: undefined, authSecretFile: path }, logger),
      ),
    );
    for (const secret of secrets) assert.deepEqual(secret, secrets[0]);
    assert.equal(logger.lines.filter((l) => l.includes("created file")).length, 1);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["auth-secret"]);
  });
});

Deno.test("loadAuthSecret: two processes starting at once agree on one secret", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/auth-secret`;
    const module = new URL("../server/auth.ts", import.meta.url).href;
    const script = `
      import { loadAuthSecret } from ${JSON.stringify(module)};
      import { silentLogger } from ${
      JSON.stringify(new URL("../core/logger.ts", import.meta.url).href)
    };
      const s = await loadAuthSecret({ authSecret: undefined, authSecretFile: ${
      JSON.stringify(path)
    } }, silentLogger);
      await Deno.stdout.write(new TextEncoder().encode(new TextDecoder().decode(s)));
    `;
    const run = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "--quiet", script],
        cwd: new URL("..", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const outputs = await Promise.all([run(), run()]);
    for (const output of outputs) {
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    }
    const [a, b] = outputs.map((o) => new TextDecoder().decode(o.stdout));
    assert.equal(a, b);
    assert.equal(a, (await Deno.readTextFile(path)).trim());
  });
});

Deno.test("loadAuthSecret: a secret file that is too short is refused", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/auth-secret`;
    await Deno.writeTextFile(path, "short\n", { mode: 0o600 });
    await assert.rejects(
      loadAuthSecret({ authSecret: undefined, authSecretFile: path }, silentLogger),
      /auth-secret holds 5 characters, it must hold at least 32/,
    );
  });
});

function decodeBase64Url(text: string): Uint8Array {
  const base64 = text.replaceAll("-", "+").replaceAll("_", "/");
  return Uint8Array.from(
    atob(base64 + "=".repeat((4 - base64.length % 4) % 4)),
    (c) => c.charCodeAt(0),
  );
}

function encodeBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}
