/**
 * Hostile input at every `chat.Broadcast` RPC over native gRPC, as property tests: random bytes,
 * valid requests with bytes flipped or cut, and random protobuf fields sent as the raw request
 * (identity serializers, so the bytes reach the server as they are), and random field values
 * through the typed client. Every answer must be OK or a client error with a message that says
 * what is wrong, never INTERNAL or UNKNOWN, and the gateway must go on serving.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { memoryLogger } from "../core/logger.ts";
import type { ChatClient } from "../client/chat_client.ts";
import { connectUser, newClient, startSystem, type System, waitFor } from "./helpers.ts";
import { fuzzParameters } from "./fuzz_seed.ts";
import { encodeRequest, METHODS as DESCRIPTORS, SERVICE_NAME } from "./attack_support.ts";

const { status } = grpc;

/** What a client may be told about its own bad request. */
const CLIENT_ERRORS = new Set<number>([
  status.INVALID_ARGUMENT,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
  status.NOT_FOUND,
  status.RESOURCE_EXHAUSTED,
  status.FAILED_PRECONDITION,
  status.ALREADY_EXISTS,
  status.OUT_OF_RANGE,
]);

interface Answer {
  code: number;
  details: string;
}

function assertClientAnswer(method: string, answer: Answer): void {
  if (answer.code === status.OK) return;
  assert.ok(
    CLIENT_ERRORS.has(answer.code),
    `${method} answered ${status[answer.code]}: ${answer.details}`,
  );
  assert.ok(answer.details.trim() !== "", `${method}: ${status[answer.code]} without a message`);
}

/** A valid request per method, for mutation. */
const SAMPLES: Record<string, object> = {
  CreateStream: { user: { id: "fuzzer", displayName: "Fuzzer" }, presenceEvents: true },
  BroadcastMessage: { content: "hello", room: "general", messageId: "m-1" },
  ListOnline: { room: "general" },
  SignIn: { username: "fuzzer", password: "a long password", displayName: "F" },
  CreateRoom: { room: "fuzz-room" },
  JoinRoom: { room: "fuzz-room" },
  LeaveRoom: { room: "fuzz-room" },
  ListRooms: { all: true, query: "fuzz", limit: 10 },
  OpenDirect: { userId: "bob" },
  History: { room: "general", beforeSeq: 5, limit: 10 },
  SetTyping: { room: "general", typing: true },
  MarkRead: { room: "general", seq: 1 },
  EditMessage: { room: "general", seq: 1, content: "edited" },
  DeleteMessage: { room: "general", seq: 1 },
  React: { room: "general", seq: 1, emoji: "👍" },
  SetTopic: { room: "fuzz-room", topic: "Fuzzing, all day" },
  Block: { userId: "bob", blocked: true },
  ListBlocked: {},
  SetRoomAccess: { room: "fuzz-room", inviteOnly: true },
  Invite: { room: "fuzz-room", userId: "bob" },
};
const METHODS = [...DESCRIPTORS.keys()];

const varint = (n: bigint): number[] => {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return out;
};

/** Protobuf-shaped garbage: fields of any number and wire type, with varints of any size. */
const protobufFields: fc.Arbitrary<Uint8Array> = fc.array(
  fc.record({
    field: fc.integer({ min: 1, max: 20 }),
    wireType: fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7),
    value: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    bytes: fc.uint8Array({ maxLength: 40 }),
    lengthDelta: fc.integer({ min: -3, max: 3 }),
  }),
  { maxLength: 8 },
).map((fields) => {
  const out: number[] = [];
  for (const f of fields) {
    out.push(...varint(BigInt((f.field << 3) | f.wireType)));
    if (f.wireType === 0) out.push(...varint(f.value));
    else if (f.wireType === 1) out.push(...f.bytes.subarray(0, 8));
    else if (f.wireType === 5) out.push(...f.bytes.subarray(0, 4));
    else if (f.wireType === 2) {
      // Sometimes a length that lies about what follows.
      out.push(...varint(BigInt(Math.max(0, f.bytes.length + f.lengthDelta))), ...f.bytes);
    }
  }
  return new Uint8Array(out);
});

/** A method's valid request, with bytes flipped, cut or extended. */
function mutated(method: string): fc.Arbitrary<Uint8Array> {
  const valid = encodeRequest(method, SAMPLES[method]!);
  return fc.record({
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
    cut: fc.option(fc.nat()),
    tail: fc.uint8Array({ maxLength: 6 }),
  }).map(({ flips, cut, tail }) => {
    const bytes = Uint8Array.from([...valid, ...tail]);
    for (const [at, mask] of flips) bytes[at % bytes.length]! ^= mask;
    return cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
  });
}

const rawRequest = fc.constantFrom(...METHODS).chain((method) =>
  fc.record({
    method: fc.constant(method),
    bytes: fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated(method), protobufFields),
    signedIn: fc.boolean(),
  })
);

