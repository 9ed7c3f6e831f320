/**
 * The system under test, as real processes the way an operator runs them
 * (scripts/processes.ts `spawn` and `kafkaDeployment`):
 *
 * - embedded: one `deno run -A main.ts` with the default `BUS=memory`, which runs the gateway and
 *   the processor in one process (the memory bus is in-process, so embedded mode has one gateway);
 * - kafka: one `deno run -A processor.ts` and G `BUS=kafka deno run -A main.ts` gateways on the
 *   cluster in KAFKA_BROKERS, sharing an SQLite file in a temporary directory.
 *
 * Both with AUTH=off (the classic API: every stream is in room `general`) and rate limits out of
 * the way; everything else at its defaults (STREAM_QUEUE_LIMIT 1000, LOG_LEVEL info).
 *
 * - grpc-floor: not the service but its floor, `deno run -A bench/grpc_floor.ts`, a minimal
 *   grpc-js fan-out server the same load drives, to compare the gateway with;
 * - web-floor: the browser path's floor, `deno run -A bench/web_floor.ts`, a minimal Deno.serve
 *   gRPC-Web fan-out server, to compare the gateway's HTTP port with.
 */

import { BROKERS, NODE_IDS } from "../kafka/layout.ts";
import { nodePid } from "../kafka/nodes.ts";
import { freePort, kafkaDeployment, type Service, spawn, stopAll } from "../scripts/processes.ts";

export interface SystemUnderTest {
  mode: "embedded" | "kafka" | "grpc-floor" | "web-floor" | "web-node-floor";
  /** The gateways' gRPC `host:port`. */
  addresses: string[];
  /** The gateways' HTTP ports (the browser API), `http://host:port`, in the order of `addresses`. */
  httpUrls: string[];
  /** Process name → pid, for memory and CPU (in Kafka mode the local brokers' too). */
  pids: Record<string, number>;
  /** Output lines of a process so far. */
  output(name: string): string[];
  stop(): Promise<void>;
}

const TUNING = {
  RATE_LIMIT_PER_SECOND: "1000000",
  RATE_LIMIT_BURST: "1000000",
  // The load comes from one address, one connection per stream (10,000 in the idle scenario).
  MAX_CONNECTIONS: "100000",
  MAX_CONNECTIONS_PER_ADDRESS: "100000",
  MAX_CALLS_PER_ADDRESS: "100000",
  LOG_LEVEL: Deno.env.get("BENCH_LOG_LEVEL") ?? "info",
};

