/**
 * The Kafka outbox's order guarantee under failure, against a producer whose requests the test
 * settles by hand: a record queued behind a request that fails must never be written before the
 * failed one is sent again. (A fault run lost an acknowledged message that way: a processor's
 * delivery of seq 1412 failed while 1413 waited behind it, 1413 was written, and the gateways
 * then dropped the resent 1412 as a repeat.)
 */

import assert from "node:assert/strict";
import type { Producer, RecordMetadata, TopicMessages } from "kafkajs";
import { ChatError } from "../core/errors.ts";
import { NO_METRICS } from "../core/metrics.ts";
import { Outbox } from "../bus/kafka/outbox.ts";

interface Request {
  values: string[];
  succeed(): void;
  /** Fails it with `error`, by default a lost connection. */
  fail(error?: Error): void;
}

/** A producer that records each `sendBatch` and leaves it pending until the test settles it. */
function handProducer(): { producer: Producer; requests: Request[]; written: string[] } {
  const requests: Request[] = [];
  const written: string[] = [];
  let offset = 0;
  const producer = {
    sendBatch({ topicMessages }: { topicMessages: TopicMessages[] }): Promise<RecordMetadata[]> {
      const values = topicMessages.flatMap((t) => t.messages.map((m) => String(m.value)));
      return new Promise((resolve, reject) => {
        requests.push({
          values,
          succeed() {
            written.push(...values);
            const baseOffset = String(offset);
            offset += values.length;
            resolve(topicMessages.map((t) => ({
              topicName: t.topic,
              partition: 0,
              errorCode: 0,
              baseOffset,
            })));
          },
          fail: (error = new Error("Connection error: connect ECONNREFUSED")) => reject(error),
        });
      });
    },
  } as unknown as Producer;
  return { producer, requests, written };
}

/** An outbox over `producer`, or over whichever producer `producer()` names at each request. */
function outboxOver(
  producer: Producer | undefined | (() => Producer | undefined),
  publishTimeoutMs = 60_000,
  inDoubt: (producer: Producer, reason: string) => void = () => {},
): Outbox {
  return new Outbox({
    producer: typeof producer === "function" ? producer : () => producer,
    publishTimeoutMs,
    unavailable: (topic, cause) =>
      new ChatError("unavailable", `Cannot publish to ${topic}: Kafka is unavailable`, { cause }),
    suspect: () => {},
    inDoubt,
    metrics: NO_METRICS,
  });
}

/** Settles `promise` into what became of it, for comparing a run's outcomes at once. */
function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(() => "written", (err: ChatError) => `refused ${err.code}`);
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("a record queued behind a failed request of its partition fails unsent", async () => {
  const { producer, requests, written } = handProducer();
  // After the failure the connection puts a new producer in: here, a second one.
  const next = handProducer();
  let current = producer;
  const outbox = outboxOver(() => current, 60_000, () => current = next.producer);
  const first = outcome(outbox.send("chat-deliveries", 0, "general", "seq 1412", true));
  const second = outcome(outbox.send("chat-deliveries", 0, "general", "seq 1413", true));
  await tick();
  assert.deepEqual(requests.map((r) => r.values), [["seq 1412"]], "one request at a time");
  requests[0]!.fail();
  assert.deepEqual(await Promise.all([first, second]), [
    "refused unavailable",
    "refused unavailable",
  ]);
  await tick();
  assert.equal(requests.length, 1, "the record behind the failed one was never sent");
  assert.deepEqual(written, []);

  // Sent again in order by their caller, both are written, in order.
  const again = [
    outcome(outbox.send("chat-deliveries", 0, "general", "seq 1412", true)),
    outcome(outbox.send("chat-deliveries", 0, "general", "seq 1413", true)),
  ];
  await tick();
  next.requests[0]!.succeed();
  await tick();
  next.requests[1]!.succeed();
  assert.deepEqual(await Promise.all(again), ["written", "written"]);
  assert.deepEqual(next.written, ["seq 1412", "seq 1413"]);
});

Deno.test("a request that times out and then fails fails what queued behind it", async () => {
  const { producer, requests, written } = handProducer();
  const outbox = outboxOver(producer, 20);
  const first = outcome(outbox.send("chat-deliveries", 0, "general", "seq 1", true));
  assert.equal(await first, "refused unavailable", "the caller hears of the timeout");
  // Queued while kafkajs still retries the timed-out request.
  const second = outcome(outbox.send("chat-deliveries", 0, "general", "seq 2", true));
  await tick();
  assert.equal(requests.length, 1, "the lane waits for the timed-out request to end");
  requests[0]!.fail();
  assert.equal(await second, "refused unavailable");
  await tick();
  assert.equal(requests.length, 1);
  assert.deepEqual(written, []);
});

