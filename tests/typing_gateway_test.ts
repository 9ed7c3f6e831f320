/**
 * "alice is typing…" through real gateways on the memory bus, as users would see it: alice types
 * on one gateway, bob (a member, on another) sees it and sees it end; carol (not a member), dave
 * (a classic stream without events) and alice's own streams see nothing; nothing is stored.
 */

import assert from "node:assert/strict";
import type { Message } from "../protocol/gen/chat_pb.ts";
import type { ChatClient } from "../client/chat_client.ts";
import { PASSWORD } from "./attack_support.ts";
import {
  connectUser,
  newClient,
  startSystem,
  type System,
  type TestUser,
  waitFor,
} from "./helpers.ts";

const ROOM = "book-club";

/** The typing events a stream received, as `user room typing`. */
function typings(user: TestUser): string[] {
  return user.received.filter((m) => m.typing).map((m: Message) =>
    `${m.typing!.user?.id} ${m.typing!.room} ${m.typing!.typing}`
  );
}

async function signedIn(system: System, name: string, gateway: number): Promise<ChatClient> {
  const client = newClient(system.address(gateway));
  await client.signIn(name, PASSWORD);
  return client;
}

async function withRoom(
  run: (
    s: {
      system: System;
      alice: ChatClient;
      aliceStream: TestUser;
      bob: TestUser;
      carol: TestUser;
      dave: TestUser;
    },
  ) => Promise<void>,
): Promise<void> {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  try {
    const alice = await signedIn(system, "alice", 0);
    await alice.createRoom(ROOM);
    const bobClient = await signedIn(system, "bob", 1);
    await bobClient.joinRoom(ROOM);
    const daveClient = await signedIn(system, "dave", 1);
    await daveClient.joinRoom(ROOM);
    const carolClient = await signedIn(system, "carol", 1);
    const aliceStream = connectUser(system.address(0), "alice", {
      client: alice,
      presenceEvents: true,
    });
    const bob = connectUser(system.address(1), "bob", { client: bobClient, presenceEvents: true });
    const carol = connectUser(system.address(1), "carol", {
      client: carolClient,
      presenceEvents: true,
    });
    const dave = connectUser(system.address(1), "dave", { client: daveClient });
    await waitFor(
      () => system.gateways[0]!.hub.size === 1 && system.gateways[1]!.hub.size === 3,
      5000,
      "every stream open",
    );
    await run({ system, alice, aliceStream, bob, carol, dave });
  } finally {
    await system.stop();
  }
}

Deno.test("a member on another gateway sees alice typing and stop; a non-member, a classic stream and alice herself see nothing", async () => {
  await withRoom(async ({ system, alice, aliceStream, bob, carol, dave }) => {
    await alice.setTyping(ROOM, true);
    await waitFor(() => typings(bob).length === 1, 5000, "bob to see alice typing");
    const [event] = bob.received.filter((m) => m.typing);
    assert.equal(event!.content, "", "an event, not a message");
    assert.equal(event!.typing!.user?.displayName, "alice");
    assert.equal(event!.typing!.expiresInMs, 6000, "bob's client drops it by itself after 6 s");
    await alice.setTyping(ROOM.toUpperCase(), false);
    await waitFor(() => typings(bob).length === 2, 5000, "bob to see alice stop");
    assert.deepEqual(typings(bob), [`alice ${ROOM} true`, `alice ${ROOM} false`]);

    // A message after it: everybody's streams have had whatever typing came before.
    await alice.send("alice", "done", { room: ROOM });
    await waitFor(() => bob.contents().includes("done") && dave.contents().includes("done"));
    await waitFor(() => aliceStream.contents().includes("done"));
    assert.deepEqual(typings(carol), []);
    assert.deepEqual(typings(dave), []);
    assert.equal(dave.received.some((m) => m.typing || m.content === ""), false);
    assert.deepEqual(typings(aliceStream), []);
    const history = await alice.history(ROOM);
    assert.deepEqual(history.messages.map((m) => m.content), ["done"], "nothing of it stored");
    assert.equal(history.messages.some((m) => m.typing), false);
    assert.equal(await system.store.lastSeq(ROOM), 1);
  });
});

Deno.test("a flood of SetTyping reaches bob once; past the call limit it is refused", async () => {
  await withRoom(async ({ alice, bob }) => {
    const answers = await Promise.allSettled(
      Array.from({ length: 50 }, () => alice.setTyping(ROOM, true)),
    );
    const refused = answers.filter((a) => a.status === "rejected");
    assert.ok(refused.length >= 30, `${refused.length} of 50 refused`);
    for (const r of refused) {
      assert.match(
        String((r as PromiseRejectedResult).reason?.details),
        /^Cannot set typing: the limit is 5 calls per second \(10 at once\); retry in \d+\.\d s$/,
      );
    }
    await waitFor(() => typings(bob).length === 1, 5000, "bob to see alice typing");
    // A sign that everything before it was delivered: a message, after the flood.
    await alice.send("alice", "after the flood", { room: ROOM });
    await waitFor(() => bob.contents().includes("after the flood"), 5000, "the message");
    assert.deepEqual(typings(bob), [`alice ${ROOM} true`], "coalesced into one event");
  });
});

Deno.test("alice's last stream closing ends her typing for bob", async () => {
  await withRoom(async ({ system, alice, aliceStream, bob }) => {
    await alice.setTyping(ROOM, true);
    await waitFor(() => typings(bob).length === 1, 5000, "bob to see alice typing");
    aliceStream.close();
    await waitFor(() => system.gateways[0]!.hub.size === 0, 5000, "alice's stream to close");
    await waitFor(() => typings(bob).length === 2, 5000, "bob to see alice stop");
    assert.deepEqual(typings(bob), [`alice ${ROOM} true`, `alice ${ROOM} false`]);
  });
});

Deno.test("when the bus cannot take typing, the typer's own gateway still shows it", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  try {
    const alice = await signedIn(system, "alice", 0);
    const bobClient = await signedIn(system, "bob", 0);
    const bob = connectUser(system.address(), "bob", { client: bobClient, presenceEvents: true });
    await waitFor(() => system.gateways[0]!.hub.size === 1, 5000, "bob's stream");
    const deliver = system.bus.deliver.bind(system.bus);
    system.bus.deliver = (delivery) =>
      delivery.type === "typing" ? Promise.reject(new Error("Kafka is away")) : deliver(delivery);
    await alice.setTyping("", true);
    await waitFor(() => typings(bob).length === 1, 5000, "bob to see alice typing");
    assert.deepEqual(typings(bob), ["alice general true"]);
  } finally {
    await system.stop();
  }
});
