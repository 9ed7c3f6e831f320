/**
 * The benchmark instrument's pure parts (bench/): latency histograms and their summary, lost and
 * duplicated accounting, reading a delivered frame, parsing Kafka's own tools, the SVG chart and
 * the target verdicts. The benchmark itself runs with `deno task bench`; speed is never tested here.
 */

import assert from "node:assert/strict";
import { latencyChart } from "../bench/chart.ts";
import { parseEndToEnd, parseProducerPerformance } from "../bench/floor.ts";
import { measuredContent, readFrame, warmContent } from "../bench/load.ts";
import { parseArgs, SCENARIOS } from "../bench/main.ts";
import { verdicts } from "../bench/report.ts";
import { compareCost, type Entry } from "../bench/scenarios.ts";
import {
  encodeHistogram,
  histogram,
  mergeHistograms,
  percentiles,
  recordMs,
  Tally,
} from "../bench/stats.ts";

const near = (actual: number, expected: number, what: string) =>
  assert.ok(
    Math.abs(actual - expected) <= expected * 0.002,
    `${what}: ${actual}, expected ${expected} ± 0.2 %`,
  );

Deno.test("histogram percentiles in ms, merged across processes", () => {
  const a = histogram();
  const b = histogram();
  for (let i = 1; i <= 1000; i++) recordMs(i % 2 ? a : b, i);
  const merged = mergeHistograms([encodeHistogram(a), encodeHistogram(b)]);
  const p = percentiles(merged);
  assert.equal(p.count, 1000);
  near(p.p50, 500, "p50");
  near(p.p90, 900, "p90");
  near(p.p99, 990, "p99");
  near(p.p999, 999, "p99.9");
  near(p.max, 1000, "max");
  // Sub-millisecond values keep their microseconds.
  const small = histogram();
  recordMs(small, 0.25);
  assert.equal(percentiles(small).p50, 0.25);
  assert.ok(Number.isNaN(percentiles(histogram()).p99), "an empty histogram has no p99");
});

Deno.test("lost and duplicated deliveries per stream", () => {
  const t = new Tally(3, 4);
  assert.equal(t.record(0, 0), true);
  assert.equal(t.record(0, 1), true);
  assert.equal(t.record(0, 1), false, "a second delivery is a duplicate");
  assert.equal(t.record(0, 1), false);
  for (let i = 0; i < 4; i++) t.record(1, i);
  assert.equal(t.record(1, 3), false);
  assert.equal(t.record(2, 4), false, "index 4 was never sent");
  assert.equal(t.record(3, 0), false, "there is no stream 3");
  assert.equal(t.unexpected, 2);
  assert.equal(t.received(0), 2);
  assert.equal(t.duplicated(), 3);
  assert.equal(t.lost(), 2 + 0 + 4);
  assert.equal(t.lost((s) => s !== 2), 2, "streams left out (stopped readers) are not counted");
});

/** A `chat.Message` as the gateway encodes it: id (1), content (2), seq (a varint field). */
function frame(content: string): Uint8Array {
  const id = new TextEncoder().encode("alice");
  const text = new TextEncoder().encode(content);
  const length = text.length < 128
    ? [text.length]
    : [(text.length & 0x7f) | 0x80, text.length >> 7];
  return new Uint8Array([0x0a, id.length, ...id, 0x12, ...length, ...text, 0x38, 0x96, 0x01]);
}

Deno.test("a delivered frame gives its message index and due time, for its run only", () => {
  const run = new TextEncoder().encode("0123abcd");
  const content = measuredContent("0123abcd", 42, 1764129600123.456, 200);
  assert.equal(content.length, 200);
  assert.deepEqual(readFrame(frame(content), run), {
    kind: "b",
    index: 42,
    due: 1764129600123.456,
  });
  assert.deepEqual(readFrame(frame(warmContent("0123abcd", 3)), run), { kind: "w" });
  assert.equal(readFrame(frame(measuredContent("ffffffff", 1, 5, 100)), run), undefined);
  assert.equal(readFrame(frame("Hello World!"), run), undefined);
  // Shorter than its header: the header is kept whole.
  assert.ok(measuredContent("0123abcd", 7, 1.5, 10).startsWith("b:0123abcd:7:1.500:"));
});

