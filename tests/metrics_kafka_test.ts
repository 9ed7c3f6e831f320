/**
 * `/metrics` of real processes on the real three-broker cluster: two gateways (`main.ts`,
 * BUS=kafka) and a processor (`processor.ts`, on its METRICS_PORT). A chat goes through them
 * (sign-ins, native and gRPC-Web streams, sends, a refused send) and the scrapes show it: accepted
 * +N, deliveries +N × streams, refused by code, sign-in outcomes, streams by transport, Kafka
 * produce times and consumer lag, store times. Each exposition passes `promtool check metrics`.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Broadcast } from "../protocol/gen/chat_pb.ts";
import { abortableFetch } from "./abortable_fetch.ts";
import { closeClients, connectUser, newClient, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { freePort, kafkaDeployment, stopAll } from "./processes.ts";
import { promtoolCheckMetrics, type Sample, scrape, total } from "./exposition.ts";

await kafkaBrokers();

Deno.test("metrics of gateways and a processor on Kafka move with a chat", async () => {
  const deployment = kafkaDeployment({ auth: "on" });
  const metricsPort = freePort();
  const processor = deployment.processor("processor", { METRICS_PORT: String(metricsPort) });
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  const abort = new AbortController();
  const http = Deno.createHttpClient({});
  let webStream: Promise<void> | undefined;
  try {
    await processor.waitForLine(/Serving metrics/, 60_000);
    await Promise.all([a.ready(), b.ready()]);
    const urls = {
      a: `${a.http}/metrics`,
      b: `${b.http}/metrics`,
      processor: `http://127.0.0.1:${metricsPort}/metrics`,
    };
    const scrapeAll = async () => ({
      a: (await scrape(urls.a)).samples,
      b: (await scrape(urls.b)).samples,
      processor: (await scrape(urls.processor)).samples,
    });
    const before = await scrapeAll();

    // Sign-ins: two accounts created on a, one on b, one signed in again, one wrong password.
    const alice = newClient(a.grpc);
    const bob = newClient(a.grpc);
    const carol = newClient(b.grpc);
    assert.equal((await alice.signIn("alice", "alice-password-1")).created, true);
    assert.equal((await bob.signIn("bob", "bob-password-12")).created, true);
    assert.equal((await carol.signIn("carol", "carol-password-1")).created, true);
    assert.equal((await newClient(b.grpc).signIn("carol", "carol-password-1")).created, false);
    await assert.rejects(
      newClient(b.grpc).signIn("carol", "wrong-password-1"),
      (err: { code: number }) => err.code === status.UNAUTHENTICATED,
    );

    // Streams: alice and bob natively on a, carol natively on b, and carol's page (gRPC-Web) on b.
    const users = [
      connectUser(a.grpc, "alice", { client: alice }),
      connectUser(a.grpc, "bob", { client: bob }),
      connectUser(b.grpc, "carol", { client: carol }),
    ];
    const web = createClient(
      Broadcast,
      createGrpcWebTransport({
        baseUrl: b.http,
        useBinaryFormat: true,
        fetch: abortableFetch((input, init) => fetch(input, { ...init, client: http })),
      }),
    );
    const webGot: string[] = [];
    webStream = (async () => {
      for await (
        const m of web.createStream({ user: { id: "carol" } }, {
          headers: { authorization: `Bearer ${carol.token}` },
          signal: abort.signal,
        })
      ) if (m.content) webGot.push(m.content);
    })().catch((err) => {
      if (!abort.signal.aborted) throw err;
    });
    await waitFor(
      async () => {
        const { samples } = await scrape(urls.b);
        return total(samples, "chat_streams_open", { transport: "grpc_web" }) === 1 &&
          total(samples, "chat_streams_open", { transport: "native" }) === 1;
      },
      30_000,
      "carol's native and gRPC-Web streams counted on b",
    );
    await waitFor(
      async () => {
        const { samples } = await scrape(urls.a);
        return total(samples, "chat_streams_open", { transport: "native" }) === 2;
      },
      30_000,
      "alice's and bob's streams counted on a",
    );
    // Every stream of the default room on both gateways gets a message sent now.
    await waitFor(
      async () => (await alice.listOnline()).map((u) => u.id).join() === "alice,bob,carol",
      60_000,
      "everyone online",
    );

    const N = 5;
    for (let i = 0; i < N; i++) await alice.send("alice", `hello ${i}`);
    await assert.rejects(
      alice.send("alice", "to nowhere", { room: "no-such-room" }),
      (err: { code: number }) => err.code === status.NOT_FOUND,
    );
    await assert.rejects(
      carol.send("carol", ""),
      (err: { code: number }) => err.code === status.INVALID_ARGUMENT,
    );
    await waitFor(
      () => users.every((u) => u.contents().length === N) && webGot.length === N,
      30_000,
      "every stream to get the messages",
    );

    // Counters are read once the deliveries' metrics are in (a scrape may come first).
    let after = await scrapeAll();
    const moved = (at: keyof typeof after, name: string, labels: Record<string, string> = {}) =>
      total(after[at], name, labels) - total(before[at], name, labels);
    await waitFor(
      async () => {
        after = await scrapeAll();
        return moved("a", "chat_deliveries_total") === N * 2 &&
          moved("b", "chat_deliveries_total") === N * 2;
      },
      10_000,
      "deliveries counted on both gateways",
    );

    assert.equal(moved("a", "chat_messages_accepted_total"), N);
    assert.equal(moved("a", "chat_messages_refused_total", { code: "not_found" }), 1);
    assert.equal(moved("b", "chat_messages_refused_total", { code: "invalid_argument" }), 1);
    assert.equal(moved("b", "chat_messages_accepted_total"), 0);
    // N messages, each to the 2 streams of each gateway, and one latency per message.
    assert.equal(moved("a", "chat_deliveries_total"), N * 2);
    assert.equal(moved("b", "chat_deliveries_total"), N * 2);
    assert.equal(moved("a", "chat_delivery_latency_seconds_count"), N);
    assert.equal(moved("b", "chat_delivery_latency_seconds_count"), N);
    assert.equal(moved("a", "chat_sign_ins_total", { outcome: "created" }), 2);
    assert.equal(moved("b", "chat_sign_ins_total", { outcome: "created" }), 1);
    assert.equal(moved("b", "chat_sign_ins_total", { outcome: "signed_in" }), 1);
    assert.equal(moved("b", "chat_sign_ins_total", { outcome: "unauthenticated" }), 1);
    assert.equal(total(after.b, "chat_streams_open", { transport: "grpc_web" }), 1);
    assert.ok(total(after.b, "chat_connections_open", { transport: "grpc_web" }) >= 1);
    assert.ok(total(after.a, "chat_connections_open", { transport: "native" }) >= 1);

    // Kafka: gateway a produced the messages to `chatting`, which every gateway follows itself.
    assert.ok(moved("a", "chat_kafka_produce_duration_seconds_count", { topic: "chatting" }) >= 1);
    // Consumer lag per topic and partition: the processor's group on `chatting`, and each
    // gateway's own consumers on `chatting` and `chat-deliveries`.
    const lag = (samples: Sample[], topic: string) =>
      samples.filter((s) => s.name === "chat_kafka_consumer_lag" && s.labels.topic === topic);
    const processorLag = lag(after.processor, "chatting");
    assert.ok(processorLag.length >= 1, "the processor reports its lag on chatting");
    assert.ok(processorLag.every((s) => s.labels.group === "chatting-processor-group"));
    assert.ok(processorLag.every((s) => /^\d+$/.test(s.labels.partition ?? "")));
    for (const at of ["a", "b"] as const) {
      const own = lag(after[at], "chatting");
      assert.ok(own.length >= 1, `gateway ${at} reports its lag on chatting, which it follows`);
      // `chat-deliveries` carries what changes in rooms; a gateway that read none has no lag yet.
      for (const s of [...own, ...lag(after[at], "chat-deliveries")]) {
        assert.ok(s.labels.group === "private" && s.value >= 0, JSON.stringify(s));
      }
    }
    // The store: the processor appended the messages (a run per call), the gateways read
    // accounts and rooms.
    assert.ok(
      moved("processor", "chat_store_duration_seconds_count", {
        operation: "appendAll",
        outcome: "ok",
      }) >= 1,
    );
    assert.ok(moved("a", "chat_store_duration_seconds_count", { operation: "getAccount" }) >= 1);
    for (const at of ["a", "b", "processor"] as const) {
      assert.ok(total(after[at], "process_resident_memory_bytes") > 0, `${at}: memory`);
      assert.ok(
        after[at].some((s) => s.name === "nodejs_eventloop_lag_p99_seconds"),
        `${at}: event-loop delay`,
      );
    }
    // Only gateways count the chat's sends and streams; only processors judge gateways.
    assert.equal(total(after.processor, "chat_messages_accepted_total"), 0);
    assert.equal(total(after.processor, "chat_gateway_dead_verdicts_total"), 0);

    for (const url of Object.values(urls)) {
      await promtoolCheckMetrics((await scrape(url)).text);
    }
    for (const u of users) u.close();
  } finally {
    abort.abort();
    await webStream;
    http.close();
    closeClients();
    await stopAll([a.service, b.service, processor]);
  }
});
