/**
 * The sign-in limits on their own (server/sign_in_limits.ts) and inside `createAuth`, with a
 * clock and a password hasher the tests control: growing waits per username and per address, a
 * success resetting a name, the bounded and fair hashing queue, cancelled calls never hashed,
 * and the account-creation allowance. tests/sign_in_attack_test.ts attacks the same limits
 * over real gRPC sockets.
 */

import { setTimeout as sleep } from "node:timers/promises";
import assert from "node:assert/strict";
import { ChatError } from "../core/errors.ts";
import { memoryLogger, silentLogger } from "../core/logger.ts";
import { createAuth } from "../server/auth.ts";
import { argon2Hasher, type PasswordHasher, type SignInLimits } from "../server/sign_in.ts";
import {
  addressKey,
  FailureThrottle,
  HashQueue,
  peerHost,
  retryIn,
} from "../server/sign_in_limits.ts";
import { MemoryStore } from "../store/memory_store.ts";

// FailureThrottle

function throttle(freeFailures = 3) {
  const clock = { now: 0 };
  const t = new FailureThrottle({
    freeFailures,
    delayMs: 1000,
    maxDelayMs: 8000,
    windowMs: 60_000,
    now: () => clock.now,
  });
  return { t, clock };
}

Deno.test("throttle: free failures, then one try per wait, the wait doubling up to the limit", () => {
  const { t, clock } = throttle(3);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(t.admit("alice"), { ok: true });
    assert.equal(t.settle("alice", "failure"), i < 2 ? 0 : 1000);
  }
  assert.deepEqual(t.admit("alice"), { ok: false, retryAfterMs: 1000, failures: 3, pending: 0 });
  clock.now += 999;
  assert.equal(t.admit("alice").ok, false);
  clock.now += 1;
  for (const wait of [2000, 4000, 8000, 8000]) {
    assert.deepEqual(t.admit("alice"), { ok: true });
    assert.equal(t.settle("alice", "failure"), wait);
    const refused = t.admit("alice");
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.retryAfterMs, wait);
    clock.now += wait;
  }
  // Other keys are not affected.
  assert.deepEqual(t.admit("bob"), { ok: true });
});

Deno.test("throttle: a success resets the count", () => {
  const { t, clock } = throttle(2);
  for (let i = 0; i < 2; i++) {
    t.admit("alice");
    t.settle("alice", "failure");
  }
  assert.equal(t.admit("alice").ok, false);
  clock.now += 1000;
  assert.equal(t.admit("alice").ok, true);
  t.settle("alice", "success");
  assert.equal(t.size, 0, "nothing kept for a key without failures");
  for (let i = 0; i < 2; i++) {
    assert.equal(t.admit("alice").ok, true, `free try ${i} after the reset`);
    t.settle("alice", "failure");
  }
});

Deno.test("throttle: concurrent tries count as failures-to-be", () => {
  const { t } = throttle(3);
  const admitted = Array.from({ length: 50 }, () => t.admit("alice")).filter((a) => a.ok);
  assert.equal(admitted.length, 3, "no more tries at once than free failures");
  const refused = t.admit("alice");
  assert.deepEqual(refused, { ok: false, retryAfterMs: 1000, failures: 0, pending: 3 });
  // Tries that checked no password ("none") give their place back.
  t.settle("alice", "none");
  assert.equal(t.admit("alice").ok, true);
});

Deno.test("throttle: failures are forgotten a window after the last one", () => {
  const { t, clock } = throttle(1);
  t.admit("alice");
  t.settle("alice", "failure");
  clock.now += 1000;
  t.admit("alice");
  t.settle("alice", "failure");
  clock.now += 59_999;
  assert.deepEqual(t.admit("alice"), { ok: true }, "the wait is over");
  t.settle("alice", "none");
  clock.now += 1;
  assert.deepEqual(t.admit("alice"), { ok: true });
  // Forgotten: a failure now starts again at the first wait.
  assert.equal(t.settle("alice", "failure"), 1000);
});