Deno.test("Kafka's EndToEndLatency and ProducerPerformance output is read", () => {
  const e2e = [
    "0\t45.38211",
    "1000\t2.914",
    "Avg latency: 19.3031 ms",
    "",
    "Percentiles: 50th = 15, 99th = 76, 99.9th = 324",
  ].join("\n");
  assert.deepEqual(parseEndToEnd(e2e), { avg_ms: 19.3031, p50: 15, p99: 76, p999: 324 });
  const perf = [
    "24946 records sent, 4988.2 records/sec (0.48 MB/sec), 160.1 ms avg latency, 420.0 ms max latency.",
    "50000 records sent, 5219.206681 records/sec (0.50 MB/sec), 150.23 ms avg latency, 450.00 ms max latency, 249 ms 50th, 400 ms 95th, 430 ms 99th, 440 ms 99.9th.",
  ].join("\n");
  assert.deepEqual(parseProducerPerformance(perf), {
    records: 50000,
    records_per_s: 5219.206681,
    mib_per_s: 0.5,
    avg_ms: 150.23,
    max_ms: 450,
    p50: 249,
    p95: 400,
    p99: 430,
    p999: 440,
  });
  assert.throws(() => parseEndToEnd("Exception in thread main"), /EndToEndLatency/);
  assert.throws(() => parseProducerPerformance(perf.split("\n")[0]!), /ProducerPerformance/);
});

/** Checks that every tag is closed in order; returns the element names in document order. */
function elements(svg: string): string[] {
  const names: string[] = [];
  const open: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g)) {
    const [, closing, name, , selfClosing] = m;
    if (closing) assert.equal(open.pop(), name, `</${name}> closes the open element`);
    else {
      names.push(name!);
      if (!selfClosing) open.push(name!);
    }
  }
  assert.deepEqual(open, [], "every element is closed");
  return names;
}

Deno.test("the latency chart is well-formed SVG with a line per percentile", () => {
  const point = (x: number, p50: number) => ({
    deliveries_per_s: x,
    p50,
    p99: p50 * 4,
    p999: p50 * 9,
  });
  const svg = latencyChart([
    { name: "embedded <1,000 streams>", line: true, points: [point(20_000, 2), point(5_000, 1)] },
    { name: "Kafka", line: false, points: [point(10_000, 20)] },
  ], "Latency & rate");
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  const names = elements(svg);
  assert.equal(names.filter((n) => n === "polyline").length, 3);
  assert.ok(!/NaN|undefined|Infinity/.test(svg), "every coordinate is a number");
  assert.ok(svg.includes("embedded &lt;1,000 streams&gt;") && svg.includes("Latency &amp; rate"));
  // Points along x in order of deliveries per second, whatever order they came in.
  const line = /<polyline[^>]*points="([^"]+)"/.exec(svg)![1]!.split(" ").map((p) =>
    Number(p.split(",")[0])
  );
  assert.ok(line[0]! < line[1]!);
  elements(latencyChart([], "empty"));
});

const kafka: Entry = {
  scenario: "kafka",
  mode: "kafka",
  streams: 1000,
  gateways: 2,
  rate: 20,
  bytes: 100,
  seconds: 60,
  deliveries_per_s: 19_990,
  e2e_ms: { p50: 20, p90: 40, p99: 80, p999: 120, max: 150 },
  publish_ms: { p50: 10, p99: 30, max: 40 },
  lost: 0,
  duplicated: 0,
  kafka_floor_e2e_ms: { p50: 5, p99: 20 },
  rss_mib: {},
  cpu_cores: {},
};

