/**
 * Poisoned records on the topics the processor reads, as property tests of the Kafka adapter's
 * records (bus/kafka/kafka_bus.ts) over a stand-in for the cluster (tests/topic_log_fake.ts):
 * random bytes, random JSON and valid records with one field broken, interleaved with valid
 * records. Each poisoned one must land on the dead-letter topic with its exact bytes and the
 * reason, every valid one must still be handled in order, and no handler may ever throw (the
 * bus would retry it without end, blocking its partition). The gateways' topics are checked too:
 * a gateway logs and skips poison and goes on delivering.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { invalidArgument, unavailable } from "../core/errors.ts";
import { memoryLogger } from "../core/logger.ts";
import type { ChatMessage } from "../core/types.ts";
import { KafkaBus } from "../bus/kafka/kafka_bus.ts";
import {
  type DeadLetter,
  decodeDeadLetter,
  decodeDelivery,
  decodePresence,
  encodeChatMessage,
  encodeConnectionEvent,
  encodeDeadLetter,
  encodeHeartbeat,
} from "../bus/kafka/records.ts";
import { kafkaNames, PROCESSOR_GROUP, TOPICS } from "../bus/kafka/topics.ts";
import { createProcessor } from "../processor/processor.ts";
import { MemoryStore } from "../store/memory_store.ts";
import type { Store } from "../store/store.ts";
import { connectUser, startSystem, waitFor } from "./helpers.ts";
import { fuzzParameters } from "./fuzz_seed.ts";
import { FakeTopicLog } from "./topic_log_fake.ts";

const encoder = new TextEncoder();

/** The Kafka adapter over a stand-in log: what a test publishes there arrives as records. */
function kafkaBusOverFake(logger = memoryLogger("warn")) {
  const log = new FakeTopicLog();
  return { log, bus: new KafkaBus({ log, names: kafkaNames(), logger }) };
}

