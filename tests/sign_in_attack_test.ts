/**
 * Sign-in under attack, against a real gateway over real sockets (gRPC and gRPC-Web), as a hostile
 * client would attack it. The gateway listens on both IPv4 and IPv6, so the attacker, mallory,
 * comes from 127.0.0.1 and the real user, bea, from ::1: two client addresses on one machine.
 * Meanwhile two bystanders, bob (on mallory's address) and carol (on bea's), keep chatting: every
 * message they exchange during and after each attack arrives.
 *
 * Attacks and the answers expected:
 * - 600 concurrent wrong guesses at one name, then guessing as fast as answers come: at most
 *   `SIGNIN_FREE_FAILURES` (5) passwords checked at once, then one per growing wait; the rest
 *   RESOURCE_EXHAUSTED with the time to wait. Bea's sign-in during the flood stays prompt.
 * - Guessing one password for each of many names (spraying): after 20 failures from her address,
 *   RESOURCE_EXHAUSTED, even for her own account; bea is not affected.
 * - A flood from "many addresses" (the per-address allowances lifted) filling the hashing queue:
 *   the excess RESOURCE_EXHAUSTED at once, and bea's sign-in waits a bounded number of hashes.
 * - Calls cancelled (gRPC cancel, gRPC deadline, gRPC-Web fetch aborted) while they wait: never
 *   hashed.
 * - 400 concurrent new accounts from one address: 20 created (ACCOUNTS_PER_ADDRESS_PER_HOUR),
 *   the rest RESOURCE_EXHAUSTED; the global allowance stops a second address.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import type { Config } from "../core/config.ts";
import { memoryLogger } from "../core/logger.ts";
import { MemoryBus } from "../bus/memory_bus.ts";
import { createProcessor } from "../processor/processor.ts";
import { createAuth } from "../server/auth.ts";
import { argon2Hasher, type PasswordHasher } from "../server/sign_in.ts";
import { createGateway, type Gateway } from "../server/gateway.ts";
import { MemoryStore } from "../store/memory_store.ts";
import type { ChatClient } from "../client/chat_client.ts";
import {
  closeClients,
  connectUser,
  newClient,
  testConfig,
  type TestUser,
  waitFor,
} from "./helpers.ts";
import { encodeRequest, SERVICE_NAME } from "./attack_support.ts";

const { status } = grpc;
const RIGHT = "correct horse battery";
const WRONG = "wrong horse battery";

/** argon2id, counted by password; `hold()` keeps every hash waiting until `release()`. */
function countingHasher() {
  const checked: string[] = [];
  let hashed = 0;
  let held: Promise<void> | undefined;
  let open = () => {};
  const wait = () => held ?? Promise.resolve();
  return {
    /** The password of every check, in the order they started. */
    checked,
    get hashed() {
      return hashed;
    },
    async hash(password: string) {
      hashed++;
      await wait();
      return argon2Hasher.hash(password);
    },
    async verify(stored: string, password: string) {
      checked.push(password);
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
    /** Forgets what was counted so far. */
    reset() {
      checked.length = 0;
      hashed = 0;
    },
  } satisfies PasswordHasher & Record<string, unknown>;
}

interface Rig {
  gateway: Gateway;
  store: MemoryStore;
  hasher: ReturnType<typeof countingHasher>;
  auth: ReturnType<typeof createAuth>;
  /** gRPC address over IPv4 (mallory's) and IPv6 (bea's). */
  v4: string;
  v6: string;
  /** The gRPC-Web base URL over IPv4. */
  web4: string;
  /** A client on a connection of its own. */
  client(address: string): ChatClient;
  bob: TestUser;
  carol: TestUser;
  /** Bob and carol each send one message and each sees the other's. */
  exchange(label: string): Promise<void>;
}

/** A gateway (AUTH=on) with its processor on a memory bus, listening on IPv4 and IPv6. */
async function withRig(
  config: Partial<Config>,
  run: (rig: Rig) => Promise<void>,
): Promise<void> {
  const logger = memoryLogger("error");
  const bus = new MemoryBus({ logger, retryDelayMs: 20 });
  const store = new MemoryStore();
  const base = testConfig({ auth: "on", httpHost: "::", ...config });
  const processor = createProcessor({ bus, store, logger, config: base });
  const hasher = countingHasher();
  const auth = createAuth({
    mode: "on",
    secret: crypto.getRandomValues(new Uint8Array(32)),
    store,
    logger,
    tokenTtlSeconds: base.tokenTtlSeconds,
    limits: base,
    hasher,
  });
  await bus.start();
  await processor.start();
  // Every IPv6 and IPv4 address: "::" for a listener of node:net, "[::]" for grpc-js's own bind
  // (which resolves "::" as a name); whichever this gateway takes.
  let gateway: Gateway | undefined;
  for (const grpcHost of ["::", "[::]"]) {
    const candidate = createGateway({ config: { ...base, grpcHost }, bus, store, auth, logger });
    try {
      await candidate.start();
      gateway = candidate;
      break;
    } catch (err) {
      await candidate.stop();
      if (grpcHost === "[::]") throw err;
    }
  }
  if (!gateway) throw new Error("Cannot start the gateway on [::]");
  logger.lines.length = 0; // the refused host, if any
  try {
    const v4 = `127.0.0.1:${gateway.grpcPort}`;
    const v6 = `[::1]:${gateway.grpcPort}`;
    // Its own connection, as another machine has: grpc-js would share one among clients.
    const client = (address: string) =>
      newClient(address, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
      });
    // Their accounts exist already, so they take nothing from the allowance for new accounts.
    await accounts(store, ["bob", "carol"]);
    const signedIn = async (address: string, name: string) => {
      const c = client(address);
      await c.signIn(name, RIGHT);
      return connectUser(address, name, { client: c });
    };
    const bob = await signedIn(v4, "bob");
    const carol = await signedIn(v6, "carol");
    await waitFor(() => gateway.hub.size >= 2, 5000, "bob's and carol's streams");
    hasher.reset();
    await run({
      gateway,
      store,
      hasher,
      auth,
      v4,
      v6,
      web4: `http://127.0.0.1:${gateway.httpPort}`,
      client,
      bob,
      carol,
      async exchange(label) {
        await bob.client.send("bob", `bob: ${label}`);
        await carol.client.send("carol", `carol: ${label}`);
        await waitFor(
          () =>
            carol.contents().includes(`bob: ${label}`) &&
            bob.contents().includes(`carol: ${label}`),
          10_000,
          `bob and carol to exchange "${label}"`,
        );
      },
    });
    assert.equal(bob.ended, undefined, "bob's stream is still open");
    assert.equal(carol.ended, undefined, "carol's stream is still open");
    assert.deepEqual(logger.lines, [], "nothing logged as an error");
  } finally {
    // The clients leave first: the gateway's stop then has no connection to wait out.
    closeClients();
    await gateway.stop();
    await processor.stop();
    await bus.close();
    await store.close();
  }
}

