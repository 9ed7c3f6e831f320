/** The pure parts of the local Kafka cluster (kafka/layout.ts): ports, quorum, server.properties, paths. */

import assert from "node:assert/strict";
import { chooseReplication } from "../bus/kafka/replication.ts";
import { DEFAULT_KAFKA_BROKERS } from "../core/config.ts";
import {
  BROKER_JVM_OPTIONS,
  brokerPort,
  BROKERS,
  clusterPaths,
  controllerPort,
  GUARANTEE_SETTINGS,
  NODE_IDS,
  nodePaths,
  parseProperties,
  quorumVoters,
  renderServerProperties,
} from "../kafka/layout.ts";

Deno.test("cluster brokers are DEFAULT_KAFKA_BROKERS", () => {
  assert.deepEqual(NODE_IDS, [1, 2, 3]);
  assert.deepEqual([...BROKERS], [...DEFAULT_KAFKA_BROKERS]);
  assert.deepEqual(NODE_IDS.map(brokerPort), [9092, 9093, 9094]);
  assert.deepEqual(NODE_IDS.map(controllerPort), [19092, 19093, 19094]);
});

Deno.test("quorumVoters lists the three controllers on 127.0.0.1", () => {
  assert.equal(quorumVoters(), "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094");
});

Deno.test("renderServerProperties gives node 2 its ports, the voters and its data dir", () => {
  const props = parseProperties(renderServerProperties(2, "/data/node-2"));
  assert.equal(props.get("node.id"), "2");
  assert.equal(props.get("process.roles"), "broker,controller");
  assert.equal(props.get("controller.quorum.voters"), quorumVoters());
  assert.equal(props.get("listeners"), "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:19093");
  assert.equal(props.get("advertised.listeners"), "PLAINTEXT://127.0.0.1:9093");
  assert.equal(props.get("inter.broker.listener.name"), "PLAINTEXT");
  assert.equal(props.get("controller.listener.names"), "CONTROLLER");
  assert.equal(
    props.get("listener.security.protocol.map"),
    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
  );
  assert.equal(props.get("log.dirs"), "/data/node-2");
});

Deno.test("renderServerProperties gives every node distinct ports and ids", () => {
  const all = NODE_IDS.map((n) => parseProperties(renderServerProperties(n, `/d/${n}`)));
  assert.equal(new Set(all.map((p) => p.get("listeners"))).size, 3);
  assert.equal(new Set(all.map((p) => p.get("node.id"))).size, 3);
  assert.equal(new Set(all.map((p) => p.get("controller.quorum.voters"))).size, 1);
});

Deno.test("renderServerProperties carries the guarantees and the small-machine sizing", () => {
  const props = parseProperties(renderServerProperties(1, "/d"));
  for (const [key, value] of Object.entries(GUARANTEE_SETTINGS)) {
    assert.equal(props.get(key), value);
  }
  assert.equal(props.get("offsets.topic.replication.factor"), "3");
  assert.equal(props.get("transaction.state.log.replication.factor"), "3");
  assert.equal(props.get("transaction.state.log.min.isr"), "2");
  assert.equal(props.get("default.replication.factor"), "3");
  assert.equal(props.get("min.insync.replicas"), "2");
  assert.equal(props.get("auto.create.topics.enable"), "false");
  assert.equal(props.get("group.initial.rebalance.delay.ms"), "0");
  assert.equal(props.get("num.network.threads"), "2");
  assert.equal(props.get("num.io.threads"), "4");
  assert.equal(props.get("offsets.topic.num.partitions"), "10");
  assert.equal(props.get("transaction.state.log.num.partitions"), "10");
});

Deno.test("the cluster's replication fits the app's policy with one broker down", () => {
  const policy = chooseReplication({}, NODE_IDS.length);
  assert.equal(policy.replicationFactor, 3);
  assert.ok(
    policy.minInsyncReplicas <= policy.replicationFactor - 1,
    "takes writes, a broker down",
  );
  assert.equal(Number(GUARANTEE_SETTINGS["min.insync.replicas"]), policy.minInsyncReplicas);
  assert.equal(Number(GUARANTEE_SETTINGS["default.replication.factor"]), policy.replicationFactor);
  assert.ok(Number(GUARANTEE_SETTINGS["offsets.topic.replication.factor"]) <= NODE_IDS.length);
});

Deno.test("renderServerProperties refuses a node outside 1..3", () => {
  assert.throws(() => renderServerProperties(4, "/d"), /node 4/);
});

Deno.test("brokers get a fixed 512 MiB heap and one GC thread", () => {
  for (const option of ["-Xms512m", "-Xmx512m", "-XX:ParallelGCThreads=1", "-XX:ConcGCThreads=1"]) {
    assert.ok(BROKER_JVM_OPTIONS.includes(option), option);
  }
});

Deno.test("parseProperties skips comments and blank lines and keeps '=' in values", () => {
  const props = parseProperties("# c\n! c\n\n a = 1 \nb=x=y\nnot a pair\n");
  assert.deepEqual([...props], [["a", "1"], ["b", "x=y"]]);
});

Deno.test("clusterPaths keeps data and jars under the kafka folder", () => {
  const paths = clusterPaths("/repo/kafka/");
  assert.equal(paths.jarsDir, "/repo/kafka/.jars");
  assert.equal(paths.dataDir, "/repo/kafka/.data");
  assert.equal(paths.logsDir, "/repo/kafka/.data/logs");
  assert.equal(paths.pom, "/repo/kafka/pom.xml");
  const node = nodePaths(paths, 3);
  assert.equal(node.logDir, "/repo/kafka/.data/node-3");
  assert.equal(node.pidFile, "/repo/kafka/.data/node-3.pid");
  assert.equal(node.config, "/repo/kafka/.data/node-3.properties");
  assert.ok(clusterPaths().pom.endsWith("/kafka/pom.xml"));
});
