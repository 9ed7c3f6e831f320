/** The bus contract over MemoryBus, and what only the in-memory adapter does. */

import assert from "node:assert/strict";
import { MemoryBus } from "../bus/memory_bus.ts";
import { silentLogger } from "../core/logger.ts";
import { busContract } from "./bus_contract.ts";
import { waitFor } from "./helpers.ts";

busContract("MemoryBus", () => {
  // One process: every "process" of a deployment holds the same bus.
  const bus = new MemoryBus({ logger: silentLogger, retryDelayMs: 20 });
  return Promise.resolve({ bus: () => bus });
});

Deno.test("MemoryBus: messages appended before any processor joined wait for the first one", async () => {
  const bus = new MemoryBus({ logger: silentLogger });
  await bus.start();
  const room = (n: number) => ({
    id: `m${n}`,
    userId: "ann",
    displayName: "Ann",
    content: "hi",
    timestamp: new Date().toISOString(),
    room: "general",
    seq: 0,
  });
  try {
    await bus.append(room(1));
    await bus.append(room(2));
    const handled: string[] = [];
    await bus.process({
      messages: (run) => (handled.push(...run.map((m) => m.id)), Promise.resolve(run)),
      connection: () => Promise.resolve(),
    });
    await waitFor(() => handled.length === 2, 1000, "both messages");
    assert.deepEqual(handled, ["m1", "m2"]);
  } finally {
    await bus.close();
  }
});

Deno.test("MemoryBus: presence keeps only users who are online for later observers", async () => {
  const bus = new MemoryBus({ logger: silentLogger });
  await bus.start();
  const p = (userId: string, online: boolean) => ({
    userId,
    displayName: userId,
    online,
    servers: [],
    timestamp: new Date().toISOString(),
  });
  try {
    for (let i = 0; i < 100; i++) {
      await bus.publishPresence(p(`u${i}`, true));
      await bus.publishPresence(p(`u${i}`, i === 7));
    }
    const seen: string[] = [];
    await bus.observePresence((presence) => seen.push(presence.userId));
    await waitFor(() => seen.length > 0, 1000, "the backlog");
    assert.deepEqual(seen, ["u7"]);
  } finally {
    await bus.close();
  }
});
