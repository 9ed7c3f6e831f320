/**
 * Rooms, ordering, resume, sign-in and limits on the real three-broker
 * cluster, with gateways and processors as separate processes (AUTH=on).
 */

import type { ChatClient } from "../client/chat_client.ts";
import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { Partitioners } from "kafkajs";
import { connectUser, newClient, refused, type TestUser, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, stopAll } from "./processes.ts";
import { processorsHolding } from "./faults/harness.ts";

// Starts the cluster (unless KAFKA_BROKERS is set) before the tests; kafkaDeployment uses it.
await kafkaBrokers();

const PASSWORD = "a long password";
const SLOW = 60_000;

async function signIn(address: string, name: string): Promise<ChatClient> {
  const client = newClient(address);
  await client.signIn(name, PASSWORD);
  return client;
}

function listen(
  address: string,
  client: ChatClient,
  name: string,
  resume?: { room: string; lastSeq: bigint }[],
): TestUser {
  return connectUser(address, name, { client, presenceEvents: true, resume });
}

/** Three room names that, with "general", land on both `chatting` partitions (kafkajs's partitioner). */
function roomsOnBothPartitions(run: string): string[] {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionOf = (key: string) =>
    partitioner({
      topic: "chatting",
      partitionMetadata: [0, 1].map((id) => ({
        partitionId: id,
        leader: id,
        replicas: [],
        isr: [],
        partitionErrorCode: 0,
      })),
      message: { key, value: null },
    });
  const names = ["red", "blue", "green"].map((c) => `${c}-${run}`);
  for (let i = 0; partitionOf(names[0]!) === partitionOf("general"); i++) {
    names[0] = `red-${run}-${i}`;
  }
  return names;
}

Deno.test("two processors: every room's order is the same for every member on every gateway", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const p1 = deployment.processor("processor-1", { KAFKA_CLIENT_ID: "processor-1" });
  const p2 = deployment.processor("processor-2", { KAFKA_CLIENT_ID: "processor-2" });
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  const users: TestUser[] = [];
  try {
    await Promise.all([a.ready(), b.ready()]);
    await processorsHolding(["processor-1", "processor-2"], SLOW);
    const alice = await signIn(a.grpc, "alice");
    const bob = await signIn(b.grpc, "bob");
    // Unique names: the cluster, and the processor group's position, are shared with other tests.
    const run = crypto.randomUUID().slice(0, 6);
    const rooms = ["general", ...roomsOnBothPartitions(run)];
    for (const room of rooms.slice(1)) {
      await alice.createRoom(room);
      await bob.joinRoom(room);
    }
    const aliceStream = listen(a.grpc, alice, "alice");
    const bobStream = listen(b.grpc, bob, "bob");
    users.push(aliceStream, bobStream);
    await waitFor(async () => (await alice.listOnline()).length === 2, SLOW, "both online");

    const perRoom = 15;
    await Promise.all(rooms.flatMap((room) => [
      (async () => {
        for (let i = 0; i < perRoom; i++) await alice.send("", `${run} ${room} a${i}`, { room });
      })(),
      (async () => {
        for (let i = 0; i < perRoom; i++) await bob.send("", `${run} ${room} b${i}`, { room });
      })(),
    ]));
    const total = rooms.length * perRoom * 2;
    const ours = (u: TestUser) => u.received.filter((m) => m.content.startsWith(`${run} `));
    await waitFor(
      () => ours(aliceStream).length === total && ours(bobStream).length === total,
      SLOW,
      `${total} messages at both`,
    );
    for (const room of rooms) {
      const seen = (u: TestUser) =>
        ours(u).filter((m) => m.room === room).map((m) => ({ seq: m.seq, text: m.content }));
      assert.deepEqual(seen(aliceStream), seen(bobStream), `room ${room}: same order for both`);
      const seqs = seen(aliceStream).map((m) => m.seq);
      // Positions in the room's partition, which other rooms share: rising, not dense.
      assert.ok(seqs.every((q, i) => i === 0 || q > seqs[i - 1]!), `room ${room}: rising seq`);
      for (const who of ["a", "b"]) {
        const mine = seen(aliceStream).map((m) => m.text.split(" ")[2]!).filter((t) =>
          t.startsWith(who)
        );
        assert.deepEqual(
          mine,
          Array.from({ length: perRoom }, (_, i) => `${who}${i}`),
          "each sender's order kept",
        );
      }
    }
    for (const p of [p1, p2]) {
      assert.ok(
        p.output.some((l) => /Received chat message/.test(l)),
        `${p.name} handled messages`,
      );
    }

    // Mentions found on gateway a reach bob on gateway b through Kafka, and the store keeps them.
    const mention = `${run} @bob and @carol, look`;
    await alice.send("", mention, { room: rooms[1] });
    await waitFor(() => bobStream.contents().includes(mention), SLOW, "the mention at bob");
    assert.deepEqual(bobStream.received.find((m) => m.content === mention)!.mentions, ["bob"]);
    const [stored] = (await bob.history(rooms[1]!, 0, 1)).messages;
    assert.deepEqual([stored!.content, stored!.mentions], [mention, ["bob"]]);

    // A reaction on gateway a reaches bob's stream on gateway b, and the store keeps it.
    await alice.react(rooms[1]!, stored!.seq, "🎉");
    await waitFor(
      () => bobStream.received.some((m) => m.reaction?.emoji === "🎉" && m.reaction.added),
      SLOW,
      "the reaction at bob",
    );
    const [reacted] = (await bob.history(rooms[1]!, 0, 1)).messages;
    assert.deepEqual(reacted!.reactions.map((r) => [r.emoji, r.users]), [["🎉", ["alice"]]]);

    // An edit and a deletion on gateway a reach bob's stream on gateway b, after the message.
    await alice.editMessage(rooms[1]!, stored!.seq, `${run} edited`);
    await alice.deleteMessage(rooms[1]!, stored!.seq);
    const changes = () =>
      bobStream.received.filter((m) => m.change?.seq === stored!.seq).map((m) =>
        m.change!.deleted ? "deleted" : m.change!.content
      );
    await waitFor(() => changes().length === 2, SLOW, "both changes at bob");
    assert.deepEqual(changes(), [`${run} edited`, "deleted"]);
    const [gone] = (await bob.history(rooms[1]!, 0, 1)).messages;
    assert.deepEqual([gone!.content, gone!.deleted], ["", true]);
  } finally {
    for (const u of users) u.close();
    await stopAll([a.service, b.service, p1, p2]);
  }
});

