/**
 * core/metrics.ts and its wiring, in one process: each method moves its metric, a gateway on the
 * memory bus counts a chat (accepted, refused by code, deliveries per stream, sign-ins, streams
 * and store calls) and serves it at `/metrics`, and with METRICS=off nothing is counted or served.
 * tests/metrics_kafka_test.ts does the same through real processes on the Kafka cluster.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { silentLogger } from "../core/logger.ts";
import { createMetrics, metricsResponse, NO_METRICS, serveMetrics } from "../core/metrics.ts";
import { MemoryBus } from "../bus/memory_bus.ts";
import { createAuth } from "../server/auth.ts";
import { countedChat } from "../server/chat_metrics.ts";
import type { ChatService } from "../server/chat_service.ts";
import { createGateway } from "../server/gateway.ts";
import { createProcessor } from "../processor/processor.ts";
import { MemoryStore } from "../store/memory_store.ts";
import { measuredStore } from "../store/measured_store.ts";
import { closeClients, connectUser, newClient, testConfig, waitFor } from "./helpers.ts";
import { parseExposition, promtoolCheckMetrics, scrape, total } from "./exposition.ts";

// Made once, outside the tests: prom-client's default metrics start an event-loop monitor that
// lives as long as the process, as it does in a gateway.
const counted = createMetrics(true);
const gatewayMetrics = createMetrics(true);

Deno.test("each method moves its metric, and the exposition passes promtool", async () => {
  const before = parseExposition((await counted.render())!);
  counted.streamOpened("native");
  counted.streamOpened("grpc_web");
  counted.streamOpened("grpc_web");
  counted.streamClosed("grpc_web");
  counted.watchConnections("native", () => 7);
  counted.sendAccepted();
  counted.sendRefused("resource_exhausted");
  counted.delivered(3, new Date(Date.now() - 250).toISOString());
  counted.delivered(0, new Date().toISOString());
  counted.streamCut();
  counted.watchQueues(() => ({ deepest: 42, crowded: 2 }));
  counted.produced("chatting", 0.004, true);
  counted.produced("chatting", 0.5, false);
  counted.consumerLag("chatting-processor-group", "chatting", 1, 5);
  counted.storeTimer("append")(true);
  counted.storeTimer("getRoom")(false);
  counted.gatewayDeclaredDead();
  counted.signIn("created");
  counted.signIn("unauthenticated");
  const text = (await counted.render())!;
  const after = parseExposition(text);
  const moved = (name: string, labels: Record<string, string> = {}) =>
    total(after, name, labels) - total(before, name, labels);

  assert.equal(total(after, "chat_streams_open", { transport: "native" }), 1);
  assert.equal(total(after, "chat_streams_open", { transport: "grpc_web" }), 1);
  assert.equal(total(after, "chat_connections_open", { transport: "native" }), 7);
  assert.equal(moved("chat_messages_accepted_total"), 1);
  assert.equal(moved("chat_messages_refused_total", { code: "resource_exhausted" }), 1);
  assert.equal(moved("chat_deliveries_total"), 3);
  // One observation per message, not per stream, and none for a message no stream got.
  assert.equal(moved("chat_delivery_latency_seconds_count"), 1);
  assert.equal(moved("chat_delivery_latency_seconds_bucket", { le: "0.1" }), 0);
  assert.equal(moved("chat_delivery_latency_seconds_bucket", { le: "0.5" }), 1);
  assert.equal(moved("chat_streams_cut_total"), 1);
  assert.equal(total(after, "chat_stream_queue_depth_max"), 42);
  assert.equal(total(after, "chat_streams_crowded"), 2);
  assert.equal(moved("chat_kafka_produce_duration_seconds_count", { topic: "chatting" }), 2);
  assert.equal(moved("chat_kafka_produce_errors_total", { topic: "chatting" }), 1);
  assert.equal(
    total(after, "chat_kafka_consumer_lag", {
      group: "chatting-processor-group",
      topic: "chatting",
      partition: "1",
    }),
    5,
  );
  assert.equal(
    moved("chat_store_duration_seconds_count", { operation: "append", outcome: "ok" }),
    1,
  );
  assert.equal(
    moved("chat_store_duration_seconds_count", { operation: "getRoom", outcome: "error" }),
    1,
  );
  assert.equal(moved("chat_gateway_dead_verdicts_total"), 1);
  assert.equal(moved("chat_sign_ins_total", { outcome: "created" }), 1);
  assert.equal(moved("chat_sign_ins_total", { outcome: "unauthenticated" }), 1);
  // The process: memory, CPU and event-loop delay, from prom-client's default metrics.
  for (
    const name of [
      "process_resident_memory_bytes",
      "process_cpu_seconds_total",
      "nodejs_eventloop_lag_p99_seconds",
      "nodejs_heap_size_used_bytes",
    ]
  ) {
    assert.ok(after.some((s) => s.name === name), `${name} is exposed`);
  }
  await promtoolCheckMetrics(text);
});

Deno.test("METRICS=off: nothing is wrapped, counted or served", async () => {
  assert.equal(createMetrics(false), NO_METRICS);
  const response = await metricsResponse(NO_METRICS, new Request("http://gw/metrics"));
  assert.equal(response?.status, 404);
  await response?.body?.cancel();
  assert.equal(await metricsResponse(NO_METRICS, new Request("http://gw/readyz")), undefined);
  assert.equal(await NO_METRICS.render(), undefined);
  // The chat and the store are the very objects given: the hot path pays nothing for metrics.
  const service = {} as ChatService;
  assert.equal(countedChat(service, NO_METRICS, "native"), service);
  const store = new MemoryStore();
  assert.equal(measuredStore(store, NO_METRICS), store);
});

Deno.test("the processor's metrics port serves GET /metrics and nothing else", async () => {
  const server = await serveMetrics(counted, "127.0.0.1", 0);
  try {
    const { samples } = await scrape(`http://127.0.0.1:${server.port}/metrics`);
    assert.ok(samples.some((s) => s.name === "chat_messages_accepted_total"));
    const other = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(other.status, 404);
    await other.body?.cancel();
    const post = await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("an embedded gateway counts a chat and serves it on its HTTP port", async () => {
  const metrics = gatewayMetrics;
  const config = testConfig({ auth: "on" });
  const bus = new MemoryBus({ logger: silentLogger, retryDelayMs: 20 });
  const store = measuredStore(new MemoryStore(), metrics);
  const processor = createProcessor({ bus, store, logger: silentLogger, config, metrics });
  const auth = createAuth({
    mode: "on",
    secret: crypto.getRandomValues(new Uint8Array(32)),
    store,
    logger: silentLogger,
    tokenTtlSeconds: 3600,
  });
  const gateway = createGateway({ config, bus, store, auth, logger: silentLogger, metrics });
  await bus.start();
  await processor.start();
  await gateway.start();
  const url = `http://127.0.0.1:${gateway.httpPort}/metrics`;
  try {
    const before = (await scrape(url)).samples;
    const address = `127.0.0.1:${gateway.grpcPort}`;
    const aliceClient = newClient(address);
    const bobClient = newClient(address);
    assert.equal((await aliceClient.signIn("alice", "alice-password-1")).created, true);
    assert.equal((await bobClient.signIn("bob", "bob-password-12")).created, true);
    assert.equal((await bobClient.signIn("bob", "bob-password-12")).created, false);
    await assert.rejects(
      newClient(address).signIn("bob", "wrong-password-1"),
      (err: { code: number }) => err.code === status.UNAUTHENTICATED,
    );
    const alice = connectUser(address, "alice", { client: aliceClient });
    const bob = connectUser(address, "bob", { client: bobClient });
    await waitFor(
      async () => {
        const { samples } = await scrape(url);
        return total(samples, "chat_streams_open", { transport: "native" }) === 2;
      },
      10_000,
      "two native streams counted",
    );
    for (let i = 0; i < 3; i++) await aliceClient.send("alice", `hello ${i}`);
    await assert.rejects(
      aliceClient.send("alice", "to nowhere", { room: "no-such-room" }),
      (err: { code: number }) => err.code === status.NOT_FOUND,
    );
    await waitFor(() => bob.contents().length === 3 && alice.contents().length === 3, 10_000);

    const { text, samples } = await scrape(url);
    const moved = (name: string, labels: Record<string, string> = {}) =>
      total(samples, name, labels) - total(before, name, labels);
    assert.equal(moved("chat_messages_accepted_total"), 3);
    assert.equal(moved("chat_messages_refused_total", { code: "not_found" }), 1);
    assert.equal(moved("chat_deliveries_total"), 3 * 2, "3 messages, each to 2 streams");
    assert.equal(moved("chat_delivery_latency_seconds_count"), 3);
    assert.equal(moved("chat_sign_ins_total", { outcome: "created" }), 2);
    assert.equal(moved("chat_sign_ins_total", { outcome: "signed_in" }), 1);
    assert.equal(moved("chat_sign_ins_total", { outcome: "unauthenticated" }), 1);
    // The processor stores a run of messages in one call: 3 messages, 1 to 3 calls.
    assert.ok(moved("chat_store_duration_seconds_count", { operation: "appendAll" }) >= 1);
    // grpc-js clients of one address share their connection.
    assert.ok(total(samples, "chat_connections_open", { transport: "native" }) >= 1);
    await promtoolCheckMetrics(text);

    alice.close();
    bob.close();
    await waitFor(
      async () => {
        const { samples } = await scrape(url);
        return total(samples, "chat_streams_open", { transport: "native" }) === 0;
      },
      10_000,
      "the closed streams no longer counted",
    );
  } finally {
    await gateway.stop();
    await processor.stop();
    await bus.close();
    await store.close();
    closeClients();
  }
});

Deno.test("a partition that moved to another member stops reporting its lag here", async () => {
  const lags = async () =>
    (await counted.render())!.split("\n").filter((line) =>
      line.startsWith('chat_kafka_consumer_lag{group="moving"')
    );
  counted.consumerLag("moving", "chatting", 0, 7);
  counted.consumerLag("moving", "chatting", 1, 3);
  counted.consumerLag("other", "chatting", 0, 5);
  assert.equal((await lags()).length, 2);
  counted.consumerAssigned("moving", { chatting: [1] });
  assert.deepEqual(await lags(), [
    'chat_kafka_consumer_lag{group="moving",topic="chatting",partition="1"} 3',
  ]);
  assert.ok(
    (await counted.render())!.includes(
      'chat_kafka_consumer_lag{group="other",topic="chatting",partition="0"} 5',
    ),
    "another group's lag stays",
  );
});
