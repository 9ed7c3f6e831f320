/**
 * The scenarios of `deno task bench`. Each starts its own system under test (bench/system.ts),
 * puts load on it from client processes (bench/clients.ts) and returns result entries, one
 * object each in bench/results/latest.json.
 *
 * - open loop (`kafka`, `kafka-light`, `embedded` with its rate sweep): S streams spread over the
 *   gateways, one publisher sending R messages per second of B bytes on a fixed schedule for D
 *   seconds, latency from each message's due time to its receipt on each stream;
 * - `fanout`: the gRPC layer's ceiling, one embedded gateway, a closed loop with a window of sends
 *   in flight, as fast as the streams take them;
 * - `idle`: how many idle streams one gateway holds, and its resident memory per stream;
 * - `slow`: the others' p99 without and with one stream that never reads;
 * - `metrics`: the gateway's CPU per delivery with METRICS=on and METRICS=off, as fan-out runs
 *   alternating between the two.
 *
 * The load itself (streams, publisher, measured phases) is bench/workload.ts.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { num, type Percentiles, procSample, round, watchProcesses } from "./stats.ts";
import { startEmbedded, startKafka, type SystemUnderTest } from "./system.ts";
import { Load, type PhaseResult, type Say } from "./workload.ts";

/** One scenario's result: one object in bench/results/latest.json. */
export interface Entry {
  scenario: string;
  mode: "embedded" | "kafka";
  streams: number;
  gateways: number;
  /** Messages per second in (open loop), or achieved (fan-out). */
  rate: number;
  bytes: number;
  seconds: number;
  deliveries_per_s: number | null;
  e2e_ms: Omit<Percentiles, "count"> | null;
  publish_ms: { p50: number; p99: number; max: number } | null;
  lost: number;
  duplicated: number;
  kafka_floor_e2e_ms: { p50: number; p99: number } | null;
  /** Peak resident memory per process during the run. */
  rss_mib: Record<string, number>;
  /** CPU time / wall time per process during the run (1 = one core). */
  cpu_cores: Record<string, number>;
  /** Scenario-specific numbers (idle capacity, slow reader, floor tools). */
  details?: Record<string, unknown>;
}

/** What a run was: the fields of its entry that its spec sets. */
type Shape = Pick<
  Entry,
  "scenario" | "mode" | "streams" | "gateways" | "rate" | "bytes" | "seconds"
>;

function entry(
  base: Shape,
  r: PhaseResult,
  floor: Entry["kafka_floor_e2e_ms"],
  details?: Record<string, unknown>,
): Entry {
  const { count: _, ...e2e } = r.e2e;
  const { scenario, mode, streams, gateways, rate, bytes, seconds } = base;
  const failures = Object.keys(r.publish.errors).length ? { publish_errors: r.publish.errors } : {};
  const cut = r.ends.length ? { streams_ended: r.ends.length, first_end: r.ends[0] } : {};
  return {
    scenario,
    mode,
    streams,
    gateways,
    rate,
    bytes,
    seconds,
    deliveries_per_s: r.deliveriesPerSecond,
    e2e_ms: e2e,
    publish_ms: { p50: r.rpc.p50, p99: r.rpc.p99, max: r.rpc.max },
    lost: r.lost,
    duplicated: r.duplicated,
    kafka_floor_e2e_ms: floor,
    rss_mib: Object.fromEntries(Object.entries(r.usage).map(([k, v]) => [k, v.rssMiB])),
    cpu_cores: Object.fromEntries(Object.entries(r.usage).map(([k, v]) => [k, v.cores])),
    details: {
      load_cpu_cores: r.loadCores,
      publisher_max_behind_ms: round(r.publish.maxBehindMs, 1),
      ...failures,
      ...cut,
      ...details,
    },
  };
}

async function withSystem<T>(
  start: () => Promise<SystemUnderTest>,
  fn: (system: SystemUnderTest) => Promise<T>,
): Promise<T> {
  const system = await start();
  try {
    return await fn(system);
  } finally {
    await system.stop();
  }
}

export interface OpenLoopSpec extends Shape {
  /** Rates (messages per second) of shorter phases before the main one, for the chart. */
  sweep?: number[];
  sweepSeconds?: number;
  /** Seconds of unmeasured load at `rate` before measuring (JIT, buffers). */
  warmSeconds: number;
  drainMs: number;
  /** Streams per client process. */
  perProcess: number;
  floor: Entry["kafka_floor_e2e_ms"];
}

