/** The gateway end to end over native gRPC, on the memory bus with an in-process processor. */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { UserSchema } from "../protocol/gen/chat_pb.ts";
import { status } from "@grpc/grpc-js";
import type { ChatMessage } from "../core/types.ts";
import { connectUser, startSystem, waitFor } from "./helpers.ts";

Deno.test("a message sent on one gateway reaches every stream on every gateway, in order", async () => {
  const system = await startSystem({ gateways: 2 });
  const alice = connectUser(system.address(0), "alice");
  const bob = connectUser(system.address(1), "bob");
  try {
    await waitFor(() => system.processor.registry.online().length === 2, 5000, "two users online");
    for (let i = 1; i <= 5; i++) await alice.client.send("alice", `hello ${i}`);
    await bob.client.send("bob", "hi alice");
    const expected = ["hello 1", "hello 2", "hello 3", "hello 4", "hello 5", "hi alice"];
    await waitFor(() => bob.contents().length >= 6 && alice.contents().length >= 6);
    assert.deepEqual(bob.contents(), expected);
    assert.deepEqual(alice.contents(), expected);
    const first = bob.received[0]!;
    assert.equal(first.id, "alice", "classic contract: Message.id is the sender");
    assert.equal(first.room, "general");
    assert.equal(first.seq, 1n);
    assert.ok(first.timestamp && first.timestamp.seconds > 0);
    assert.deepEqual(bob.received.map((m) => m.seq), [1n, 2n, 3n, 4n, 5n, 6n]);
  } finally {
    alice.close();
    bob.close();
    await system.stop();
  }
});

Deno.test("the same user on two streams (two devices) gets every message on both", async () => {
  const system = await startSystem({ gateways: 2 });
  const phone = connectUser(system.address(0), "carol");
  const laptop = connectUser(system.address(1), "carol");
  try {
    await waitFor(() => system.processor.registry.presenceOf("carol", "").servers.length === 2);
    await phone.client.send("carol", "from my phone");
    await waitFor(() => laptop.contents().length === 1 && phone.contents().length === 1);
    assert.deepEqual(laptop.contents(), ["from my phone"]);
    phone.close();
    await waitFor(() => system.processor.registry.presenceOf("carol", "").servers.length === 1);
    assert.equal(system.processor.registry.presenceOf("carol", "").online, true);
  } finally {
    phone.close();
    laptop.close();
    await system.stop();
  }
});

Deno.test("bad input gets INVALID_ARGUMENT with a message and publishes nothing", async () => {
  const system = await startSystem();
  const published: ChatMessage[] = [];
  const original = system.bus.append.bind(system.bus);
  system.bus.append = (message) => {
    published.push(message);
    return original(message);
  };
  const { client } = connectUser(system.address(), "dave");
  try {
    await assert.rejects(client.send("", "hi"), (err: { code: number; details: string }) => {
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.match(err.details, /user id is empty/);
      return true;
    });
    await assert.rejects(
      client.send("dave", "x".repeat(64 * 1024 + 1)),
      (err: { code: number; details: string }) => {
        assert.equal(err.code, status.INVALID_ARGUMENT);
        assert.equal(
          err.details,
          "Cannot send message: content is 65537 bytes, the limit is 65536",
        );
        return true;
      },
    );
    await assert.rejects(client.send("dave", "   "), (err: { code: number; details: string }) => {
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.match(err.details, /content is empty/);
      return true;
    });
    assert.deepEqual(published, []);
    // Exactly at the limit is fine.
    await client.send("dave", "y".repeat(64 * 1024));
    assert.equal(published.length, 1);
  } finally {
    client.close();
    await system.stop();
  }
});

Deno.test("a stream opened without a user, or with an empty id, ends with INVALID_ARGUMENT", async () => {
  const system = await startSystem();
  const empty = connectUser(system.address(), "");
  try {
    await waitFor(() => empty.ended !== undefined);
    const err = empty.ended!.error!;
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /Cannot open stream: the user id is empty/);
    assert.equal(system.gateways[0]!.hub.size, 0);
  } finally {
    empty.close();
    await system.stop();
  }
});

Deno.test("BroadcastMessage answers UNAVAILABLE when the bus cannot store the message", async () => {
  const system = await startSystem();
  const { client } = connectUser(system.address(), "erin");
  try {
    await system.bus.close();
    await assert.rejects(client.send("erin", "lost?"), (err: { code: number; details: string }) => {
      assert.equal(err.code, status.UNAVAILABLE);
      assert.match(err.details, /Cannot send message: Kafka is unavailable/);
      return true;
    });
  } finally {
    client.close();
    await system.stop();
  }
});

Deno.test("/healthz and /readyz answer on the HTTP port", async () => {
  const system = await startSystem();
  try {
    const port = system.gateways[0]!.httpPort;
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    await system.bus.close();
    const notReady = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(notReady.status, 503);
    assert.deepEqual(await notReady.json(), {
      status: "not ready",
      reason: "Kafka is unavailable",
    });
  } finally {
    await system.stop();
  }
});

Deno.test("ListOnline and presence events follow users coming and going", async () => {
  const system = await startSystem({ gateways: 2 });
  const watcher = connectUser(system.address(0), "watcher", { presenceEvents: true });
  try {
    await waitFor(
      async () => (await watcher.client.listOnline()).length === 1,
      5000,
      "watcher online",
    );
    const frank = connectUser(system.address(1), "frank", { displayName: "Frank" });
    await waitFor(
      async () => (await watcher.client.listOnline()).length === 2,
      5000,
      "frank online",
    );
    assert.deepEqual(await watcher.client.listOnline(), [
      create(UserSchema, { id: "frank", displayName: "Frank" }),
      create(UserSchema, { id: "watcher", displayName: "watcher" }),
    ]);
    frank.close();
    await waitFor(
      async () => (await watcher.client.listOnline()).length === 1,
      5000,
      "frank offline",
    );
    const events = watcher.received.filter((m) => m.presence).map((m) =>
      `${m.presence!.user!.id}:${m.presence!.online}`
    );
    assert.deepEqual(events.filter((e) => e.startsWith("frank")), ["frank:true", "frank:false"]);
    assert.deepEqual(watcher.contents(), [], "presence events carry no content");
  } finally {
    watcher.close();
    await system.stop();
  }
});
