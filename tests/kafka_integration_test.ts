/**
 * The whole service on the real three-broker cluster, each part its own
 * process: gateways (`main.ts` with BUS=kafka) and the processor (`processor.ts`).
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { connectUser, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { freePort, kafkaDeployment, spawn, stopAll } from "./processes.ts";

const brokers = await kafkaBrokers();

const HEARTBEAT_TIMEOUT_MS = 3000;

/**
 * The JSON records on a topic, read by kcat, an independent Kafka client. Other tests put records
 * that are not JSON on the same topics on purpose (the dead-letter tests): those are left out.
 */
async function kcatRecords(
  topic: string,
  from = "beginning",
  // deno-lint-ignore no-explicit-any
): Promise<{ key: string; value: any }[]> {
  // kcat -J prints one JSON object per record, the value under "payload".
  const out = await new Deno.Command("kcat", {
    args: [
      "-C",
      "-b",
      brokers.split(",")[0]!,
      "-t",
      topic,
      "-o",
      from,
      "-e",
      "-q",
      "-J",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`kcat failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).flatMap((l) => {
    const record = JSON.parse(l);
    try {
      return [{ key: record.key, value: JSON.parse(record.payload) }];
    } catch {
      return [];
    }
  });
}

Deno.test("two gateways and a processor: messages cross gateways, connections are recorded, a killed gateway's users go offline", async () => {
  const deployment = kafkaDeployment({ heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS });
  const processor = deployment.processor();
  const a = deployment.gateway("a");
  const b = deployment.gateway("b");
  const users: ReturnType<typeof connectUser>[] = [];
  try {
    await Promise.all([a.ready(), b.ready()]);
    const alice = connectUser(a.grpc, "alice", { presenceEvents: true });
    const bob = connectUser(b.grpc, "bob", { presenceEvents: true });
    users.push(alice, bob);
    await waitFor(
      async () => (await alice.client.listOnline()).map((u) => u.id).join() === "alice,bob",
      60_000,
      "alice and bob online in the registry, as seen from gateway a",
    );

    await alice.client.send("alice", "hello from a");
    await waitFor(() => bob.contents().includes("hello from a"), 30_000, "bob to receive");
    await bob.client.send("bob", "hello from b");
    await waitFor(() => alice.contents().length === 2 && bob.contents().length === 2, 30_000);
    assert.deepEqual(alice.contents(), ["hello from a", "hello from b"]);
    assert.deepEqual(bob.contents(), ["hello from a", "hello from b"]);
    assert.equal(bob.received.find((m) => m.content === "hello from a")!.id, "alice");

    // Connection events, as an independent client sees them on the topic.
    const events = (await kcatRecords("user-connections"))
      .map((r) => ({ key: r.key, value: r.value }))
      .filter((r) => r.value.server_id === a.serverId && r.value.user_id === "alice");
    assert.ok(events.length >= 1, "alice's connection event is on user-connections");
    const event = events[0]!;
    assert.equal(event.key, "alice", "keyed by user id");
    assert.equal(event.value.connected, true);
    assert.match(event.value.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    for (const field of ["user_id", "server_id", "connected", "timestamp"]) {
      assert.ok(field in event.value, `${field} is in the record`);
    }
    const chat = (await kcatRecords("chatting")).map((r) => r.value).find((v) =>
      v.content === "hello from a"
    );
    assert.equal(chat.user_id, "alice");
    assert.equal(typeof chat.id, "string");
    assert.match(chat.timestamp, /^\d{4}-\d\d-\d\dT/);

    // A gateway that dies without a word: its users go offline within the heartbeat timeout.
    const seenBefore = alice.received.length;
    // Bob's connection goes with the gateway; the gateway gets no chance to say he left.
    await b.service.crash();
    const killedAt = Date.now();
    await waitFor(
      () =>
        alice.received.slice(seenBefore).some((m) =>
          m.presence?.user?.id === "bob" && !m.presence.online
        ),
      HEARTBEAT_TIMEOUT_MS + 15_000,
      "bob to be marked offline",
    );
    const took = Date.now() - killedAt;
    assert.deepEqual((await alice.client.listOnline()).map((u) => u.id), ["alice"]);
    // deno-lint-ignore no-console
    console.log(`  bob marked offline ${took} ms after his gateway was killed`);
  } finally {
    for (const u of users) u.close();
    await stopAll([a.service, b.service, processor]);
  }
});

Deno.test("SIGTERM: a gateway publishes its disconnect events and exits cleanly; so does the processor", async () => {
  const deployment = kafkaDeployment();
  const processor = deployment.processor();
  const gw = deployment.gateway("graceful");
  try {
    await gw.ready();
    // Carol is the terminal client, as a user runs it: what she is told is what a user sees.
    const carol = spawn("carol", "client/main.ts", {
      args: ["carol", "--server", gw.grpc],
      env: { CHAT_PASSWORD: "a long password" },
      stdin: true,
    });
    try {
      await carol.waitForLine(/^Connected to server as user: carol$/, 60_000);
      // Her stream is announced on user-connections before the gateway is stopped.
      await waitFor(
        async () =>
          (await kcatRecords("user-connections")).some((r) =>
            r.value.server_id === gw.serverId && r.value.user_id === "carol" && r.value.connected
          ),
        60_000,
        "carol's connection event",
      );
      gw.service.kill("SIGTERM");
      const gwStatus = await gw.service.exit(20_000);
      assert.equal(gwStatus.code, 0, "gateway exit code");
      await carol.waitForLine(/^Disconnected: .*the server is shutting down/, 10_000);
    } finally {
      carol.kill("SIGKILL");
      await carol.exit();
    }
    const events = (await kcatRecords("user-connections")).map((r) => r.value).filter((
      v,
    ) => v.server_id === gw.serverId && v.user_id === "carol");
    assert.deepEqual(events.map((e) => e.connected).at(-1), false, "last event: disconnected");
    processor.kill("SIGTERM");
    assert.equal((await processor.exit(20_000)).code, 0, "processor exit code");
    for (const s of [gw.service, processor]) {
      assert.ok(!s.output.some((l) => /Unhandled/i.test(l)), `${s.name}: no unhandled rejection`);
    }
  } finally {
    await stopAll([gw.service, processor]);
  }
});

/** Forwards a local port to a broker once `open()` is called: Kafka "coming back" for a gateway. */
function brokerGate(target: { hostname: string; port: number }) {
  const port = freePort();
  let listener: Deno.Listener | undefined;
  const conns: Deno.Conn[] = [];
  return {
    port,
    open() {
      listener = Deno.listen({ hostname: "127.0.0.1", port });
      (async () => {
        for await (const conn of listener!) {
          conns.push(conn);
          Deno.connect(target).then((upstream) => {
            conns.push(upstream);
            conn.readable.pipeTo(upstream.writable).catch(() => {});
            upstream.readable.pipeTo(conn.writable).catch(() => {});
          }, () => conn.close());
        }
      })().catch(() => {});
    },
    close() {
      listener?.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

Deno.test("Kafka down when a gateway starts: it starts anyway, is not ready, refuses sends, then connects by itself", async () => {
  const [host, port] = brokers.split(",")[0]!.split(":");
  const gate = brokerGate({ hostname: host!, port: Number(port) });
  const deployment = kafkaDeployment();
  const gw = deployment.gateway("late-kafka", { KAFKA_BROKERS: `127.0.0.1:${gate.port}` });
  // A processor takes the message this test sends, so it cannot turn up in a later test.
  const processor = deployment.processor();
  try {
    // Listening, and saying it is not ready.
    await waitFor(async () => await gw.readyz() === 503, 60_000, "the gateway to listen");
    const dan = connectUser(gw.grpc, "dan");
    try {
      await assert.rejects(
        dan.client.send("dan", "anyone?"),
        (err: { code: number; details: string }) => {
          assert.equal(err.code, status.UNAVAILABLE);
          assert.match(err.details, /Kafka is unavailable/);
          return true;
        },
      );
      gate.open();
      await waitFor(
        async () => await gw.readyz() === 200,
        90_000,
        "the gateway to connect by itself",
      );
      await dan.client.send("dan", "now it works");
      await waitFor(
        () => dan.received.some((m) => m.content === "now it works"),
        60_000,
        "the gateway to deliver the message from the room log",
      );
      assert.equal(gw.service.process.pid > 0, true);
      assert.ok(!gw.service.output.some((l) => /Unhandled/i.test(l)), "no unhandled rejection");
    } finally {
      dan.close();
    }
  } finally {
    await stopAll([gw.service, processor]);
    gate.close();
  }
});
