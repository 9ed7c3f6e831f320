/**
 * `Connect.resume` under attack, through a real gateway over gRPC: one stream listing 100,000
 * positions (1.2 MB) froze gRPC and /healthz for seconds per request. Now the list is capped
 * (MAX_RESUME_ROOMS), one position counts per room, rooms the user is not in are dropped before
 * the store is read, and the replay yields between rooms: the event loop stays responsive,
 * /healthz answers, and bob and carol keep chatting.
 */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ChatError } from "../core/errors.ts";
import { DEFAULT_MAX_RESUME_ROOMS } from "../protocol/limits.ts";
import { Broadcast, ConnectSchema, RoomPositionSchema } from "../protocol/gen/chat_pb.ts";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { parseConnect } from "../server/rpc.ts";
import { assertStatus, attacker, status, underAttack, withAttackSystem } from "./attack_support.ts";
import { waitFor } from "./helpers.ts";
import type { ChatClient } from "../client/chat_client.ts";
import type { Message, RoomPosition } from "../protocol/gen/chat_pb.ts";
import type { ServiceError } from "@grpc/grpc-js";

/** The longest the event loop was held while `during` ran, in ms (timers 10 ms apart). */
async function longestStall<T>(during: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last - 10);
    last = now;
  }, 10);
  try {
    return { result: await during(), stallMs };
  } finally {
    clearInterval(timer);
  }
}

/** A stream that records what it gets; resolves `opened` once `isOpen`, or with its error. */
function resumeStream(
  client: ChatClient,
  userId: string,
  resume: { room: string; lastSeq: number }[],
  isOpen: () => boolean,
) {
  const received: Message[] = [];
  let cancel = () => {};
  const opened = new Promise<{ code: number; details: string }>((resolve) => {
    const stream = client.stream(userId, (m) => received.push(m), (err?: ServiceError) => {
      resolve({ code: err?.code ?? status.OK, details: err?.details ?? "" });
    }, { resume });
    cancel = () => stream.cancel();
    waitFor(isOpen, 10_000).then(() => resolve({ code: status.OK, details: "" }), () => {});
  });
  return { received, opened, cancel: () => cancel() };
}

Deno.test("resume with 100,000 positions is INVALID_ARGUMENT at once; /healthz and bystanders are not held up", async () => {
  await withAttackSystem({}, async ({ system, b }) => {
    const mallory = await attacker(system, "mallory", "off");
    const health = `http://127.0.0.1:${system.gateways[0]!.httpPort}/healthz`;
    const huge = Array.from({ length: 100_000 }, (_, i) => ({ room: "general", lastSeq: i }));
    const healthTimes: number[] = [];
    const { result, stallMs } = await longestStall(() =>
      underAttack(b, "100,000 positions", async () => {
        const attacks = Array.from(
          { length: 5 },
          () => resumeStream(mallory, "mallory", huge, () => false).opened,
        );
        // Health checks while the attack runs.
        for (let i = 0; i < 5; i++) {
          const started = performance.now();
          const res = await fetch(health);
          await res.body?.cancel();
          assert.equal(res.status, 200);
          healthTimes.push(performance.now() - started);
        }
        return await Promise.all(attacks);
      })
    );
    for (const answer of result) {
      assertStatus(
        answer,
        status.INVALID_ARGUMENT,
        `Cannot open stream: resume lists 100000 rooms, the limit is ${DEFAULT_MAX_RESUME_ROOMS}`,
      );
    }
    assert.equal(system.gateways[0]!.hub.countOf("mallory"), 0, "no stream was opened");
    assert.ok(Math.max(...healthTimes) < 1000, `/healthz answered in ${healthTimes.join(", ")} ms`);
    // Encoding (this process is the client too) and decoding two 1.2 MB requests is the only
    // work proportional to them; before the cap, each held the loop for seconds.
    assert.ok(stallMs < 1000, `the event loop was held for at most ${stallMs.toFixed(0)} ms`);
  });
});

