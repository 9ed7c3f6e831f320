// deno-lint-ignore-file no-console
/**
 * `deno task bench`: the benchmark instrument. Runs the scenarios (bench/scenarios.ts) in their
 * own processes, prints a table and a PASS/FAIL line per target (bench/report.ts), and writes
 * bench/results/latest.json, docs/benchmark-latency.svg and docs/benchmarks.md.
 *
 * ```sh
 * flock /tmp/kafka-work.lock deno task bench            # every scenario, about 10 minutes
 * flock /tmp/kafka-work.lock deno task bench --smoke    # every scenario for a few seconds (CI)
 * deno task bench --only=embedded,fanout                # some; merged into latest.json
 * deno task bench --bytes=200                           # message size (default 100)
 * ```
 *
 * Scenarios: floor, kafka-light, kafka, embedded (with its rate sweep), fanout, idle, slow,
 * metrics (the gateway's CPU per delivery with METRICS=on and off), grpc-floor (the gateway's CPU
 * per delivery against a minimal grpc-js fan-out server's, bench/grpc_floor.ts), web-fanout and
 * web-idle (the browser path, gRPC-Web, against a minimal Deno.serve server's, bench/web_floor.ts;
 * web-fanout also against the same on node:http). The Kafka scenarios need the floor and bring it
 * along. Kafka: the cluster in KAFKA_BROKERS, or else the local one of kafka/cluster.ts, started
 * (and stopped) like `deno task test` does.
 *
 * Exit status 0 even when a target is missed (a benchmark reports); 1 when a scenario could not
 * run, or in `--smoke` when a delivery was lost or duplicated. `--smoke` writes
 * bench/results/smoke.json and leaves the committed results alone.
 */

import { clusterUp, releaseCluster } from "../kafka/cluster.ts";
import { BROKERS } from "../kafka/layout.ts";
import { kafkaVersion, runFloor } from "./floor.ts";
import { chartOf, machine, markdown, textTable, verdictLine, verdicts } from "./report.ts";
import {
  type CostSpec,
  type Entry,
  type FanoutSpec,
  type IdleSpec,
  type OpenLoopSpec,
  runFanout,
  runGrpcFloor,
  runIdle,
  runMetricsCost,
  runOpenLoop,
  runSlow,
  type SlowSpec,
} from "./scenarios.ts";
import { loadAverage } from "./stats.ts";
import { runWebFanout, runWebIdle, type WebFanoutSpec } from "./web_scenarios.ts";

export const SCENARIOS = [
  "floor",
  "kafka-light",
  "kafka",
  "embedded",
  "fanout",
  "idle",
  "slow",
  "metrics",
  "grpc-floor",
  "web-fanout",
  "web-idle",
] as const;
type Scenario = typeof SCENARIOS[number];

const ROOT = new URL("..", import.meta.url).pathname;
const RESULTS = `${ROOT}bench/results`;
const CHART = "benchmark-latency.svg";

interface Args {
  smoke: boolean;
  only: Set<Scenario>;
  bytes: number;
}

export function parseArgs(argv: string[]): Args {
  const raw = new Map<string, string>();
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`Cannot read argument ${JSON.stringify(arg)}: expected --name=value`);
    if (!["smoke", "only", "bytes"].includes(m[1]!)) {
      throw new Error(`Unknown option --${m[1]}; see bench/main.ts`);
    }
    raw.set(m[1]!, m[2] ?? "true");
  }
  const only = new Set<Scenario>();
  for (const name of (raw.get("only") ?? SCENARIOS.join(",")).split(",")) {
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      throw new Error(`Unknown scenario ${name}: one of ${SCENARIOS.join(", ")}`);
    }
    only.add(name as Scenario);
  }
  if (only.has("kafka") || only.has("kafka-light")) only.add("floor");
  const bytes = Number(raw.get("bytes") ?? 100);
  if (!Number.isInteger(bytes) || bytes < 40) {
    throw new Error(`Cannot read --bytes=${raw.get("bytes")}: a whole number from 40`);
  }
  return { smoke: raw.get("smoke") === "true", only, bytes };
}

