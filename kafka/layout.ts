/**
 * The shape of the local Kafka cluster (kafka/cluster.ts): which nodes, on which ports, with which
 * broker settings and JVM options, which jars, and where each node keeps its files. Pure: nothing
 * here starts or asks anything, so tests/cluster_test.ts and tests/compose_test.ts check it as is.
 */

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

/** JVM options of the short-lived StorageTool runs: start fast, little memory. */
export const TOOL_JVM_OPTIONS: readonly string[] = [
  "-Xmx256m",
  "-XX:+UseSerialGC",
  "-XX:TieredStopAtLevel=1",
];

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
    `# Node ${node} of the local cluster. Written by kafka/cluster.ts on every start: edit kafka/layout.ts.`,
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

/** Machine-wide, like the ports: one cluster command at a time, from any checkout. */
export const LOCK_FILE = "/tmp/kafka-local-cluster.lock";

/** The folder of the leases test processes hold on the cluster (see scripts/leases.ts). */
export function leasesDir(paths: ClusterPaths): string {
  return `${paths.dataDir}/leases`;
}

/** Present while the running cluster was started for leases: the last lease out stops it. */
export function leasedMarker(paths: ClusterPaths): string {
  return `${paths.dataDir}/started-for-leases`;
}

/** Progress lines; pass `() => {}` to keep quiet. */
export type Log = (line: string) => void;
