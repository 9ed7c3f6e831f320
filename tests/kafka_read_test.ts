/**
 * Reading state on the real cluster, with two gateways and a processor as separate processes
 * (AUTH=on): a user reads on one gateway, the same user's stream on the other gateway gets the
 * read event over the deliveries topic, and a fresh listing there shows nothing unread; the
 * sender, on the other gateway, asks who saw the message.
 */

import assert from "node:assert/strict";
import { connectUser, newClient, type TestUser, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, stopAll } from "./processes.ts";

// Starts the cluster (unless KAFKA_BROKERS is set) before the tests; kafkaDeployment uses it.
await kafkaBrokers();

const PASSWORD = "a long password";
const SLOW = 60_000;

Deno.test("on Kafka: a read on one gateway reaches the reader's stream on the other, the count, and seen by", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const processor = deployment.processor();
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  const users: TestUser[] = [];
  try {
    await Promise.all([a.ready(), b.ready()]);
    const signIn = async (address: string, name: string) => {
      const client = newClient(address);
      await client.signIn(name, PASSWORD);
      return client;
    };
    const alice = await signIn(a.grpc, "alice");
    const aliceOnB = await signIn(b.grpc, "alice");
    const bob = await signIn(b.grpc, "bob");
    // Unique: the cluster is shared with other tests.
    const room = `read-${crypto.randomUUID().slice(0, 6)}`;
    await alice.createRoom(room);
    await bob.joinRoom(room);
    const elsewhere = connectUser(b.grpc, "alice", { client: aliceOnB, presenceEvents: true });
    users.push(elsewhere);
    await waitFor(async () => (await bob.listOnline()).some((u) => u.id === "alice"), SLOW);
    for (const text of ["one", "two", "three"]) await bob.send("", text, { room });
    await waitFor(() => elsewhere.contents().length === 3, SLOW, "three messages");
    // Positions in the room's partition, which other rooms share: the third message's own.
    const last = elsewhere.received.filter((m) => m.content === "three")[0]!.seq;
    const listed = async () => (await aliceOnB.listRooms()).find((r) => r.id === room)!;
    assert.deepEqual([(await listed()).unread, (await listed()).readSeq], [3, 0n]);

    await alice.markRead(room, Number(last));
    await waitFor(() => elsewhere.received.some((m) => m.read), SLOW, "the read event on b");
    const read = elsewhere.received.find((m) => m.read)!.read!;
    assert.deepEqual([read.room, read.user?.id, read.seq], [room, "alice", last]);
    assert.deepEqual([(await listed()).unread, (await listed()).readSeq], [0, last]);
    // The processor stored what gateway a marked; bob, on b, asks who saw his last message.
    const seen = await bob.seenBy(room, Number(last));
    assert.deepEqual([seen.users, seen.count], [["alice"], 1]);
  } finally {
    for (const u of users) u.close();
    await stopAll([a.service, b.service, processor]);
  }
});
