/**
 * The original design's log lines, which its troubleshooting guide quotes: the gateway's
 * "Message sent to Kafka - Topic: …, Partition: …, Offset: …", the processor's "Received chat
 * message: Topic=…, Partition=…, Offset=…" and "User … connected to / disconnected from server
 * …". Checked here once, on the Kafka adapter over a stand-in log; every other test checks what
 * the system does, not what it logs.
 */

import { KafkaBus } from "../bus/kafka/kafka_bus.ts";
import { kafkaNames } from "../bus/kafka/topics.ts";
import { memoryLogger } from "../core/logger.ts";
import { createProcessor } from "../processor/processor.ts";
import { MemoryStore } from "../store/memory_store.ts";
import { waitFor } from "./helpers.ts";
import { FakeTopicLog } from "./topic_log_fake.ts";

Deno.test("the original's log lines: message sent, message received, user connected and disconnected", async () => {
  const logger = memoryLogger("info");
  const bus = new KafkaBus({ log: new FakeTopicLog(), names: kafkaNames(), logger });
  const processor = createProcessor({
    bus,
    store: new MemoryStore(),
    logger,
    config: { heartbeatTimeoutMs: 60_000, heartbeatIntervalMs: 60_000 },
  });
  await bus.start();
  await processor.start();
  const connection = (connected: boolean) => ({
    userId: "alice",
    serverId: "gw-a",
    connected,
    timestamp: new Date().toISOString(),
    displayName: "Alice",
    streamId: "gw-a/1",
  });
  try {
    await bus.announce(connection(true));
    await bus.append({
      id: "m1",
      userId: "alice",
      displayName: "Alice",
      content: "hello",
      timestamp: new Date().toISOString(),
      room: "general",
      seq: 0,
    });
    await bus.announce(connection(false));
    const expected = [
      /INFO .*Message sent to Kafka - Topic: chatting, Partition: 0, Offset: 0/,
      /INFO .*Received chat message: Topic=chatting, Partition=0, Offset=0/,
      /INFO .*User alice connected to server gw-a/,
      /INFO .*User alice disconnected from server gw-a/,
    ];
    await waitFor(
      () => expected.every((line) => logger.lines.some((l) => line.test(l))),
      5000,
      "the four lines",
    );
  } finally {
    await processor.stop();
    await bus.close();
  }
});
