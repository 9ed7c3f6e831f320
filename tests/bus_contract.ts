/**
 * The behaviour every `Bus` adapter must have. `busContract` registers one `Deno.test` per rule;
 * tests/memory_bus_test.ts runs it over MemoryBus, tests/kafka_bus_test.ts over KafkaBus.
 *
 * Every test uses its own topics (unique names) and groups, so the tests neither see each
 * other's records nor records of earlier runs against the same Kafka cluster.
 */

import assert from "node:assert/strict";
import type { Bus, BusRecord, Published, RecordHandler, TopicSpecs } from "../bus/bus.ts";
import type { KafkaTopicSpec } from "../core/config.ts";
import { ChatError } from "../core/errors.ts";
import { waitFor } from "./helpers.ts";

/** Creates a bus, not started yet, that knows exactly `topics`. */
export type MakeBus = (
  topics: TopicSpecs,
) => Promise<{ bus: Bus; cleanup?: () => Promise<void> }>;

export interface BusContractOptions {
  /** Longest wait for records to arrive or for the bus to become ready (default 5 s). */
  timeoutMs?: number;
  /** How long to watch that nothing more arrives (default 100 ms). */
  quietMs?: number;
  /** Deno's op and resource sanitizers (default on). */
  sanitize?: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function unique(slug: string): string {
  return `contract-${slug}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Replication factor 2 as in core/config.ts TOPICS; MemoryBus ignores it. */
function topicSpec(slug: string, partitions: number): KafkaTopicSpec {
  return { name: unique(slug), partitions, replicationFactor: 2 };
}

/** Records what a subscription receives. */
function collector() {
  const records: BusRecord[] = [];
  const handler: RecordHandler = (record) => {
    records.push(record);
    return Promise.resolve();
  };
  return { records, handler, values: () => records.map((r) => r.value) };
}

function isUnavailable(err: unknown): boolean {
  return err instanceof ChatError && err.code === "unavailable";
}

/** Each record's offset is above the previous one's of the same partition. */
function assertPartitionOrder(records: readonly BusRecord[], what: string): void {
  const last = new Map<number, bigint>();
  for (const r of records) {
    const offset = BigInt(r.offset);
    const previous = last.get(r.partition);
    assert.ok(
      previous === undefined || offset > previous,
      `${what}: partition ${r.partition} went from offset ${previous} to ${offset}`,
    );
    last.set(r.partition, offset);
  }
}

function sorted(values: readonly string[]): string[] {
  return [...values].sort();
}

export function busContract(name: string, makeBus: MakeBus, options: BusContractOptions = {}) {
  const timeoutMs = options.timeoutMs ?? 5000;
  const quietMs = options.quietMs ?? 100;
  const sanitize = options.sanitize ?? true;

  const test = (title: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `${name}: ${title}`,
      sanitizeOps: sanitize,
      sanitizeResources: sanitize,
      fn,
    });

  const until = (predicate: () => boolean, what: string) => waitFor(predicate, timeoutMs, what);

  /** Runs `fn` with a started, ready bus that knows `topics`, and closes it afterwards. */
  async function withBus(topics: KafkaTopicSpec[], fn: (bus: Bus) => Promise<void>) {
    const { bus, cleanup } = await makeBus(topics);
    try {
      await bus.start();
      await until(() => bus.ready(), "the bus to be ready");
      await fn(bus);
    } finally {
      await bus.close();
      await cleanup?.();
    }
  }

  test("publish returns increasing offsets per partition and keeps a key on one partition", () => {
    const topic = topicSpec("offsets", 3);
    return withBus([topic], async (bus) => {
      const partitionOfKey = new Map<string, number>();
      const lastOffset = new Map<number, bigint>();
      for (let i = 0; i < 24; i++) {
        const key = `key-${i % 8}`;
        const published = await bus.publish(topic.name, key, `value-${i}`);
        assert.equal(published.topic, topic.name);
        assert.ok(published.partition >= 0 && published.partition < 3, "partition in range");
        const known = partitionOfKey.get(key);
        if (known !== undefined) assert.equal(published.partition, known, `key ${key} moved`);
        partitionOfKey.set(key, published.partition);
        const offset = BigInt(published.offset);
        const previous = lastOffset.get(published.partition);
        if (previous !== undefined) assert.ok(offset > previous, "offsets increase");
        lastOffset.set(published.partition, offset);
      }
      assert.ok(new Set(partitionOfKey.values()).size > 1, "8 keys use more than one partition");

      // Concurrent publishes of one key: each is written once, at its own offset.
      const concurrent: Published[] = await Promise.all(
        Array.from({ length: 10 }, (_, i) => bus.publish(topic.name, "same", `concurrent-${i}`)),
      );
      assert.equal(new Set(concurrent.map((p) => p.partition)).size, 1);
      assert.equal(new Set(concurrent.map((p) => p.offset)).size, 10, "distinct offsets");
      const seen = collector();
      const sub = await bus.subscribe({
        topics: [topic.name],
        from: "earliest",
        handler: seen.handler,
      });
      try {
        await until(() => seen.records.length >= 34, "all 34 records");
        await sleep(quietMs);
        assert.equal(seen.records.length, 34);
        const sameKey = seen.records.filter((r) => r.key === "same").map((r) => r.value);
        assert.deepEqual(sorted(sameKey), sorted(concurrent.map((_, i) => `concurrent-${i}`)));
      } finally {
        await sub.close();
      }
    });
  });

  test("a group subscription receives every record once, in per-partition order", () => {
    const topic = topicSpec("group-once", 2);
    return withBus([topic], async (bus) => {
      const keys = ["a", "b", "c", "d"];
      const published: string[] = [];
      const publish = async (n: number) => {
        const key = keys[n % keys.length]!;
        await bus.publish(topic.name, key, `${key}-${n}`);
        published.push(`${key}-${n}`);
      };
      for (let n = 0; n < 8; n++) await publish(n);
      const seen = collector();
      const sub = await bus.subscribe({
        topics: [topic.name],
        group: unique("group"),
        from: "earliest",
        handler: seen.handler,
      });
      try {
        for (let n = 8; n < 16; n++) await publish(n);
        await until(() => seen.records.length >= 16, "16 records");
        await sleep(quietMs);
        assert.deepEqual(sorted(seen.values()), sorted(published), "each record exactly once");
        assertPartitionOrder(seen.records, "group");
        for (const key of keys) {
          const ofKey = (values: readonly string[]) => values.filter((v) => v.startsWith(key));
          assert.deepEqual(ofKey(seen.values()), ofKey(published), `order of key ${key}`);
        }
      } finally {
        await sub.close();
      }
    });
  });

  test("two members of one group split the partitions and receive every record once", () => {
    const topic = topicSpec("split", 2);
    return withBus([topic], async (bus) => {
      const group = unique("group");
      const a = collector();
      const b = collector();
      let aAssigned = 0;
      let bAssigned = 0;
      const subA = await bus.subscribe({
        topics: [topic.name],
        group,
        from: "earliest",
        handler: a.handler,
        onAssigned: () => aAssigned++,
      });
      const subB = await (async () => {
        await until(() => aAssigned >= 1, "the first member to be assigned");
        return bus.subscribe({
          topics: [topic.name],
          group,
          from: "earliest",
          handler: b.handler,
          onAssigned: () => bAssigned++,
        });
      })();
      try {
        await until(() => bAssigned >= 1 && aAssigned >= 2, "the group to rebalance");
        const values: string[] = [];
        const partitions = new Set<number>();
        for (let i = 0; i < 20; i++) {
          const p = await bus.publish(topic.name, `key-${i}`, `value-${i}`);
          partitions.add(p.partition);
          values.push(`value-${i}`);
        }
        assert.equal(partitions.size, 2, "20 keys use both partitions");
        await until(() => a.records.length + b.records.length >= 20, "20 records");
        await sleep(quietMs);
        assert.deepEqual(sorted([...a.values(), ...b.values()]), sorted(values), "exactly once");
        assert.ok(a.records.length > 0 && b.records.length > 0, "both members receive records");
        const aPartitions = new Set(a.records.map((r) => r.partition));
        assert.ok(b.records.every((r) => !aPartitions.has(r.partition)), "partitions are split");
      } finally {
        await subA.close();
        await subB.close();
      }
    });
  });

  test("a private subscription from latest sees only records published after it subscribed", () => {
    const topic = topicSpec("latest", 2);
    return withBus([topic], async (bus) => {
      await bus.publish(topic.name, "k", "before");
      const seen = collector();
      const sub = await bus.subscribe({
        topics: [topic.name],
        from: "latest",
        handler: seen.handler,
      });
      try {
        await bus.publish(topic.name, "k", "after");
        await until(() => seen.records.length >= 1, "the later record");
        await sleep(quietMs);
        assert.deepEqual(seen.values(), ["after"]);
      } finally {
        await sub.close();
      }
    });
  });

  test("a private subscription from earliest sees earlier records too, in order", () => {
    const topic = topicSpec("earliest", 2);
    return withBus([topic], async (bus) => {
      for (const v of ["e1", "e2", "e3"]) await bus.publish(topic.name, "k", v);
      const seen = collector();
      const sub = await bus.subscribe({
        topics: [topic.name],
        from: "earliest",
        handler: seen.handler,
      });
      try {
        for (const v of ["e4", "e5"]) await bus.publish(topic.name, "k", v);
        await until(() => seen.records.length >= 5, "5 records");
        await sleep(quietMs);
        assert.deepEqual(seen.values(), ["e1", "e2", "e3", "e4", "e5"]);
      } finally {
        await sub.close();
      }
    });
  });

  test("two private subscriptions both receive every record", () => {
    const topic = topicSpec("privates", 2);
    return withBus([topic], async (bus) => {
      const a = collector();
      const b = collector();
      const subA = await bus.subscribe({
        topics: [topic.name],
        from: "latest",
        handler: a.handler,
      });
      const subB = await bus.subscribe({
        topics: [topic.name],
        from: "latest",
        handler: b.handler,
      });
      try {
        const values: string[] = [];
        for (let i = 0; i < 8; i++) {
          await bus.publish(topic.name, `key-${i % 4}`, `value-${i}`);
          values.push(`value-${i}`);
        }
        await until(() => a.records.length >= 8 && b.records.length >= 8, "8 records each");
        await sleep(quietMs);
        assert.deepEqual(sorted(a.values()), sorted(values));
        assert.deepEqual(sorted(b.values()), sorted(values));
        assertPartitionOrder(a.records, "first subscription");
        assertPartitionOrder(b.records, "second subscription");
      } finally {
        await subA.close();
        await subB.close();
      }
    });
  });

  test("a handler that throws gets the same record again and nothing is skipped", () => {
    const topic = topicSpec("retry", 2);
    return withBus([topic], async (bus) => {
      // A TypeError on purpose: kafkajs treats it as not retriable unless the adapter handles it.
      const failingOnce = () => {
        const attempts = new Map<string, number>();
        const handled: string[] = [];
        const handler: RecordHandler = (record) => {
          const n = (attempts.get(record.value) ?? 0) + 1;
          attempts.set(record.value, n);
          if (record.value === "v2" && n === 1) {
            return Promise.reject(new TypeError("handler failed on purpose"));
          }
          handled.push(record.value);
          return Promise.resolve();
        };
        return { attempts, handled, handler };
      };
      const grouped = failingOnce();
      const solo = failingOnce();
      const subGroup = await bus.subscribe({
        topics: [topic.name],
        group: unique("group"),
        from: "earliest",
        handler: grouped.handler,
      });
      const subSolo = await bus.subscribe({
        topics: [topic.name],
        from: "earliest",
        handler: solo.handler,
      });
      try {
        const values = ["v0", "v1", "v2", "v3", "v4"];
        for (const v of values) await bus.publish(topic.name, "k", v);
        await until(
          () => grouped.handled.length >= 5 && solo.handled.length >= 5,
          "every record handled",
        );
        await sleep(quietMs);
        for (const [what, run] of [["group", grouped], ["private", solo]] as const) {
          assert.deepEqual(run.handled, values, `${what}: handled in order, none skipped`);
          assert.equal(run.attempts.get("v2"), 2, `${what}: the failed record came again once`);
          for (const v of ["v0", "v1", "v3", "v4"]) {
            assert.equal(run.attempts.get(v), 1, `${what}: ${v} handed once`);
          }
        }
      } finally {
        await subGroup.close();
        await subSolo.close();
      }
    });
  });

  test("a group that closes and re-subscribes resumes after the last handled record", () => {
    const topic = topicSpec("resume", 2);
    return withBus([topic], async (bus) => {
      const group = unique("group");
      const first = collector();
      const sub1 = await bus.subscribe({
        topics: [topic.name],
        group,
        from: "earliest",
        handler: first.handler,
      });
      const early = ["r0", "r1", "r2", "r3", "r4", "r5"];
      const late = ["r6", "r7", "r8", "r9", "r10", "r11"];
      let n = 0;
      for (const v of early) await bus.publish(topic.name, `key-${n++ % 3}`, v);
      await until(() => first.records.length >= early.length, "the first member's records");
      await sub1.close();
      for (const v of late) await bus.publish(topic.name, `key-${n++ % 3}`, v);
      // "earliest" would replay r0… if the group's position were lost.
      const second = collector();
      const sub2 = await bus.subscribe({
        topics: [topic.name],
        group,
        from: "earliest",
        handler: second.handler,
      });
      try {
        await until(() => second.records.length >= late.length, "the second member's records");
        await sleep(quietMs);
        assert.deepEqual(sorted(first.values()), sorted(early), "closed member got nothing more");
        assert.deepEqual(sorted(second.values()), sorted(late), "no loss, no re-delivery");
      } finally {
        await sub2.close();
      }
    });
  });

  test("onReady listeners are called when the bus becomes ready, also when added later", async () => {
    const topic = topicSpec("ready", 1);
    const { bus, cleanup } = await makeBus([topic]);
    try {
      let early = 0;
      bus.onReady(() => early++);
      assert.equal(bus.ready(), false, "not ready before start");
      await bus.start();
      await until(() => early === 1, "the early listener");
      assert.equal(bus.ready(), true);
      let late = 0;
      bus.onReady(() => late++);
      await until(() => late === 1, "the late listener");
      await sleep(quietMs);
      assert.equal(early, 1, "called once per readiness");
    } finally {
      await bus.close();
      await cleanup?.();
    }
  });

  test("publish rejects with unavailable before start and after close", async () => {
    const topic = topicSpec("unavailable", 1);
    const { bus, cleanup } = await makeBus([topic]);
    try {
      await assert.rejects(bus.publish(topic.name, "k", "v"), isUnavailable);
      await bus.start();
      await until(() => bus.ready(), "the bus to be ready");
      await bus.publish(topic.name, "k", "v");
      await bus.close();
      await bus.close(); // idempotent
      assert.equal(bus.ready(), false, "not ready after close");
      await assert.rejects(bus.publish(topic.name, "k", "v"), isUnavailable);
    } finally {
      await bus.close();
      await cleanup?.();
    }
  });

  test("closing a subscription stops its delivery", () => {
    const topic = topicSpec("sub-close", 2);
    return withBus([topic], async (bus) => {
      const a = collector();
      const b = collector();
      const subA = await bus.subscribe({
        topics: [topic.name],
        from: "earliest",
        handler: a.handler,
      });
      const subB = await bus.subscribe({
        topics: [topic.name],
        from: "earliest",
        handler: b.handler,
      });
      try {
        await bus.publish(topic.name, "k", "one");
        await until(() => a.records.length === 1 && b.records.length === 1, "the first record");
        await subA.close();
        await bus.publish(topic.name, "k", "two");
        await until(() => b.records.length === 2, "the open subscription's second record");
        await sleep(quietMs);
        assert.deepEqual(a.values(), ["one"]);
      } finally {
        await subA.close();
        await subB.close();
      }
    });
  });

  test("closing the bus stops delivery, also with a handler in progress", () => {
    const topic = topicSpec("bus-close", 1);
    return withBus([topic], async (bus) => {
      const entered: string[] = [];
      let release = () => {};
      const gate = new Promise<void>((resolve) => release = resolve);
      await bus.subscribe({
        topics: [topic.name],
        group: unique("group"),
        from: "earliest",
        handler: async (record) => {
          entered.push(record.value);
          await gate;
        },
      });
      for (const v of ["x1", "x2", "x3"]) await bus.publish(topic.name, "k", v);
      await until(() => entered.length === 1, "the first record");
      const closed = bus.close();
      await sleep(50);
      release();
      await closed;
      await sleep(quietMs);
      assert.deepEqual(entered, ["x1"]);
    });
  });
}