Deno.test("resume within the cap: one position per room (the smallest), rooms not joined never reach the store, replay yields", async () => {
  await withAttackSystem(
    { rateLimitBurst: 1000, rateLimitPerSecond: 1000 },
    async ({ system, b }) => {
      const store = system.store;
      // Bob and carol talk: 30 messages in "general" mallory will resume.
      for (let i = 1; i <= 30; i++) await b.bob.client.send("bob", `general ${i}`);
      await waitFor(async () => (await store.lastSeq("general")) >= 30, 5000, "30 stored");
      const last = await store.lastSeq("general");
      const reads: string[] = [];
      const since = store.since.bind(store);
      store.since = (room, after, limit) => {
        reads.push(room);
        return since(room, after, limit);
      };

      // The cap exactly: 156 rooms mallory is not in, and "general" 100 times at
      // positions from last-10 up, plus once at last-20: replay starts after last-20.
      const resume = [
        ...Array.from({ length: 156 }, (_, i) => ({ room: `not-mine-${i}`, lastSeq: 0 })),
        ...Array.from({ length: 99 }, (_, i) => ({ room: "general", lastSeq: last - 10 + i })),
        { room: "GENERAL", lastSeq: last - 20 },
      ];
      assert.equal(resume.length, DEFAULT_MAX_RESUME_ROOMS);
      const mallory = await attacker(system, "mallory", "off");
      const hub = system.gateways[0]!.hub;
      const { result: stream, stallMs } = await longestStall(() =>
        underAttack(b, "a full resume list", async () => {
          const s = resumeStream(mallory, "mallory", resume, () => hub.countOf("mallory") > 0);
          assertStatus(await s.opened, status.OK, "");
          await waitFor(() => s.received.filter((m) => m.content).length >= 20, 5000, "replay");
          return s;
        })
      );
      const replayed = stream.received.filter((m) => m.seq > 0 && m.seq <= last);
      assert.deepEqual(
        replayed.map((m) => Number(m.seq)),
        Array.from({ length: 20 }, (_, i) => last - 20 + 1 + i),
        "what came after the smallest position, once, in order",
      );
      assert.deepEqual(reads, ["general"], "one read, of the one room mallory is in");
      assert.ok(stallMs < 500, `the event loop was held for at most ${stallMs.toFixed(0)} ms`);
      stream.cancel();

      // One more than the cap is refused.
      const over = resumeStream(
        mallory,
        "mallory",
        [...resume, { room: "general", lastSeq: 0 }],
        () => false,
      );
      assertStatus(
        await over.opened,
        status.INVALID_ARGUMENT,
        `Cannot open stream: resume lists ${
          DEFAULT_MAX_RESUME_ROOMS + 1
        } rooms, the limit is ${DEFAULT_MAX_RESUME_ROOMS}`,
      );
    },
  );
});

Deno.test("a resume list over the cap is refused before any of its entries is read", () => {
  let reads = 0;
  /** A position that counts every read of its fields. */
  const watched = (): RoomPosition => {
    const position = create(RoomPositionSchema);
    Object.defineProperty(position, "room", { get: () => (reads++, "general") });
    Object.defineProperty(position, "lastSeq", { get: () => (reads++, 0n) });
    return position;
  };
  const connect = (length: number) =>
    create(ConnectSchema, {
      user: { id: "mallory" },
      resume: Array.from({ length }, watched),
    });

  assert.throws(
    () => parseConnect(connect(100_000), DEFAULT_MAX_RESUME_ROOMS),
    (err: unknown) =>
      err instanceof ChatError && err.code === "invalid_argument" &&
      err.message ===
        `Cannot open stream: resume lists 100000 rooms, the limit is ${DEFAULT_MAX_RESUME_ROOMS}`,
  );
  assert.equal(reads, 0, "no entry of the refused list was read");

  // At the cap, every entry is read.
  assert.equal(parseConnect(connect(3), 3).resume.length, 3);
  assert.ok(reads >= 3, `${reads} reads of 3 entries within the cap`);
});

Deno.test("a MAX_RESUME_ROOMS above the default is the limit on both ports", async () => {
  const limit = DEFAULT_MAX_RESUME_ROOMS + 44;
  await withAttackSystem({ maxResumeRooms: limit }, async ({ system }) => {
    const positions = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ room: `room-${i}`, lastSeq: 0 }));
    const refusal = (n: number) =>
      `Cannot open stream: resume lists ${n} rooms, the limit is ${limit}`;
    const hub = system.gateways[0]!.hub;

    // Native gRPC.
    const alice = await attacker(system, "alice", "off");
    const allowed = resumeStream(alice, "alice", positions(limit), () => hub.countOf("alice") > 0);
    assertStatus(await allowed.opened, status.OK, "");
    allowed.cancel();
    const over = resumeStream(alice, "alice", positions(limit + 1), () => false);
    assertStatus(await over.opened, status.INVALID_ARGUMENT, refusal(limit + 1));

    // The browser API (Connect protocol).
    const web = createClient(
      Broadcast,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${system.gateways[0]!.httpPort}` }),
    );
    /** Opens bob's stream; resolves with its first message, rejects with its refusal. */
    const open = (n: number, abort: AbortController) =>
      web.createStream({
        user: { id: "bob", displayName: "bob" },
        resume: positions(n).map((p) => ({ room: p.room, lastSeq: 0n })),
      }, { signal: abort.signal })[Symbol.asyncIterator]().next();
    const abort = new AbortController();
    const pending = open(limit, abort).catch((err: unknown) => err);
    await waitFor(() => hub.countOf("bob") > 0, 5000, "bob's stream with the full list open");
    abort.abort();
    await pending;
    await assert.rejects(open(limit + 1, new AbortController()), (err: unknown) => {
      assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${err}`);
      assert.equal(err.code, Code.InvalidArgument);
      assert.equal(err.rawMessage, refusal(limit + 1));
      return true;
    });
  });
});
