/**
 * The bus contract over KafkaBus against the real cluster (tests/fixtures.ts: KAFKA_BROKERS, or
 * the local cluster it starts), and what only the Kafka adapter's connection does: topic
 * creation, topics with fewer partitions than specified, and Kafka outages.
 *
 * Deno's op and resource sanitizers stay on: after `close()` no kafkajs timer or socket is left.
 * Unhandled promise rejections are collected and asserted, with a clearer message than a crash.
 */

import assert from "node:assert/strict";
import { type Admin, ConfigResourceTypes, Kafka, logLevel } from "kafkajs";
import { setTimeout as sleep } from "node:timers/promises";
import { KafkaConnection } from "../bus/kafka/connection.ts";
import { KafkaBus } from "../bus/kafka/kafka_bus.ts";
import { partitionOf } from "../bus/kafka/outbox.ts";
import { kafkaNames, type KafkaTopicSpec } from "../bus/kafka/topics.ts";
import type { TopicSpecs } from "../bus/kafka/types.ts";
import { ChatError } from "../core/errors.ts";
import { createLogger, type Logger, memoryLogger, silentLogger } from "../core/logger.ts";
import { busContract } from "./bus_contract.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { waitFor } from "./helpers.ts";

const brokers = (await kafkaBrokers()).split(",").map((b) => b.trim()).filter(Boolean);
/** BUS_TEST_LOG=debug shows the adapter's and kafkajs's logs on stderr. */
const logLevelEnv = Deno.env.get("BUS_TEST_LOG");
const logger: Logger = logLevelEnv === "debug" || logLevelEnv === "info"
  ? createLogger({ level: logLevelEnv })
  : silentLogger;

const unhandled: unknown[] = [];
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  unhandled.push(event.reason);
});

function assertNoUnhandledRejection(): void {
  assert.deepEqual(
    unhandled.map((r) => (r instanceof Error ? `${r.name}: ${r.message}` : String(r))),
    [],
    "no unhandled promise rejection",
  );
}

const kafkaTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `KafkaBus: ${name}`, fn });

const unique = (slug: string) => `kafka-${slug}-${crypto.randomUUID().slice(0, 8)}`;