/** Each scenario's load: full runs measure the targets; smoke runs only prove the instrument. */
function plan(smoke: boolean, bytes: number) {
  const open = (
    spec:
      & Omit<OpenLoopSpec, "bytes" | "floor" | "perProcess" | "drainMs" | "warmSeconds">
      & Partial<Pick<OpenLoopSpec, "warmSeconds">>,
  ): Omit<OpenLoopSpec, "floor"> => ({
    bytes,
    perProcess: 500,
    drainMs: smoke ? 3_000 : 10_000,
    warmSeconds: smoke ? 1 : 5,
    ...spec,
  });
  // The paced kafkajs loop of the floor sends at kafka-light's rate.
  const lightRate = smoke ? 5 : 10;
  // The embedded sweep runs the kafka scenario's rate for as long, to be judged against.
  const kafka = smoke
    ? { scenario: "kafka", mode: "kafka", streams: 40, gateways: 2, rate: 10, seconds: 3 } as const
    : {
      scenario: "kafka",
      mode: "kafka",
      streams: 1000,
      gateways: 2,
      rate: 20,
      seconds: 60,
      // The brokers were started for this run: their JIT settles within 10-20 s of this load.
      warmSeconds: 30,
    } as const;
  return {
    floor: smoke
      ? { messages: 200, records: 5_000, paced: { messages: 20, rate: lightRate } }
      : { messages: 2_000, records: 100_000, paced: { messages: 200, rate: lightRate } },
    "kafka-light": open(
      smoke
        ? {
          scenario: "kafka-light",
          mode: "kafka",
          streams: 4,
          gateways: 2,
          rate: lightRate,
          seconds: 3,
          grpcEnds: true,
        }
        : {
          scenario: "kafka-light",
          mode: "kafka",
          streams: 10,
          gateways: 2,
          rate: lightRate,
          seconds: 20,
          grpcEnds: true,
        },
    ),
    kafka: open(kafka),
    embedded: open(
      smoke
        ? {
          scenario: "embedded",
          mode: "embedded",
          streams: 50,
          gateways: 1,
          rate: 20,
          seconds: 3,
          sweep: [10],
          sweepSeconds: 2,
          sweepSecondsAt: { [kafka.rate]: kafka.seconds },
        }
        : {
          scenario: "embedded",
          mode: "embedded",
          streams: 1000,
          gateways: 1,
          rate: 50,
          seconds: 30,
          sweep: [5, 10, 20, 35],
          sweepSeconds: 10,
          sweepSecondsAt: { [kafka.rate]: kafka.seconds },
        },
    ),
    fanout:
      (smoke
        ? { streams: 50, messages: 100, window: 4, bytes, perProcess: 500 }
        : { streams: 1000, messages: 300, window: 8, bytes, perProcess: 500 }) satisfies FanoutSpec,
    idle:
      (smoke
        ? { streams: 300, perProcess: 2500 }
        : { streams: 10_000, perProcess: 2500 }) satisfies IdleSpec,
    slow:
      (smoke
        ? { streams: 20, rate: 50, bytes, seconds: 3, perProcess: 500 }
        : { streams: 100, rate: 100, bytes, seconds: 20, perProcess: 500 }) satisfies SlowSpec,
    metrics:
      (smoke ? { streams: 50, messages: 100, window: 4, bytes, perProcess: 500, pairs: 1 } : {
        streams: 1000,
        messages: 300,
        window: 8,
        bytes,
        perProcess: 500,
        pairs: 3,
      }) satisfies CostSpec,
    "grpc-floor":
      (smoke ? { streams: 50, messages: 100, window: 4, bytes, perProcess: 500, pairs: 1 } : {
        streams: 1000,
        messages: 300,
        window: 8,
        bytes,
        perProcess: 500,
        pairs: 2,
      }) satisfies CostSpec,
    "web-fanout": (smoke
      ? {
        streams: 50,
        messages: 100,
        window: 4,
        bytes,
        perProcess: 500,
        pairs: 1,
        latencyAt: { rate: 20, seconds: 1 },
      }
      : {
        streams: 1000,
        messages: 300,
        window: 8,
        bytes,
        perProcess: 500,
        pairs: 2,
        latencyAt: { rate: 20, seconds: 5 },
      }) satisfies WebFanoutSpec,
    "web-idle":
      (smoke
        ? { streams: 100, perProcess: 2500, settleMs: 300 }
        : { streams: 3000, perProcess: 3000 }) satisfies IdleSpec,
  };
}

