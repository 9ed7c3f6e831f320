// deno-lint-ignore-file no-console
/**
 * Fault 7: a client that stops reading and one whose TCP connection vanishes without a close.
 * The vanished one is dropped when keepalive pings go unanswered, and the other streams get
 * everything, undelayed. The stalled native gRPC stream is reported, not judged: Deno 2.9.3's
 * node:http2 accepts every write at once and gives the server no sign that a reader stopped
 * (writableLength stays 0, `bufferSize` grows for readers that keep up too, `drain` comes
 * anyway), so STREAM_QUEUE_LIMIT cannot see that queue and the runtime buffers it. The figures
 * show how much the gateway's memory grew for it. The gateway's memory moves with the whole load
 * (V8 grows its heap lazily), so it is not a verdict.
 */

import assert from "node:assert/strict";
import { newClient, waitFor } from "../helpers.ts";
import { freePort, kafkaDeployment, type Service, spawn, stopAll } from "../processes.ts";
import { processorsHolding, rssKiB, startRecorder } from "./harness.ts";

/**
 * A TCP relay to `target` that can go silent: it then stops passing bytes either way but keeps
 * both sockets open, as a network that dropped the peer does.
 */
function blackHoleRelay(target: number): { port: number; silence(): void; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: freePort() });
  let silent = false;
  const sockets: Deno.Conn[] = [];
  const forever = new Promise<never>(() => {});
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        if (silent) await forever;
        const n = await from.read(buffer);
        if (n === null || silent) {
          if (silent) await forever;
          break;
        }
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch {
      // A socket closed: the relay is being torn down.
    }
  };
  (async () => {
    for await (const inbound of listener) {
      sockets.push(inbound);
      try {
        const outbound = await Deno.connect({ hostname: "127.0.0.1", port: target });
        sockets.push(outbound);
        void pipe(inbound, outbound);
        void pipe(outbound, inbound);
      } catch {
        inbound.close();
      }
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    silence: () => silent = true,
    close: () => {
      for (const s of [listener, ...sockets]) {
        try {
          s.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

Deno.test("a reader that vanishes is dropped; one that stalls slows nobody; the others get everything", async () => {
  const deployment = kafkaDeployment();
  const a = deployment.gateway("gateway-a", {
    KEEPALIVE_TIME_MS: "1000",
    KEEPALIVE_TIMEOUT_MS: "1000",
    STREAM_QUEUE_LIMIT: "500",
  });
  const processor = deployment.processor("processor", { KAFKA_CLIENT_ID: "processor" });
  const relay = blackHoleRelay(Number(a.grpc.split(":")[1]));
  const readers: Service[] = [];
  const observer = newClient(a.grpc);
  try {
    await Promise.all([a.ready(), processorsHolding(["processor"])]);
    const stalled = spawn("stalled", "tests/faults/stream_clients.ts", {
      args: ["stall", a.grpc, "stan"],
    });
    const vanishing = spawn("vanishing", "tests/faults/stream_clients.ts", {
      args: ["read", `127.0.0.1:${relay.port}`, "vera"],
    });
    readers.push(stalled, vanishing);
    await Promise.all([stalled.waitForLine(/^open$/), vanishing.waitForLine(/^open$/)]);
    const online = async () => (await observer.listOnline()).map((u) => u.id).sort();
    await waitFor(async () => (await online()).join() === "stan,vera", 30_000, "both online");
    const baseline = rssKiB(a.service.process.pid);

    relay.silence();
    const recorder = startRecorder({
      streams: [
        { name: "r1", user: "ann", servers: [a.grpc] },
        { name: "r2", user: "bob", servers: [a.grpc] },
      ],
      senders: [{ user: "sam", server: a.grpc, perSecond: 100 }],
      seconds: 20,
      padding: 4096,
    });
    await recorder.ready();
    await waitFor(
      async () => !(await online()).some((u) => u === "vera"),
      60_000,
      "the vanished reader dropped",
    );
    let peak = 0;
    const watch = setInterval(() => peak = Math.max(peak, rssKiB(a.service.process.pid)), 200);
    const v = await recorder.verdict("slow and dead readers", 120_000).finally(() =>
      clearInterval(watch)
    );
    console.log(
      `FIGURES readers: gateway RSS ${Math.round(baseline / 1024)} MiB before, peak ${
        Math.round(peak / 1024)
      } MiB while 4 KiB messages went to a stalled stream`,
    );
    const cut = a.service.output.filter((l) => /Cutting a slow stream/.test(l))
      .map((l) => /user=(\S+)/.exec(l)?.[1]);
    console.log(
      `FIGURES readers: the stalled reader was ${
        cut.includes("stan") ? "cut at its queue limit" : "not cut (the runtime buffered for it)"
      }; streams cut as slow: ${cut.join(", ") || "none"}`,
    );
    assert.equal(v.lost, 0, "the other streams lost nothing");
    assert.equal(v.duplicated, 0);
    assert.equal(v.backwards, 0);
    assert.equal(v.reopened, 0, "no reader that keeps up was cut");
    assert.ok(v.maxPauseMs < 5000, `the stalled reader delayed nobody (${v.maxPauseMs} ms)`);
  } finally {
    relay.close();
    for (const r of readers) r.kill("SIGKILL");
    await Promise.all(readers.map((r) => r.exit()));
    await stopAll([a.service, processor]);
    observer.close();
  }
});
