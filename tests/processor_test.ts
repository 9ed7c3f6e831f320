/** The processor over the memory bus, driven record by record, with a fake clock. */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ChatError } from "../core/errors.ts";
import { silentLogger } from "../core/logger.ts";
import type { ChatMessage, Delivery } from "../core/types.ts";
import { MemoryBus } from "../bus/memory_bus.ts";
import { createProcessor } from "../processor/processor.ts";
import { MemoryStore } from "../store/memory_store.ts";
import { waitFor } from "./helpers.ts";

/** A store that refuses a message whose content is "poison", as PostgreSQL refuses a NUL. */
class PickyStore extends MemoryStore {
  override appendAll(messages: readonly ChatMessage[]) {
    if (messages.some((m) => m.content === "poison")) {
      return Promise.reject(new ChatError("invalid_argument", "Cannot store message: poison"));
    }
    return super.appendAll(messages);
  }
}

async function setup() {
  let clock = 1_000_000;
  const bus = new MemoryBus({ logger: silentLogger, retryDelayMs: 10 });
  const store = new PickyStore();
  const processor = createProcessor({
    bus,
    store,
    logger: silentLogger,
    config: { heartbeatTimeoutMs: 10_000, heartbeatIntervalMs: 60_000 },
    now: () => clock,
  });
  const deliveries: Delivery[] = [];
  /** What followers of the room logs were handed: the stored messages. */
  const followed: ChatMessage[] = [];
  const connections: string[] = [];
  const presence: string[] = [];
  await bus.start();
  const announce = bus.announce.bind(bus);
  bus.announce = (e) => {
    connections.push(`${e.userId}@${e.serverId}:${e.connected}`);
    return announce(e);
  };
  await bus.onDelivery((d) => (deliveries.push(d), Promise.resolve()));
  await bus.follow((m) => (followed.push(m), Promise.resolve()));
  await bus.observePresence((p) => presence.push(`${p.userId}:${p.online}`));
  await processor.start();
  const connect = (userId: string, serverId: string, connected = true) =>
    bus.announce({
      userId,
      serverId,
      connected,
      timestamp: new Date(clock).toISOString(),
      displayName: userId,
      streamId: `${serverId}/${userId}`,
    });
  const chat = (id: string, userId: string, content: string, room = "general") =>
    bus.append({
      id,
      userId,
      content,
      room,
      displayName: userId,
      timestamp: "2026-01-01T00:00:00Z",
      seq: 0,
    });
  return {
    bus,
    store,
    processor,
    deliveries,
    followed,
    connections,
    presence,
    connect,
    chat,
    advance: (ms: number) => clock += ms,
    heartbeat: (serverId: string) =>
      bus.beat({ serverId, timestamp: new Date(clock).toISOString(), streams: 1 }),
    stop: async () => {
      await processor.stop();
      await bus.close();
    },
  };
}

Deno.test("every chat message is stored once and handed to followers, with per-room sequence numbers", async () => {
  const t = await setup();
  try {
    await t.chat("m1", "alice", "one");
    await t.chat("m2", "bob", "two");
    await t.chat("m3", "alice", "elsewhere", "random");
    await waitFor(() => t.followed.length === 3);
    const inRoom = (room: string) =>
      t.followed.filter((m) => m.room === room).map((m) => [m.id, m.seq]);
    assert.deepEqual(inRoom("general"), [["m1", 1], ["m2", 2]]);
    assert.deepEqual(inRoom("random"), [["m3", 1]]);
    assert.equal((await t.store.history({ room: "general", limit: 10 })).length, 2);
  } finally {
    await t.stop();
  }
});

Deno.test("a message handled twice (producer retry, processor restart) keeps its first sequence number", async () => {
  const t = await setup();
  try {
    await t.chat("m1", "alice", "one");
    await t.chat("m1", "alice", "one");
    await t.chat("m2", "alice", "two");
    await waitFor(() => t.followed.length === 2);
    await sleep(50);
    assert.deepEqual(t.followed.map((m) => [m.id, m.seq]), [["m1", 1], ["m2", 2]], "once each");
    assert.equal((await t.store.history({ room: "general", limit: 10 })).length, 2);
  } finally {
    await t.stop();
  }
});

Deno.test("the same message id from two senders is two messages: de-duplication is per (sender, id)", async () => {
  const t = await setup();
  try {
    await t.chat("shared", "alice", "alice's");
    await t.chat("shared", "mallory", "mallory's");
    await t.chat("shared", "alice", "alice's"); // alice's retry
    await waitFor(() => t.followed.length === 2);
    await sleep(50);
    assert.deepEqual(
      t.followed.map((m) => [m.userId, m.content, m.seq]),
      [["alice", "alice's", 1], ["mallory", "mallory's", 2]],
      "both stored and handed on; alice's retry is neither",
    );
    assert.equal((await t.store.history({ room: "general", limit: 10 })).length, 2);
  } finally {
    await t.stop();
  }
});

Deno.test("a message the store refuses for its content is set aside without blocking its room", async () => {
  const t = await setup();
  try {
    await t.chat("m0", "alice", "poison");
    await t.chat("m1", "alice", "after the bad one");
    await waitFor(() => t.followed.length === 1);
    assert.equal(t.followed[0]!.id, "m1");
    assert.deepEqual(t.bus.setAside.map((s) => s.reason), ["Cannot store message: poison"]);
  } finally {
    await t.stop();
  }
});

