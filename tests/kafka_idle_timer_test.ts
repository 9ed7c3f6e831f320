/**
 * The kafkajs idle timer fix (bus/kafka/idle_timer_fix.ts) still works: on a real, idle
 * connection to the cluster, kafkajs's request queues do not spin their 1 ms timer loop, and the
 * runtime prints no `TimeoutNegativeWarning`. Fails when a kafkajs upgrade moves the internals
 * the fix patches, or when the loop comes back for another reason; then see the upstream issues
 * named in the fix.
 */

import assert from "node:assert/strict";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
// The internal module the fix patches, to count how often a queue checks for pending requests.
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";
import { KafkaConnection } from "../bus/kafka/connection.ts";
import { fixKafkajsIdleTimerLoop } from "../bus/kafka/idle_timer_fix.ts";
import { kafkaNames } from "../bus/kafka/topics.ts";
import { silentLogger } from "../core/logger.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { waitFor } from "./helpers.ts";

const brokers = (await kafkaBrokers()).split(",");

Deno.test("an idle Kafka connection spins no timer loop and prints no negative-timeout warning", async () => {
  assert.ok(
    fixKafkajsIdleTimerLoop(),
    "kafkajs's RequestQueue still has the method the fix patches",
  );
  const proto = (RequestQueue as { prototype: { checkPendingRequests(): void } }).prototype;
  const check = proto.checkPendingRequests;
  let checks = 0;
  proto.checkPendingRequests = function (this: unknown) {
    checks++;
    return check.call(this);
  };
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.name);
  process.on("warning", onWarning);
  // One namespace for every run: its one topic is made once and reused.
  const names = kafkaNames("idle-timer-test");
  const connection = new KafkaConnection({
    brokers,
    clientId: "idle-timer-test",
    topics: [names.topics.heartbeats],
    logger: silentLogger,
  });
  try {
    await connection.start();
    await waitFor(() => connection.ready(), 30_000, "the connection");
    // A consumer fetching (every 250 ms) and a producer, as a gateway holds them, then idle.
    const subscription = await connection.subscribe({
      topics: [names.topics.heartbeats.name],
      from: "latest",
      handler: () => Promise.resolve(),
    });
    await connection.publish(names.topics.heartbeats.name, "k", "v");
    await sleep(1000);
    checks = 0;
    await sleep(2000);
    const perSecond = checks / 2;
    await subscription.close();
    // Answers to fetches, heartbeats and metadata requests check the queue a few dozen times a
    // second; the loop checks it every millisecond on each of the (five or more) connections.
    assert.ok(perSecond < 200, `pending requests checked ${perSecond} times a second while idle`);
    assert.deepEqual(warnings.filter((w) => w === "TimeoutNegativeWarning"), []);
  } finally {
    proto.checkPendingRequests = check;
    process.off("warning", onWarning);
    await connection.close();
  }
});