/** Progress: one line that rewrites itself on a terminal, a line every 5 s otherwise. */
/** `entries`, once each one's details are printed (the cost and floor scenarios' figures). */
async function printingDetails(entries: Promise<Entry[]>): Promise<Entry[]> {
  const got = await entries;
  for (const e of got) console.log(JSON.stringify(e.details));
  return got;
}

function progressLine(): { update(text: string): void; done(): void } {
  const tty = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  let last = 0;
  return {
    update(text) {
      if (tty) Deno.stderr.writeSync(encoder.encode(`\r\x1b[K  ${text}`));
      else if (performance.now() - last >= 5000) {
        last = performance.now();
        Deno.stderr.writeSync(encoder.encode(`  ${text}\n`));
      }
    },
    done() {
      if (tty) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    },
  };
}

async function main(): Promise<number> {
  const args = parseArgs(Deno.args);
  const p = plan(args.smoke, args.bytes);
  const started = performance.now();
  const date = new Date().toISOString();
  const loadAtStart = loadAverage();
  const command = `deno task bench${Deno.args.length ? ` ${Deno.args.join(" ")}` : ""}`;
  console.log(`# ${command} — ${date}, load average ${loadAtStart}`);

  const needsKafka = args.only.has("floor");
  let leased = false;
  let brokers = Deno.env.get("KAFKA_BROKERS") ?? "";
  const entries: Entry[] = [];
  const errors: string[] = [];
  const line = progressLine();
  const say = (text: string) =>
    line.update(
      `${new Date().toISOString().slice(11, 19)} ${text} (load ${loadAverage().split(" ")[0]})`,
    );
  const attempt = async (name: string, run: () => Promise<Entry[]>) => {
    console.log(`\n## ${name}`);
    const t0 = performance.now();
    try {
      const got = await run();
      line.done();
      entries.push(...got);
      if (got.some((e) => e.scenario !== "floor")) console.log(textTable(got));
      for (const e of got.filter((e) => e.scenario === "idle" || e.scenario === "slow")) {
        console.log(JSON.stringify(e.details));
      }
    } catch (err) {
      line.done();
      const message = err instanceof Error ? err.stack ?? err.message : String(err);
      errors.push(`${name}: ${message.split("\n")[0]}`);
      console.log(`FAILED TO RUN: ${message}`);
    }
    console.log(`(${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  };

  try {
    if (needsKafka && !brokers) {
      leased = true;
      await clusterUp({ lease: true });
      brokers = BROKERS.join(",");
      Deno.env.set("KAFKA_BROKERS", brokers);
    }
    let floor: Entry["kafka_floor_e2e_ms"] = null;
    for (const scenario of SCENARIOS.filter((s) => args.only.has(s))) {
      switch (scenario) {
        case "floor":
          await attempt("floor: Kafka's EndToEndLatency and ProducerPerformance", async () => {
            say("running EndToEndLatency and ProducerPerformance");
            const r = await runFloor({ brokers, bytes: args.bytes, ...p.floor });
            const kafkajs = r.kafkajs_end_to_end;
            const paced = r.kafkajs_paced;
            floor = {
              p50: r.end_to_end.p50,
              p99: r.end_to_end.p99,
              kafkajs: { p50: kafkajs.p50, p99: kafkajs.p99 },
              kafkajs_paced: { p50: paced.p50, p99: paced.p99, rate: paced.rate },
            };
            console.log(
              `EndToEndLatency: avg ${r.end_to_end.avg_ms} ms, p50 ${r.end_to_end.p50}, p99 ${r.end_to_end.p99}, p99.9 ${r.end_to_end.p999} ms; the same loop with kafkajs: p50 ${kafkajs.p50}, p99 ${kafkajs.p99}, p99.9 ${kafkajs.p999} ms, paced at ${paced.rate}/s: p50 ${paced.p50}, p99 ${paced.p99} ms; ProducerPerformance: ${r.producer.records_per_s} records/s, p50 ${r.producer.p50}, p99 ${r.producer.p99} ms`,
            );
            return [{
              scenario: "floor",
              mode: "kafka",
              streams: 0,
              gateways: 0,
              rate: 0,
              bytes: args.bytes,
              seconds: 0,
              deliveries_per_s: null,
              e2e_ms: null,
              publish_ms: null,
              lost: 0,
              duplicated: 0,
              kafka_floor_e2e_ms: floor,
              rss_mib: {},
              cpu_cores: {},
              details: { ...r },
            }];
          });
          break;
        case "kafka-light":
        case "kafka":
        case "embedded":
          await attempt(
            scenario,
            () =>
              runOpenLoop(
                { ...p[scenario], floor: p[scenario].mode === "kafka" ? floor : null },
                say,
              ),
          );
          break;
        case "fanout":
          await attempt("fanout: the gRPC ceiling", () => runFanout(p.fanout, say));
          break;
        case "idle":
          await attempt("idle streams", () => runIdle(p.idle, say));
          break;
        case "slow":
          await attempt("slow reader", () => runSlow(p.slow, say));
          break;
        case "metrics":
          await attempt(
            "metrics: CPU per delivery, METRICS=on and off",
            () => printingDetails(runMetricsCost(p.metrics, say)),
          );
          break;
        case "grpc-floor":
          await attempt(
            "grpc-floor: gateway CPU per delivery against grpc-js's floor",
            () => printingDetails(runGrpcFloor(p["grpc-floor"], say)),
          );
          break;
        case "web-fanout":
          await attempt(
            "web-fanout: the browser path's CPU per delivery against Deno.serve's",
            () => printingDetails(runWebFanout(p["web-fanout"], say)),
          );
          break;
        case "web-idle":
          await attempt(
            "web-idle: idle gRPC-Web streams, gateway and Deno.serve",
            () => printingDetails(runWebIdle(p["web-idle"], say)),
          );
          break;
      }
    }
  } finally {
    if (leased) await releaseCluster();
  }

  const minutes = ((performance.now() - started) / 60_000).toFixed(1);
  await Deno.mkdir(RESULTS, { recursive: true });
  let exit = errors.length ? 1 : 0;
  if (args.smoke) {
    await Deno.writeTextFile(`${RESULTS}/smoke.json`, JSON.stringify(entries, null, 2) + "\n");
    const unclean = entries.filter((e) => e.lost > 0 || e.duplicated > 0);
    for (const e of unclean) {
      console.log(`FAIL  ${e.scenario}: lost ${e.lost}, duplicated ${e.duplicated}`);
    }
    if (unclean.length) exit = 1;
    console.log(
      `\nSmoke run: ${entries.length} results in ${minutes} min -> bench/results/smoke.json`,
    );
  } else {
    // A partial run (--only) replaces its scenarios in the committed results and keeps the rest.
    const ran = new Set(entries.map((e) => e.scenario));
    const previous = await Deno.readTextFile(`${RESULTS}/latest.json`)
      .then((t) => JSON.parse(t) as Entry[]).catch(() => [] as Entry[]);
    const order = (e: Entry) => ["floor", ...SCENARIOS, "sweep"].indexOf(e.scenario);
    const all = [...previous.filter((e) => !ran.has(e.scenario)), ...entries]
      .sort((a, b) => order(a) - order(b) || a.rate - b.rate);
    await Deno.writeTextFile(`${RESULTS}/latest.json`, JSON.stringify(all, null, 2) + "\n");
    const chart = chartOf(all);
    await Deno.writeTextFile(`${ROOT}docs/${CHART}`, chart);
    await Deno.writeTextFile(
      `${ROOT}docs/benchmarks.md`,
      markdown({
        entries: all,
        machine: await machine(kafkaVersion()),
        date,
        loadAtStart,
        command,
        brokers,
        chartFile: CHART,
      }),
    );
    // Laid out the way `deno fmt --check` wants them (it formats Markdown and SVG too).
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", `${ROOT}docs/benchmarks.md`, `${ROOT}docs/${CHART}`],
    }).output();
    console.log(
      `\nWrote bench/results/latest.json, docs/${CHART}, docs/benchmarks.md (${minutes} min)`,
    );
  }

  if (!args.smoke) {
    console.log("\n## Targets\n");
    for (const v of verdicts(entries)) console.log(verdictLine(v));
  }
  for (const e of errors) console.error(`could not run: ${e}`);
  return exit;
}

if (import.meta.main) Deno.exit(await main());
