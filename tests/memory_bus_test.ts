/** The bus contract over MemoryBus, and what only the in-memory adapter does (retention). */

import assert from "node:assert/strict";
import { MemoryBus } from "../bus/memory_bus.ts";
import type { BusRecord } from "../bus/bus.ts";
import { silentLogger } from "../core/logger.ts";
import { busContract } from "./bus_contract.ts";
import { waitFor } from "./helpers.ts";

busContract(
  "MemoryBus",
  (topics) =>
    Promise.resolve({ bus: new MemoryBus({ topics, logger: silentLogger, retryDelayMs: 20 }) }),
);

Deno.test("MemoryBus: a compacted topic keeps the latest record of every key, in offset order", async () => {
  const topic = {
    name: "compacted",
    partitions: 1,
    replicationFactor: 1,
    configs: { "cleanup.policy": "compact" },
  };
  const bus = new MemoryBus({ topics: [topic], logger: silentLogger, retention: 2 });
  await bus.start();
  try {
    // The fifth record trims the first three: a@0 and a@2 (a kept at 2), b@1 (kept).
    for (const [key, value] of [["a", "a1"], ["b", "b1"], ["a", "a2"], ["c", "c1"], ["d", "d1"]]) {
      await bus.publish(topic.name, key!, value!);
    }
    const seen: BusRecord[] = [];
    const sub = await bus.subscribe({
      topics: [topic.name],
      from: "earliest",
      handler: (r) => {
        seen.push(r);
        return Promise.resolve();
      },
    });
    await waitFor(() => seen.length >= 4, 2000, "the kept records");
    await sub.close();
    assert.deepEqual(seen.map((r) => `${r.value}@${r.offset}`), ["b1@1", "a2@2", "c1@3", "d1@4"]);
  } finally {
    await bus.close();
  }
});

Deno.test("MemoryBus: a plain topic drops its oldest records beyond the retention", async () => {
  const topic = { name: "plain", partitions: 1, replicationFactor: 1 };
  const bus = new MemoryBus({ topics: [topic], logger: silentLogger, retention: 2 });
  await bus.start();
  try {
    for (let i = 0; i < 5; i++) await bus.publish(topic.name, "k", `v${i}`);
    const seen: string[] = [];
    const sub = await bus.subscribe({
      topics: [topic.name],
      from: "earliest",
      handler: (r) => {
        seen.push(r.value);
        return Promise.resolve();
      },
    });
    await waitFor(() => seen.length >= 2, 2000, "the kept records");
    await sub.close();
    assert.deepEqual(seen, ["v3", "v4"]);
  } finally {
    await bus.close();
  }
});
