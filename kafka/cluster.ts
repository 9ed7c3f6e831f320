// deno-lint-ignore-file no-console
/**
 * A local three-node Apache Kafka 3.9.1 cluster without Docker, for development and the tests.
 *
 * Three KRaft nodes, each a broker and a controller at once, run as plain `java` processes from
 * the Maven Central jars (kafka/pom.xml, copied to kafka/.jars). Node N (1..3) serves clients on
 * 127.0.0.1:(9091+N) and the controller quorum on 127.0.0.1:(19091+N). Data lives in
 * kafka/.data/node-N, broker logs in kafka/.data/logs, pid files in kafka/.data.
 *
 * ```sh
 * deno run -A kafka/cluster.ts up                    # fetch jars, format, start, wait until ready
 * deno run -A kafka/cluster.ts down [--clean]        # stop; --clean also deletes kafka/.data
 * deno run -A kafka/cluster.ts status                # exit 0 when all three brokers answer
 * deno run -A kafka/cluster.ts stop-broker N [--kill] # stop one node (--kill: SIGKILL, a crash)
 * deno run -A kafka/cluster.ts start-broker N        # start one node and wait until it rejoined
 * deno run -A kafka/cluster.ts fetch                 # only fetch the jars
 * ```
 *
 * Guarantees: every topic, the app's own and `__consumer_offsets` and the transaction log, has 3
 * replicas and needs 2 in sync for an `acks=-1` write, so an acknowledged write is on two brokers
 * and any one broker can die without stopping writes. The app sets the same on its topics itself
 * (bus/kafka_replication.ts); the broker defaults here cover anything else.
 * Topics are never created automatically: the app creates its own.
 *
 * Commands that change the cluster hold a machine-wide lock ({@linkcode LOCK_FILE}), so two of
 * them never interleave. scripts/test.ts starts the cluster with `clusterUp({ lease: true })` and
 * gives it back with {@linkcode releaseCluster}: test runs in one checkout share the cluster and
 * the last one out stops it and deletes its data. Integration tests can use
 * {@linkcode stopBroker} and {@linkcode startBroker}.
 */

import { Kafka, logLevel } from "kafkajs";
import { fixKafkajsIdleTimerLoop } from "../bus/kafka/idle_timer_fix.ts";
import { fileURLToPath } from "node:url";

/** The node ids of the cluster; node N is broker N and controller N. */
export const NODE_IDS: readonly number[] = [1, 2, 3];
export const HOST = "127.0.0.1";

/** The client (broker) port of node N: 9092, 9093, 9094. */
export function brokerPort(node: number): number {
  return 9091 + node;
}

/** The controller (KRaft quorum) port of node N: 19092, 19093, 19094. */
export function controllerPort(node: number): number {
  return 19091 + node;
}

/** The bootstrap addresses of all nodes, `127.0.0.1:9092,...`: equal to DEFAULT_KAFKA_BROKERS. */
export const BROKERS: readonly string[] = NODE_IDS.map((n) => `${HOST}:${brokerPort(n)}`);

/** The static KRaft quorum, `1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094`. */
export function quorumVoters(): string {
  return NODE_IDS.map((n) => `${n}@${HOST}:${controllerPort(n)}`).join(",");
}

/**
 * Broker settings that decide the cluster's guarantees and behaviour; compose.yaml carries the
 * same values (tests/compose_test.ts checks it).
 */
export const GUARANTEE_SETTINGS: Readonly<Record<string, string>> = {
  "offsets.topic.replication.factor": "3",
  "transaction.state.log.replication.factor": "3",
  "transaction.state.log.min.isr": "2",
  "default.replication.factor": "3",
  "min.insync.replicas": "2",
  "unclean.leader.election.enable": "false",
  "auto.create.topics.enable": "false",
  "group.initial.rebalance.delay.ms": "0",
};