Deno.test("throttle: memory stays bounded by maxKeys", () => {
  const t = new FailureThrottle({
    freeFailures: 5,
    delayMs: 1000,
    maxDelayMs: 1000,
    windowMs: 60_000,
    maxKeys: 100,
  });
  for (let i = 0; i < 1000; i++) {
    t.admit(`user${i}`);
    t.settle(`user${i}`, "failure");
  }
  assert.equal(t.size, 100);
});

// HashQueue

/** A task that runs until `release` is called; records its start. */
function gate() {
  const started: string[] = [];
  const releases: (() => void)[] = [];
  const task = (name: string) => () => {
    started.push(name);
    return new Promise<string>((resolve) => releases.push(() => resolve(name)));
  };
  const releaseOne = async () => {
    releases.shift()!();
    await sleep(0);
  };
  return { started, task, releaseOne };
}

function statusOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    (value) => `ok ${value}`,
    (err) => err instanceof ChatError ? `${err.code}: ${err.message}` : `error ${err}`,
  );
}

Deno.test("hash queue: runs `concurrency` at once, queues `queueLimit`, refuses more", async () => {
  const q = new HashQueue({ concurrency: 2, queueLimit: 3 });
  const g = gate();
  const results = Array.from(
    { length: 8 },
    (_, i) => statusOf(q.run("mallory", g.task(`m${i}`))),
  );
  assert.deepEqual(q.stats, { running: 2, waiting: 3, started: 2 });
  const refused = await Promise.all(results.slice(5));
  for (const r of refused) {
    assert.match(
      r,
      /^resource_exhausted: Cannot sign in: the server is busy checking passwords \(2 running, 3 waiting, the limit is 3\); retry in \d+\.\d s$/,
    );
  }
  for (let i = 0; i < 5; i++) await g.releaseOne();
  assert.deepEqual(await Promise.all(results.slice(0, 5)), [
    "ok m0",
    "ok m1",
    "ok m2",
    "ok m3",
    "ok m4",
  ]);
  assert.deepEqual(q.stats, { running: 0, waiting: 0, started: 5 });
});

Deno.test("hash queue: a newcomer from another address takes the newest place of the fullest one, and is served in turn", async () => {
  const q = new HashQueue({ concurrency: 1, queueLimit: 4 });
  const g = gate();
  const mallory = Array.from({ length: 5 }, (_, i) => statusOf(q.run("mallory", g.task(`m${i}`))));
  assert.deepEqual(q.stats, { running: 1, waiting: 4, started: 1 });
  const bea = statusOf(q.run("bea", g.task("bea")));
  // Mallory's newest waiter gave its place up.
  assert.match(await mallory[4]!, /^resource_exhausted: .*busy checking passwords/);
  assert.deepEqual(q.stats, { running: 1, waiting: 4, started: 1 });
  // Served by address in turn: mallory's running one, one more of hers, then bea.
  await g.releaseOne();
  await g.releaseOne();
  assert.deepEqual(g.started, ["m0", "m1", "bea"]);
  // Waiting now: m2, m3. Two more addresses fill the queue; a third takes mallory's newest
  // place (she holds two); a fourth finds every address with one place and is refused.
  const others = ["x1", "x2", "carol"].map((k) => statusOf(q.run(k, g.task(k))));
  assert.match(await mallory[3]!, /^resource_exhausted/);
  assert.match(await statusOf(q.run("dave", g.task("dave"))), /^resource_exhausted/);
  while (q.stats.running > 0) await g.releaseOne();
  assert.deepEqual(g.started, ["m0", "m1", "bea", "m2", "x1", "x2", "carol"]);
  assert.equal(await bea, "ok bea");
  assert.deepEqual(await Promise.all(others), ["ok x1", "ok x2", "ok carol"]);
});