/** `store`, with what it stored collected in `into`. */
function collecting(store: Store, into: ChatMessage[]): Store {
  return new Proxy(store, {
    get(target, property) {
      if (property === "appendAll") {
        return async (messages: readonly ChatMessage[]) => {
          const stored = await target.appendAll(messages);
          into.push(...stored);
          return stored;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A processor on the Kafka adapter over a stand-in log, with what it stores collected. */
async function setup(options: { store?: Store } = {}) {
  const logger = memoryLogger("warn");
  const { log, bus } = kafkaBusOverFake(logger);
  const messages: ChatMessage[] = [];
  const store = collecting(options.store ?? new MemoryStore(), messages);
  const processor = createProcessor({
    bus,
    store,
    logger,
    config: { heartbeatTimeoutMs: 60_000, heartbeatIntervalMs: 60_000 },
  });
  await bus.start();
  await processor.start();
  return {
    log,
    processor,
    logger,
    messages,
    get deadLetters(): DeadLetter[] {
      return log.values(TOPICS.deadLetters.name).map(decodeDeadLetter);
    },
    /** Handler failures the bus retried: a poisoned record must never cause one. */
    failures: () => log.failures,
    stop: async () => {
      await processor.stop();
      await bus.close();
    },
  };
}

/** Whether `text` is JSON for an object: anything else can never be a record. */
function isJsonObject(text: string): boolean {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** A JSON value of a type other than string (and not null, which some fields take as absent). */
const notAString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }),
);

/** Record text that no decoder can read: not JSON, or JSON but not an object. */
const unreadable = fc.oneof(
  fc.string({ unit: "binary", maxLength: 60 }),
  // Random bytes: the memory bus carries text, so they arrive as their (lossy) UTF-8 decoding.
  fc.uint8Array({ maxLength: 80 }).map((b) => new TextDecoder().decode(b)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
).filter((text) => !isJsonObject(text));

/** A valid record's JSON with one field broken (`undefined` deletes it), or its text cut short. */
function broken(
  valid: fc.Arbitrary<Record<string, unknown>>,
  fields: Record<string, fc.Arbitrary<unknown>>,
): fc.Arbitrary<string> {
  return fc.oneof(
    fc.tuple(valid, fc.constantFrom(...Object.keys(fields))).chain(([record, field]) =>
      fields[field]!.map((bad) => JSON.stringify({ ...record, [field]: bad }))
    ),
    // Every proper prefix of an object's JSON text is invalid JSON.
    fc.tuple(valid, fc.nat()).map(([record, n]) => {
      const text = JSON.stringify(record);
      return text.slice(0, n % text.length);
    }),
  );
}

const requiredString = fc.oneof(fc.constant(undefined), fc.constant(null), notAString);
const requiredId = fc.oneof(requiredString, fc.constantFrom("", " ", "\t\n"));

const chatFields = (id: string, room: string, content: string) => ({
  id,
  content,
  timestamp: "2026-01-01T00:00:00.000Z",
  user_id: "alice",
  room,
  display_name: "Alice",
});

const brokenChat = broken(
  fc.record({ room: fc.constantFrom("general", "r1"), content: fc.string() }).map((r) =>
    chatFields("m0", r.room, r.content)
  ),
  {
    id: requiredId,
    user_id: requiredId,
    content: requiredString,
    timestamp: requiredString,
    room: notAString,
    display_name: notAString,
    seq: fc.oneof(fc.constant(-1), fc.constant(1.5), fc.constant(2 ** 60), fc.string()),
  },
);

type Entry =
  | { kind: "valid"; room: string; content: string }
  | { kind: "poison"; text: string }
  /** Anything at all: it must end up handled or dead-lettered, exactly one of the two. */
  | { kind: "random"; text: string };

const chatEntry: fc.Arbitrary<Entry> = fc.oneof(
  fc.record({
    kind: fc.constant("valid" as const),
    room: fc.constantFrom("general", "r1", "r2"),
    content: fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
  }),
  fc.record({ kind: fc.constant("poison" as const), text: fc.oneof(unreadable, brokenChat) }),
  fc.record({
    kind: fc.constant("random" as const),
    text: fc.oneof(
      fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
      // A valid record with one character changed: often still valid, often not.
      fc.tuple(fc.nat(), fc.string({ minLength: 1, maxLength: 1 })).map(([n, c]) => {
        const text = JSON.stringify(chatFields(`m${n}`, "general", "hello"));
        const at = n % text.length;
        return text.slice(0, at) + c + text.slice(at + 1);
      }),
    ),
  }),
);

Deno.test("property: poison on `chatting` goes to the dead-letter topic; every valid message is still stored and routed in order", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(chatEntry, { minLength: 1, maxLength: 30 }), async (entries) => {
      const t = await setup();
      try {
        const published: { entry: Entry; offset: string; id?: string }[] = [];
        for (const [i, entry] of entries.entries()) {
          if (entry.kind === "valid") {
            const id = `v${i}`;
            const text = JSON.stringify(chatFields(id, entry.room, entry.content));
            const at = await t.log.publish(TOPICS.chatting.name, entry.room, text);
            published.push({ entry, offset: at.offset, id });
          } else {
            const at = await t.log.publish(TOPICS.chatting.name, "general", entry.text);
            published.push({ entry, offset: at.offset });
          }
        }
        await waitFor(
          () => t.messages.length + t.deadLetters.length >= entries.length,
          5000,
          "every record handled or dead-lettered",
        );
        assert.equal(t.messages.length + t.deadLetters.length, entries.length);
        assert.deepEqual(t.failures(), []);
        const byOffset = new Map(
          t.deadLetters.map((d) => [`${d.partition}/${d.offset}`, d]),
        );
        for (const d of t.deadLetters) {
          assert.equal(d.topic, TOPICS.chatting.name);
          assert.equal(d.consumer, PROCESSOR_GROUP);
          assert.match(d.reason, /^Cannot read chat message record: /);
        }
        // Valid messages: stored once each, in publish order within their room.
        for (const room of ["general", "r1", "r2"]) {
          const sent = published.filter((p) => p.entry.kind === "valid" && p.entry.room === room)
            .map((p) => p.id);
          const got = t.messages.filter((m) => m.room === room && sent.includes(m.id));
          assert.deepEqual(got.map((m) => m.id), sent, `room ${room}`);
          const seqs = got.map((m) => m.seq);
          assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `room ${room} in order`);
        }
        // Poison: on the dead-letter topic, with its exact bytes.
        const poisoned = published.filter((p) => p.entry.kind === "poison");
        for (const p of poisoned) {
          const text = (p.entry as { text: string }).text;
          const found = [...byOffset.values()].find((d) =>
            d.offset === p.offset && new TextDecoder().decode(d.value) === text
          );
          assert.ok(found, `poison at offset ${p.offset} dead-lettered: ${JSON.stringify(text)}`);
          assert.deepEqual(found.value, encoder.encode(text));
        }
      } finally {
        await t.stop();
      }
    }),
    fuzzParameters("chatting poison", 150),
  );
});

const connectionFields = (i: number) => ({
  user_id: `u${i}`,
  server_id: "gw1",
  connected: true,
  timestamp: "2026-01-01T00:00:00.000Z",
  display_name: `User ${i}`,
  stream_id: `gw1/u${i}`,
});

const brokenConnection = broken(fc.constant(connectionFields(0)), {
  user_id: requiredId,
  server_id: requiredId,
  connected: fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer(), fc.string()),
  timestamp: requiredString,
  display_name: notAString,
  stream_id: notAString,
});

