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
 * - `idle`: how many idle streams one gateway holds, and its resident memory per stream, beside
 *   the native gRPC floor's;
 * - `slow`: the others' p99 without and with one stream that never reads;
 * - `metrics`: the gateway's CPU per delivery with METRICS=on and METRICS=off, as fan-out runs
 *   alternating between the two;
 * - `grpc-floor`: the gateway's CPU per delivery against a minimal grpc-js fan-out server's
 *   (bench/grpc_floor.ts), as fan-out runs alternating between the two.
 *
 * The load itself (streams, publisher, measured phases) is bench/workload.ts.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { num, type Percentiles, procSample, round, watchProcesses } from "./stats.ts";
import { startEmbedded, startGrpcFloor, startKafka, type SystemUnderTest } from "./system.ts";
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
  /**
   * Kafka's EndToEndLatency in the same run, and the same loop with kafkajs, the service's
   * client, on this runtime (`kafkajs`).
   */
  kafka_floor_e2e_ms: {
    p50: number;
    p99: number;
    kafkajs?: { p50: number; p99: number };
    /** The kafkajs loop paced at `rate` records per second (kafka-light's). */
    kafkajs_paced?: { p50: number; p99: number; rate: number };
  } | null;
  /**
   * The same phase against the native gRPC floor (bench/grpc_floor.ts) in the same run: what the
   * gRPC ends of a message (the send and the stream) cost alone at this load, with no bus at all.
   */
  grpc_ends_ms?: { p50: number; p99: number };
  /** The unmeasured warm-up before the phase, at its rate: how a cold system started. */
  warm_up?: { seconds: number; e2e_ms: { p50: number; p99: number } };
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
  /**
   * Sweep rates that run longer than `sweepSeconds`: the one the kafka scenario is judged against
   * runs as long as it does, since a longer run meets more of the machine's rare stalls (a
   * garbage collection, a broker's) and its p99 with them.
   */
  sweepSecondsAt?: Record<number, number>;
  /**
   * Seconds of unmeasured load at `rate` before measuring (JIT, buffers): in Kafka mode long
   * enough for freshly started brokers to settle (their JIT compiling the produce and fetch paths
   * takes most of both cores for the first 10-20 s of load here).
   */
  warmSeconds: number;
  drainMs: number;
  /** Streams per client process. */
  perProcess: number;
  floor: Entry["kafka_floor_e2e_ms"];
  /** Also run the measured phase against the native gRPC floor (`grpc_ends_ms`). */
  grpcEnds?: boolean;
}

/** An open-loop scenario (and its sweep phases, reported as scenario `sweep`). */
export async function runOpenLoop(spec: OpenLoopSpec, say: Say): Promise<Entry[]> {
  const start = () => spec.mode === "kafka" ? startKafka(spec.gateways) : startEmbedded();
  const out = await withSystem(start, async (system) => {
    const out: Entry[] = [];
    await openLoop(system, spec, say, async (phase, warm) => {
      for (const rate of spec.sweep ?? []) {
        const seconds = spec.sweepSecondsAt?.[rate] ?? spec.sweepSeconds ?? spec.seconds;
        const r = await phase(`sweep ${rate} msg/s`, rate, seconds);
        out.push(entry({ ...spec, scenario: "sweep", rate, seconds }, r, spec.floor));
      }
      out.push({
        ...entry(spec, await phase(spec.scenario, spec.rate, spec.seconds), spec.floor),
        warm_up: {
          seconds: spec.warmSeconds,
          e2e_ms: { p50: warm.e2e.p50, p99: warm.e2e.p99 },
        },
      });
    });
    return out;
  });
  if (spec.grpcEnds) {
    const main = out.at(-1)!;
    await withSystem(startGrpcFloor, (floor) =>
      openLoop(floor, spec, say, async (phase) => {
        const { e2e } = await phase(`${spec.scenario} on the gRPC floor`, spec.rate, spec.seconds);
        main.grpc_ends_ms = { p50: e2e.p50, p99: e2e.p99 };
      }));
  }
  return out;
}

type Phase = (label: string, rate: number, seconds: number) => Promise<PhaseResult>;