/** The embedded gateway at the kafka scenario's load, in the same run (a sweep row). */
const embeddedSameLoad: Entry = {
  ...kafka,
  scenario: "sweep",
  mode: "embedded",
  gateways: 1,
  seconds: 10,
  e2e_ms: { p50: 15, p90: 30, p99: 60, p999: 80, max: 90 },
  kafka_floor_e2e_ms: null,
};

Deno.test("targets fail on a loss, a duplicate, a slow p99 or too little load", () => {
  const pass = (e: Entry) => verdicts([e, embeddedSameLoad])[0]!.pass;
  assert.equal(pass(kafka), true, "p99 80 ms = 1.33x embedded's 60 ms");
  assert.equal(pass({ ...kafka, lost: 1 }), false);
  assert.equal(pass({ ...kafka, duplicated: 1 }), false);
  assert.equal(pass({ ...kafka, e2e_ms: { ...kafka.e2e_ms!, p99: 91 } }), false, "1.52x");
  assert.equal(pass({ ...kafka, streams: 40 }), false, "a smaller run proves nothing");
  assert.equal(pass({ ...kafka, deliveries_per_s: 15_000 }), false, "it did not keep up");
  assert.equal(verdicts([kafka])[0]!.pass, false, "no embedded run at that load to compare with");
  // The browser path's open-loop phase has the same streams and rate, over gRPC-Web: not the
  // embedded gateway's native gRPC, whatever the order of the entries.
  const webSameLoad = {
    ...embeddedSameLoad,
    scenario: "web-fanout",
    e2e_ms: { ...kafka.e2e_ms!, p99: 20 },
  };
  assert.equal(verdicts([kafka, webSameLoad, embeddedSameLoad])[0]!.pass, true);
  assert.equal(verdicts([kafka, webSameLoad])[0]!.pass, false);
  // The warm-up is not measured, and the verdict says how long it was and how it went.
  const cold = { seconds: 30, e2e_ms: { p50: 90, p99: 300 } };
  const warmed = verdicts([{ ...kafka, warm_up: cold }, embeddedSameLoad])[0]!;
  assert.equal(warmed.pass, true);
  assert.match(warmed.measured, /after 30 s of warm-up at this load \(p50 90 ms, p99 300 ms/);
  // kafka-light against EndToEndLatency (p50 5 ms, p99 20 ms): at most 1.5x and 2x.
  const light = { ...kafka, scenario: "kafka-light", streams: 10, rate: 10 };
  const lightPass = (p50: number, p99: number) =>
    verdicts([{ ...light, e2e_ms: { ...kafka.e2e_ms!, p50, p99 } }])[0]!.pass;
  assert.equal(lightPass(7.5, 40), true);
  assert.equal(lightPass(7.6, 40), false);
  assert.equal(lightPass(7.5, 41), false);
});

Deno.test("kafka-light's floor: kafkajs's hop paced at its own rate, else back to back", () => {
  const light: Entry = {
    ...kafka,
    scenario: "kafka-light",
    streams: 10,
    rate: 10,
    e2e_ms: { ...kafka.e2e_ms!, p50: 9 },
    grpc_ends_ms: { p50: 3, p99: 5 },
    kafka_floor_e2e_ms: {
      p50: 2,
      p99: 20,
      kafkajs: { p50: 1, p99: 10 },
      kafkajs_paced: { p50: 3, p99: 12, rate: 10 },
    },
  };
  const measured = (e: Entry) => verdicts([e])[0]!.measured;
  // 3 ms paced + 3 ms of gRPC ends = 6 ms, 3x EndToEndLatency's 2 ms; the service 9 ms, 1.5x it.
  assert.match(measured(light), /paced as this load sends \(10 records\/s\): p50 3\.0 ms/);
  assert.match(
    measured(light),
    /kafkajs's hop at this pace \+ the gRPC ends\): p50 6\.0 ms = 3\.00x/,
  );
  assert.match(measured(light), /the service 1\.50x it/);
  // Paced at another rate (an older floor): the back-to-back hop, and no claim about the pace.
  const other = {
    ...light,
    kafka_floor_e2e_ms: {
      ...light.kafka_floor_e2e_ms!,
      kafkajs_paced: { p50: 3, p99: 12, rate: 5 },
    },
  };
  assert.doesNotMatch(measured(other), /at this pace|paced as this load sends/);
  assert.match(measured(other), /the gRPC ends\): p50 4\.0 ms = 2\.00x/);
});

