/** Resume: a reconnecting client gets exactly what it missed, then live messages, on any gateway. */

import assert from "node:assert/strict";
import { MemoryBus } from "../bus/memory_bus.ts";
import { silentLogger } from "../core/logger.ts";
import type { ChatClient } from "../client/chat_client.ts";
import {
  connectUser,
  newClient,
  startSystem,
  type System,
  TEST_PASSWORD,
  waitFor,
} from "./helpers.ts";

Deno.test("a client that reconnects to another gateway gets what it missed: no gap, no duplicate", async () => {
  const system = await startSystem({
    gateways: 2,
    config: { rateLimitBurst: 1000, rateLimitPerSecond: 1000 },
  });
  const sender = newClient(system.address(0));
  const reader = connectUser(system.address(0), "reader");
  try {
    await waitFor(() => system.processor.registry.presenceOf("reader", "").online);
    for (let i = 1; i <= 5; i++) await sender.send("sender", `before ${i}`);
    await waitFor(() => reader.contents().length === 5);
    const lastSeen = reader.received.at(-1)!.seq;
    reader.close();

    // Missed while away.
    for (let i = 1; i <= 5; i++) await sender.send("sender", `away ${i}`);
    await waitFor(async () => (await system.store.lastSeq("general")) === 10);

    // Back, on the other gateway, while more messages keep coming.
    const back = connectUser(system.address(1), "reader", {
      resume: [{ room: "general", lastSeq: lastSeen }],
    });
    const live = (async () => {
      for (let i = 1; i <= 20; i++) await sender.send("sender", `live ${i}`);
    })();
    try {
      await live;
      await waitFor(() => back.contents().length === 25, 10_000, "25 messages after resume");
      const expected = [
        ...Array.from({ length: 5 }, (_, i) => `away ${i + 1}`),
        ...Array.from({ length: 20 }, (_, i) => `live ${i + 1}`),
      ];
      assert.deepEqual(back.contents(), expected);
      assert.deepEqual(
        back.received.map((m) => m.seq),
        Array.from({ length: 25 }, (_, i) => lastSeen + 1n + BigInt(i)),
      );
    } finally {
      back.close();
    }
  } finally {
    reader.close();
    sender.close();
    await system.stop();
  }
});

Deno.test("resume with nothing missed goes straight to live; a room the user is not in is ignored", async () => {
  const system = await startSystem();
  const sender = newClient(system.address());
  try {
    await sender.send("sender", "one");
    await waitFor(async () => (await system.store.lastSeq("general")) === 1);
    const user = connectUser(system.address(), "x", {
      resume: [{ room: "general", lastSeq: 1 }, { room: "not-mine", lastSeq: 0 }],
    });
    try {
      await waitFor(() => system.processor.registry.presenceOf("x", "").online);
      await sender.send("sender", "two");
      await waitFor(() => user.contents().length === 1);
      assert.deepEqual(user.contents(), ["two"]);
    } finally {
      user.close();
    }
  } finally {
    sender.close();
    await system.stop();
  }
});

Deno.test("a send retried with the same message id is shown once", async () => {
  const system = await startSystem();
  const user = connectUser(system.address(), "ann");
  try {
    await waitFor(() => system.processor.registry.presenceOf("ann", "").online);
    await user.client.send("ann", "only once", { messageId: "retry-1" });
    await user.client.send("ann", "only once", { messageId: "retry-1" });
    await user.client.send("ann", "next");
    await waitFor(() => user.contents().includes("next"));
    assert.deepEqual(user.contents(), ["only once", "next"]);
    assert.equal((await system.store.history({ room: "general", limit: 10 })).length, 2);
  } finally {
    user.close();
    await system.stop();
  }
});

/** A bus whose processors lag: what its follower showed is not stored until `gate` settles. */
class LaggingBus extends MemoryBus {
  gate = Promise.withResolvers<void>();
  asked: string[] = [];
  override stored(room = ""): Promise<void> {
    this.asked.push(room);
    return this.gate.promise;
  }
}

/**
 * Runs `body` on a system over a `LaggingBus`, with a signed-in client that sent "one" to the
 * default room; stops both afterwards.
 */
async function withLaggingStore(
  body: (bus: LaggingBus, system: System, client: ChatClient) => Promise<void>,
): Promise<void> {
  const bus = new LaggingBus({ logger: silentLogger, retryDelayMs: 20 });
  const system = await startSystem({ bus });
  const client = newClient(system.address());
  try {
    await client.signIn("sender", TEST_PASSWORD);
    await client.send("sender", "one");
    await body(bus, system, client);
  } finally {
    client.close();
    await system.stop();
  }
}

Deno.test("the newest history page waits until the store holds what the gateway showed; older pages do not", () =>
  withLaggingStore(async (bus, system, client) => {
    await waitFor(async () => (await system.store.lastSeq("general")) === 1);
    assert.equal((await client.history("general", 2)).messages.length, 1, "an older page at once");
    assert.deepEqual(bus.asked, []);
    let answered = false;
    const newest = client.history("general").then((page) => (answered = true, page));
    await waitFor(() => bus.asked.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(answered, false, "the newest page waits for the store");
    bus.gate.resolve();
    assert.deepEqual((await newest).messages.map((m) => m.content), ["one"]);
  }));

Deno.test("a room listing counts what the gateway showed: it waits for the store, and answers when the wait fails", () =>
  withLaggingStore(async (bus, _system, client) => {
    let answered = false;
    const listing = client.listRooms().then((rooms) => (answered = true, rooms));
    await waitFor(() => bus.asked.includes("general"));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(answered, false, "the listing waits for the store");
    bus.gate.reject(new Error("the processors are away"));
    const general = (await listing).find((r) => r.id === "general")!;
    assert.equal(general.lastSeq, 1n, "then answers from the store");
  }));
