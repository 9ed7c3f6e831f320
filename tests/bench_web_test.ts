/**
 * The benchmark's browser-path instrument (bench/web_load.ts, bench/web_floor.ts): gRPC-Web
 * responses cut into frames however their chunks fall, trailers read, and subscribers and a
 * publisher over gRPC-Web against the Deno.serve and node:http floors, counted as the native ones
 * are.
 */

import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { newRun, publish, Subscribers } from "../bench/load.ts";
import { verdicts } from "../bench/report.ts";
import type { Entry } from "../bench/scenarios.ts";
import { serveFloor, serveNodeFloor } from "../bench/web_floor.ts";
import { FrameReader, readTrailers, WebSender } from "../bench/web_load.ts";
import { concat } from "../server/bytes.ts";
import { envelope, TRAILER_FLAG } from "../server/web_wire.ts";

const bytes = (...values: number[]) => Uint8Array.from(values);

Deno.test("a gRPC-Web body is cut into its messages and trailers however its chunks fall", () => {
  const body = concat([
    envelope(bytes(1, 2, 3)),
    envelope(bytes()),
    envelope(bytes(4)),
    envelope(
      new TextEncoder().encode("grpc-status: 8\r\ngrpc-message: behind%20by 1000\r\n"),
      0x80,
    ),
    envelope(bytes(9)),
  ]);
  for (const cuts of [[], [1], [4, 5, 6], [2, 9, 13, 20], [body.length - 1]]) {
    const reader = new FrameReader();
    const messages: number[][] = [];
    let trailers: string | undefined;
    const edges = [0, ...cuts, body.length];
    for (let i = 0; i + 1 < edges.length && trailers === undefined; i++) {
      trailers = reader.push(body.subarray(edges[i], edges[i + 1]), (m) => messages.push([...m]));
    }
    assert.deepEqual(messages, [[1, 2, 3], [], [4]], `cut at ${cuts}`);
    assert.deepEqual(readTrailers(trailers!), { code: 8, details: "behind by 1000" });
  }
  assert.equal(readTrailers("x: y\r\n").code, 2, "no status: UNKNOWN");
  assert.equal(TRAILER_FLAG, 0x80);
});

/** The two browser-path floors, each listening on a free port, with a way to stop it. */
const FLOORS = {
  "Deno.serve": () => {
    const floor = serveFloor(0);
    return Promise.resolve({ port: floor.addr.port, stop: () => floor.shutdown() });
  },
  "node:http": async () => {
    const floor = await serveNodeFloor(0);
    return {
      port: (floor.address() as AddressInfo).port,
      stop: () => {
        floor.closeAllConnections();
        return new Promise<void>((resolve) => floor.close(() => resolve()));
      },
    };
  },
};

for (const [name, start] of Object.entries(FLOORS)) {
  Deno.test(`subscribers and a publisher over gRPC-Web against the ${name} floor`, async () => {
    const floor = await start();
    const url = `http://127.0.0.1:${floor.port}`;
    const subscribers = new Subscribers({
      addresses: [url],
      streams: 5,
      first: 0,
      userPrefix: "web-",
    });
    try {
      await subscribers.open();
      for (let i = 0; i < 100 && subscribers.opened < 5; i++) await sleep(10);
      assert.equal(subscribers.opened, 5);
      const run = newRun();
      subscribers.phase(run, 10);
      const sent = await publish(
        {
          address: url,
          userId: "sender",
          run,
          messages: 10,
          bytes: 100,
          window: 3,
          timeoutMs: 5000,
        },
        new WebSender(url),
      );
      assert.deepEqual([sent.acked, sent.failed], [10, 0]);
      await subscribers.complete(1000, 5000);
      const stats = subscribers.stats();
      assert.deepEqual([stats.delivered, stats.lost, stats.duplicated], [50, 0, 0]);
    } finally {
      subscribers.close();
      await floor.stop();
    }
    assert.equal(subscribers.ends.length, 5, "every stream ended by its cancellation");
  });
}

Deno.test("the browser path's targets: at most 1.3x Deno.serve's CPU per delivery, below native gRPC's", () => {
  const entry = (scenario: string, details: Record<string, unknown>): Entry => ({
    scenario,
    mode: "embedded",
    streams: 1000,
    gateways: 1,
    rate: 20,
    bytes: 100,
    seconds: 5,
    deliveries_per_s: 30_000,
    e2e_ms: null,
    publish_ms: null,
    lost: 0,
    duplicated: 0,
    kafka_floor_e2e_ms: null,
    rss_mib: {},
    cpu_cores: {},
    details,
  });
  const web = (gateway: number, floor: number) =>
    entry("web-fanout", {
      cpu_us_per_delivery_gateway: gateway,
      cpu_us_per_delivery_floor: floor,
      ratio: gateway / floor,
    });
  const passes = (entries: Entry[]) => verdicts(entries).map((v) => v.pass);
  assert.deepEqual(passes([web(13, 10)]), [true], "no native figure in the run: one verdict");
  assert.deepEqual(passes([web(13.1, 10)]), [false]);
  const native = entry("grpc-floor", { cpu_us_per_delivery_gateway: 16.7 });
  assert.deepEqual(passes([native, web(13, 10)]).slice(-2), [true, true]);
  assert.deepEqual(passes([native, web(17, 14)]).slice(-2), [true, false]);
  const metrics = entry("metrics", { cpu_us_per_delivery_off: 12 });
  assert.deepEqual(passes([metrics, web(13, 10)]).slice(-2), [true, false], "metrics off, else");
  assert.match(verdicts([native, web(13, 10)]).at(-1)!.measured, /13\.00 µs .* 16\.70 µs/);
  // The node:http floor is reported beside Deno.serve's; the target stays Deno.serve's.
  const withNode = entry("web-fanout", {
    ...web(13, 10).details,
    cpu_us_per_delivery_node_floor: 6.5,
  });
  const [verdict] = verdicts([withNode]);
  assert.equal(verdict!.pass, true);
  assert.match(
    verdict!.measured,
    /node:http.*6\.50 µs, 0\.65x Deno\.serve's, the gateway 2\.00x it/,
  );
});
