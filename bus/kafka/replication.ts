/**
 * How many copies of each topic Kafka keeps, and how many must have a write before it counts.
 *
 * Every topic of the chat carries data whose loss loses or misroutes messages, so every topic
 * gets the same policy: replication factor 3 and `min.insync.replicas=2` on a cluster of three
 * or more brokers. An acknowledged write is then on two brokers, and one broker can die without
 * stopping writes. The original design's factor 2 cannot give both: with `min.insync.replicas=1`
 * a write acknowledged by one broker is lost with it (the fault suite saw it), with 2 every
 * partition with a copy on the dead broker refuses writes until it is back.
 */

import type { KafkaTopicSpec } from "./topics.ts";

/** What the operator asked for (`KAFKA_REPLICATION_FACTOR`, `KAFKA_MIN_INSYNC_REPLICAS`). */
export interface ReplicationSettings {
  readonly replicationFactor?: number;
  readonly minInsyncReplicas?: number;
}

export interface Replication {
  readonly replicationFactor: number;
  readonly minInsyncReplicas: number;
}

/** A setting the cluster cannot honour: the service must not start on it. */
export class ReplicationSettingError extends Error {
  override name = "ReplicationSettingError";
}

/**
 * The policy for a cluster of `brokers`: the settings where given, else factor `min(3, brokers)`
 * and `min(2, factor)` in-sync replicas. Throws {@linkcode ReplicationSettingError} for settings
 * the cluster cannot honour; `warnings` say what a smaller policy gives up.
 */
export function chooseReplication(
  settings: ReplicationSettings,
  brokers: number,
): Replication & { warnings: string[] } {
  const replicationFactor = settings.replicationFactor ?? Math.min(3, brokers);
  const minInsyncReplicas = settings.minInsyncReplicas ?? Math.min(2, replicationFactor);
  if (replicationFactor < 1 || minInsyncReplicas < 1) {
    throw new ReplicationSettingError(
      `KAFKA_REPLICATION_FACTOR and KAFKA_MIN_INSYNC_REPLICAS must be at least 1 (they are ${replicationFactor} and ${minInsyncReplicas})`,
    );
  }
  if (replicationFactor > brokers) {
    throw new ReplicationSettingError(
      `KAFKA_REPLICATION_FACTOR is ${replicationFactor} but the Kafka cluster has ${brokers} broker(s): ` +
        `a topic cannot have more copies than brokers; add brokers or set KAFKA_REPLICATION_FACTOR=${brokers}`,
    );
  }
  if (minInsyncReplicas > replicationFactor) {
    throw new ReplicationSettingError(
      `KAFKA_MIN_INSYNC_REPLICAS is ${minInsyncReplicas} but the replication factor is ${replicationFactor}: ` +
        "no write could ever be acknowledged",
    );
  }
  const warnings: string[] = [];
  if (replicationFactor > 1 && minInsyncReplicas === 1) {
    warnings.push(
      "min.insync.replicas=1: a write acknowledged by one broker is lost if that broker dies before the others copy it",
    );
  }
  if (minInsyncReplicas >= replicationFactor) {
    warnings.push(
      `replication factor ${replicationFactor} with min.insync.replicas=${minInsyncReplicas}: ` +
        "while any broker holding a copy is down, its partitions refuse writes",
    );
  }
  return { replicationFactor, minInsyncReplicas, warnings };
}

/**
 * The spec as it is created: a spec that names its own replication factor (tests do) keeps it;
 * the others get the policy's factor and `min.insync.replicas`.
 */
export function applyReplication(spec: KafkaTopicSpec, policy: Replication): KafkaTopicSpec {
  if (spec.replicationFactor !== undefined) return spec;
  return {
    ...spec,
    replicationFactor: policy.replicationFactor,
    configs: { ...spec.configs, "min.insync.replicas": String(policy.minInsyncReplicas) },
  };
}

/** What an existing topic has, from the cluster's metadata and its topic configuration. */
export interface ExistingTopic {
  readonly name: string;
  /** Replica broker ids of each partition. */
  readonly partitions: readonly { partitionId: number; replicas: readonly number[] }[];
  readonly minInsyncReplicas?: number;
}

/**
 * What to tell the operator about an existing topic that has fewer copies, or a lower
 * `min.insync.replicas`, than the policy asks, with the command that fixes it; Kafka cannot
 * change either when a topic is created by someone else first, so the service only reports it.
 */
export function replicationAdvice(
  topic: ExistingTopic,
  wanted: Replication,
  brokerIds: readonly number[],
  bootstrap: string,
): string[] {
  const advice: string[] = [];
  const fewest = Math.min(...topic.partitions.map((p) => p.replicas.length));
  if (topic.partitions.length > 0 && fewest < wanted.replicationFactor) {
    const plan = {
      version: 1,
      partitions: topic.partitions.map((p) => ({
        topic: topic.name,
        partition: p.partitionId,
        replicas: [
          ...p.replicas,
          ...brokerIds.filter((id) => !p.replicas.includes(id)),
        ].slice(0, wanted.replicationFactor),
      })),
    };
    advice.push(
      `Kafka topic ${topic.name} has ${fewest} replica(s) per partition, fewer than the ${wanted.replicationFactor} asked for: ` +
        `losing a broker can lose or stop its messages. Fix it with: echo '${
          JSON.stringify(plan)
        }' > ${topic.name}-replicas.json && kafka-reassign-partitions.sh --bootstrap-server ${bootstrap} ` +
        `--reassignment-json-file ${topic.name}-replicas.json --execute`,
    );
  }
  if (
    topic.minInsyncReplicas !== undefined && topic.minInsyncReplicas < wanted.minInsyncReplicas
  ) {
    advice.push(
      `Kafka topic ${topic.name} has min.insync.replicas=${topic.minInsyncReplicas}, fewer than the ${wanted.minInsyncReplicas} asked for: ` +
        `an acknowledged message can be lost with one broker. Fix it with: kafka-configs.sh --bootstrap-server ${bootstrap} ` +
        `--alter --entity-type topics --entity-name ${topic.name} --add-config min.insync.replicas=${wanted.minInsyncReplicas}`,
    );
  }
  return advice;
}
