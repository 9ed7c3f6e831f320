/**
 * Moderation on the real three-broker cluster, with two gateway processes and a processor
 * (AUTH=on): a mute stored through one gateway is enforced by the other, a removal stops the
 * removed member's stream on the other gateway at once, and the events cross gateways through
 * `chat-deliveries` and stay in history.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import type { ChatClient } from "../client/chat_client.ts";
import { connectUser, newClient, refused, type TestUser, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, stopAll } from "./processes.ts";

await kafkaBrokers();

const PASSWORD = "a long password";
const SLOW = 60_000;

async function signIn(address: string, name: string): Promise<ChatClient> {
  const client = newClient(address);
  await client.signIn(name, PASSWORD);
  return client;
}

Deno.test("on Kafka: a mute and a removal through one gateway hold on the other, and their events cross", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const processor = deployment.processor();
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  const users: TestUser[] = [];
  try {
    await Promise.all([a.ready(), b.ready()]);
    const ann = await signIn(a.grpc, "ann");
    const ben = await signIn(b.grpc, "ben");
    const cat = await signIn(b.grpc, "cat");
    // A name of its own: the cluster and the store are shared with other runs.
    const room = `mod-${crypto.randomUUID().slice(0, 6)}`;
    await ann.createRoom(room);
    await ben.joinRoom(room);
    await cat.joinRoom(room);
    const annStream = connectUser(a.grpc, "ann", { client: ann, presenceEvents: true });
    const benStream = connectUser(b.grpc, "ben", { client: ben, presenceEvents: true });
    const catStream = connectUser(b.grpc, "cat", { client: cat, presenceEvents: true });
    users.push(annStream, benStream, catStream);
    await waitFor(async () => (await ann.listOnline(room)).length === 3, SLOW, "all online");
    const actions = (u: TestUser) =>
      u.received.filter((m) => m.roomEvent?.room === room && m.roomEvent.action).map((m) =>
        `${m.roomEvent!.action} ${m.roomEvent!.user?.id}`
      );

    await ann.muteMember(room, "ben", 600);
    await assert.rejects(
      ben.send("", "on gateway b", { room }),
      refused(status.PERMISSION_DENIED, new RegExp(`ben is muted in room "${room}" until `)),
    );
    await waitFor(() => actions(benStream).includes("muted ben"), SLOW, "ben hears on b");

    await ann.removeMember(room, "cat");
    await waitFor(() => actions(catStream).includes("removed cat"), SLOW, "cat hears on b");
    await ann.send("", "after cat", { room });
    await waitFor(() => benStream.contents().includes("after cat"), SLOW, "ben reads on");
    assert.ok(!catStream.contents().includes("after cat"), "cat's stream no longer gets the room");
    assert.deepEqual(actions(annStream), ["muted ben", "removed cat"]);

    const page = await ben.history(room);
    assert.deepEqual(
      page.events.map((m) => m.roomEvent!.action || (m.roomEvent!.joined ? "joined" : "left")),
      ["joined", "joined", "joined", "muted", "removed"],
    );
  } finally {
    for (const u of users) u.close();
    await stopAll([a.service, b.service, processor]);
  }
});