/** Runs `attack` while bob and carol exchange a message, then has them exchange once more. */
async function underAttack<T>(rig: Rig, name: string, attack: () => Promise<T>): Promise<T> {
  const [result] = await Promise.all([attack(), rig.exchange(`during ${name}`)]);
  await rig.exchange(`after ${name}`);
  return result;
}

interface Answer {
  code: number;
  details: string;
}

function answerOf(promise: Promise<unknown>): Promise<Answer> {
  return promise.then(
    () => ({ code: status.OK, details: "" }),
    (err: grpc.ServiceError) => ({ code: err.code, details: err.details }),
  );
}

/** Milliseconds `promise` took, and its answer. */
async function timed(promise: () => Promise<unknown>): Promise<Answer & { ms: number }> {
  const started = performance.now();
  const answer = await answerOf(promise());
  return { ...answer, ms: performance.now() - started };
}

function count(answers: Answer[], code: number): number {
  return answers.filter((a) => a.code === code).length;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Creates accounts straight in the store, with one real argon2id hash of RIGHT. */
async function accounts(store: MemoryStore, names: string[]): Promise<void> {
  const passwordHash = await argon2Hasher.hash(RIGHT);
  for (const id of names) {
    await store.createAccount({
      id,
      displayName: id,
      passwordHash,
      createdAt: new Date().toISOString(),
    });
  }
}

const THROTTLED = (who: string) =>
  new RegExp(
    `^Cannot sign in: (\\d+ wrong passwords ${who} in a row|\\d+ sign-ins ${who} are in progress and \\d+ failed); retry in \\d+\\.\\d s$`,
  );
const BUSY =
  /^Cannot sign in: the server is busy checking passwords \(\d+ running, \d+ waiting, the limit is \d+\); retry in \d+\.\d s$/;

Deno.test("600 concurrent wrong guesses at one name, then guessing as fast as answers come: RESOURCE_EXHAUSTED with growing waits; bea signs in promptly; others keep chatting", async () => {
  await withRig({}, async (rig) => {
    await accounts(rig.store, ["alice", "bea"]);
    const bea = rig.client(rig.v6);
    // Her sign-in without an attack, for comparison.
    const calm: number[] = [];
    for (let i = 0; i < 3; i++) calm.push((await timed(() => bea.signIn("bea", RIGHT))).ms);

    const mallory = rig.client(rig.v4);
    await mallory.waitForReady(5000);
    const { flood, during } = await underAttack(rig, "guess flood", async () => {
      const flood = Promise.all(
        Array.from({ length: 600 }, () => answerOf(mallory.signIn("alice", WRONG))),
      );
      // Bea signs in once the flood is at the gateway.
      await waitFor(() => rig.hasher.checked.includes(WRONG), 10_000, "the flood's first check");
      const during = await timed(() => bea.signIn("bea", RIGHT));
      return { flood: await flood, during };
    });
    const checked = rig.hasher.checked.filter((p) => p === WRONG).length;
    assert.equal(count(flood, status.UNAUTHENTICATED), checked);
    assert.ok(checked <= 5, `at most the 5 free guesses are checked (${checked})`);
    assert.equal(count(flood, status.RESOURCE_EXHAUSTED), 600 - checked);
    for (const a of flood.filter((a) => a.code === status.RESOURCE_EXHAUSTED)) {
      assert.match(a.details, THROTTLED("for alice"));
    }
    assert.equal(during.code, status.OK, during.details);
    // Before: 600 queued hashes delayed her by 8.7 s. Now at most 5 of mallory's hashes are ahead
    // of her (about 50-90 ms each here, several times that on a loaded machine).
    // deno-lint-ignore no-console
    console.log(
      `  bea's sign-in: ${median(calm).toFixed(0)} ms calm, ${
        during.ms.toFixed(0)
      } ms during 600 guesses; ${checked} guesses checked`,
    );
    assert.ok(during.ms < 3000, `bea's sign-in took ${during.ms.toFixed(0)} ms under the flood`);

    // Then guessing as fast as answers come, ignoring the advice, for 3.5 s.
    const waits: number[] = [];
    let tries = 0;
    const checkedBefore = rig.hasher.checked.length;
    const until = performance.now() + 3500;
    while (performance.now() < until) {
      const a = await answerOf(mallory.signIn("alice", WRONG));
      tries++;
      if (a.code === status.RESOURCE_EXHAUSTED) {
        const wait = Number(/retry in (\d+\.\d) s$/.exec(a.details)![1]);
        if (waits.at(-1) !== undefined && wait > waits.at(-1)!) waits.push(wait);
        if (waits.length === 0) waits.push(wait);
      } else {
        assert.equal(a.code, status.UNAUTHENTICATED, a.details);
      }
    }
    const later = rig.hasher.checked.length - checkedBefore;
    // deno-lint-ignore no-console
    console.log(`  then ${tries} guesses in 3.5 s: ${later} checked; waits seen: ${waits} s`);
    assert.ok(tries > 50, `she kept guessing (${tries})`);
    assert.ok(later <= 3, `one check per growing wait (1 s, 2 s, ...): ${later}`);
    assert.ok(waits.length >= 2 && waits.at(-1)! >= 2 * waits[0]!, `the wait grows: ${waits}`);
    // Bea is still not affected.
    assert.equal((await answerOf(bea.signIn("bea", RIGHT))).code, status.OK);
  });
});

Deno.test("guessing one password for each of many names from one address: RESOURCE_EXHAUSTED after 20, even for her own account; bea signs in; others keep chatting", async () => {
  await withRig({}, async (rig) => {
    const names = Array.from({ length: 30 }, (_, i) => `user${i}`);
    await accounts(rig.store, [...names, "mallory", "bea"]);
    const mallory = rig.client(rig.v4);
    const answers = await underAttack(rig, "spraying", async () => {
      const answers: Answer[] = [];
      for (const name of names) answers.push(await answerOf(mallory.signIn(name, WRONG)));
      return answers;
    });
    assert.deepEqual(
      answers.slice(0, 20).map((a) => a.code),
      Array(20).fill(status.UNAUTHENTICATED),
    );
    for (const a of answers.slice(20)) {
      assert.equal(a.code, status.RESOURCE_EXHAUSTED);
      assert.match(a.details, THROTTLED("from your address"));
    }
    assert.match(answers[20]!.details, /^Cannot sign in: 20 wrong passwords from your address/);
    const own = await answerOf(mallory.signIn("mallory", RIGHT));
    assert.equal(own.code, status.RESOURCE_EXHAUSTED, "a success of her own does not clear it");
    const bea = await timed(() => rig.client(rig.v6).signIn("bea", RIGHT));
    assert.equal(bea.code, status.OK, bea.details);
    assert.equal(rig.hasher.checked.filter((p) => p === WRONG).length, 20);
  });
});

Deno.test("a flood from many addresses fills the hashing queue: the excess gets RESOURCE_EXHAUSTED at once, bea's sign-in waits a bounded number of hashes; others keep chatting", async () => {
  // Many addresses, each within its allowance: here one address with the allowances lifted.
  const lifted = { signInFreeFailures: 10_000, signInFreeFailuresPerAddress: 10_000 };
  await withRig(
    { ...lifted, signInHashConcurrency: 1, signInHashQueue: 4 },
    async (rig) => {
      await accounts(rig.store, ["alice", "bea"]);
      const mallory = rig.client(rig.v4);
      const bea = rig.client(rig.v6);
      await Promise.all([mallory.waitForReady(5000), bea.waitForReady(5000)]);
      rig.hasher.hold(); // every check waits: the queue's state is exact
      const answers: Answer[] = [];
      const { beaAnswer } = await underAttack(rig, "queue flood", async () => {
        const flood = Array.from(
          { length: 200 },
          () => answerOf(mallory.signIn("alice", WRONG)).then((a) => answers.push(a)),
        );
        // One checking, four waiting, 195 refused at once.
        await waitFor(() => answers.length === 195, 10_000, "195 refusals");
        const { running, waiting } = rig.auth.hashStats();
        assert.deepEqual({ running, waiting }, { running: 1, waiting: 4 });
        const beaAnswer = answerOf(bea.signIn("bea", RIGHT));
        // Her address had nothing waiting: mallory's newest waiter gives its place up.
        await waitFor(() => answers.length === 196, 10_000, "mallory's newest waiter refused");
        rig.hasher.release();
        await Promise.all(flood);
        return { beaAnswer: await beaAnswer };
      });
      assert.equal(beaAnswer.code, status.OK, beaAnswer.details);
      assert.equal(count(answers, status.RESOURCE_EXHAUSTED), 196);
      assert.equal(count(answers, status.UNAUTHENTICATED), 4);
      for (const a of answers.filter((a) => a.code === status.RESOURCE_EXHAUSTED)) {
        assert.match(a.details, BUSY);
      }
      // Served by address in turn: mallory's running check, one more of hers, then bea's.
      assert.equal(rig.hasher.checked.indexOf(RIGHT), 2, rig.hasher.checked.join(","));
      assert.equal(rig.hasher.checked.length, 5, "no refused sign-in was hashed");
    },
  );
  // With real hashes and the default queue (2 hashing, 16 waiting): bea's latency while mallory
  // keeps the queue full, 50 guesses in flight at all times.
  await withRig(lifted, async (rig) => {
    await accounts(rig.store, ["alice", "bea"]);
    const mallory = rig.client(rig.v4);
    const bea = rig.client(rig.v6);
    await Promise.all([mallory.waitForReady(5000), bea.waitForReady(5000)]);
    const answers: Answer[] = [];
    let flooding = true;
    const { during } = await underAttack(rig, "sustained queue flood", async () => {
      const loops = Array.from({ length: 50 }, async () => {
        while (flooding) answers.push(await answerOf(mallory.signIn("alice", WRONG)));
      });
      // The first "busy" answer: the queue is full, and stays so while she goes on.
      await waitFor(
        () => answers.some((a) => a.code === status.RESOURCE_EXHAUSTED),
        10_000,
        "a full queue",
      );
      const during = await timed(() => bea.signIn("bea", RIGHT));
      flooding = false;
      await Promise.all(loops);
      return { during };
    });
    const refused = answers.filter((a) => a.code === status.RESOURCE_EXHAUSTED);
    const checked = count(answers, status.UNAUTHENTICATED);
    // deno-lint-ignore no-console
    console.log(
      `  bea's sign-in with the queue kept full: ${
        during.ms.toFixed(0)
      } ms; mallory: ${checked} checked, ${refused.length} refused`,
    );
    assert.equal(during.code, status.OK, during.details);
    assert.equal(checked + refused.length, answers.length, "every guess checked or refused");
    for (const a of refused) assert.match(a.details, BUSY);
    // Before: 600 queued hashes delayed her by 8.7 s. Now a few hashes, on a loaded machine.
    assert.ok(during.ms < 3000, `bea's sign-in took ${during.ms.toFixed(0)} ms`);
  });
});

/** A raw SignIn over gRPC whose call can be cancelled. */
function rawSignIn(
  client: grpc.Client,
  username: string,
  options: grpc.CallOptions = {},
): { call: grpc.ClientUnaryCall; answer: Promise<Answer> } {
  let call!: grpc.ClientUnaryCall;
  const answer = new Promise<Answer>((resolve) => {
    call = client.makeUnaryRequest(
      `/${SERVICE_NAME}/SignIn`,
      (value: object) => Buffer.from(encodeRequest("SignIn", value)),
      (bytes: Buffer) => bytes,
      { username, password: WRONG, displayName: "" },
      new grpc.Metadata(),
      options,
      (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "" }),
    );
  });
  return { call, answer };
}