/** Smaller than the defaults, for a 2-core machine running three brokers. */
export const SMALL_MACHINE_SETTINGS: Readonly<Record<string, string>> = {
  "num.network.threads": "2",
  "num.io.threads": "4",
  "num.replica.fetchers": "1",
  "num.recovery.threads.per.data.dir": "1",
  "background.threads": "4",
  "offsets.topic.num.partitions": "10",
  "transaction.state.log.num.partitions": "10",
  "num.partitions": "1",
  "log.cleaner.threads": "1",
  "log.cleaner.dedupe.buffer.size": String(32 * 1024 * 1024),
};

/** JVM options of each broker: a fixed small heap and few GC threads for 2 cores. */
export const BROKER_JVM_OPTIONS: readonly string[] = [
  "-Xms512m",
  "-Xmx512m",
  "-XX:ParallelGCThreads=1",
  "-XX:ConcGCThreads=1",
  "-XX:+UseG1GC",
  "-XX:MaxGCPauseMillis=20",
  "-XX:InitiatingHeapOccupancyPercent=35",
  "-XX:+ExplicitGCInvokesConcurrent",
  "-XX:+ExitOnOutOfMemoryError",
  "-Djava.awt.headless=true",
];

/** JVM options of the short-lived StorageTool runs: start fast, little memory. */
const TOOL_JVM_OPTIONS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"];

/** The jars kafka/.jars must hold; a copy without them is fetched again. */
export const REQUIRED_JARS: readonly string[] = [
  "kafka_2.13-3.9.1.jar",
  "kafka-clients-3.9.1.jar",
  "kafka-server-3.9.1.jar",
  "kafka-raft-3.9.1.jar",
  "kafka-metadata-3.9.1.jar",
  "scala-library-2.13.15.jar",
  "slf4j-api-1.7.36.jar",
  "slf4j-reload4j-1.7.36.jar",
  "reload4j-1.2.19.jar",
];

/** Where everything lives; all absolute. */
export interface ClusterPaths {
  kafkaDir: string;
  pom: string;
  log4j: string;
  jarsDir: string;
  dataDir: string;
  logsDir: string;
}

/** The paths of the cluster next to this script (or under `kafkaDir`). */
export function clusterPaths(
  kafkaDir = fileURLToPath(new URL(".", import.meta.url)),
): ClusterPaths {
  const dir = kafkaDir.replace(/\/+$/, "");
  return {
    kafkaDir: dir,
    pom: `${dir}/pom.xml`,
    log4j: `${dir}/log4j.properties`,
    jarsDir: `${dir}/.jars`,
    dataDir: `${dir}/.data`,
    logsDir: `${dir}/.data/logs`,
  };
}

/** Files of one node. */
export function nodePaths(paths: ClusterPaths, node: number) {
  return {
    logDir: `${paths.dataDir}/node-${node}`,
    config: `${paths.dataDir}/node-${node}.properties`,
    pidFile: `${paths.dataDir}/node-${node}.pid`,
    stdout: `${paths.logsDir}/node-${node}.out`,
    log: `${paths.logsDir}/node-${node}.log`,
  };
}

/** Renders node N's server.properties, with its data in `logDir`. */
export function renderServerProperties(node: number, logDir: string): string {
  if (!NODE_IDS.includes(node)) {
    throw new Error(`Cannot render server.properties: node ${node} is not one of ${NODE_IDS}`);
  }
  const lines = [
    `# Node ${node} of the local cluster. Written by kafka/cluster.ts on every start: edit that.`,
    "process.roles=broker,controller",
    `node.id=${node}`,
    `controller.quorum.voters=${quorumVoters()}`,
    `listeners=PLAINTEXT://${HOST}:${brokerPort(node)},CONTROLLER://${HOST}:${
      controllerPort(node)
    }`,
    `advertised.listeners=PLAINTEXT://${HOST}:${brokerPort(node)}`,
    "inter.broker.listener.name=PLAINTEXT",
    "controller.listener.names=CONTROLLER",
    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    `log.dirs=${logDir}`,
    "",
    "# Guarantees (the same in compose.yaml)",
    ...Object.entries(GUARANTEE_SETTINGS).map(([k, v]) => `${k}=${v}`),
    "",
    "# Sized for a small machine",
    ...Object.entries(SMALL_MACHINE_SETTINGS).map(([k, v]) => `${k}=${v}`),
    "",
  ];
  return lines.join("\n");
}