/**
 * Opens `spec`'s streams on `system`, warms up at its rate, then lets `measure` run phases (it
 * gets the warm-up's result too).
 */
async function openLoop(
  system: SystemUnderTest,
  spec: OpenLoopSpec,
  say: Say,
  measure: (phase: Phase, warm: PhaseResult) => Promise<void>,
): Promise<void> {
  say(`opening ${num(spec.streams)} streams`);
  const load = await Load.open(system, spec.streams, spec.perProcess);
  try {
    const reached = await load.reachAll(spec.mode === "kafka" ? 120_000 : 60_000, say);
    if (reached < spec.streams) {
      throw new Error(`Only ${reached} of ${spec.streams} streams got a warm-up message`);
    }
    const phase: Phase = (label, rate, seconds) =>
      load.phase({
        label,
        rate,
        messages: Math.max(1, Math.round(rate * seconds)),
        bytes: spec.bytes,
        drainMs: spec.drainMs,
      }, say);
    await measure(phase, await phase(`${spec.scenario} warm-up`, spec.rate, spec.warmSeconds));
  } finally {
    await load.close();
  }
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
  /** How long the server is left alone before each memory sample; 2 s before, 3 s after. */
  settleMs?: number;
}

/** What one server process held for idle streams. */
export interface IdleMemory {
  held: number;
  opened: number;
  ended: ReturnType<Load["ended"]>;
  before: { rssKiB: number; cpuMs: number };
  after: { rssKiB: number; cpuMs: number };
  cores: number;
  kibPerStream: number;
}

/** Opens `spec.streams` idle streams on a fresh system; `process`'s resident memory per stream. */
export function idleMemory(
  start: () => Promise<SystemUnderTest>,
  process: string,
  spec: IdleSpec,
  say: Say,
): Promise<IdleMemory> {
  return withSystem(start, async (system) => {
    const pid = system.pids[process]!;
    await sleep(spec.settleMs ?? 2000);
    const before = procSample(pid);
    const watch = watchProcesses(system.pids);
    say(`${process}: opening ${num(spec.streams)} idle streams`);
    const load = await Load.open(system, spec.streams, spec.perProcess);
    try {
      const held = await load.reachAll(180_000, say);
      await sleep(spec.settleMs ?? 3000);
      const after = procSample(pid);
      const usage = watch.stop();
      if (!before || !after) throw new Error(`The ${process} process is gone`);
      return {
        held,
        opened: load.opened(),
        ended: load.ended(),
        before,
        after,
        cores: usage[process]?.cores ?? NaN,
        kibPerStream: held ? (after.rssKiB - before.rssKiB) / held : NaN,
      };
    } finally {
      await load.close();
    }
  });
}

/**
 * How many idle streams one gateway holds, and its resident memory per stream; beside it, the
 * native gRPC floor's (bench/grpc_floor.ts) under the same load.
 */
export function runIdle(spec: IdleSpec, say: Say): Promise<Entry[]> {
  return idleComparison(
    "idle",
    () => startEmbedded(),
    { start: startGrpcFloor, process: "grpc-floor" },
    spec,
    say,
  );
}

/**
 * The entry of an idle scenario: the embedded gateway's resident memory per idle stream (opened
 * by `startGateway`), and `floor`'s under the same load, each in a fresh process.
 */
