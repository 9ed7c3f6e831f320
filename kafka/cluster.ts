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
 * (bus/kafka/replication.ts); the broker defaults here cover anything else.
 * Topics are never created automatically: the app creates its own.
 *
 * Commands that change the cluster hold a machine-wide lock ({@linkcode LOCK_FILE}), so two of
 * them never interleave. scripts/test.ts starts the cluster with `clusterUp({ lease: true })` and
 * gives it back with {@linkcode releaseCluster}: test runs in one checkout share the cluster and
 * the last one out stops it and deletes its data. Integration tests can use
 * {@linkcode stopBroker} and {@linkcode startBroker}.
 *
 * This module holds the commands and the command line; the cluster's shape and settings are in
 * kafka/layout.ts, the jars in kafka/jars.ts, the node processes in kafka/nodes.ts, and the lock
 * and leases it shares with scripts/postgres.ts in scripts/leases.ts.
 */

import { exists, seconds } from "../scripts/files.ts";
import { dropLease, liveLeases, takeLease, withLock } from "../scripts/leases.ts";
import { ensureJars } from "./jars.ts";
import {
  brokerPort,
  BROKERS,
  type ClusterPaths,
  clusterPaths,
  controllerPort,
  HOST,
  leasedMarker,
  leasesDir,
  LOCK_FILE,
  type Log,
  NODE_IDS,
} from "./layout.ts";
import {
  brokerView,
  nodePid,
  portOpen,
  prepareNodes,
  rssKiB,
  spawnNode,
  stopNodes,
  type StopOptions,
  waitReady,
  warmUpCoordinator,
} from "./nodes.ts";

const defaultLog: Log = (line) => console.log(line);

/** Runs `fn` holding the cluster lock (an flock on {@linkcode LOCK_FILE}). Not re-entrant. */
export async function withClusterLock<T>(fn: () => Promise<T>, log: Log = defaultLog): Promise<T> {
  return await withLock(
    LOCK_FILE,
    fn,
    () => log("Waiting for another kafka/cluster.ts command ..."),
  );
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
    await Deno.mkdir(paths.dataDir, { recursive: true });
    if (missing.length === NODE_IDS.length) await Deno.writeTextFile(leasedMarker(paths), "");
    await takeLease(leasesDir(paths));
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
    const users = (await liveLeases(leasesDir(paths))).filter((pid) => pid !== Deno.pid);
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
    await dropLease(leasesDir(paths));
    const others = await liveLeases(leasesDir(paths));
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
      const users = await liveLeases(leasesDir(clusterPaths()));
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
