/**
 * The processes of the local cluster's nodes (see kafka/cluster.ts): formatting a node's storage,
 * starting its `java` process detached from the caller, finding it again by its pid file or
 * /proc, stopping it, and asking the brokers whether they answer with all three of them.
 */

import { Kafka, logLevel } from "kafkajs";
import { setTimeout as sleep } from "node:timers/promises";
import { fixKafkajsIdleTimerLoop } from "../bus/kafka/idle_timer_fix.ts";
import { exists, run, seconds, tail } from "../scripts/files.ts";
import {
  BROKER_JVM_OPTIONS,
  brokerPort,
  BROKERS,
  type ClusterPaths,
  clusterPaths,
  HOST,
  type Log,
  NODE_IDS,
  nodePaths,
  renderServerProperties,
  TOOL_JVM_OPTIONS,
} from "./layout.ts";

function commandLine(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
  } catch {
    return []; // gone (a zombie has an empty command line too)
  }
}

/** Whether `pid` is the broker of this checkout that runs `config`. */
export function isNodeProcess(pid: number, config: string): boolean {
  const args = commandLine(pid);
  return args.includes("kafka.Kafka") && args.includes(config);
}

/** The pid of node N of this checkout, from its pid file or else by a look through /proc. */
export async function nodePid(node: number, paths = clusterPaths()): Promise<number | undefined> {
  const files = nodePaths(paths, node);
  try {
    const pid = Number((await Deno.readTextFile(files.pidFile)).trim());
    if (Number.isInteger(pid) && pid > 0 && isNodeProcess(pid, files.config)) return pid;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (Number.isInteger(pid) && pid !== Deno.pid && isNodeProcess(pid, files.config)) return pid;
  }
  return undefined;
}