const brokenHeartbeat = broken(
  fc.constant({ server_id: "gw1", timestamp: "2026-01-01T00:00:00.000Z", streams: 1 }),
  {
    server_id: requiredId,
    timestamp: requiredString,
    streams: fc.oneof(fc.constant(-3), fc.constant(0.5), fc.string(), fc.boolean()),
  },
);

Deno.test("property: poison on `user-connections` goes to the dead-letter topic, poison on `gateway-heartbeats` is skipped; valid events still build the registry", async () => {
  const topicEntry = fc.oneof(
    fc.record({ topic: fc.constant("valid" as const) }),
    fc.record({
      topic: fc.constant(TOPICS.userConnections.name),
      text: fc.oneof(unreadable, brokenConnection),
    }),
    fc.record({
      topic: fc.constant(TOPICS.heartbeats.name),
      text: fc.oneof(unreadable, brokenHeartbeat),
    }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(topicEntry, { minLength: 1, maxLength: 30 }), async (entries) => {
      const t = await setup();
      try {
        const users: string[] = [];
        let skipped = 0;
        const poison: { topic: string; partition: number; offset: string; text: string }[] = [];
        for (const [i, entry] of entries.entries()) {
          if (entry.topic === "valid") {
            // A heartbeat and a connection: both must still be read after the poison.
            await t.log.publish(
              TOPICS.heartbeats.name,
              "gw1",
              encodeHeartbeat({ serverId: "gw1", timestamp: new Date().toISOString(), streams: 1 }),
            );
            const userId = `u${i}`;
            await t.log.publish(
              TOPICS.userConnections.name,
              userId,
              encodeConnectionEvent({
                userId,
                serverId: "gw1",
                connected: true,
                timestamp: new Date().toISOString(),
                displayName: userId,
                streamId: `gw1/${userId}`,
              }),
            );
            users.push(userId);
          } else {
            const at = await t.log.publish(entry.topic, `key${i}`, entry.text);
            if (entry.topic === TOPICS.userConnections.name) {
              poison.push({ ...at, text: entry.text });
            } else skipped++;
          }
        }
        const online = () => t.processor.registry.online().map((p) => p.userId).sort();
        await waitFor(
          () => t.deadLetters.length >= poison.length && online().length >= users.length,
          5000,
          "every poisoned record dead-lettered and every user online",
        );
        assert.deepEqual(online(), [...users].sort());
        assert.equal(t.deadLetters.length, poison.length);
        assert.deepEqual(t.failures(), []);
        await waitFor(
          () =>
            t.logger.lines.filter((l) => l.includes("Skipping unreadable record ")).length ===
              skipped,
          5000,
          `${skipped} heartbeats skipped`,
        );
        for (const p of poison) {
          const found = t.deadLetters.find((d) =>
            d.topic === p.topic && d.partition === p.partition && d.offset === p.offset
          );
          assert.ok(found, `${p.topic}/${p.partition}/${p.offset} dead-lettered`);
          assert.deepEqual(found.value, encoder.encode(p.text));
          assert.match(found.reason, /^Cannot read connection record: /);
        }
      } finally {
        await t.stop();
      }
    }),
    fuzzParameters("user-connections and heartbeats poison", 100),
  );
});

