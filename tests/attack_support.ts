/**
 * What the attack tests share: a real gateway on real gRPC sockets (tests/helpers.ts), two
 * bystanders, bob and carol, who keep chatting while a hostile client attacks (both native, or
 * carol on gRPC-Web for the attacks on the HTTP port), raw calls with
 * hand-made field values, and a record of everything published to the `chatting` and
 * dead-letter topics.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import type { Config } from "../core/config.ts";
import type { ChatMessage } from "../core/types.ts";
import type { MemoryBus } from "../bus/memory_bus.ts";
import { type Logger, memoryLogger } from "../core/logger.ts";
import { create, toBinary } from "@bufbuild/protobuf";
import { Broadcast } from "../protocol/gen/chat_pb.ts";
import type { ChatClient } from "../client/chat_client.ts";
import {
  connectUser,
  newClient,
  startSystem,
  type System,
  type TestUser,
  waitFor,
} from "./helpers.ts";
import { protobufTs, type WebBroadcastClient } from "./protobuf_ts.ts";

export const { status } = grpc;

export const PASSWORD = "correct horse battery";

export const SERVICE_NAME = Broadcast.typeName;

/** The `chat.Broadcast` methods by their wire names (`SignIn`, `CreateStream`, ...). */
export const METHODS = new Map(Broadcast.methods.map((m) => [m.name, m]));

/**
 * The request of `method` encoded with whatever field values a hostile client chooses (numbers
 * for uint64 fields too: the encoder takes them).
 */
export function encodeRequest(method: string, fields: object): Uint8Array {
  const input = METHODS.get(method)!.input;
  return toBinary(input, create(input, fields as never));
}

export interface Answer {
  code: number;
  details: string;
}

/** Two users who keep chatting while an attack goes on. */
export interface Exchanging {
  /** Bob and carol each send one message and each sees the other's: proof they still chat. */
  exchange(label: string): Promise<void>;
}

export interface Bystanders extends Exchanging {
  bob: TestUser;
  carol: TestUser;
}

/** Bob on native gRPC and carol on gRPC-Web, through the HTTP port's guards. */
export interface WebBystanders extends Exchanging {
  bob: TestUser;
  /** What carol's stream received. */
  carolGot: string[];
  /**
   * Waits for carol's stream to end (the gateway's shutdown, done first, ends it) and closes bob.
   * Not an abort: in Deno 2.9.3 an aborted fetch stream may neither reject nor close its
   * connection, a client-side quirk.
   */
  close(): Promise<void>;
}

/** Bob and carol, connected (signed in when `auth` is "on"), chatting in "general". */
export async function bystanders(system: System, auth: "on" | "off"): Promise<Bystanders> {
  const user = async (name: "bob" | "carol") => {
    const client = newClient(system.address());
    if (auth === "on") await client.signIn(name, PASSWORD);
    return connectUser(system.address(), name, { client });
  };
  const bob = await user("bob");
  const carol = await user("carol");
  await waitFor(() => system.gateways[0]!.hub.size >= 2, 5000, "bob's and carol's streams");
  return {
    bob,
    carol,
    async exchange(label) {
      await bob.client.send("bob", `bob: ${label}`);
      await carol.client.send("carol", `carol: ${label}`);
      await waitFor(
        () =>
          carol.contents().includes(`bob: ${label}`) && bob.contents().includes(`carol: ${label}`),
        5000,
        `bob and carol to exchange "${label}"`,
      );
    },
  };
}

/**
 * Bob (a native stream) and carol (`carol`, a gRPC-Web client we did not write, already signed
 * in if it must be), chatting in "general".
 */
export async function webBystanders(
  system: System,
  bob: TestUser,
  carol: WebBroadcastClient,
): Promise<WebBystanders> {
  const { Connect, Message } = await protobufTs();
  const carolGot: string[] = [];
  const call = carol.createStream(Connect.create({ user: { id: "carol" } }));
  call.responses.onMessage((m) => {
    if (m.content) carolGot.push(m.content);
  });
  const done = call.status.catch(() => {});
  await call.headers;
  await waitFor(() => system.gateways[0]!.hub.size >= 2, 5000, "bob's and carol's streams");
  return {
    bob,
    carolGot,
    async exchange(label) {
      await bob.client.send("bob", `bob: ${label}`);
      const sent = await carol.broadcastMessage(
        Message.create({ id: "carol", content: `carol: ${label}` }),
      );
      assert.equal(sent.status.code, "OK");
      await waitFor(
        () => carolGot.includes(`bob: ${label}`) && bob.contents().includes(`carol: ${label}`),
        5000,
        `bob and carol to exchange "${label}"`,
      );
    },
    async close() {
      await Promise.race([done, sleep(5000)]);
      bob.close();
    },
  };
}

