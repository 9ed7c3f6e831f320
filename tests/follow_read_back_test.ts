/**
 * A follower's read-back (bus/kafka/kafka_bus.ts `follow`, bus/kafka/positions.ts): on the Kafka
 * adapter over a stand-in log, what a starting follower reads of the records before its start
 * only teaches it which sends were made, so that their retries after the start are not shown.
 */

import assert from "node:assert/strict";
import { KafkaBus } from "../bus/kafka/kafka_bus.ts";
import { kafkaNames } from "../bus/kafka/topics.ts";
import { memoryLogger } from "../core/logger.ts";
import type { ChatMessage } from "../core/types.ts";
import { waitFor } from "./helpers.ts";
import { FakeTopicLog } from "./topic_log_fake.ts";
import { newMessage } from "./store_contract.ts";

/** A send of `userId`'s with message id `id`: what a reader remembers it by. */
const message = (userId: string, id: string): ChatMessage =>
  newMessage("general", { userId, id, displayName: userId });

Deno.test("a starting follower reads back the log from its start, shows none of it, and drops the retries of its sends", async () => {
  const logger = memoryLogger("debug");
  const log = new FakeTopicLog();
  const names = kafkaNames();
  const chatting = names.topics.chatting.name;
  const bus = new KafkaBus({ log, names, logger });
  await bus.start();
  const before = [message("ann", "m1"), message("ann", "m2"), message("bob", "m1")];
  try {
    // Fewer records than RECENT_SENDS: all of them are read back, the first (offset 0) too.
    for (const m of before) await bus.append(m);
    await log.publish(chatting, "general", "not a message (before)");
    const got: ChatMessage[] = [];
    const following = await bus.follow((m) => (got.push(m), Promise.resolve()));
    try {
      for (const m of before) await bus.append(m);
      await log.publish(chatting, "general", "not a message (after)");
      await bus.append(message("ann", "m3"));
      // The stand-in hands records in order: once the last is here, every other one was handled.
      await waitFor(() => got.some((m) => m.id === "m3"), 5000, "the new message");
      assert.deepEqual(got.map((m) => `${m.userId}/${m.id}@${m.seq}`), ["ann/m3@9"]);
      const warnings = logger.lines.filter((l) => l.includes("Skipping unreadable record"));
      assert.equal(warnings.length, 1, `only the one after the start:\n${warnings.join("\n")}`);
      assert.match(warnings[0]!, /offset=7/);
    } finally {
      await following.close();
    }
  } finally {
    await bus.close();
  }
});