Deno.test("cost comparisons turn their order back every other round, so drift favours none", async () => {
  const order: string[] = [];
  const c = await compareCost(4, ["a", "b", "c"], (setting) => {
    order.push(setting);
    // CPU per delivery rising with time: a 1 µs drift per run.
    const n = order.length;
    return Promise.resolve({
      setting,
      cpu_ms: n,
      delivered: 1000,
      cpu_us_per_delivery: n,
      deliveries_per_s: 1000,
      e2e_ms: { p50: 1, p99: 1 },
    });
  });
  assert.deepEqual(order.join(""), "abccbaabccba");
  assert.deepEqual(["a", "b", "c"].map((k) => c.usPerDelivery(k as "a" | "b" | "c")), [
    6.5,
    6.5,
    6.5,
  ]);
});

Deno.test("the metrics target: at most 3 % more gateway CPU per delivery with metrics on", () => {
  const metrics = (on: number, off: number): Entry => ({
    ...kafka,
    scenario: "metrics",
    mode: "embedded",
    details: {
      cpu_us_per_delivery_on: on,
      cpu_us_per_delivery_off: off,
      difference_pct: ((on - off) / off) * 100,
    },
  });
  assert.equal(verdicts([metrics(2.05, 2)])[0]!.pass, true);
  assert.equal(verdicts([metrics(1.9, 2)])[0]!.pass, true);
  assert.equal(verdicts([metrics(2.07, 2)])[0]!.pass, false);
  assert.match(verdicts([metrics(2.07, 2)])[0]!.measured, /2\.07 µs .* 2\.00 µs off: 3\.5 %/);
});

Deno.test("the native gRPC target: gateway CPU per delivery at most 1.05x the floor's", () => {
  const floor = (gateway: number, floor: number): Entry => ({
    ...kafka,
    scenario: "grpc-floor",
    mode: "embedded",
    details: {
      cpu_us_per_delivery_gateway: gateway,
      cpu_us_per_delivery_floor: floor,
      ratio: gateway / floor,
    },
  });
  assert.equal(verdicts([floor(21, 20)])[0]!.pass, true);
  assert.equal(verdicts([floor(21.2, 20)])[0]!.pass, false);
  assert.match(verdicts([floor(21.2, 20)])[0]!.measured, /21\.20 µs .* 20\.00 µs .*: 1\.06x/);
});

Deno.test("the idle target: at most 30 KiB per stream, the floor's figure beside it", () => {
  const idle = (kib: number, held = 10_000): Entry => ({
    ...kafka,
    scenario: "idle",
    mode: "embedded",
    streams: 10_000,
    details: { streams_held: held, rss_per_stream_kib: kib, floor_rss_per_stream_kib: 25 },
  });
  assert.equal(verdicts([idle(30)])[0]!.pass, true);
  assert.equal(verdicts([idle(30.1)])[0]!.pass, false);
  assert.equal(verdicts([idle(20, 9_999)])[0]!.pass, false);
  assert.match(verdicts([idle(30)])[0]!.measured, /30\.0 KiB .*grpc-js server: 25\.0 KiB/);
});

Deno.test("bench options: --only brings the floor along with Kafka; unknown names fail", () => {
  assert.deepEqual([...parseArgs(["--only=kafka"]).only].sort(), ["floor", "kafka"]);
  assert.equal(parseArgs(["--smoke"]).only.size, SCENARIOS.length);
  assert.throws(() => parseArgs(["--only=nope"]), /Unknown scenario/);
  assert.throws(() => parseArgs(["--fast"]), /Unknown option/);
});