/** Parses `key=value` lines of a properties file (no escapes, no continuations). */
export function parseProperties(text: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("!")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    result.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return result;
}

/** Progress lines; pass `() => {}` to keep quiet. */
export type Log = (line: string) => void;
const defaultLog: Log = (line) => console.log(line);

/**
 * Nothing left to do: KafkaJS 2.2.4's `TimeoutNegativeWarning` came from its idle timer loop,
 * which bus/kafka/idle_timer_fix.ts now stops wherever a Kafka client is made (here in
 * `client()`), so no process-wide warning listener is rewritten any more.
 * @deprecated Remove with its last callers (scripts/test.ts, scripts/lease_warden.ts, bench/main.ts).
 */
export function hideKafkaJsTimeoutWarning(): void {}

// ---------------------------------------------------------------------------------------------
// Processes

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function commandLine(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
  } catch {
    return []; // gone (a zombie has an empty command line too)
  }
}

/** Whether `pid` is the broker of this checkout that runs `config`. */
function isNodeProcess(pid: number, config: string): boolean {
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

async function portOpen(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: HOST, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

async function tail(path: string, lines = 15): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no file)";
  }
}

async function run(cmd: string, args: string[], what: string): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot ${what}: ${cmd} is not installed`);
    }
    throw error;
  }
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr);
    throw new Error(`Cannot ${what}: ${cmd} exited with ${output.code}\n${stdout}${stderr}`.trim());
  }
  return stdout;
}

// ---------------------------------------------------------------------------------------------
// Jars and storage

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether kafka/.jars holds a complete copy made from the current pom.xml. */
export async function jarsComplete(paths = clusterPaths()): Promise<boolean> {
  try {
    const marker = (await Deno.readTextFile(`${paths.jarsDir}/.complete`)).trim();
    if (marker !== await sha256(await Deno.readTextFile(paths.pom))) return false;
    for (const jar of REQUIRED_JARS) {
      if (!await exists(`${paths.jarsDir}/${jar}`)) return false;
    }
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Copies the broker's jars from Maven Central to kafka/.jars unless a complete copy is there. */
export async function ensureJars(paths = clusterPaths(), log: Log = defaultLog): Promise<void> {
  if (await jarsComplete(paths)) return;
  const started = performance.now();
  log("Fetching the Kafka jars with Maven (kafka/pom.xml -> kafka/.jars) ...");
  await Deno.remove(paths.jarsDir, { recursive: true }).catch(() => {});
  await run("mvn", [
    "-q",
    "-B",
    "-f",
    paths.pom,
    "dependency:copy-dependencies",
    "-DincludeScope=runtime",
    `-DoutputDirectory=${paths.jarsDir}`,
  ], "fetch the Kafka jars");
  for (const jar of REQUIRED_JARS) {
    if (!await exists(`${paths.jarsDir}/${jar}`)) {
      throw new Error(`Cannot fetch the Kafka jars: ${jar} is missing from ${paths.jarsDir}`);
    }
  }
  await Deno.writeTextFile(
    `${paths.jarsDir}/.complete`,
    await sha256(await Deno.readTextFile(paths.pom)),
  );
  log(`Fetched the Kafka jars in ${seconds(started)}`);
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
async function prepareNodes(
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
async function spawnNode(node: number, paths: ClusterPaths): Promise<number> {
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
    `Cannot start node ${node}: no broker process after 5 s\n${await tail(files.stdout)}`,
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
async function waitReady(
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
        throw new Error(`Cannot start Kafka: node ${node} exited\n${await nodeTails(paths, node)}`);
      }
      const view = await brokerView(node);
      if (view?.length === NODE_IDS.length) pending.delete(node);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) {
      const tails = await Promise.all([...pending].map((n) => nodeTails(paths, n)));
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
async function warmUpCoordinator(deadline: number): Promise<void> {
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

async function nodeTails(paths: ClusterPaths, node: number): Promise<string> {
  const files = nodePaths(paths, node);
  return `--- ${files.stdout}\n${await tail(files.stdout, 10)}\n--- ${files.log}\n${await tail(
    files.log,
  )}`;
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------
// Lock and leases

/** Machine-wide, like the ports: one cluster command at a time, from any checkout. */
export const LOCK_FILE = "/tmp/kafka-local-cluster.lock";

/** Runs `fn` holding the cluster lock (an flock on {@linkcode LOCK_FILE}). Not re-entrant. */
export async function withClusterLock<T>(fn: () => Promise<T>, log: Log = defaultLog): Promise<T> {
  const file = await Deno.open(LOCK_FILE, { create: true, write: true });
  const waiting = setTimeout(() => log("Waiting for another kafka/cluster.ts command ..."), 1_000);
  try {
    await file.lock(true);
    clearTimeout(waiting);
    return await fn();
  } finally {
    clearTimeout(waiting);
    file.close(); // also releases the lock
  }
}

function leasesDir(paths: ClusterPaths): string {
  return `${paths.dataDir}/leases`;
}

/** Present while the running cluster was started for leases: the last lease out stops it. */
function leasedMarker(paths: ClusterPaths): string {
  return `${paths.dataDir}/started-for-leases`;
}

function processAlive(pid: number): boolean {
  return commandLine(pid).some((arg) => arg !== "");
}

/** Pids holding a lease on the cluster; removes the leases of processes that are gone. */
async function liveLeases(paths: ClusterPaths): Promise<number[]> {
  const live: number[] = [];
  try {
    for await (const entry of Deno.readDir(leasesDir(paths))) {
      const pid = Number(entry.name);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) live.push(pid);
      else await Deno.remove(`${leasesDir(paths)}/${entry.name}`).catch(() => {});
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return live;
}

// ---------------------------------------------------------------------------------------------
// Commands

export interface UpOptions {
  /** How long to wait for the cluster to answer, in ms (default 90 000). */
  timeoutMs?: number;
  /**
   * Take a lease for this process (scripts/test.ts does): a cluster started for leases keeps
   * running while any lease holder lives, and {@linkcode releaseCluster} by the last one stops it
   * and deletes its data. Several test runs in one checkout can so share one cluster.
   */
  lease?: boolean;
  log?: Log;
  paths?: ClusterPaths;
}

export interface UpResult {
  /** Whether this call started any broker (false: all three were already running). */
  started: boolean;
  /** Whether the brokers answering are not this checkout's (another checkout, or Docker). */
  foreign: boolean;
  /** Wall time of the call in ms. */
  ms: number;
}

/**
 * Starts the three nodes that are not running and waits until every broker answers a metadata
 * request listing three brokers. Idempotent. If start-up fails, stops the nodes it started.
 */
export async function clusterUp(options: UpOptions = {}): Promise<UpResult> {
  const log = options.log ?? defaultLog;
  return await withClusterLock(() => up({ ...options, log }), log);
}

async function up(options: UpOptions): Promise<UpResult> {
  const started = performance.now();
  const log = options.log ?? defaultLog;
  const paths = options.paths ?? clusterPaths();
  const deadline = Date.now() + (options.timeoutMs ?? 90_000);

  const pids = new Map<number, number>();
  const missing: number[] = [];
  for (const node of NODE_IDS) {
    const pid = await nodePid(node, paths);
    if (pid === undefined) missing.push(node);
    else pids.set(node, pid);
  }

  const busy: number[] = [];
  for (const node of missing) {
    if (await portOpen(brokerPort(node)) || await portOpen(controllerPort(node))) busy.push(node);
  }
  if (busy.length > 0) {
    if (busy.length === NODE_IDS.length) {
      const views = await Promise.all(NODE_IDS.map(brokerView));
      if (views.every((v) => v?.length === NODE_IDS.length)) {
        log(`Kafka is already running at ${BROKERS.join(",")}, not started from this checkout`);
        return { started: false, foreign: true, ms: performance.now() - started };
      }
    }
    const ports = busy.map((n) => `${brokerPort(n)}/${controllerPort(n)}`).join(", ");
    throw new Error(`Cannot start Kafka: port ${ports} in use by another process`);
  }

  if (options.lease) {
    await Deno.mkdir(leasesDir(paths), { recursive: true });
    if (missing.length === NODE_IDS.length) await Deno.writeTextFile(leasedMarker(paths), "");
    await Deno.writeTextFile(`${leasesDir(paths)}/${Deno.pid}`, "");
  }

  if (missing.length === 0) {
    await waitReady(NODE_IDS, deadline, paths, pids);
    log(`Kafka is already running: ${BROKERS.join(",")} (checked in ${seconds(started)})`);
    return { started: false, foreign: false, ms: performance.now() - started };
  }

  await ensureJars(paths, log);
  await prepareNodes(missing, paths, log);
  log(`Starting Kafka node ${missing.join(", ")} ...`);
  const spawnedAt = performance.now();
  let readyAt = spawnedAt;
  const spawned: number[] = [];
  try {
    for (const node of missing) {
      pids.set(node, await spawnNode(node, paths));
      spawned.push(node);
    }
    await waitReady(NODE_IDS, deadline, paths, pids);
    readyAt = performance.now();
    await warmUpCoordinator(deadline);
  } catch (error) {
    await stopNodes(spawned, paths, { log: () => {} });
    throw error;
  }
  const ms = performance.now() - started;
  log(
    `Kafka is up: ${BROKERS.join(",")} (started in ${(ms / 1000).toFixed(1)} s; brokers ` +
      `answered ${((readyAt - spawnedAt) / 1000).toFixed(1)} s after launch, group coordinator ` +
      `${((performance.now() - readyAt) / 1000).toFixed(1)} s later)`,
  );
  return { started: true, foreign: false, ms };
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
async function stopNodes(
  nodes: readonly number[],
  paths: ClusterPaths,
  options: StopOptions = {},
): Promise<number[]> {
  const log = options.log ?? defaultLog;
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

export interface DownOptions extends StopOptions {
  /** Also delete kafka/.data (data, logs, cluster id), so the next start is fresh. */
  clean?: boolean;
  /** Stop even while other processes (test runs) hold leases on the cluster. */
  force?: boolean;
  /** Before `clean` deletes them, move the broker logs to this folder (replacing it). */
  keepLogsIn?: string;
}

/**
 * Stops all nodes of this checkout (nothing running is fine) and drops all leases; `clean`
 * deletes the data. Refuses while another live process holds a lease, unless `force`.
 */
export async function clusterDown(options: DownOptions = {}): Promise<{ stopped: number[] }> {
  const log = options.log ?? defaultLog;
  const paths = options.paths ?? clusterPaths();
  return await withClusterLock(async () => {
    const users = (await liveLeases(paths)).filter((pid) => pid !== Deno.pid);
    if (users.length > 0 && !options.force) {
      throw new Error(
        `Cannot stop Kafka: test run ${users.join(", ")} is using it (it stops Kafka when it ` +
          "ends); pass --force to stop it anyway",
      );
    }
    return await down({ ...options, log, paths });
  }, log);
}

async function down(options: DownOptions): Promise<{ stopped: number[] }> {
  const started = performance.now();
  const log = options.log ?? defaultLog;
  const paths = options.paths ?? clusterPaths();
  const stopped = await stopNodes(NODE_IDS, paths, { ...options, log });
  if (stopped.length > 0) log(`Stopped Kafka node ${stopped.join(", ")} in ${seconds(started)}`);
  else log("Kafka is not running");
  await Deno.remove(leasesDir(paths), { recursive: true }).catch(() => {});
  await Deno.remove(leasedMarker(paths)).catch(() => {});
  if (options.keepLogsIn && await exists(paths.logsDir)) {
    await Deno.remove(options.keepLogsIn, { recursive: true }).catch(() => {});
    await Deno.mkdir(options.keepLogsIn.replace(/\/[^/]+\/?$/, ""), { recursive: true });
    await Deno.rename(paths.logsDir, options.keepLogsIn);
    log(`Broker logs kept in ${options.keepLogsIn}`);
  }
  if (options.clean) {
    await Deno.remove(paths.dataDir, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    log(`Deleted ${paths.dataDir}`);
  }
  return { stopped };
}

/**
 * Gives back this process's lease from `clusterUp({ lease: true })`. When no other live process
 * holds one and the cluster was started for leases, stops it and deletes its data (moving the
 * logs to `keepLogsIn` first, when given). Returns whether it stopped the cluster.
 */
export async function releaseCluster(
  options: { keepLogsIn?: string; log?: Log; paths?: ClusterPaths } = {},
): Promise<boolean> {
  const log = options.log ?? defaultLog;
  const paths = options.paths ?? clusterPaths();
  return await withClusterLock(async () => {
    await Deno.remove(`${leasesDir(paths)}/${Deno.pid}`).catch(() => {});
    const others = await liveLeases(paths);
    if (others.length > 0) {
      log(`Kafka stays up: still used by process ${others.join(", ")}`);
      return false;
    }
    if (!await exists(leasedMarker(paths))) {
      log("Kafka stays up: it was not started by a test run");
      return false;
    }
    await down({ clean: true, keepLogsIn: options.keepLogsIn, log, paths });
    return true;
  }, log);
}

/** Stops one node (SIGTERM, or SIGKILL with `kill`); returns whether it was running. */
export async function stopBroker(node: number, options: StopOptions = {}): Promise<boolean> {
  checkNode(node);
  const log = options.log ?? defaultLog;
  const paths = options.paths ?? clusterPaths();
  return await withClusterLock(async () => {
    const started = performance.now();
    const stopped = await stopNodes([node], paths, { ...options, log });
    log(
      stopped.length > 0
        ? `Stopped node ${node} (${options.kill ? "SIGKILL" : "SIGTERM"}) in ${seconds(started)}`
        : `Node ${node} is not running`,
    );
    return stopped.length > 0;
  }, log);
}

/** Starts one node and waits until it answers with all three brokers; returns whether it started. */
export async function startBroker(node: number, options: UpOptions = {}): Promise<boolean> {
  checkNode(node);
  const log = options.log ?? defaultLog;
  const paths = options.paths ?? clusterPaths();
  return await withClusterLock(async () => {
    const started = performance.now();
    const deadline = Date.now() + (options.timeoutMs ?? 90_000);
    const existing = await nodePid(node, paths);
    if (existing !== undefined) {
      await waitReady([node], deadline, paths, new Map([[node, existing]]));
      log(`Node ${node} is already running`);
      return false;
    }
    if (await portOpen(brokerPort(node)) || await portOpen(controllerPort(node))) {
      throw new Error(
        `Cannot start node ${node}: port ${brokerPort(node)} in use by another process`,
      );
    }
    await ensureJars(paths, log);
    await prepareNodes([node], paths, log);
    const pid = await spawnNode(node, paths);
    try {
      await waitReady([node], deadline, paths, new Map([[node, pid]]));
    } catch (error) {
      await stopNodes([node], paths, { log: () => {} });
      throw error;
    }
    log(`Started node ${node} in ${seconds(started)}`);
    return true;
  }, log);
}

export interface NodeStatus {
  node: number;
  address: string;
  pid: number | undefined;
  rssKiB: number | undefined;
  listening: boolean;
  /** Broker ids its metadata lists, or undefined when it does not answer. */
  brokers: number[] | undefined;
}

/** What each node is doing. */
export async function clusterStatus(paths = clusterPaths()): Promise<NodeStatus[]> {
  return await Promise.all(NODE_IDS.map(async (node) => {
    const pid = await nodePid(node, paths);
    return {
      node,
      address: `${HOST}:${brokerPort(node)}`,
      pid,
      rssKiB: pid === undefined ? undefined : rssKiB(pid),
      listening: await portOpen(brokerPort(node)),
      brokers: await brokerView(node),
    };
  }));
}

function checkNode(node: number): void {
  if (!NODE_IDS.includes(node)) {
    throw new Error(`Cannot use node "${node}": expected one of ${NODE_IDS.join(", ")}`);
  }
}

const USAGE = `Usage: deno run -A kafka/cluster.ts <command>
  up                     start the three brokers (fetch jars, format) and wait until ready
  down [--clean] [--force]
                         stop them; --clean also deletes kafka/.data; --force even while a
                         test run (deno task test) is using the cluster
  status                 show each node; exit 0 only when all three answer
  stop-broker N [--kill] stop node N (1..3); --kill sends SIGKILL, as in a crash
  start-broker N         start node N and wait until it rejoined
  fetch                  only fetch the jars to kafka/.jars`;

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  const flags = new Set(rest.filter((a) => a.startsWith("--")));
  const positional = rest.filter((a) => !a.startsWith("--"));
  const known = new Set(["--clean", "--kill", "--force"]);
  const unknown = [...flags].filter((f) => !known.has(f));
  if (unknown.length > 0) {
    console.error(`Unknown option ${unknown.join(" ")}\n${USAGE}`);
    return 2;
  }
  switch (command) {
    case "up":
      await clusterUp();
      return 0;
    case "down":
      await clusterDown({ clean: flags.has("--clean"), force: flags.has("--force") });
      return 0;
    case "fetch":
      await ensureJars();
      console.log(`Kafka jars are in ${clusterPaths().jarsDir}`);
      return 0;
    case "status": {
      const status = await clusterStatus();
      for (const s of status) {
        const pid = s.pid === undefined ? "not running" : `pid ${s.pid}`;
        const rss = s.rssKiB === undefined ? "" : `, rss ${(s.rssKiB / 1024).toFixed(0)} MiB`;
        const answer = s.brokers === undefined
          ? s.listening ? "listening, no answer" : "not listening"
          : `answers, lists broker ${s.brokers.join(",")}`;
        console.log(`node ${s.node}  ${s.address}  ${pid}${rss}  ${answer}`);
      }
      const total = status.reduce((sum, s) => sum + (s.rssKiB ?? 0), 0);
      if (total > 0) console.log(`total rss ${(total / 1024).toFixed(0)} MiB`);
      const users = await liveLeases(clusterPaths());
      if (users.length > 0) console.log(`in use by test run ${users.join(", ")}`);
      return status.every((s) => s.brokers?.length === NODE_IDS.length) ? 0 : 1;
    }
    case "stop-broker":
    case "start-broker": {
      const node = Number(positional[0]);
      if (positional.length !== 1 || !NODE_IDS.includes(node)) {
        console.error(`${command} needs a node number, one of ${NODE_IDS.join(", ")}\n${USAGE}`);
        return 2;
      }
      if (command === "stop-broker") await stopBroker(node, { kill: flags.has("--kill") });
      else await startBroker(node);
      return 0;
    }
    default:
      if (command !== undefined && command !== "help" && command !== "--help") {
        console.error(`Unknown command "${command}"`);
      }
      console.error(USAGE);
      return command === "help" || command === "--help" ? 0 : 2;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