Deno.test("connection events build the registry and publish presence", async () => {
  const t = await setup();
  try {
    await t.connect("alice", "gw1");
    await t.connect("bob", "gw2");
    await waitFor(() => t.processor.registry.online().length === 2);
    await t.connect("alice", "gw1", false);
    await waitFor(() => t.presence.length === 3);
    assert.deepEqual(t.presence, ["alice:true", "bob:true", "alice:false"]);
  } finally {
    await t.stop();
  }
});

Deno.test("a gateway that stops sending heartbeats is declared dead within the timeout", async () => {
  const t = await setup();
  try {
    await t.connect("alice", "gw1");
    await t.connect("bob", "gw2");
    await t.heartbeat("gw1");
    await t.heartbeat("gw2");
    await waitFor(() => t.processor.registry.online().length === 2);
    t.advance(6000);
    await t.heartbeat("gw2");
    await t.processor.heartbeat();
    await new Promise((r) => setTimeout(r, 20));
    await t.processor.sweep();
    assert.equal(t.processor.registry.online().length, 2, "6 s of silence is within the timeout");
    t.advance(5000);
    await t.heartbeat("gw2");
    await t.processor.heartbeat();
    await new Promise((r) => setTimeout(r, 20));
    await t.processor.sweep();
    assert.deepEqual(t.processor.registry.online().map((p) => p.userId), ["bob"]);
    await waitFor(() => t.connections.includes("alice@gw1:false"));
    await waitFor(() => t.presence.includes("alice:false"));
    assert.ok(t.deliveries.some((d) => d.type === "gateway-dead" && d.serverId === "gw1"));
  } finally {
    await t.stop();
  }
});

Deno.test("no gateway is declared dead while the processor's own heartbeats do not come back", async () => {
  const t = await setup();
  try {
    await t.connect("alice", "gw1");
    await t.heartbeat("gw1");
    await waitFor(() => t.processor.registry.online().length === 1);
    // Kafka carries nothing: neither the gateway's heartbeats nor the processor's own arrive.
    t.advance(11_000);
    await t.processor.sweep();
    assert.deepEqual(t.processor.registry.online().map((p) => p.userId), ["alice"]);
    assert.ok(!t.deliveries.some((d) => d.type === "gateway-dead"), "no verdict on a sick bus");
    // The processor's own heartbeat comes back: gw1 gets a whole timeout from now to be heard.
    await t.processor.heartbeat();
    await new Promise((r) => setTimeout(r, 20));
    await t.processor.sweep();
    assert.deepEqual(t.processor.registry.online().map((p) => p.userId), ["alice"]);
    // Heartbeats flow, and gw1 stays silent for a whole timeout more: it is dead after all.
    t.advance(11_000);
    await t.processor.heartbeat();
    await new Promise((r) => setTimeout(r, 20));
    await t.processor.sweep();
    assert.deepEqual(t.processor.registry.online(), []);
    await waitFor(() =>
      t.deliveries.some((d) => d.type === "gateway-dead" && d.serverId === "gw1")
    );
  } finally {
    await t.stop();
  }
});

Deno.test("a gateway whose heartbeats stopped with the processor's own is not declared dead", async () => {
  const t = await setup();
  try {
    await t.connect("alice", "gw1");
    await t.heartbeat("gw1");
    await waitFor(() => t.processor.registry.online().length === 1);
    // The heartbeat partition's leader dies: gw1's last heartbeat went through a moment before
    // the processor's own last one, and then neither arrives.
    t.advance(100);
    await t.processor.heartbeat();
    await new Promise((r) => setTimeout(r, 20));
    t.advance(9_950);
    await t.processor.sweep();
    assert.deepEqual(
      t.processor.registry.online().map((p) => p.userId),
      ["alice"],
      "gw1 silent 10.05 s, but Kafka carried no heartbeat for 9.95 s either",
    );
    assert.ok(!t.deliveries.some((d) => d.type === "gateway-dead"));
  } finally {
    await t.stop();
  }
});

Deno.test("most gateways falling silent together is blamed on the cluster until it lasts three timeouts", async () => {
  const t = await setup();
  try {
    for (const [user, gw] of [["a", "gw1"], ["b", "gw2"], ["c", "gw3"]] as const) {
      await t.connect(user, gw);
      await t.heartbeat(gw);
    }
    await waitFor(() => t.processor.registry.online().length === 3);
    const beat = async (ms: number) => {
      t.advance(ms);
      await t.heartbeat("gw3");
      await t.processor.heartbeat();
      await new Promise((r) => setTimeout(r, 20));
      await t.processor.sweep();
    };
    await beat(11_000);
    assert.equal(t.processor.registry.online().length, 3, "two of three silent: suspect Kafka");
    await beat(15_000);
    assert.equal(t.processor.registry.online().length, 3, "26 s: still within three timeouts");
    await beat(5_000);
    assert.deepEqual(t.processor.registry.online().map((p) => p.userId), ["c"]);
  } finally {
    await t.stop();
  }
});

Deno.test("a processor that gains partitions asks the gateways to re-announce their streams", async () => {
  const t = await setup();
  try {
    await waitFor(() => t.deliveries.some((d) => d.type === "resync"));
  } finally {
    await t.stop();
  }
});