export async function idleComparison(
  scenario: string,
  startGateway: () => Promise<SystemUnderTest>,
  floor: { start: () => Promise<SystemUnderTest>; process: string },
  spec: IdleSpec,
  say: Say,
): Promise<Entry[]> {
  const gateway = await idleMemory(startGateway, "embedded", spec, say);
  const base = await idleMemory(floor.start, floor.process, spec, say);
  const mib = (kib: number) => round(kib / 1024, 1);
  return [{
    scenario,
    mode: "embedded",
    streams: spec.streams,
    gateways: 1,
    rate: 0,
    bytes: 0,
    seconds: 0,
    deliveries_per_s: null,
    e2e_ms: null,
    publish_ms: null,
    lost: spec.streams - gateway.held + spec.streams - base.held,
    duplicated: 0,
    kafka_floor_e2e_ms: null,
    rss_mib: { embedded: mib(gateway.after.rssKiB), [floor.process]: mib(base.after.rssKiB) },
    cpu_cores: { embedded: gateway.cores, [floor.process]: base.cores },
    details: {
      streams_held: gateway.held,
      streams_opened: gateway.opened,
      streams_ended: gateway.ended.count,
      first_end: gateway.ended.first,
      rss_before_mib: mib(gateway.before.rssKiB),
      rss_per_stream_kib: round(gateway.kibPerStream, 2),
      floor_streams_held: base.held,
      floor_rss_before_mib: mib(base.before.rssKiB),
      floor_rss_per_stream_kib: round(base.kibPerStream, 2),
    },
  }];
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

export interface CostSpec extends FanoutSpec {
  /**
   * Runs of each setting compared, in rounds whose order turns back on itself (a, b, b, a, … or
   * a, b, c, c, b, a, …) to even out drift.
   */
  pairs: number;
}

/** An open-loop phase after a measured fan-out: latency at a rate the server keeps up with. */
export interface LatencyPhase {
  rate: number;
  seconds: number;
}

/** One fan-out run of a CPU comparison: a server process's CPU for what it delivered. */
export interface CostRun {
  setting: string;
  cpu_ms: number;
  delivered: number;
  cpu_us_per_delivery: number;
  deliveries_per_s: number;
  /** The measured fan-out's latency from send (closed loop: mostly its window's queueing). */
  e2e_ms: { p50: number; p99: number };
  /** The open-loop phase's, when asked for. */
  open_loop?: {
    rate: number;
    e2e_ms: Omit<Percentiles, "count">;
    lost: number;
    duplicated: number;
  };
}

/**
 * One server process's CPU time (from /proc, over the measured closed-loop fan-out phase: sends,
 * processing and writes to every stream) for what it delivered, in a fresh system.
 */
export function fanoutCost(
  start: () => Promise<SystemUnderTest>,
  process: string,
  setting: string,
  spec: FanoutSpec & { latencyAt?: LatencyPhase },
  say: Say,
): Promise<CostRun> {
  return withSystem(start, async (system) => {
    say(`${setting}: opening ${num(spec.streams)} streams`);
    const load = await Load.open(system, spec.streams, spec.perProcess);
    try {
      await load.reachAll(60_000, say);
      const phase = (label: string, messages: number) =>
        load.phase(
          { label, messages, window: spec.window, bytes: spec.bytes, drainMs: 10_000 },
          say,
        );
      await phase(`${setting} warm-up`, Math.ceil(spec.messages / 10));
      const pid = system.pids[process]!;
      const before = procSample(pid);
      const r = await phase(setting, spec.messages);
      const after = procSample(pid);
      if (!before || !after) throw new Error(`The ${process} process is gone`);
      if (r.lost || r.duplicated) {
        throw new Error(`${setting}: lost ${r.lost}, duplicated ${r.duplicated} deliveries`);
      }
      const cpu = after.cpuMs - before.cpuMs;
      let openLoop: CostRun["open_loop"];
      if (spec.latencyAt) {
        const { rate, seconds } = spec.latencyAt;
        const light = await load.phase({
          label: `${setting} at ${rate} msg/s`,
          rate,
          messages: Math.round(rate * seconds),
          bytes: spec.bytes,
          drainMs: 10_000,
        }, say);
        const { count: _, ...e2e } = light.e2e;
        openLoop = { rate, e2e_ms: e2e, lost: light.lost, duplicated: light.duplicated };
      }
      return {
        setting,
        cpu_ms: cpu,
        delivered: r.delivered,
        cpu_us_per_delivery: round((cpu * 1000) / r.delivered, 3),
        deliveries_per_s: round(r.deliveriesPerSecond, 0),
        e2e_ms: { p50: r.e2e.p50, p99: r.e2e.p99 },
        open_loop: openLoop,
      };
    } finally {
      await load.close();
    }
  });
}

/**
 * Fan-out runs of some settings, `pairs` rounds of one run each, every other round in reverse
 * order (a, b, c, c, b, a: each setting's mean position is the same, so a steady drift does not
 * favour one); per setting, CPU per delivery summed over its runs (CPU time is counted in clock
 * ticks of 10 ms) and its mean deliveries per second.
 */
export async function compareCost<K extends string>(
  pairs: number,
  settings: readonly K[],
  run: (setting: K) => Promise<CostRun>,
): Promise<{ runs: CostRun[]; usPerDelivery(k: K): number; deliveriesPerSecond(k: K): number }> {
  const runs: CostRun[] = [];
  for (let round = 0; round < pairs; round++) {
    for (const setting of round % 2 === 0 ? settings : settings.toReversed()) {
      runs.push(await run(setting));
    }
  }
  const of = (k: K) => runs.filter((r) => r.setting === k);
  return {
    runs,
    usPerDelivery: (k) =>
      (of(k).reduce((sum, r) => sum + r.cpu_ms, 0) * 1000) /
      of(k).reduce((sum, r) => sum + r.delivered, 0),
    deliveriesPerSecond: (k) =>
      round(of(k).reduce((sum, r) => sum + r.deliveries_per_s, 0) / of(k).length, 0),
  };
}

/** The entry of a CPU comparison: what `details` say is the scenario's. */
export function costEntry(
  scenario: string,
  spec: CostSpec,
  deliveriesPerSecond: number,
  details: Record<string, unknown>,
): Entry {
  return {
    scenario,
    mode: "embedded",
    streams: spec.streams,
    gateways: 1,
    rate: 0,
    bytes: spec.bytes,
    seconds: 0,
    deliveries_per_s: deliveriesPerSecond,
    e2e_ms: null,
    publish_ms: null,
    lost: 0,
    duplicated: 0,
    kafka_floor_e2e_ms: null,
    rss_mib: {},
    cpu_cores: {},
    details: { ...details, pairs: spec.pairs, messages: spec.messages, window: spec.window },
  };
}

/**
 * What metrics cost on the hot path: the embedded gateway's CPU per delivery with METRICS=on and
 * METRICS=off, each in a fresh process. The difference is reported against the 3 % target.
 */
export async function runMetricsCost(spec: CostSpec, say: Say): Promise<Entry[]> {
  const c = await compareCost(
    spec.pairs,
    ["on", "off"] as const,
    (metrics) =>
      fanoutCost(() => startEmbedded({ METRICS: metrics }), "embedded", metrics, spec, say),
  );
  const on = c.usPerDelivery("on");
  const off = c.usPerDelivery("off");
  return [costEntry("metrics", spec, c.deliveriesPerSecond("on"), {
    cpu_us_per_delivery_on: round(on, 3),
    cpu_us_per_delivery_off: round(off, 3),
    difference_pct: round(((on - off) / off) * 100, 2),
    deliveries_per_s_off: c.deliveriesPerSecond("off"),
    runs: c.runs,
  })];
}

/**
 * The gateway against the native gRPC floor (bench/grpc_floor.ts): the embedded gateway's CPU per
 * delivery and the floor server's, in the same closed-loop fan-out, alternating, each run in a
 * fresh process. The ratio gateway / floor is reported against the 1.05 target.
 */
export async function runGrpcFloor(spec: CostSpec, say: Say): Promise<Entry[]> {
  const c = await compareCost(
    spec.pairs,
    ["gateway", "grpc-floor"] as const,
    (server) =>
      server === "gateway"
        ? fanoutCost(() => startEmbedded(), "embedded", server, spec, say)
        : fanoutCost(startGrpcFloor, "grpc-floor", server, spec, say),
  );
  const gateway = c.usPerDelivery("gateway");
  const floor = c.usPerDelivery("grpc-floor");
  return [costEntry("grpc-floor", spec, c.deliveriesPerSecond("gateway"), {
    cpu_us_per_delivery_gateway: round(gateway, 3),
    cpu_us_per_delivery_floor: round(floor, 3),
    ratio: round(gateway / floor, 3),
    deliveries_per_s_floor: c.deliveriesPerSecond("grpc-floor"),
    runs: c.runs,
  })];
}
