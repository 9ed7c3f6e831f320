/**
 * The Kafka topics and the processors' consumer group: the wire contract of the Kafka adapter.
 * Nothing outside bus/kafka/ names a topic, a key or a partition.
 *
 * `topicsOf(namespace)` puts the same topics under a prefix, so that several deployments (or
 * test runs) share one cluster without reading each other's records.
 */

export interface KafkaTopicSpec {
  readonly name: string;
  readonly partitions: number;
  /**
   * Unset: the cluster's replication policy (bus/kafka/replication.ts: factor 3 and
   * `min.insync.replicas=2` on three or more brokers, or the `KAFKA_*` settings).
   */
  readonly replicationFactor?: number;
  /**
   * Records whose order does not matter (heartbeats: the newest says it all). A new one is sent
   * at once, never behind an earlier one Kafka has not taken yet (a leader moving away).
   */
  readonly unordered?: true;
  /**
   * Its offsets are the positions of what it carries (`chatting`: each message's `seq`, see
   * positions.ts), so adding partitions moves keys to partitions whose positions start lower.
   */
  readonly positioned?: true;
  /** Extra topic-level configs, for example `cleanup.policy`. */
  readonly configs?: Readonly<Record<string, string>>;
}

/**
 * The topics of the original design plus the additive ones; names and partition counts are the
 * wire contract. Every one gets the cluster's replication policy (factor 3, two in-sync replicas
 * on three brokers): each carries data whose loss loses or misroutes messages.
 */
export const TOPICS = {
  chatting: { name: "chatting", partitions: 2, positioned: true },
  userConnections: { name: "user-connections", partitions: 3 },
  heartbeats: {
    name: "gateway-heartbeats",
    partitions: 1,
    unordered: true,
    configs: { "retention.ms": String(60 * 60 * 1000) },
  },
  /** Durable like `chatting`: a delivery lost here would be a gap on every stream. */
  deliveries: { name: "chat-deliveries", partitions: 2 },
  presence: { name: "presence", partitions: 3, configs: { "cleanup.policy": "compact" } },
  /**
   * Records the processor could not read, wrapped with the reason (`encodeDeadLetter`). One
   * partition: poison is rare and read by people, in the order it came. Its envelope carries the
   * original value base64-encoded (4/3 of its size), so it takes records up to 4 MiB, more than
   * the brokers' 1 MiB default for the topics it copies from.
   */
  deadLetters: {
    name: "chat-dead-letters",
    partitions: 1,
    configs: { "max.message.bytes": String(4 * 1024 * 1024) },
  },
} as const satisfies Record<string, KafkaTopicSpec>;

/** Every topic the service uses, for creating them. */
export const ALL_TOPICS: readonly KafkaTopicSpec[] = Object.values(TOPICS);

export const PROCESSOR_GROUP = "chatting-processor-group";

/** The topics and the processors' group of one deployment on a cluster. */
export interface KafkaNames {
  readonly topics: { readonly [K in keyof typeof TOPICS]: KafkaTopicSpec };
  readonly processorGroup: string;
}

/** The contract's names, or the same ones prefixed with `namespace.` when it is given. */
export function kafkaNames(namespace?: string): KafkaNames {
  const name = (n: string) => namespace ? `${namespace}.${n}` : n;
  const topics = Object.fromEntries(
    Object.entries(TOPICS).map(([k, spec]) => [k, { ...spec, name: name(spec.name) }]),
  ) as unknown as KafkaNames["topics"];
  return { topics, processorGroup: name(PROCESSOR_GROUP) };
}