/** An open-loop scenario (and its sweep phases, reported as scenario `sweep`). */
export function runOpenLoop(spec: OpenLoopSpec, say: Say): Promise<Entry[]> {
  const start = () => spec.mode === "kafka" ? startKafka(spec.gateways) : startEmbedded();
  return withSystem(start, async (system) => {
    say(`opening ${num(spec.streams)} streams`);
    const load = await Load.open(system, spec.streams, spec.perProcess);
    try {
      const reached = await load.reachAll(spec.mode === "kafka" ? 120_000 : 60_000, say);
      if (reached < spec.streams) {
        throw new Error(`Only ${reached} of ${spec.streams} streams got a warm-up message`);
      }
      const phase = (label: string, rate: number, seconds: number) =>
        load.phase({
          label,
          rate,
          messages: Math.max(1, Math.round(rate * seconds)),
          bytes: spec.bytes,
          drainMs: spec.drainMs,
        }, say);
      await phase(`${spec.scenario} warm-up`, spec.rate, spec.warmSeconds);
      const out: Entry[] = [];
      for (const rate of spec.sweep ?? []) {
        const seconds = spec.sweepSeconds ?? spec.seconds;
        const r = await phase(`sweep ${rate} msg/s`, rate, seconds);
        out.push(
          entry({ ...spec, scenario: "sweep", rate, seconds }, r, spec.floor),
        );
      }
      const r = await phase(spec.scenario, spec.rate, spec.seconds);
      out.push(entry(spec, r, spec.floor));
      return out;
    } finally {
      await load.close();
    }
  });
}

export interface FanoutSpec {
  streams: number;
  messages: number;
  window: number;
  bytes: number;
  perProcess: number;
}

/** The gRPC layer's ceiling: one embedded gateway, sends in a closed loop with a window. */
export function runFanout(spec: FanoutSpec, say: Say): Promise<Entry[]> {
  return withSystem(() => startEmbedded(), async (system) => {
    say(`opening ${num(spec.streams)} streams`);
    const load = await Load.open(system, spec.streams, spec.perProcess);
    try {
      await load.reachAll(60_000, say);
      const phase = (label: string, messages: number) =>
        load.phase({
          label,
          messages,
          window: spec.window,
          bytes: spec.bytes,
          drainMs: 10_000,
        }, say);
      await phase("fanout warm-up", Math.ceil(spec.messages / 10));
      const r = await phase("fanout", spec.messages);
      return [entry(
        {
          scenario: "fanout",
          mode: "embedded",
          streams: spec.streams,
          gateways: 1,
          rate: round(spec.messages / r.seconds, 0),
          bytes: spec.bytes,
          seconds: round(r.seconds, 1),
        },
        r,
        null,
        { window: spec.window, messages: spec.messages },
      )];
    } finally {
      await load.close();
    }
  });
}

export interface IdleSpec {
  streams: number;
  perProcess: number;
}

/** How many idle streams one gateway holds, and its resident memory per stream. */
export function runIdle(spec: IdleSpec, say: Say): Promise<Entry[]> {
  return withSystem(() => startEmbedded(), async (system) => {
    const pid = system.pids.embedded!;
    await sleep(2000);
    const before = procSample(pid);
    const watch = watchProcesses(system.pids);
    say(`opening ${num(spec.streams)} idle streams`);
    const load = await Load.open(system, spec.streams, spec.perProcess);
    try {
      const held = await load.reachAll(180_000, say);
      await sleep(3000);
      const after = procSample(pid);
      const usage = watch.stop();
      if (!before || !after) throw new Error("The gateway process is gone");
      const perStream = held ? (after.rssKiB - before.rssKiB) / held : NaN;
      return [{
        scenario: "idle",
        mode: "embedded",
        streams: spec.streams,
        gateways: 1,
        rate: 0,
        bytes: 0,
        seconds: 0,
        deliveries_per_s: null,
        e2e_ms: null,
        publish_ms: null,
        lost: spec.streams - held,
        duplicated: 0,
        kafka_floor_e2e_ms: null,
        rss_mib: { embedded: round(after.rssKiB / 1024, 1) },
        cpu_cores: { embedded: usage.embedded?.cores ?? NaN },
        details: {
          streams_held: held,
          streams_opened: load.opened(),
          streams_ended: load.ended().count,
          first_end: load.ended().first,
          rss_before_mib: round(before.rssKiB / 1024, 1),
          rss_per_stream_kib: round(perStream, 2),
        },
      }];
    } finally {
      await load.close();
    }
  });
}

export interface SlowSpec {
  streams: number;
  rate: number;
  bytes: number;
  seconds: number;
  perProcess: number;
}

/**
 * The others' latency without and with one stream that stops reading. The gateway's policy
 * (server/hub.ts): a stream with STREAM_QUEUE_LIMIT (1000) frames not yet taken is ended with
 * RESOURCE_EXHAUSTED; its client reconnects and resumes from its last sequence number.
 */