interface Fixture {
  system: System;
  logger: ReturnType<typeof memoryLogger>;
  raw: grpc.Client;
  token: string;
}

async function withSystem(
  auth: "on" | "off",
  run: (f: Fixture) => Promise<void>,
): Promise<void> {
  const logger = memoryLogger("error");
  const system = await startSystem({
    logger,
    // High rate limits, so that random calls reach the code behind the limiter.
    config: { auth, rateLimitPerSecond: 1_000_000, rateLimitBurst: 1_000_000 },
  });
  // One channel for every raw case: closing channels after many calls can abort Deno 2.9.
  const raw = new grpc.Client(system.address(), grpc.credentials.createInsecure());
  try {
    const token = (await newClient(system.address()).signIn("fuzzer", "a long password")).token;
    await run({ system, logger, raw, token });
    // Still serving: a stream opens and a message goes through.
    const aliceClient = newClient(system.address());
    aliceClient.token = (await aliceClient.signIn("alice", "a long password")).token;
    const alice = connectUser(system.address(), "alice", { client: aliceClient });
    const sender = newClient(system.address());
    sender.token = token;
    await waitFor(() => system.gateways[0]!.hub.size >= 1, 5000, "alice's stream");
    await sender.send(auth === "on" ? "" : "fuzzer", "still here");
    await waitFor(() => alice.contents().includes("still here"), 5000, "the message after fuzzing");
    assert.deepEqual(logger.lines, [], "nothing logged as an error");
  } finally {
    raw.close();
    await system.stop();
  }
}

const identity = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const passThrough = (b: Buffer) => b;

function callRaw(
  f: Fixture,
  method: string,
  bytes: Uint8Array,
  signedIn: boolean,
): Promise<Answer> {
  const metadata = new grpc.Metadata();
  if (signedIn) metadata.set("authorization", `Bearer ${f.token}`);
  const path = `/${SERVICE_NAME}/${method}`;
  const deadline = Date.now() + 10_000; // DEADLINE_EXCEEDED would mean the server hung
  if (DESCRIPTORS.get(method)!.methodKind === "unary") {
    return new Promise((resolve) => {
      f.raw.makeUnaryRequest(
        path,
        identity,
        passThrough,
        bytes,
        metadata,
        { deadline },
        (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "" }),
      );
    });
  }
  const hub = f.system.gateways[0]!.hub;
  const before = hub.size;
  const call = f.raw.makeServerStreamRequest(path, identity, passThrough, bytes, metadata, {
    deadline,
  });
  return new Promise<Answer>((resolve) => {
    let opened = false;
    call.on("data", () => {});
    call.on("error", () => {});
    call.on("status", (s: grpc.StatusObject) => {
      // A stream that opened is ended here, by the client: that CANCELLED is ours.
      resolve(opened && s.code === status.CANCELLED ? { code: 0, details: "" } : s);
    });
    waitFor(() => hub.size > before, 10_000).then(() => {
      opened = true;
      call.cancel();
    }, () => {});
  }).then(async (answer) => {
    await waitFor(() => hub.size === before, 5000, "the fuzzed stream to close");
    return answer;
  });
}

for (const auth of ["on", "off"] as const) {
  Deno.test(`property (AUTH=${auth}): random and mutated protobuf bytes at every RPC get OK or a clear client error`, async () => {
    await withSystem(auth, async (f) => {
      await fc.assert(
        fc.asyncProperty(rawRequest, async ({ method, bytes, signedIn }) => {
          assertClientAnswer(method, await callRaw(f, method, bytes, signedIn));
        }),
        fuzzParameters(`raw bytes, AUTH=${auth}`, 1000),
      );
    });
  });
}

/** Strings as clients send them: empty, blank, unicode of every plane, long, huge. */
const anyString = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "\u0000", "general", "dm:a:b", "fuzzer") },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 300 }) },
  { weight: 1, arbitrary: fc.nat({ max: 70_000 }).map((n) => "x".repeat(n)) },
);
/** Any uint64, as the wire carries it: past Number.MAX_SAFE_INTEGER too. */
const anyUint64 = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.constantFrom(0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n),
);
/** Any uint32. */
const anyUint32 = fc.oneof(fc.nat(), fc.constantFrom(0, 1, 2 ** 31 - 1, 2 ** 32 - 1));
/** Any time a Timestamp holds (years 1 to 9999), and far ones. */
const anyTime = fc.date({
  min: new Date("0001-01-01"),
  max: new Date("9999-12-31"),
  noInvalidDate: true,
})
  .map((d) => d.toISOString());

type TypedCall = { name: string; call: (c: ChatClient) => Promise<unknown> };
const typed = (name: string, call: (c: ChatClient) => Promise<unknown>): TypedCall => ({
  name,
  call,
});