/**
 * Runs `attack` while bob and carol exchange messages (`delayMs` after it started), then has
 * them exchange once more.
 */
export async function underAttack<T>(
  b: Exchanging,
  name: string,
  attack: () => Promise<T>,
  delayMs = 0,
): Promise<T> {
  const [result] = await Promise.all([
    attack(),
    sleep(delayMs).then(() => b.exchange(`during ${name}`)),
  ]);
  await b.exchange(`after ${name}`);
  return result;
}

/** The status a call ended with: OK, or the error's code and details. */
export function statusOf(promise: Promise<unknown>): Promise<Answer> {
  return promise.then(
    () => ({ code: status.OK, details: "" }),
    (err: grpc.ServiceError) => ({ code: err.code, details: err.details }),
  );
}

/** Asserts `answer` is `code` with details matching `details`, saying which attack it was. */
export function assertStatus(answer: Answer, code: number, details: RegExp | string, what = "") {
  assert.equal(
    answer.code,
    code,
    `${what}: expected ${status[code]}, got ${status[answer.code]} ${answer.details}`,
  );
  if (typeof details === "string") assert.equal(answer.details, details, what);
  else assert.match(answer.details, details, what);
}

/** A raw unary call with any bytes and metadata, on `client`'s own connection. */
export function rawCall(
  client: grpc.Client,
  method: string,
  bytes: Uint8Array,
  metadata = new grpc.Metadata(),
): Promise<Answer> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/${SERVICE_NAME}/${method}`,
      (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      (b: Buffer) => b,
      bytes,
      metadata,
      { deadline: Date.now() + 20_000 },
      (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "" }),
    );
  });
}

/** A `chat.Message` encoded with whatever field values a hostile client chooses. */
export function encodeMessage(fields: Record<string, unknown>): Uint8Array {
  return encodeRequest("BroadcastMessage", fields);
}

/** Metadata carrying `client`'s token, for raw calls. */
export function tokenOf(client: ChatClient): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (client.token) metadata.set("authorization", `Bearer ${client.token}`);
  return metadata;
}

/** Options for a client of its own connection, as an attacker has (not the bystanders'). */
export const OWN_CONNECTION = { "grpc.use_local_subchannel_pool": 1 };

/** Every message appended to a room's log, and whatever the processor set aside, as it happens. */
export interface Published {
  chatting: ChatMessage[];
  deadLetters: readonly unknown[];
}

export interface AttackSystem {
  system: System;
  b: Bystanders;
  published: Published;
  /** Every log line at INFO and above. */
  lines: string[];
}

/**
 * Starts a system (one gateway) with `config`, bob and carol, and a record of what is published;
 * runs `run`; then checks that bob and carol are still connected and that nothing was logged at
 * ERROR: an attack is the client's fault, never an internal error.
 */
export async function withAttackSystem(
  config: Partial<Config>,
  run: (a: AttackSystem) => Promise<void>,
): Promise<void> {
  const logger: Logger & { lines: string[] } = memoryLogger("info");
  const system = await startSystem({ logger, config });
  const bus = system.bus as MemoryBus;
  const published: Published = { chatting: [], deadLetters: bus.setAside };
  const append = bus.append.bind(bus);
  bus.append = (message) => {
    published.chatting.push(message);
    return append(message);
  };
  try {
    const b = await bystanders(system, config.auth ?? "off");
    await run({ system, b, published, lines: logger.lines });
    assert.equal(b.bob.ended, undefined, "bob's stream is still open");
    assert.equal(b.carol.ended, undefined, "carol's stream is still open");
    assert.deepEqual(published.deadLetters, [], "nothing went to the dead-letter topic");
    assert.deepEqual(
      logger.lines.filter((line) => / ERROR /.test(line)),
      [],
      "nothing logged as an error",
    );
  } finally {
    await system.stop();
  }
}

/** A client of its own connection, signed in as `name` when `auth` is "on". */
export async function attacker(
  system: System,
  name: string,
  auth: "on" | "off",
): Promise<ChatClient> {
  const client = newClient(system.address(), grpc.credentials.createInsecure(), OWN_CONNECTION);
  if (auth === "on") await client.signIn(name, PASSWORD);
  return client;
}
