/**
 * Invite-only rooms on the real three-broker cluster, with a processor and two gateways as
 * separate processes (AUTH=on): the owner on one gateway closes a room and invites; the invitee on
 * the other hears of it live (the room event crosses gateways on `chat-deliveries`), is refused
 * without the invitation and let in with it.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { connectUser, newClient, refused, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, stopAll } from "./processes.ts";

// Starts the cluster (unless KAFKA_BROKERS is set) before the test; kafkaDeployment uses it.
await kafkaBrokers();

const PASSWORD = "a long password";
const SLOW = 30_000;

Deno.test("on Kafka: an invitation reaches the invitee on another gateway, who joins with it", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const processor = deployment.processor();
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  try {
    await Promise.all([a.ready(), b.ready()]);
    const ann = newClient(a.grpc);
    await ann.signIn("ann", PASSWORD);
    const ben = newClient(b.grpc);
    await ben.signIn("ben", PASSWORD);
    // Unique names: the cluster is shared with other tests.
    const room = `plans-${crypto.randomUUID().slice(0, 6)}`;
    await ann.createRoom(room);
    const bens = connectUser(b.grpc, "ben", { client: ben, presenceEvents: true });
    await waitFor(async () => (await ann.listOnline()).some((u) => u.id === "ben"), SLOW);

    await ann.setRoomAccess(room, true);
    await assert.rejects(ben.joinRoom(room), refused(status.PERMISSION_DENIED, /invite-only/));
    assert.deepEqual((await ben.listRooms(true, room)).map((r) => r.id), []);

    await ann.invite(room, "ben");
    await waitFor(
      () =>
        bens.received.some((m) =>
          m.roomEvent?.action === "invited" && m.roomEvent.room === room &&
          m.roomEvent.actor?.id === "ann"
        ),
      SLOW,
      "ben told of the invitation on gateway b",
    );
    assert.deepEqual((await ben.listInvitations()).map((r) => [r.id, r.invited]), [[room, true]]);
    await ben.joinRoom(room);
    await ann.send("", "welcome", { room });
    await waitFor(() => bens.contents().includes("welcome"), SLOW, "ben receives the room");
    assert.deepEqual(await ben.listInvitations(), []);
    bens.close();
  } finally {
    await stopAll([a.service, b.service, processor]);
  }
});
