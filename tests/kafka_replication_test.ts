/**
 * The replication policy (bus/kafka/replication.ts): three copies and two in-sync replicas on a
 * three-broker cluster, settings the cluster cannot honour refused with the reason, and
 * under-replicated existing topics reported with the command that fixes them.
 */

import assert from "node:assert/strict";
import { loadConfig } from "../core/config.ts";
import { ALL_TOPICS } from "../bus/kafka/topics.ts";
import {
  applyReplication,
  chooseReplication,
  replicationAdvice,
  ReplicationSettingError,
} from "../bus/kafka/replication.ts";

Deno.test("three brokers: factor 3, two in-sync replicas, no warning", () => {
  const p = chooseReplication({}, 3);
  assert.equal(p.replicationFactor, 3);
  assert.equal(p.minInsyncReplicas, 2);
  assert.deepEqual(p.warnings, []);
  assert.equal(chooseReplication({}, 5).replicationFactor, 3);
});

Deno.test("smaller clusters get what they can hold, with what it gives up", () => {
  const one = chooseReplication({}, 1);
  assert.deepEqual([one.replicationFactor, one.minInsyncReplicas], [1, 1]);
  const two = chooseReplication({}, 2);
  assert.deepEqual([two.replicationFactor, two.minInsyncReplicas], [2, 2]);
  assert.match(two.warnings.join("\n"), /while any broker holding a copy is down/);
  const unsafe = chooseReplication({ replicationFactor: 3, minInsyncReplicas: 1 }, 3);
  assert.match(unsafe.warnings.join("\n"), /lost if that broker dies/);
});

Deno.test("settings the cluster cannot honour are refused, saying why", () => {
  assert.throws(
    () => chooseReplication({ replicationFactor: 3 }, 2),
    (e: Error) =>
      e instanceof ReplicationSettingError &&
      /KAFKA_REPLICATION_FACTOR is 3 but the Kafka cluster has 2 broker/.test(e.message),
  );
  assert.throws(
    () => chooseReplication({ replicationFactor: 2, minInsyncReplicas: 3 }, 3),
    /KAFKA_MIN_INSYNC_REPLICAS is 3 but the replication factor is 2/,
  );
});

Deno.test("every topic of the chat gets the policy; a spec with its own factor keeps it", () => {
  const policy = { replicationFactor: 3, minInsyncReplicas: 2 };
  for (const spec of ALL_TOPICS) {
    const applied = applyReplication(spec, policy);
    assert.equal(applied.replicationFactor, 3, spec.name);
    assert.equal(applied.configs?.["min.insync.replicas"], "2", spec.name);
    assert.equal(applied.partitions, spec.partitions, "partition counts are the contract");
  }
  const own = { name: "t", partitions: 1, replicationFactor: 1 };
  assert.equal(applyReplication(own, policy), own);
});

Deno.test("an existing topic with fewer copies is reported with the reassignment that fixes it", () => {
  const advice = replicationAdvice(
    {
      name: "chatting",
      partitions: [{ partitionId: 0, replicas: [1, 2] }, { partitionId: 1, replicas: [2, 3] }],
      minInsyncReplicas: 1,
    },
    { replicationFactor: 3, minInsyncReplicas: 2 },
    [1, 2, 3],
    "127.0.0.1:9092",
  );
  assert.equal(advice.length, 2);
  assert.match(advice[0]!, /chatting has 2 replica\(s\) per partition, fewer than the 3/);
  const plan = JSON.parse(advice[0]!.match(/echo '([^']+)'/)![1]!);
  assert.deepEqual(plan.partitions.map((p: { replicas: number[] }) => p.replicas), [
    [1, 2, 3],
    [2, 3, 1],
  ]);
  assert.match(advice[0]!, /kafka-reassign-partitions\.sh --bootstrap-server 127\.0\.0\.1:9092/);
  assert.match(advice[1]!, /--add-config min\.insync\.replicas=2/);
  assert.deepEqual(
    replicationAdvice(
      { name: "ok", partitions: [{ partitionId: 0, replicas: [1, 2, 3] }], minInsyncReplicas: 2 },
      { replicationFactor: 3, minInsyncReplicas: 2 },
      [1, 2, 3],
      "b",
    ),
    [],
  );
});

Deno.test("KAFKA_REPLICATION_FACTOR, KAFKA_MIN_INSYNC_REPLICAS and SEND_TIMEOUT_MS are read", () => {
  const c = loadConfig({
    KAFKA_REPLICATION_FACTOR: "2",
    KAFKA_MIN_INSYNC_REPLICAS: "1",
    SEND_TIMEOUT_MS: "3000",
  });
  assert.equal(c.kafkaReplicationFactor, 2);
  assert.equal(c.kafkaMinInsyncReplicas, 1);
  assert.equal(c.sendTimeoutMs, 3000);
  const d = loadConfig({});
  assert.equal(d.kafkaReplicationFactor, undefined);
  assert.equal(d.sendTimeoutMs, 5000);
  assert.throws(() => loadConfig({ KAFKA_REPLICATION_FACTOR: "0" }), /expected at least 1/);
});