const typedCall: fc.Arbitrary<TypedCall> = fc.oneof(
  fc.record({
    user: anyString,
    content: anyString,
    displayName: anyString,
    messageId: anyString,
    room: anyString,
    timestamp: anyTime,
  }).map((r) => typed("BroadcastMessage", (c) => c.send(r.user, r.content, r))),
  anyString.map((room) => typed("ListOnline", (c) => c.listOnline(room))),
  anyString.map((room) => typed("CreateRoom", (c) => c.createRoom(room))),
  anyString.map((room) => typed("JoinRoom", (c) => c.joinRoom(room))),
  anyString.map((room) => typed("LeaveRoom", (c) => c.leaveRoom(room))),
  fc.tuple(fc.boolean(), anyString, anyUint32).map(([all, query, limit]) =>
    typed("ListRooms", (c) => c.listRooms(all, query, limit))
  ),
  fc.tuple(anyString, anyString).map(([room, topic]) =>
    typed("SetTopic", (c) => c.setTopic(room, topic))
  ),
  fc.tuple(anyString, anyString, anyString).map(([room, user, role]) =>
    typed("SetRole", (c) => c.setRole(room, user, role))
  ),
  fc.tuple(anyString, anyString).map(([room, user]) =>
    typed("RemoveMember", (c) => c.removeMember(room, user))
  ),
  fc.tuple(anyString, anyString, anyUint32).map(([room, user, seconds]) =>
    typed("MuteMember", (c) => c.muteMember(room, user, seconds))
  ),
  fc.tuple(anyString, fc.boolean()).map(([room, inviteOnly]) =>
    typed("SetRoomAccess", (c) => c.setRoomAccess(room, inviteOnly))
  ),
  fc.tuple(anyString, anyString).map(([room, user]) =>
    typed("Invite", (c) => c.invite(room, user))
  ),
  anyUint32.map((limit) => typed("ListRooms", (c) => c.listInvitations(limit))),
  anyString.map((user) => typed("OpenDirect", (c) => c.openDirect(user))),
  fc.tuple(anyString, fc.boolean()).map(([user, blocked]) =>
    typed("Block", (c) => c.block(user, blocked))
  ),
  fc.tuple(anyString, anyUint64, anyUint32).map(([room, before, limit]) =>
    typed("History", (c) => c.history(room, before, limit))
  ),
  // Few sign-ins: a valid one hashes a password (argon2), which takes a while by design.
  fc.tuple(anyString, anyString, anyString).map(([u, p, d]) =>
    typed("SignIn", (c) => c.signIn(u, p.length >= 8 ? p.slice(0, 7) : p, d))
  ),
);

for (const auth of ["on", "off"] as const) {
  Deno.test(`property (AUTH=${auth}): random field values at every unary RPC get OK or a clear client error`, async () => {
    await withSystem(auth, async (f) => {
      const client = newClient(f.system.address());
      client.token = f.token;
      await fc.assert(
        fc.asyncProperty(typedCall, async ({ name, call }) => {
          try {
            await call(client);
          } catch (err) {
            const e = err as grpc.ServiceError;
            assertClientAnswer(name, { code: e.code, details: e.details });
          }
        }),
        fuzzParameters(`typed fields, AUTH=${auth}`, 600),
      );
    });
  });
}

Deno.test("property: random field values in CreateStream get a stream or a clear client error", async () => {
  await withSystem("off", async (f) => {
    const client = newClient(f.system.address());
    const hub = f.system.gateways[0]!.hub;
    await fc.assert(
      fc.asyncProperty(
        anyString,
        anyString,
        fc.array(fc.record({ room: anyString, lastSeq: anyUint64 }), { maxLength: 3 }),
        async (user, displayName, resume) => {
          const before = hub.size;
          const answer = await new Promise<Answer>((resolve) => {
            let opened = false;
            const stream = client.stream(user, () => {}, (err) => {
              resolve(
                err === undefined || (opened && err.code === status.CANCELLED)
                  ? { code: 0, details: "" }
                  : { code: err.code, details: err.details },
              );
            }, { displayName, presenceEvents: true, resume });
            waitFor(() => hub.size > before, 10_000).then(() => {
              opened = true;
              stream.cancel();
            }, () => {});
          });
          assertClientAnswer("CreateStream", answer);
          await waitFor(() => hub.size === before, 5000, "the fuzzed stream to close");
        },
      ),
      fuzzParameters("CreateStream fields", 300),
    );
  });
});

Deno.test("a request whose bytes are no valid message is INVALID_ARGUMENT naming its type", async () => {
  await withSystem("off", async (f) => {
    // A string field (1, wire type 2) whose length runs past the end of the message.
    const answer = await callRaw(f, "BroadcastMessage", new Uint8Array([0x0a, 0x05, 0x61]), false);
    assert.equal(answer.code, status.INVALID_ARGUMENT, answer.details);
    assert.match(
      answer.details,
      /^Cannot read request: the message is not a valid chat\.Message \(/,
    );
    const stream = await callRaw(f, "CreateStream", new Uint8Array([0xff]), false);
    assert.equal(stream.code, status.INVALID_ARGUMENT, stream.details);
    assert.match(stream.details, /not a valid chat\.Connect/);
  });
});