Deno.test("a request that times out but is written lets what queued behind it go", async () => {
  const { producer, requests, written } = handProducer();
  const outbox = outboxOver(producer, 20);
  assert.equal(await outcome(outbox.send("t", 0, "k", "seq 1", true)), "refused unavailable");
  const second = outcome(outbox.send("t", 0, "k", "seq 2", true));
  requests[0]!.succeed();
  await tick();
  requests[1]!.succeed();
  assert.equal(await second, "written");
  assert.deepEqual(written, ["seq 1", "seq 2"], "written in the order they were handed in");
});

Deno.test("without a producer an ordered lane refuses everything queued", async () => {
  const outbox = outboxOver(undefined);
  const outcomes = await Promise.all(
    ["a", "b", "c"].map((v) => outcome(outbox.send("t", 0, "k", v, true))),
  );
  assert.deepEqual(outcomes, Array(3).fill("refused unavailable"));
});

Deno.test("an unordered lane does not hold records behind a failed request", async () => {
  const { producer, requests, written } = handProducer();
  const outbox = outboxOver(producer);
  const first = outcome(outbox.send("gateway-heartbeats", 0, "a", "beat 1", false));
  const second = outcome(outbox.send("gateway-heartbeats", 0, "a", "beat 2", false));
  await tick();
  assert.equal(requests.length, 2, "each goes at once");
  requests[0]!.fail();
  requests[1]!.succeed();
  assert.deepEqual(await Promise.all([first, second]), ["refused unavailable", "written"]);
  assert.deepEqual(written, ["beat 2"]);
});

Deno.test("a failed request keeps its producer from that partition until a new one is there", async () => {
  const old = handProducer();
  const fresh = handProducer();
  let current: Producer = old.producer;
  const doubted: [Producer, string][] = [];
  // The producer follows `current`, as the connection's does.
  const over = new Outbox({
    producer: () => current,
    publishTimeoutMs: 60_000,
    unavailable: (topic, cause) =>
      new ChatError("unavailable", `Cannot publish to ${topic}: Kafka is unavailable`, { cause }),
    suspect: () => {},
    inDoubt: (p, reason) => doubted.push([p, reason]),
    metrics: NO_METRICS,
  });
  const written = outcome(over.send("chatting", 0, "general", "m1", true));
  await tick();
  old.requests[0]!.succeed();
  assert.equal(await written, "written");
  assert.deepEqual(doubted, [], "a written request leaves the producer alone");

  // The broker may have written it, the client cannot tell: the next request would be numbered
  // as if it had not been.
  const failed = outcome(over.send("chatting", 0, "general", "m2", true));
  await tick();
  old.requests[1]!.fail(new Error("Connection error: socket hang up"));
  assert.equal(await failed, "refused unavailable");
  assert.equal(doubted.length, 1);
  assert.equal(doubted[0]![0], old.producer, "the producer that sent it");
  assert.match(doubted[0]![1], /socket hang up/);
  await tick();
  assert.equal(
    await outcome(over.send("chatting", 0, "general", "m3", true)),
    "refused unavailable",
  );
  assert.equal(old.requests.length, 2, "nothing more to that partition through it");

  // Another partition's numbering is sound: it keeps writing through the old producer.
  const elsewhere = outcome(over.send("chatting", 1, "room-b", "m4", true));
  await tick();
  assert.deepEqual(old.requests.map((r) => r.values), [["m1"], ["m2"], ["m4"]]);
  old.requests[2]!.fail();
  assert.equal(await elsewhere, "refused unavailable");

  // A new producer took over: the partition writes again.
  current = fresh.producer;
  const again = outcome(over.send("chatting", 0, "general", "m5", true));
  await tick();
  assert.deepEqual(fresh.requests.map((r) => r.values), [["m5"]]);
  fresh.requests[0]!.succeed();
  assert.equal(await again, "written");
});

Deno.test("a request that timed out is in doubt once kafkajs gives up on it, not before", async () => {
  const { producer, requests } = handProducer();
  const doubted: Producer[] = [];
  const outbox = outboxOver(producer, 20, (p) => doubted.push(p));
  const late = outcome(outbox.send("chatting", 0, "general", "m1", true));
  await tick();
  assert.equal(await late, "refused unavailable", "its caller hears at the timeout");
  assert.deepEqual(doubted, [], "kafkajs is still trying");
  requests[0]!.fail();
  await tick();
  assert.deepEqual(doubted, [producer]);
});

Deno.test("settled: resolves once kafkajs is done with every request of the producer", async () => {
  const { producer, requests } = handProducer();
  const outbox = outboxOver(producer, 20);
  await outbox.settled(producer); // none out
  const one = outcome(outbox.send("chatting", 0, "general", "m1", true));
  const other = outcome(outbox.send("chatting", 1, "general", "m2", true));
  await tick();
  let settled = false;
  const waiting = outbox.settled(producer).then(() => settled = true);
  assert.equal(await one, "refused unavailable", "timed out, still running");
  requests[0]!.succeed();
  await tick();
  assert.equal(settled, false, "the other partition's request is still out");
  requests[1]!.fail();
  await waiting;
  assert.equal(await other, "refused unavailable");
});
