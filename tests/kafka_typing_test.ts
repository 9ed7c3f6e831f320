/**
 * "alice is typing…" on the real three-broker cluster, with two gateways and a processor as
 * separate processes (AUTH=on): alice types on gateway a, bob (a member) sees it on gateway b,
 * carol (not a member) and dave (a stream without events, as classic clients open) see nothing,
 * and nothing of it is stored.
 */

import type { ChatClient } from "../client/chat_client.ts";
import assert from "node:assert/strict";
import { connectUser, newClient, type TestUser, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, stopAll } from "./processes.ts";

// Starts the cluster (unless KAFKA_BROKERS is set) before the tests; kafkaDeployment uses it.
await kafkaBrokers();

const PASSWORD = "a long password";
const SLOW = 60_000;

async function signIn(address: string, name: string): Promise<ChatClient> {
  const client = newClient(address);
  await client.signIn(name, PASSWORD);
  return client;
}

const typings = (u: TestUser) =>
  u.received.filter((m) => m.typing).map((m) =>
    `${m.typing!.user?.id} ${m.typing!.room} ${m.typing!.typing}`
  );

Deno.test("alice typing on one gateway is seen by a member on the other; a non-member and a classic stream see nothing", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const processor = deployment.processor("processor-1", { KAFKA_CLIENT_ID: "processor-1" });
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  const users: TestUser[] = [];
  try {
    await Promise.all([a.ready(), b.ready()]);
    // Unique names: the cluster is shared with other tests.
    const run = crypto.randomUUID().slice(0, 6);
    const room = `typing-${run}`;
    const [alice, bob, carol, dave] = await Promise.all([
      signIn(a.grpc, `alice-${run}`),
      signIn(b.grpc, `bob-${run}`),
      signIn(b.grpc, `carol-${run}`),
      signIn(b.grpc, `dave-${run}`),
    ]);
    await alice!.createRoom(room);
    await bob!.joinRoom(room);
    await dave!.joinRoom(room);
    const aliceStream = connectUser(a.grpc, `alice-${run}`, {
      client: alice,
      presenceEvents: true,
    });
    const bobStream = connectUser(b.grpc, `bob-${run}`, { client: bob, presenceEvents: true });
    const carolStream = connectUser(b.grpc, `carol-${run}`, {
      client: carol,
      presenceEvents: true,
    });
    const daveStream = connectUser(b.grpc, `dave-${run}`, { client: dave });
    users.push(aliceStream, bobStream, carolStream, daveStream);
    await waitFor(
      async () => (await bob!.listOnline(room)).length === 3,
      SLOW,
      "alice, bob and dave online in the room",
    );

    await alice!.setTyping(room, true);
    await waitFor(() => typings(bobStream).length === 1, SLOW, "bob to see alice typing");
    await alice!.setTyping(room, false);
    await waitFor(() => typings(bobStream).length === 2, SLOW, "bob to see alice stop");
    assert.deepEqual(typings(bobStream), [
      `alice-${run} ${room} true`,
      `alice-${run} ${room} false`,
    ]);
    assert.equal(bobStream.received.find((m) => m.typing)!.typing!.expiresInMs, 6000);

    // Deliveries of one room keep their order: once the message is there, so is any typing.
    await alice!.send("", `${run} sent`, { room });
    await waitFor(
      () => [aliceStream, bobStream, daveStream].every((u) => u.contents().includes(`${run} sent`)),
      SLOW,
      "the message at alice, bob and dave",
    );
    assert.deepEqual(typings(carolStream), [], "carol is not in the room");
    assert.deepEqual(typings(daveStream), [], "dave asked for no events");
    assert.deepEqual(typings(aliceStream), [], "alice is not told of herself");
    const history = await bob!.history(room);
    assert.deepEqual(history.messages.map((m) => m.content), [`${run} sent`], "nothing stored");
  } finally {
    for (const u of users) u.close();
    await stopAll([a.service, b.service, processor]);
  }
});