/** An admin client of the test's own, for checks and clean-up. */
async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const kafka = new Kafka({ clientId: "bus-test-admin", brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/** `fn()`, tried again on failure for up to 5 s. */
async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

async function deleteTopics(topics: TopicSpecs, groups: string[] = []): Promise<void> {
  try {
    await withAdmin(async (admin) => {
      await admin.deleteTopics({ topics: topics.map((t) => t.name) });
      if (groups.length > 0) await admin.deleteGroups(groups).catch(() => {});
    });
  } catch {
    // best effort: unique names keep later runs apart anyway
  }
}

busContract(
  "KafkaBus",
  () => {
    const namespace = unique("contract");
    const names = kafkaNames(namespace);
    return Promise.resolve({
      bus: () =>
        KafkaBus.connect({
          brokers,
          clientId: "bus-contract",
          logger,
          namespace,
          retryDelayMs: 50,
        }),
      cleanup: async () => {
        await deleteTopics(Object.values(names.topics), [names.processorGroup]);
        assertNoUnhandledRejection();
      },
    });
  },
  { timeoutMs: 30_000, quietMs: 1000 },
);

kafkaTest(
  "creates missing topics as specified, accepts existing ones, and keys every record to a partition a topic with too few really has",
  async () => {
    const created: KafkaTopicSpec = {
      name: unique("created"),
      partitions: 3,
      replicationFactor: 2,
    };
    const compact: KafkaTopicSpec = {
      name: unique("compact"),
      partitions: 1,
      replicationFactor: 3,
      configs: { "cleanup.policy": "compact", "retention.ms": "3600000" },
    };
    // Positioned, as `chatting` is: the warning says what adding partitions takes.
    const small: KafkaTopicSpec = {
      name: unique("small"),
      partitions: 2,
      replicationFactor: 2,
      positioned: true,
    };
    const topics = [created, compact, small];
    await withAdmin(async (admin) => {
      await admin.createTopics({
        waitForLeaders: false,
        topics: [{ topic: small.name, numPartitions: 1, replicationFactor: 2 }],
      });
      // The topic has a leader before the bus looks at it.
      await waitFor(
        async () => {
          try {
            const { topics: [meta] } = await admin.fetchTopicMetadata({ topics: [small.name] });
            return meta?.partitions.every((p) => p.leader >= 0) ?? false;
          } catch {
            return false;
          }
        },
        30_000,
        `topic ${small.name} to have a leader`,
      );
    });
    const log = memoryLogger("debug");
    const first = new KafkaConnection({ brokers, clientId: "bus-test", topics, logger: log });
    const second = new KafkaConnection({ brokers, clientId: "bus-test", topics, logger });
    try {
      await first.start();
      await waitFor(() => first.ready(), 30_000, "the first bus to be ready");
      await withAdmin(async (admin) => {
        const { topics: meta } = await retrying(() =>
          admin.fetchTopicMetadata({ topics: [created.name, compact.name, small.name] })
        );
        const byName = new Map(meta.map((t) => [t.name, t]));
        const shape = (name: string) =>
          byName.get(name)!.partitions.map((p) => p.replicas.length).sort();
        assert.deepEqual(shape(created.name), [2, 2, 2], "3 partitions with 2 replicas each");
        assert.deepEqual(shape(compact.name), [3], "1 partition with 3 replicas");
        assert.deepEqual(shape(small.name), [2], "an existing topic is left as it is");
        // The request goes to a random broker, which may learn about a new topic a moment late.
        const { resources } = await retrying(() =>
          admin.describeConfigs({
            includeSynonyms: false,
            resources: [{
              type: ConfigResourceTypes.TOPIC,
              name: compact.name,
              configNames: ["cleanup.policy", "retention.ms"],
            }],
          })
        );
        const configs = Object.fromEntries(
          resources[0]!.configEntries.map((c) => [c.configName, c.configValue]),
        );
        assert.deepEqual(configs, { "cleanup.policy": "compact", "retention.ms": "3600000" });
      });
      const warning = log.lines.find((l) => l.includes("WARN") && l.includes(small.name));
      assert.ok(warning, `a warning about ${small.name} in:\n${log.lines.join("\n")}`);
      assert.match(warning, /has 1 partitions, fewer than the 2 specified/);
      assert.match(warning, /stop every gateway and processor, .* and raise KAFKA_LOG_EPOCH/);

      // Keys that the specified 2 partitions would put on partition 1, which does not exist.
      const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
      assert.ok(keys.some((k) => partitionOf(k, 2) === 1), "some keys map to partition 1 of 2");
      assert.equal(first.partitions(small.name), 1, "the real count, read from the metadata");
      for (const key of keys) {
        const at = await first.publish(small.name, key, "v");
        assert.equal(at.partition, 0, `${key} on the one partition there is`);
      }

      // Topics that exist already are fine: the second bus becomes ready and works.
      await second.start();
      await waitFor(() => second.ready(), 30_000, "the second bus to be ready");
      const published = await second.publish(created.name, "k", "v");
      assert.equal(published.topic, created.name);
    } finally {
      await first.close();
      await second.close();
      await deleteTopics(topics);
    }
    assertNoUnhandledRejection();
  },
);

kafkaTest(
  "a failed write puts the producer in doubt: a new one takes over, the old one is closed",
  async () => {
    // Records over 1 KiB are refused by the broker (MESSAGE_TOO_LARGE): a failed write on demand.
    const topic: KafkaTopicSpec = {
      name: unique("doubt"),
      partitions: 1,
      replicationFactor: 3,
      configs: { "max.message.bytes": "1024" },
    };
    const log = memoryLogger("debug");
    const bus = new KafkaConnection({
      brokers,
      clientId: "bus-test-doubt",
      topics: [topic],
      logger: log,
    });
    try {
      await bus.start();
      await waitFor(() => bus.ready(), 30_000, "the bus to be ready");
      await bus.publish(topic.name, "k", "before");
      await assert.rejects(bus.publish(topic.name, "k", "x".repeat(4096)), (err) => {
        assert.ok(err instanceof ChatError);
        assert.equal(err.code, "unavailable");
        return true;
      });
      // Until the new producer is connected, this partition's publishes are refused, never sent
      // by the old one.
      await waitFor(
        () => bus.publish(topic.name, "k", "after").then(() => true, () => false),
        30_000,
        "a write through the new producer",
      );
      await waitFor(
        () => log.lines.some((l) => l.includes("Closed a Kafka producer that was replaced")),
        30_000,
        "the old producer closed",
      );
      const order = log.lines.filter((l) =>
        /may have been made: starting a new producer|A new Kafka producer took over/.test(l)
      );
      assert.equal(order.length, 2, order.join("\n"));
      const offsets = await withAdmin((admin) => admin.fetchTopicOffsets(topic.name));
      assert.equal(offsets[0]!.high, "2", "before and after written, the refused one not");
    } finally {
      await bus.close();
      await deleteTopics([topic]);
    }
    assertNoUnhandledRejection();
  },
);

kafkaTest(
  "a private subscription `back` n records starts n before each partition's end, never below its start, and says where the end was",
  async () => {
    const topic: KafkaTopicSpec = { name: unique("back"), partitions: 1, replicationFactor: 3 };
    const bus = new KafkaConnection({
      brokers,
      clientId: "bus-test-back",
      topics: [topic],
      logger,
      retryDelayMs: 50,
    });
    const subscriptions: { close(): Promise<void> }[] = [];
    try {
      await bus.start();
      await waitFor(() => bus.ready(), 30_000, "the bus to be ready");
      for (let n = 0; n < 5; n++) await bus.publish(topic.name, "k", `r${n}`);
      // The partition now starts at offset 2, as after retention.
      await withAdmin(async (admin) => {
        // kafkajs finds the partition's leader in the metadata it loaded.
        await retrying(() => admin.fetchTopicMetadata({ topics: [topic.name] }));
        await admin.deleteTopicRecords({
          topic: topic.name,
          partitions: [{ partition: 0, offset: "2" }],
        });
      });
      const read = async (back: number) => {
        const got = { ends: [] as string[], offsets: [] as string[] };
        subscriptions.push(
          await bus.subscribe({
            topics: [topic.name],
            from: { back },
            onStart: (t, ends) => got.ends.push(`${t === topic.name}:${[...ends].join(";")}`),
            handler: (record) => (got.offsets.push(record.offset), Promise.resolve()),
          }),
        );
        return got;
      };
      const far = await read(10);
      const near = await read(2);
      assert.deepEqual([far.ends, near.ends], [["true:0,5"], ["true:0,5"]], "ended at 5");
      await bus.publish(topic.name, "k", "r5");
      await waitFor(
        () => far.offsets.length >= 4 && near.offsets.length >= 3,
        15_000,
        "what is there and the new record",
      );
      assert.deepEqual(far.offsets, ["2", "3", "4", "5"], "from the partition's start");
      assert.deepEqual(near.offsets, ["3", "4", "5"], "the last 2 before the end");
      await assert.rejects(
        bus.subscribe({
          topics: [topic.name],
          group: `${topic.name}-group`,
          from: { back: 1 },
          handler: () => Promise.resolve(),
        }),
        (err) => {
          assert.ok(err instanceof ChatError);
          assert.equal(err.code, "invalid_argument");
          assert.match(err.message, /^Cannot subscribe group .*: only a private subscription/);
          return true;
        },
      );
    } finally {
      for (const subscription of subscriptions) await subscription.close();
      await bus.close();
      await deleteTopics([topic]);
    }
    assertNoUnhandledRejection();
  },
);

/** Runs without a cluster: nothing listens on port 1. */
kafkaTest(
  "without a reachable broker: start resolves, not ready, publish rejects unavailable, close is clean",
  async () => {
    const topic: KafkaTopicSpec = { name: "unreachable", partitions: 1, replicationFactor: 1 };
    const log = memoryLogger("debug");
    const bus = new KafkaConnection({
      brokers: ["127.0.0.1:1"],
      clientId: "bus-test-unreachable",
      topics: [topic],
      logger: log,
      closeTimeoutMs: 3000,
    });
    let readyCalls = 0;
    bus.onReady(() => readyCalls++);
    const startedAt = performance.now();
    await bus.start();
    assert.ok(performance.now() - startedAt < 500, "start() does not wait for Kafka");
    // A subscription registered while Kafka is down resolves and waits for Kafka.
    const sub = await bus.subscribe({
      topics: [topic.name],
      from: "latest",
      handler: () => Promise.resolve(),
    });
    await waitFor(
      () => log.lines.filter((l) => l.includes("Cannot connect to Kafka; retrying")).length >= 3,
      15_000,
      "three failed connection attempts",
    );
    assert.equal(bus.ready(), false);
    assert.equal(readyCalls, 0);
    await assert.rejects(bus.publish(topic.name, "k", "v"), (err) => {
      assert.ok(err instanceof ChatError);
      assert.equal(err.code, "unavailable");
      assert.match(err.message, /^Cannot publish to unreachable: Kafka is unavailable \(.+\)$/);
      return true;
    });
    const closingAt = performance.now();
    await sub.close();
    await bus.close();
    await bus.close();
    assert.ok(performance.now() - closingAt < 4000, "close() is bounded");
    const linesAfterClose = log.lines.length;
    await sleep(1500);
    assert.equal(
      log.lines.filter((l) => l.includes("Cannot connect")).length,
      log.lines.slice(0, linesAfterClose).filter((l) => l.includes("Cannot connect")).length,
      "no connection attempts after close",
    );
    assert.equal(bus.ready(), false);
    assertNoUnhandledRejection();
  },
);

kafkaTest("close() during a connection attempt to a silent broker is bounded", async () => {
  // A "broker" that accepts connections and never answers: kafkajs waits for its request timeout.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch {
      // listener closed
    }
  })();
  const topic: KafkaTopicSpec = { name: "silent", partitions: 1, replicationFactor: 1 };
  const bus = new KafkaConnection({
    brokers: [`127.0.0.1:${listener.addr.port}`],
    clientId: "bus-test-silent",
    topics: [topic],
    logger,
    closeTimeoutMs: 1500,
  });
  const quick = new KafkaConnection({
    brokers: ["127.0.0.1:1"],
    clientId: "bus-test-quick",
    topics: [topic],
    logger,
  });
  try {
    await bus.start();
    await quick.start();
    await quick.close(); // closed right after start, while its first attempt runs
    await waitFor(() => conns.length > 0, 5000, "a connection to the silent broker");
    const closingAt = performance.now();
    await bus.close();
    assert.ok(performance.now() - closingAt < 3500, "close() is bounded by closeTimeoutMs");
    assert.equal(bus.ready(), false);
    await assert.rejects(bus.publish(topic.name, "k", "v"), (err) => {
      return err instanceof ChatError && err.code === "unavailable";
    });
  } finally {
    listener.close();
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // already closed by kafkajs
      }
    }
    await accepting;
  }
  await sleep(500);
  assertNoUnhandledRejection();
});