function system(
  mode: SystemUnderTest["mode"],
  services: Service[],
  addresses: string[],
  httpUrls: string[],
  dir = "",
  others: Record<string, number> = {},
) {
  return {
    mode,
    addresses,
    httpUrls,
    pids: { ...Object.fromEntries(services.map((s) => [s.name, s.process.pid])), ...others },
    output: (name: string) => services.find((s) => s.name === name)?.output ?? [],
    async stop() {
      await stopAll(services);
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * BENCH_PROFILE=<dir>: V8's sampling profiler writes <dir>/<name>.v8.log, for
 * `node --prof-process` (docs/benchmarks.md shows how).
 */
function profiled(name: string): string[] {
  const profile = Deno.env.get("BENCH_PROFILE");
  return profile
    ? [`--v8-flags=--prof,--no-logfile-per-isolate,--logfile=${profile}/${name}.v8.log`]
    : [];
}

/** `env` adds to or overrides the settings above (the metrics scenario sets METRICS). */
export async function startEmbedded(env: Record<string, string> = {}): Promise<SystemUnderTest> {
  const dir = await Deno.makeTempDir({ prefix: "chat-bench-" });
  const grpcPort = freePort();
  const httpPort = freePort();
  const service = spawn("embedded", "main.ts", {
    denoFlags: profiled("embedded"),
    env: {
      ...TUNING,
      BUS: "memory",
      AUTH: "off",
      AUTH_SECRET: crypto.randomUUID() + crypto.randomUUID(),
      DATABASE_PATH: `${dir}/chat.db`,
      DATABASE_URL: "",
      GRPC_PORT: String(grpcPort),
      HTTP_PORT: String(httpPort),
      ...env,
    },
  });
  try {
    await service.waitForLine(/Gateway listening/, 60_000);
  } catch (err) {
    await stopAll([service]);
    throw err;
  }
  return system(
    "embedded",
    [service],
    [`127.0.0.1:${grpcPort}`],
    [`http://127.0.0.1:${httpPort}`],
    dir,
  );
}

/** A floor server, bench/<name>.ts with `flags`, as process `process` on a free port. */
async function startFloor(
  name: "grpc-floor" | "web-floor",
  process: string = name,
  flags: string[] = [],
) {
  const port = freePort();
  const service = spawn(process, `bench/${name.replace("-", "_")}.ts`, {
    args: [String(port), ...flags],
    denoFlags: profiled(process),
  });
  try {
    await service.waitForLine(/Floor listening/, 60_000);
  } catch (err) {
    await stopAll([service]);
    throw err;
  }
  return { service, port };
}

/** The native gRPC floor (bench/grpc_floor.ts) as process `grpc-floor`. */
export async function startGrpcFloor(): Promise<SystemUnderTest> {
  const { service, port } = await startFloor("grpc-floor");
  return system("grpc-floor", [service], [`127.0.0.1:${port}`], []);
}

/** The browser path's floor (bench/web_floor.ts) as process `web-floor`: gRPC-Web only. */
export async function startWebFloor(): Promise<SystemUnderTest> {
  const { service, port } = await startFloor("web-floor");
  return system("web-floor", [service], [], [`http://127.0.0.1:${port}`]);
}

/** The same floor on node:http (bench/web_floor.ts --node) as process `web-node-floor`. */
export async function startWebNodeFloor(): Promise<SystemUnderTest> {
  const { service, port } = await startFloor("web-floor", "web-node-floor", ["--node"]);
  return system("web-node-floor", [service], [], [`http://127.0.0.1:${port}`]);
}

export async function startKafka(gateways: number): Promise<SystemUnderTest> {
  const neighbours = processorNeighbours();
  if (neighbours.length) {
    throw new Error(
      `Other processes on this machine may join the processor group and take partitions from the benchmark's processor:\n${
        neighbours.join("\n")
      }`,
    );
  }
  const brokers = Deno.env.get("KAFKA_BROKERS");
  if (!brokers) throw new Error("Cannot start the Kafka system: KAFKA_BROKERS is not set");
  const deployment = kafkaDeployment({ brokers, auth: "off", heartbeatTimeoutMs: 10_000 });
  const env = { ...TUNING, HEARTBEAT_INTERVAL_MS: "3000" };
  const services: Service[] = [];
  try {
    const processor = deployment.processor("processor", env);
    services.push(processor);
    await processor.waitForLine(/Processor started/, 90_000);
    const gws = Array.from(
      { length: gateways },
      (_, i) => deployment.gateway(`gateway-${i + 1}`, env),
    );
    services.push(...gws.map((g) => g.service));
    await Promise.all(gws.map((g) => g.ready(90_000)));
    return system(
      "kafka",
      services,
      gws.map((g) => g.grpc),
      gws.map((g) => g.http),
      "",
      await localBrokers(brokers),
    );
  } catch (err) {
    await stopAll(services);
    throw err;
  }
}

/**
 * The brokers of this repository's cluster (kafka/cluster.ts), by name, when `brokers` names it:
 * they share the machine with the service, so their CPU is reported beside its own.
 */
async function localBrokers(brokers: string): Promise<Record<string, number>> {
  const named = brokers.split(",").map((b) => b.trim().replace(/^localhost:/, "127.0.0.1:"));
  // One bootstrap address of the local cluster is enough to use all of it.
  if (!named.some((b) => BROKERS.includes(b))) return {};
  const pids: Record<string, number> = {};
  for (const node of NODE_IDS) {
    const pid = await nodePid(node);
    if (pid !== undefined) pids[`broker-${node}`] = pid;
  }
  return pids;
}

/** Deno subcommands that only read the code. */
const TOOLS = new Set(["check", "fmt", "lint", "bundle", "doc", "info", "install"]);

/** Processes here that run a processor or drive one (tests that start processors). */
export function processorNeighbours(): string[] {
  const found: string[] = [];
  const pattern = /processor\.ts|kafka_integration_test|web_kafka_test|cluster_test/;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      // Type-checking, formatting or bundling processor.ts runs nothing that joins a group.
      if (TOOLS.has(argv[1] ?? "")) continue;
      const cmd = argv.join(" ");
      if (pattern.test(cmd)) found.push(`  ${entry.name}: ${cmd.trim().slice(0, 120)}`);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}