Deno.test("hash queue: a call cancelled while it waits, or before, never runs", async () => {
  const q = new HashQueue({ concurrency: 1, queueLimit: 10 });
  const g = gate();
  const first = q.run("a", g.task("first"));
  const controllers = Array.from({ length: 3 }, () => new AbortController());
  const waiting = controllers.map((c, i) => statusOf(q.run("b", g.task(`w${i}`), c.signal)));
  assert.equal(q.stats.waiting, 3);
  for (const c of controllers) c.abort();
  assert.equal(q.stats.waiting, 0, "cancelled waiters leave the queue at once");
  for (const r of await Promise.all(waiting)) {
    assert.equal(
      r,
      "cancelled: Cannot sign in: the call was cancelled before its password was checked",
    );
  }
  const aborted = AbortSignal.abort();
  assert.match(await statusOf(q.run("c", g.task("late"), aborted)), /^cancelled/);
  await g.releaseOne();
  assert.equal(await first, "first");
  assert.deepEqual(g.started, ["first"], "no cancelled task started");
});

// Addresses

Deno.test("addresses: peers lose their port, IPv4-mapped addresses are IPv4, IPv6 counts by /64", () => {
  assert.equal(peerHost("127.0.0.1:5000"), "127.0.0.1");
  assert.equal(peerHost("::ffff:127.0.0.1:36920"), "::ffff:127.0.0.1");
  assert.equal(peerHost("::1:40342"), "::1");
  assert.equal(peerHost("[2001:db8::1]:443"), "2001:db8::1");
  assert.equal(peerHost("unknown"), "unknown");
  assert.equal(addressKey("127.0.0.1"), "127.0.0.1");
  assert.equal(addressKey("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:DB8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
  assert.equal(addressKey("[fe80::1%eth0]"), "fe80:0:0:0::/64");
  assert.equal(addressKey(undefined), "unknown");
  assert.equal(addressKey(""), "unknown");
  assert.equal(retryIn(2500), "retry in 2.5 s");
  assert.equal(retryIn(1), "retry in 0.1 s");
});

// Inside createAuth

const LIMITS: SignInLimits = {
  signInFreeFailures: 3,
  signInFreeFailuresPerAddress: 10,
  signInDelayMs: 1000,
  signInMaxDelayMs: 60_000,
  signInFailureWindowMs: 3_600_000,
  signInHashConcurrency: 2,
  signInHashQueue: 16,
  accountsPerAddressPerHour: 100,
  accountsPerHour: 1000,
  accountsBurst: 100,
};

/** argon2id, counted; `hold` keeps every hash waiting until `release`. */
function countingHasher() {
  const counts = { hash: 0, verify: 0 };
  let held: Promise<void> | undefined;
  let open = () => {};
  const wait = () => held ?? Promise.resolve();
  return {
    counts,
    async hash(password: string) {
      counts.hash++;
      await wait();
      return argon2Hasher.hash(password);
    },
    async verify(stored: string, password: string) {
      counts.verify++;
      await wait();
      return argon2Hasher.verify(stored, password);
    },
    hold() {
      held = new Promise((resolve) => (open = resolve));
    },
    release() {
      held = undefined;
      open();
    },
  } satisfies PasswordHasher & Record<string, unknown>;
}

function setup(limits: Partial<SignInLimits> = {}) {
  const clock = { now: 0 };
  const hasher = countingHasher();
  const logger = memoryLogger("info");
  const auth = createAuth({
    mode: "on",
    secret: new TextEncoder().encode("s".repeat(32)),
    store: new MemoryStore(),
    logger,
    tokenTtlSeconds: 3600,
    limits: { ...LIMITS, ...limits },
    hasher,
    monotonic: () => clock.now,
  });
  return { auth, clock, hasher, logger };
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "ok";
  } catch (err) {
    assert.ok(err instanceof ChatError, String(err));
    return `${err.code}: ${err.message}`;
  }
}

const ALICE = { address: "10.0.0.1" };
const BEA = { address: "10.0.0.2" };

Deno.test("auth limits: wrong passwords for a name are slowed, growing, and a success resets them", async () => {
  const { auth, clock, hasher, logger } = setup();
  await auth.signIn("alice", "correct horse", "", BEA);
  const wrong = () => outcome(auth.signIn("alice", "wrong horse", "", ALICE));
  for (let i = 0; i < 3; i++) {
    assert.equal(await wrong(), "unauthenticated: Cannot sign in: wrong password for alice");
  }
  assert.equal(
    await wrong(),
    "resource_exhausted: Cannot sign in: 3 wrong passwords for alice in a row; retry in 1.0 s",
  );
  const checked = hasher.counts.verify;
  // Refused tries cost no hash; the right password is refused too while the wait lasts.
  assert.match(await outcome(auth.signIn("alice", "correct horse", "", BEA)), /retry in 1\.0 s/);
  assert.equal(hasher.counts.verify, checked);
  clock.now += 1000;
  assert.match(await wrong(), /^unauthenticated/);
  assert.match(await wrong(), /4 wrong passwords for alice in a row; retry in 2\.0 s$/);
  assert.match(
    logger.lines.join("\n"),
    /WARN {2}Sign-ins throttled after repeated wrong passwords user=alice address=10\.0\.0\.1 waitMs=2000/,
  );
  clock.now += 2000;
  assert.equal(await outcome(auth.signIn("alice", "correct horse", "", BEA)), "ok");
  // Reset: three free tries again.
  for (let i = 0; i < 3; i++) assert.match(await wrong(), /^unauthenticated/);
  assert.match(await wrong(), /^resource_exhausted/);
  // Names differing only in case share the count (the store may find one account by both).
  assert.match(
    await outcome(auth.signIn("ALICE", "wrong horse", "", ALICE)),
    /^resource_exhausted: Cannot sign in: 3 wrong passwords for ALICE in a row; retry in 1\.0 s$/,
  );
});

Deno.test("auth limits: one address guessing many names is slowed; other addresses are not", async () => {
  const { auth, clock } = setup();
  for (let i = 0; i < 12; i++) await auth.signIn(`user${i}`, "correct horse", "", BEA);
  for (let i = 0; i < 10; i++) {
    assert.match(
      await outcome(auth.signIn(`user${i}`, "wrong horse", "", ALICE)),
      /^unauthenticated/,
    );
  }
  assert.equal(
    await outcome(auth.signIn("user10", "wrong horse", "", ALICE)),
    "resource_exhausted: Cannot sign in: 10 wrong passwords from your address in a row; retry in 1.0 s",
  );
  // Even the right password of an account of her own: a success does not clear the address.
  assert.match(await outcome(auth.signIn("user11", "correct horse", "", ALICE)), /retry in/);
  clock.now += 1000;
  assert.equal(await outcome(auth.signIn("user11", "correct horse", "", ALICE)), "ok");
  assert.match(await outcome(auth.signIn("user10", "wrong horse", "", ALICE)), /^unauth/);
  assert.match(await outcome(auth.signIn("user10", "wrong horse", "", ALICE)), /retry in 2\.0 s/);
  // Another address signs in at once.
  assert.equal(await outcome(auth.signIn("user10", "correct horse", "", BEA)), "ok");
});

Deno.test("auth limits: a full hashing queue answers RESOURCE_EXHAUSTED without hashing", async () => {
  const { auth, hasher } = setup({
    signInHashConcurrency: 1,
    signInHashQueue: 2,
    signInFreeFailures: 100,
    signInFreeFailuresPerAddress: 100,
  });
  await auth.signIn("alice", "correct horse", "", BEA);
  hasher.hold();
  const flood = Array.from(
    { length: 10 },
    () => outcome(auth.signIn("alice", "wrong horse", "", ALICE)),
  );
  await sleep(10);
  assert.deepEqual(auth.hashStats(), { running: 1, waiting: 2, started: 2 });
  hasher.release();
  const results = await Promise.all(flood);
  assert.equal(results.filter((r) => r.startsWith("unauthenticated")).length, 3);
  const refused = results.filter((r) => r.startsWith("resource_exhausted"));
  assert.equal(refused.length, 7);
  assert.match(
    refused[0]!,
    /the server is busy checking passwords \(1 running, 2 waiting, the limit is 2\)/,
  );
  assert.equal(hasher.counts.verify, 3, "refused sign-ins are never hashed");
});

Deno.test("auth limits: a cancelled sign-in is not hashed, whether cancelled before or while queued", async () => {
  const { auth, hasher } = setup({ signInHashConcurrency: 1, signInFreeFailures: 10 });
  await auth.signIn("alice", "correct horse", "", BEA);
  const before = hasher.counts.verify;
  assert.match(
    await outcome(
      auth.signIn("alice", "correct horse", "", { ...ALICE, signal: AbortSignal.abort() }),
    ),
    /^cancelled: Cannot sign in: the call was cancelled before its password was checked$/,
  );
  hasher.hold();
  const holder = auth.signIn("alice", "correct horse", "", BEA);
  const controller = new AbortController();
  const queued = Array.from(
    { length: 5 },
    () =>
      outcome(auth.signIn("alice", "correct horse", "", { ...ALICE, signal: controller.signal })),
  );
  await sleep(10);
  assert.equal(auth.hashStats().waiting, 5);
  controller.abort();
  assert.equal(auth.hashStats().waiting, 0);
  hasher.release();
  await holder;
  const results = await Promise.all(queued);
  assert.equal(results.filter((r) => r.startsWith("cancelled")).length, 5, results.join("\n"));
  assert.equal(hasher.counts.verify, before + 1, "only the holder's password was checked");
  // Cancelled tries are no failures: alice still has all her free tries.
  assert.equal(await outcome(auth.signIn("alice", "correct horse", "", ALICE)), "ok");
});

Deno.test("auth limits: accounts per address and in all", async () => {
  const { auth, clock, hasher } = setup({
    accountsPerAddressPerHour: 2,
    accountsPerHour: 3,
    accountsBurst: 3,
  });
  assert.equal(await outcome(auth.signIn("new1", "correct horse", "", ALICE)), "ok");
  assert.equal(await outcome(auth.signIn("new2", "correct horse", "", ALICE)), "ok");
  assert.equal(
    await outcome(auth.signIn("new3", "correct horse", "", ALICE)),
    "resource_exhausted: Cannot sign in: new3 would be a new account, and your address may create 2 per hour; retry in 1800.0 s",
  );
  // Signing in to an existing account is no creation.
  assert.equal(await outcome(auth.signIn("new1", "correct horse", "", ALICE)), "ok");
  assert.equal(await outcome(auth.signIn("bea", "correct horse", "", BEA)), "ok");
  assert.equal(
    await outcome(auth.signIn("bea2", "correct horse", "", BEA)),
    "resource_exhausted: Cannot sign in: bea2 would be a new account, and this server creates at most 3 per hour (3 at once); retry in 1200.0 s",
  );
  assert.equal(hasher.counts.hash, 3, "a refused creation is never hashed");
  clock.now += 1_800_000;
  assert.equal(await outcome(auth.signIn("new3", "correct horse", "", ALICE)), "ok");
});

Deno.test("auth limits: sign-ins without an address share one allowance", async () => {
  const auth = createAuth({
    mode: "on",
    secret: new TextEncoder().encode("s".repeat(32)),
    store: new MemoryStore(),
    logger: silentLogger,
    tokenTtlSeconds: 3600,
    limits: { accountsPerAddressPerHour: 1 },
  });
  await auth.signIn("one", "correct horse");
  assert.match(await outcome(auth.signIn("two", "correct horse")), /your address may create 1/);
});
