/**
 * Finding things on the real cluster, with two gateways and a processor as separate processes
 * (AUTH=on): a room's topic set on one gateway shows in the directory of the other, a user there
 * finds the room by a word of its topic and joins it from the list, and searches the history the
 * processor stored.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { newClient, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, stopAll } from "./processes.ts";

// Starts the cluster (unless KAFKA_BROKERS is set) before the tests; kafkaDeployment uses it.
await kafkaBrokers();

const PASSWORD = "a long password";
const SLOW = 60_000;

Deno.test("on Kafka: directory, topic and search across gateways", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const processor = deployment.processor();
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  try {
    await Promise.all([a.ready(), b.ready()]);
    const alice = newClient(a.grpc);
    await alice.signIn("alice", PASSWORD);
    const bob = newClient(b.grpc);
    await bob.signIn("bob", PASSWORD);
    // Unique: the cluster and the store's rooms are shared with other tests.
    const run = crypto.randomUUID().slice(0, 6);
    const room = `finance-${run}`;
    await alice.createRoom(room);
    await alice.setTopic(room, `Quarterly numbers ${run}`);

    const listed = await bob.listRooms(true, `numbers ${run}`);
    assert.deepEqual(
      listed.map((r) => [r.id, r.topic, r.memberCount]),
      [[room, `Quarterly numbers ${run}`, 1]],
      "found on b by a word of the topic set on a",
    );
    await bob.joinRoom(listed[0]!.id);
    await alice.send("", `the report ${run} is out`, { room });
    // Stored by the processor, then found from gateway b.
    // Searches are rate-limited (2 a second): ask at most that often.
    let found: string[] = [];
    await waitFor(
      async () => {
        found = (await bob.search(`report ${run}`)).map((m) => `${m.room}: ${m.content}`);
        if (found.length === 0) await sleep(600);
        return found.length > 0;
      },
      SLOW,
      "the message found",
    );
    assert.deepEqual(found, [`${room}: the report ${run} is out`]);
  } finally {
    await stopAll([a.service, b.service, processor]);
  }
});