export function runSlow(spec: SlowSpec, say: Say): Promise<Entry[]> {
  return withSystem(() => startEmbedded(), async (system) => {
    const load = await Load.open(system, spec.streams, spec.perProcess);
    try {
      await load.reachAll(60_000, say);
      const phase = (label: string) =>
        load.phase({
          label,
          rate: spec.rate,
          messages: Math.round(spec.rate * spec.seconds),
          bytes: spec.bytes,
          drainMs: 10_000,
        }, say);
      await phase("slow warm-up");
      const alone = await phase("slow: readers alone");
      const paused = await load.addPaused(1, "bench-paused-");
      const r = await phase("slow: readers + 1 stopped stream");
      const cut = system.output("embedded").some((l) => /Cutting a slow stream/.test(l));
      // Its status comes after the frames queued before it: read them, then see how it ended.
      const end = cut ? (await paused.resume(10_000))[0] : undefined;
      return [entry({ scenario: "slow", mode: "embedded", gateways: 1, ...spec }, r, null, {
        p99_alone_ms: alone.e2e.p99,
        p50_alone_ms: alone.e2e.p50,
        lost_alone: alone.lost,
        stopped_stream_cut: cut,
        stopped_stream_status: end ? `${end.code} ${end.details}` : "still open",
      })];
    } finally {
      await load.close();
    }
  });
}

export interface MetricsCostSpec extends FanoutSpec {
  /** Runs with metrics on and off each, alternating (on, off, off, on, …) to even out drift. */
  pairs: number;
}

/** One fan-out run of the metrics scenario: the gateway process's CPU for what it delivered. */
interface CostRun {
  metrics: "on" | "off";
  cpu_ms: number;
  delivered: number;
  cpu_us_per_delivery: number;
  deliveries_per_s: number;
}

/**
 * What metrics cost on the hot path: the embedded gateway's CPU time (from /proc, over the measured
 * fan-out phase: sends, processing and writes to every stream) per delivery, with METRICS=on and
 * METRICS=off, each in a fresh process. The difference is reported against the 3 % target.
 */
export async function runMetricsCost(spec: MetricsCostSpec, say: Say): Promise<Entry[]> {
  const runs: CostRun[] = [];
  for (let pair = 0; pair < spec.pairs; pair++) {
    const order = pair % 2 === 0 ? ["on", "off"] as const : ["off", "on"] as const;
    for (const metrics of order) {
      runs.push(
        await withSystem(() => startEmbedded({ METRICS: metrics }), async (system) => {
          say(`metrics ${metrics}: opening ${num(spec.streams)} streams`);
          const load = await Load.open(system, spec.streams, spec.perProcess);
          try {
            await load.reachAll(60_000, say);
            const phase = (label: string, messages: number) =>
              load.phase(
                { label, messages, window: spec.window, bytes: spec.bytes, drainMs: 10_000 },
                say,
              );
            await phase(`metrics ${metrics} warm-up`, Math.ceil(spec.messages / 10));
            const pid = system.pids.embedded!;
            const before = procSample(pid);
            const r = await phase(`metrics ${metrics}`, spec.messages);
            const after = procSample(pid);
            if (!before || !after) throw new Error("The gateway process is gone");
            if (r.lost || r.duplicated) {
              throw new Error(
                `metrics ${metrics}: lost ${r.lost}, duplicated ${r.duplicated} deliveries`,
              );
            }
            const cpu = after.cpuMs - before.cpuMs;
            return {
              metrics,
              cpu_ms: cpu,
              delivered: r.delivered,
              cpu_us_per_delivery: round((cpu * 1000) / r.delivered, 3),
              deliveries_per_s: round(r.deliveriesPerSecond, 0),
            };
          } finally {
            await load.close();
          }
        }),
      );
    }
  }
  // Summed over the runs of each setting: CPU time is counted in clock ticks (10 ms).
  const perDelivery = (metrics: "on" | "off") => {
    const mine = runs.filter((r) => r.metrics === metrics);
    const cpu = mine.reduce((sum, r) => sum + r.cpu_ms, 0);
    return (cpu * 1000) / mine.reduce((sum, r) => sum + r.delivered, 0);
  };
  const on = perDelivery("on");
  const off = perDelivery("off");
  const throughput = (metrics: "on" | "off") =>
    round(
      runs.filter((r) => r.metrics === metrics).reduce((s, r) => s + r.deliveries_per_s, 0) /
        spec.pairs,
      0,
    );
  return [{
    scenario: "metrics",
    mode: "embedded",
    streams: spec.streams,
    gateways: 1,
    rate: 0,
    bytes: spec.bytes,
    seconds: 0,
    deliveries_per_s: throughput("on"),
    e2e_ms: null,
    publish_ms: null,
    lost: 0,
    duplicated: 0,
    kafka_floor_e2e_ms: null,
    rss_mib: {},
    cpu_cores: {},
    details: {
      cpu_us_per_delivery_on: round(on, 3),
      cpu_us_per_delivery_off: round(off, 3),
      difference_pct: round(((on - off) / off) * 100, 2),
      deliveries_per_s_off: throughput("off"),
      pairs: spec.pairs,
      messages: spec.messages,
      window: spec.window,
      runs,
    },
  }];
}