/** A SignIn over gRPC-Web (binary), abortable. */
function webSignIn(base: string, username: string, signal: AbortSignal): Promise<unknown> {
  const message = encodeRequest("SignIn", {
    username,
    password: WRONG,
    displayName: "",
  });
  const body = new Uint8Array(5 + message.length);
  new DataView(body.buffer).setUint32(1, message.length);
  body.set(message, 5);
  return fetch(`${base}/${SERVICE_NAME}/SignIn`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
    body,
    signal,
  }).then((r) => r.arrayBuffer());
}

Deno.test("sign-ins cancelled while they wait (gRPC cancel, gRPC deadline, gRPC-Web abort) are never hashed; others keep chatting", async () => {
  await withRig({ signInHashConcurrency: 1, signInFreeFailures: 100 }, async (rig) => {
    await accounts(rig.store, ["alice", "bea"]);
    const raw = new grpc.Client(rig.v4, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    try {
      const startedBefore = rig.auth.hashStats().started;
      rig.hasher.hold();
      // Bea's sign-in holds the only hashing slot until the end.
      const holder = answerOf(rig.client(rig.v6).signIn("bea", RIGHT));
      await waitFor(() => rig.auth.hashStats().running === 1, 5000, "bea's check running");

      const results = await underAttack(rig, "cancelled sign-ins", async () => {
        // gRPC: cancelled by the client.
        const cancelledCalls = Array.from({ length: 5 }, () => rawSignIn(raw, "alice"));
        await waitFor(() => rig.auth.hashStats().waiting === 5, 5000, "5 waiting");
        for (const c of cancelledCalls) c.call.cancel();
        await waitFor(() => rig.auth.hashStats().waiting === 0, 5000, "the cancelled leave");
        // gRPC: the deadline passes while they wait.
        const late = Array.from(
          { length: 5 },
          () => rawSignIn(raw, "alice", { deadline: Date.now() + 2000 }),
        );
        await waitFor(() => rig.auth.hashStats().waiting === 5, 5000, "5 more waiting");
        await waitFor(() => rig.auth.hashStats().waiting === 0, 5000, "the expired leave");
        // gRPC-Web: the browser's fetch aborted.
        const controller = new AbortController();
        const web = Array.from(
          { length: 5 },
          () => webSignIn(rig.web4, "alice", controller.signal).catch((e) => e.name),
        );
        await waitFor(() => rig.auth.hashStats().waiting === 5, 5000, "5 web waiting");
        controller.abort();
        await waitFor(() => rig.auth.hashStats().waiting === 0, 5000, "the aborted leave");
        return {
          cancelled: await Promise.all(cancelledCalls.map((c) => c.answer)),
          late: await Promise.all(late.map((c) => c.answer)),
          web: await Promise.all(web),
        };
      });
      for (const a of results.cancelled) assert.equal(a.code, status.CANCELLED, a.details);
      for (const a of results.late) assert.equal(a.code, status.DEADLINE_EXCEEDED, a.details);
      for (const w of results.web) assert.equal(w, "AbortError");
      rig.hasher.release();
      assert.equal((await holder).code, status.OK);
      assert.deepEqual(rig.hasher.checked, [RIGHT], "only bea's password was checked");
      assert.deepEqual(rig.auth.hashStats(), {
        running: 0,
        waiting: 0,
        started: startedBefore + 1,
      });
    } finally {
      raw.close();
    }
  });
});

Deno.test("400 concurrent new accounts from one address: 20 created, the rest RESOURCE_EXHAUSTED; the global allowance stops a second address; others keep chatting", async () => {
  // A queue with room for all 20 (one address's creations do not push each other out).
  const config = { accountsPerHour: 30, accountsBurst: 30, signInHashQueue: 32 };
  await withRig(config, async (rig) => {
    const mallory = rig.client(rig.v4);
    const create = (client: ChatClient, prefix: string, n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) => answerOf(client.signIn(`${prefix}${i}`, RIGHT))),
      );
    const [first, second] = await underAttack(rig, "account flood", async () => {
      const first = await create(mallory, "m", 400);
      const second = await create(mallory, "n", 400);
      return [first, second];
    });
    const created = async () =>
      (await Promise.all(
        Array.from({ length: 400 }, (_, i) => rig.store.getAccount(`m${i}`)),
      )).filter(Boolean).length;
    assert.equal(count(first, status.OK), 20);
    assert.equal(await created(), 20, "20 accounts in the store");
    assert.equal(count(first, status.RESOURCE_EXHAUSTED), 380);
    // Refused while 20 of hers were in progress, or once her allowance was used up.
    const allowance =
      /^Cannot sign in: m\d+ would be a new account, and your address may create 20 per hour; retry in \d+\.\d s$/;
    for (const a of first.filter((a) => a.code !== status.OK)) {
      assert.ok(
        THROTTLED("from your address").test(a.details) || allowance.test(a.details),
        a.details,
      );
    }
    // The second wave finds nothing in progress, and no allowance left.
    assert.equal(count(second, status.RESOURCE_EXHAUSTED), 400);
    assert.match(
      second[0]!.details,
      /^Cannot sign in: n0 would be a new account, and your address may create 20 per hour; retry in 1[78]\d\.\d s$/,
    );
    assert.equal(rig.hasher.hashed, 20, "mallory's 20 were hashed, no more");

    // A second address gets the rest of the server's 30 an hour.
    const other = await create(rig.client(rig.v6), "v", 20);
    assert.equal(count(other, status.OK), 10);
    const refused = other.filter((a) => a.code === status.RESOURCE_EXHAUSTED);
    assert.equal(refused.length, 10);
    assert.match(
      refused[0]!.details,
      /would be a new account, and this server creates at most 30 per hour \(30 at once\); retry in \d+\.\d s$/,
    );
    // Existing accounts still sign in.
    assert.equal((await answerOf(mallory.signIn("m0", RIGHT))).code, status.OK);
  });
});