Deno.test("a record the store refuses for its content is dead-lettered, not retried for ever", async () => {
  // PostgreSQL refuses a NUL character in text with an invalid_argument ChatError.
  const memory = new MemoryStore();
  const store = new Proxy(memory, {
    get(target, name, receiver) {
      if (name === "appendAll") {
        return (run: ChatMessage[]) =>
          run.some((m) => m.content.includes("\u0000"))
            ? Promise.reject(invalidArgument("Cannot store message: content holds a NUL character"))
            : target.appendAll(run);
      }
      const value = Reflect.get(target, name, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const t = await setup({ store });
  try {
    const message = (id: string, content: string) =>
      encodeChatMessage({
        id,
        userId: "alice",
        displayName: "Alice",
        content,
        timestamp: "2026-01-01T00:00:00.000Z",
        room: "general",
        seq: 0,
      });
    const bad = message("nul", "a\u0000b");
    await t.log.publish(TOPICS.chatting.name, "general", bad);
    await t.log.publish(TOPICS.chatting.name, "general", message("ok", "after"));
    await waitFor(() => t.messages.length === 1 && t.deadLetters.length === 1);
    assert.equal(t.messages[0]!.id, "ok");
    assert.match(t.deadLetters[0]!.reason, /NUL character/);
    assert.equal(new TextDecoder().decode(t.deadLetters[0]!.value), bad);
    assert.deepEqual(t.failures(), []);
    assert.ok(
      t.logger.lines.some((l) =>
        /WARN .*Skipping unreadable record: sent to the dead-letter topic .*topic=chatting partition=\d offset=0 /
          .test(l)
      ),
      t.logger.lines.join("\n"),
    );
  } finally {
    await t.stop();
  }
});

Deno.test("a dead letter that cannot be written keeps the record: it is retried until it can", async () => {
  let refusals = 2;
  const t = await setup();
  // Kafka away for the dead-letter write only: the record must wait, not be skipped.
  t.log.refuse = (topic) => {
    if (topic !== TOPICS.deadLetters.name || refusals === 0) return Promise.resolve();
    refusals--;
    return Promise.reject(unavailable("Kafka is away for the test"));
  };
  try {
    await t.log.publish(TOPICS.chatting.name, "general", "not json");
    await t.log.publish(
      TOPICS.chatting.name,
      "general",
      encodeChatMessage({
        id: "ok",
        userId: "alice",
        displayName: "Alice",
        content: "after",
        timestamp: "2026-01-01T00:00:00.000Z",
        room: "general",
        seq: 0,
      }),
    );
    await waitFor(() => t.messages.length === 1);
    assert.equal(refusals, 0);
    assert.equal(t.deadLetters.length, 1);
    assert.equal(t.deadLetters[0]!.offset, "0", "the poison, and only once");
  } finally {
    await t.stop();
  }
});

Deno.test("dead letters round-trip, bytes that are not UTF-8 included", () => {
  const letter: DeadLetter = {
    topic: "chatting",
    partition: 1,
    offset: "42",
    key: "general",
    reason: "Cannot read chat message record: not JSON: \u00ff",
    consumer: PROCESSOR_GROUP,
    timestamp: "2026-01-01T00:00:00.000Z",
    value: new Uint8Array([0xff, 0x00, 0xc3, 0x28, 0x7b]),
  };
  assert.deepEqual(decodeDeadLetter(encodeDeadLetter(letter)), letter);
  assert.throws(() => decodeDeadLetter('{"value_base64":"***"}'), /Cannot read dead letter/);
});

Deno.test("property: a gateway skips poison on `chat-deliveries` and `presence` and keeps delivering", async () => {
  const logger = memoryLogger("warn");
  const { log, bus } = kafkaBusOverFake(logger);
  const system = await startSystem({ logger, bus });
  const alice = connectUser(system.address(), "alice");
  const readable = (decode: (text: string) => unknown) => (text: string) => {
    try {
      decode(text);
      return true;
    } catch {
      return false;
    }
  };
  const poison = fc.oneof(
    unreadable,
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    broken(
      fc.constant({ type: "message", message: { ...chatFields("m0", "general", "x"), seq: 1 } }),
      { type: fc.oneof(requiredString, fc.constant("no such type")), message: notAString },
    ),
    broken(
      fc.constant({ type: "room-event", room: "r", user_id: "bob", joined: true }),
      { room: requiredString, user_id: requiredString, joined: fc.string() },
    ),
  );
  let sent = 0;
  try {
    await waitFor(() => system.gateways[0]!.hub.size === 1, 5000, "alice's stream");
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            topic: fc.constantFrom(TOPICS.deliveries.name, TOPICS.presence.name),
            text: poison,
          }),
          { maxLength: 10 },
        ),
        async (records) => {
          const skipped = () =>
            logger.lines.filter((l) => l.includes("Skipping unreadable")).length;
          const before = skipped();
          let expected = 0;
          for (const r of records) {
            const bad = r.topic === TOPICS.deliveries.name
              ? !readable(decodeDelivery)(r.text)
              : !readable(decodePresence)(r.text);
            if (!bad) continue; // valid by chance: not poison, not this test's business
            expected++;
            await log.publish(r.topic, "general", r.text);
          }
          const content = `after poison ${++sent}`;
          await log.publish(
            TOPICS.chatting.name,
            "general",
            encodeChatMessage({
              id: `g${sent}`,
              userId: "bob",
              displayName: "Bob",
              content,
              timestamp: new Date().toISOString(),
              room: "general",
              seq: 0,
            }),
          );
          await waitFor(() => alice.contents().includes(content), 5000, content);
          await waitFor(() => skipped() - before === expected, 5000, `${expected} skipped`);
        },
      ),
      fuzzParameters("gateway poison", 60),
    );
    assert.deepEqual(
      alice.contents(),
      Array.from({ length: sent }, (_, i) => `after poison ${i + 1}`),
    );
    assert.deepEqual(
      [...log.failures, ...logger.lines.filter((l) => /ERROR/.test(l))],
      [],
    );
  } finally {
    alice.close();
    await system.stop();
  }
});