/** Resident memory of a process in KiB, from /proc. */
export function rssKiB(pid: number): number | undefined {
  try {
    const match = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmRSS:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether something listens on `port` of 127.0.0.1. */
export async function portOpen(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: HOST, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

function toolArgs(paths: ClusterPaths, mainClass: string, args: string[]): string[] {
  return [
    ...TOOL_JVM_OPTIONS,
    `-Dlog4j.configuration=file:${paths.log4j}`,
    `-Dkafka.logs.dir=${paths.logsDir}`,
    "-Dkafka.log.name=tools",
    "-cp",
    `${paths.jarsDir}/*`,
    mainClass,
    ...args,
  ];
}

/** Writes every node's server.properties and formats the storage of nodes that lack it. */
export async function prepareNodes(
  nodes: readonly number[],
  paths: ClusterPaths,
  log: Log,
): Promise<void> {
  await Deno.mkdir(paths.logsDir, { recursive: true });
  for (const node of nodes) {
    const files = nodePaths(paths, node);
    await Deno.writeTextFile(files.config, renderServerProperties(node, files.logDir));
  }
  const unformatted: number[] = [];
  for (const node of nodes) {
    if (!await exists(`${nodePaths(paths, node).logDir}/meta.properties`)) unformatted.push(node);
  }
  if (unformatted.length === 0) return;

  const started = performance.now();
  const idFile = `${paths.dataDir}/cluster-id`;
  let clusterId = (await exists(idFile)) ? (await Deno.readTextFile(idFile)).trim() : "";
  if (clusterId === "") {
    const out = await run(
      "java",
      toolArgs(paths, "kafka.tools.StorageTool", ["random-uuid"]),
      "make a cluster id",
    );
    clusterId = out.trim().split("\n").pop()?.trim() ?? "";
    if (!/^[A-Za-z0-9_-]{22}$/.test(clusterId)) {
      throw new Error(`Cannot make a cluster id: StorageTool printed "${out.trim()}"`);
    }
    await Deno.writeTextFile(idFile, clusterId + "\n");
  }
  await Promise.all(unformatted.map((node) =>
    run(
      "java",
      toolArgs(paths, "kafka.tools.StorageTool", [
        "format",
        "-t",
        clusterId,
        "-c",
        nodePaths(paths, node).config,
        "--ignore-formatted",
      ]),
      `format the storage of node ${node}`,
    )
  ));
  log(`Formatted node ${unformatted.join(", ")} (cluster id ${clusterId}) in ${seconds(started)}`);
}

/** Starts node N's java process in its own session, detached from this one; returns its pid. */
export async function spawnNode(node: number, paths: ClusterPaths): Promise<number> {
  const files = nodePaths(paths, node);
  await Deno.remove(files.pidFile).catch(() => {});
  const java = [
    "java",
    ...BROKER_JVM_OPTIONS,
    `-Dlog4j.configuration=file:${paths.log4j}`,
    `-Dkafka.logs.dir=${paths.logsDir}`,
    `-Dkafka.log.name=node-${node}`,
    "-cp",
    `${paths.jarsDir}/*`,
    "kafka.Kafka",
    files.config,
  ];
  // setsid -f: a new session (no terminal signals reach it) in a process this script does not
  // wait for; `exec` keeps the pid that the shell writes to the pid file.
  const script = 'pid_file=$1; out=$2; shift 2; echo $$ > "$pid_file"; ' +
    'exec "$@" >> "$out" 2>&1 < /dev/null';
  await run(
    "setsid",
    ["-f", "sh", "-c", script, "sh", files.pidFile, files.stdout, ...java],
    `start node ${node}`,
  );
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const pid = Number((await Deno.readTextFile(files.pidFile).catch(() => "")).trim());
    if (pid > 0 && isNodeProcess(pid, files.config)) return pid;
    await sleep(50);
  }
  throw new Error(
    `Cannot start node ${node}: no broker process after 5 s\n${tail(files.stdout)}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Asking the brokers

function client(brokers: readonly string[], retries = 0): Kafka {
  fixKafkajsIdleTimerLoop();
  return new Kafka({
    clientId: "kafka-cluster-script",
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    retry: { retries, initialRetryTime: 200, maxRetryTime: 2_000 },
  });
}

/** The broker ids node N's metadata lists, or undefined when it does not answer. */
export async function brokerView(node: number): Promise<number[] | undefined> {
  if (!await portOpen(brokerPort(node))) return undefined;
  const admin = client([`${HOST}:${brokerPort(node)}`]).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.map((b) => b.nodeId).sort((a, b) => a - b);
  } catch {
    return undefined;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Waits until each of `nodes` answers with metadata listing all three brokers. */
export async function waitReady(
  nodes: readonly number[],
  deadline: number,
  paths: ClusterPaths,
  pids: Map<number, number>,
): Promise<void> {
  const pending = new Set(nodes);
  while (pending.size > 0) {
    for (const node of [...pending]) {
      const pid = pids.get(node);
      if (pid !== undefined && !isNodeProcess(pid, nodePaths(paths, node).config)) {
        throw new Error(`Cannot start Kafka: node ${node} exited\n${nodeTails(paths, node)}`);
      }
      const view = await brokerView(node);
      if (view?.length === NODE_IDS.length) pending.delete(node);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) {
      const tails = [...pending].map((n) => nodeTails(paths, n));
      throw new Error(
        `Cannot start Kafka: node ${[...pending].join(", ")} not ready in time\n${
          tails.join("\n")
        }`,
      );
    }
    await sleep(250);
  }
}

/**
 * Makes the group coordinator's topic `__consumer_offsets` exist while all three brokers are up
 * (it needs 3 replicas), so that a test stopping a broker later still finds a coordinator.
 */
export async function warmUpCoordinator(deadline: number): Promise<void> {
  const admin = client(BROKERS, 10).admin();
  try {
    await admin.connect();
    while (true) {
      try {
        await admin.describeGroups(["kafka-cluster-script-warm-up"]);
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(
            `Cannot start Kafka: no group coordinator in time (${(error as Error).message})`,
          );
        }
        await sleep(250);
      }
    }
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** The ends of node N's output and log, for an error message. */
function nodeTails(paths: ClusterPaths, node: number): string {
  const files = nodePaths(paths, node);
  return `--- ${files.stdout}\n${tail(files.stdout, 10)}\n--- ${files.log}\n${tail(files.log, 15)}`;
}

export interface StopOptions {
  /** SIGKILL at once, as in a crash (default: SIGTERM, a controlled shutdown). */
  kill?: boolean;
  /** How long to wait after SIGTERM before SIGKILL, in ms (default 30 000). */
  timeoutMs?: number;
  log?: Log;
  paths?: ClusterPaths;
}

/** Stops the given nodes of this checkout; returns the nodes that were running. */
export async function stopNodes(
  nodes: readonly number[],
  paths: ClusterPaths,
  options: StopOptions = {},
): Promise<number[]> {
  const log = options.log ?? (() => {});
  const running = new Map<number, number>();
  for (const node of nodes) {
    const pid = await nodePid(node, paths);
    if (pid !== undefined) running.set(node, pid);
  }
  const signal = (pid: number, sig: Deno.Signal) => {
    try {
      Deno.kill(pid, sig);
    } catch { /* already gone */ }
  };
  const alive = () =>
    [...running].filter(([node, pid]) => isNodeProcess(pid, nodePaths(paths, node).config));

  for (const pid of running.values()) signal(pid, options.kill ? "SIGKILL" : "SIGTERM");
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (alive().length > 0 && Date.now() < deadline) await sleep(100);
  const stuck = alive();
  if (stuck.length > 0) {
    log(`Node ${stuck.map(([n]) => n).join(", ")} did not stop in time: SIGKILL`);
    for (const [, pid] of stuck) signal(pid, "SIGKILL");
    const killDeadline = Date.now() + 10_000;
    while (alive().length > 0 && Date.now() < killDeadline) await sleep(100);
  }
  for (const node of nodes) await Deno.remove(nodePaths(paths, node).pidFile).catch(() => {});
  return [...running.keys()];
}