Deno.test("resume after a gateway is killed: the client gets exactly what it missed on another gateway", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const processor = deployment.processor();
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  const users: TestUser[] = [];
  try {
    await Promise.all([a.ready(), b.ready()]);
    const alice = await signIn(a.grpc, "alice");
    const bob = await signIn(b.grpc, "bob");
    const first = listen(a.grpc, alice, "alice");
    users.push(first);
    await waitFor(async () => (await bob.listOnline()).some((u) => u.id === "alice"), SLOW);
    await bob.send("", "before");
    await waitFor(() => first.contents().includes("before"), SLOW);
    const lastSeq = first.received.filter((m) => m.content).at(-1)!.seq;

    // Alice's connection goes with the gateway; the gateway gets no chance to say she left.
    await a.service.crash();
    for (const text of ["missed 1", "missed 2", "missed 3"]) await bob.send("", text);

    const again = newClient(b.grpc);
    again.token = alice.token;
    const second = listen(b.grpc, again, "alice", [{ room: "general", lastSeq }]);
    users.push(second);
    await waitFor(() => second.contents().length >= 3, SLOW, "the missed messages");
    await bob.send("", "live");
    await waitFor(() => second.contents().includes("live"), SLOW);
    assert.deepEqual(second.contents(), ["missed 1", "missed 2", "missed 3", "live"]);
    assert.deepEqual(second.received.filter((m) => m.content).map((m) => m.seq), [
      lastSeq + 1n,
      lastSeq + 2n,
      lastSeq + 3n,
      lastSeq + 4n,
    ]);
  } finally {
    for (const u of users) u.close();
    await stopAll([a.service, b.service, processor]);
  }
});

Deno.test("on Kafka: impersonation refused, membership enforced, rate limit applied; nothing refused is published", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const processor = deployment.processor();
  const gw = deployment.gateway("limits", { RATE_LIMIT_PER_SECOND: "1", RATE_LIMIT_BURST: "3" });
  try {
    await gw.ready();
    const owner = await signIn(gw.grpc, "owner");
    const mallory = await signIn(gw.grpc, "mallory");
    await owner.createRoom("private");

    await assert.rejects(
      mallory.send("owner", "I am owner"),
      refused(status.PERMISSION_DENIED, /signed in as mallory, cannot act as owner/),
    );
    await assert.rejects(
      mallory.send("", "let me in", { room: "private" }),
      refused(status.PERMISSION_DENIED, /mallory is not a member of room "private"/),
    );
    await assert.rejects(
      mallory.history("private"),
      refused(status.PERMISSION_DENIED, /not a member/),
    );
    const anonymous = newClient(gw.grpc);
    await assert.rejects(
      anonymous.send("owner", "hi"),
      refused(status.UNAUTHENTICATED, /sign in first/),
    );

    for (let i = 1; i <= 3; i++) await owner.send("", `ok ${i}`, { room: "private" });
    await assert.rejects(
      owner.send("", "too fast", { room: "private" }),
      refused(status.RESOURCE_EXHAUSTED, /rate limit/),
    );
    await waitFor(async () => (await owner.history("private")).messages.length === 3, SLOW);
    await new Promise((r) => setTimeout(r, 1500));
    const stored = (await owner.history("private")).messages.map((m) => m.content);
    assert.deepEqual(stored, ["ok 3", "ok 2", "ok 1"], "only accepted messages were stored");
    const general = (await owner.history("general")).messages;
    assert.ok(!general.some((m) => m.content === "I am owner" || m.content === "hi"));
  } finally {
    await stopAll([gw.service, processor]);
  }
});
