/**
 * Blocking on the real cluster, with two gateways and a processor as separate processes
 * (AUTH=on): ann blocks ben through gateway a, and her stream on gateway b, told over the
 * deliveries topic, skips his messages from then on; unblocking there brings them back.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { connectUser, newClient, refused, type TestUser, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, stopAll } from "./processes.ts";

// Starts the cluster (unless KAFKA_BROKERS is set) before the tests; kafkaDeployment uses it.
await kafkaBrokers();

const PASSWORD = "a long password";
const SLOW = 60_000;

Deno.test("on Kafka: a block made on one gateway hides the blocked user at the blocker's stream on the other", async () => {
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
    // Unique: the cluster is shared with other tests.
    const run = crypto.randomUUID().slice(0, 6);
    const [annName, benName, catName] = ["ann", "ben", "cat"].map((n) => `${n}-${run}`);
    const ann = await signIn(a.grpc, annName!);
    const annOnB = await signIn(b.grpc, annName!);
    const ben = await signIn(a.grpc, benName!);
    const cat = await signIn(a.grpc, catName!);
    const room = `block-${run}`;
    await ann.createRoom(room);
    await ben.joinRoom(room);
    await cat.joinRoom(room);
    const stream = connectUser(b.grpc, annName!, { client: annOnB, presenceEvents: true });
    users.push(stream);
    await waitFor(async () => (await ben.listOnline()).some((u) => u.id === annName), SLOW);

    await ann.block(benName!);
    await ben.send("", "hidden", { room });
    await cat.send("", "shown", { room });
    await waitFor(() => stream.contents().includes("shown"), SLOW, "cat's message on b");
    assert.deepEqual(stream.contents(), ["shown"]);
    await assert.rejects(
      ben.openDirect(annName!),
      refused(status.PERMISSION_DENIED, /left the direct conversation/),
    );

    await ann.block(benName!, false);
    await ben.send("", "back", { room });
    await waitFor(() => stream.contents().includes("back"), SLOW, "ben's message on b again");
    assert.deepEqual(stream.contents(), ["shown", "back"]);
  } finally {
    for (const u of users) u.close();
    await stopAll([a.service, b.service, processor]);
  }
});
