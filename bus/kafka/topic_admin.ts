/**
 * Topic administration: creates the topics a deployment needs, waits until every broker serves
 * them, reports replication that falls short of the policy, and reads how many partitions each
 * topic really has.
 *
 * A topic someone else created may have fewer partitions than specified: it is used as it is,
 * and `partitions()` says the real count, so that a key never maps to a partition that does not
 * exist. kafkajs's `createTopics` returns `false` without waiting for leaders when any topic
 * already existed, so only the missing topics are created and leaders are checked afterwards.
 */

import { type Admin, type ITopicMetadata, Kafka, type KafkaConfig, logLevel } from "kafkajs";
import { describeError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import {
  applyReplication,
  chooseReplication,
  type Replication,
  replicationAdvice,
  type ReplicationSettings,
} from "./replication.ts";
import type { KafkaTopicSpec } from "./topics.ts";
import type { TopicSpecs } from "./types.ts";
import { pause, settleWithin } from "./waits.ts";

/** Errors of a topic that exists but that some broker does not know (yet). */
const METADATA_LAG_ERRORS = new Set([
  "UNKNOWN_TOPIC_OR_PARTITION",
  "LEADER_NOT_AVAILABLE",
  "NOT_LEADER_FOR_PARTITION",
  "NOT_LEADER_OR_FOLLOWER",
]);

/** The Kafka error code name (`UNKNOWN_TOPIC_OR_PARTITION`) of a kafkajs error or its causes. */
function kafkaErrorType(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const { type, cause } = e as { type?: unknown; cause?: unknown };
    if (typeof type === "string") return type;
    e = cause;
  }
  return undefined;
}

export interface TopicAdminOptions {
  readonly specs: TopicSpecs;
  /** The client settings, for short-lived probes of each broker. */
  readonly clientConfig: KafkaConfig;
  readonly logger: Logger;
  readonly replication: ReplicationSettings;
  /** Aborted when the bus closes: every wait ends. */
  readonly signal: AbortSignal;
}

export class TopicAdmin {
  readonly #specs: TopicSpecs;
  readonly #clientConfig: KafkaConfig;
  readonly #logger: Logger;
  readonly #replicationSettings: ReplicationSettings;
  readonly #signal: AbortSignal;
  #replication: Replication | undefined;
  /** Partitions each topic really has (a topic made by someone else may have fewer than specified). */
  readonly #partitionCounts = new Map<string, number>();

  constructor(options: TopicAdminOptions) {
    this.#specs = options.specs;
    this.#clientConfig = options.clientConfig;
    this.#logger = options.logger;
    this.#replicationSettings = options.replication;
    this.#signal = options.signal;
  }

  /**
   * How many partitions `topic` has, as read from the cluster's metadata (at most as many as
   * specified); undefined before `ensure()` succeeded.
   */
  partitions(topic: string): number | undefined {
    return this.#partitionCounts.get(topic);
  }

  #throwIfClosed(): void {
    if (this.#signal.aborted) throw new Error("the bus was closed");
  }

  /** Creates the missing topics and waits until they are served; reads every topic's partitions. */
  async ensure(admin: Admin): Promise<void> {
    if (this.#specs.length === 0) return;
    const cluster = await admin.describeCluster();
    const policy = chooseReplication(this.#replicationSettings, cluster.brokers.length);
    if (
      this.#replication?.replicationFactor !== policy.replicationFactor ||
      this.#replication?.minInsyncReplicas !== policy.minInsyncReplicas
    ) {
      this.#logger.info(
        `Kafka topics keep ${policy.replicationFactor} copies; a write needs ${policy.minInsyncReplicas} before it is acknowledged`,
        { brokers: cluster.brokers.length },
      );
      for (const warning of policy.warnings) this.#logger.warn(warning);
    }
    this.#replication = policy;
    const specs = this.#specs.map((spec) => applyReplication(spec, policy));
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.name));
    if (missing.length > 0) {
      let created: boolean;
      try {
        created = await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((s: KafkaTopicSpec) => ({
            topic: s.name,
            numPartitions: s.partitions,
            replicationFactor: s.replicationFactor ?? policy.replicationFactor,
            configEntries: Object.entries(s.configs ?? {}).map(([name, value]) => ({
              name,
              value,
            })),
          })),
        });
      } catch (err) {
        // With KRaft, the broker kafkajs asks for leaders may not know the new topics yet; its
        // wait only tolerates LEADER_NOT_AVAILABLE. The topics exist: wait below instead.
        if (kafkaErrorType(err) !== "UNKNOWN_TOPIC_OR_PARTITION") throw err;
        created = true;
      }
      this.#logger.info(
        created ? "Created Kafka topics" : "Kafka topics were created concurrently",
        { topics: missing.map((s) => s.name).join(",") },
      );
      await this.#awaitServed(admin, missing.map((s) => s.name));
      await this.#awaitKnownEverywhere(admin, missing.map((s) => s.name));
    }
    // Also waits for leaders when another process created the topics (createTopics returned
    // false), and checks existing topics against the specs.
    for (let attempt = 1;; attempt++) {
      let topics: ITopicMetadata[];
      try {
        ({ topics } = await admin.fetchTopicMetadata({ topics: this.#specs.map((s) => s.name) }));
      } catch (err) {
        // A new topic reaches the other brokers' metadata a moment after the controller's.
        if (attempt >= 50 || !METADATA_LAG_ERRORS.has(kafkaErrorType(err) ?? "")) throw err;
        await pause(100, this.#signal);
        this.#throwIfClosed();
        continue;
      }
      const leaderless = topics.filter((t) => t.partitions.some((p) => p.leader < 0));
      if (leaderless.length === 0 || attempt >= 50) {
        await this.#adviseOnReplication(
          admin,
          topics.filter((t) => existing.has(t.name)),
          policy,
          cluster.brokers.map((b) => b.nodeId),
        );
        for (const spec of specs) {
          const topic = topics.find((t) => t.name === spec.name);
          const count = topic?.partitions.length ?? 0;
          if (count > 0) this.#partitionCounts.set(spec.name, Math.min(count, spec.partitions));
          if (count < spec.partitions) {
            this.#logger.warn(
              `Kafka topic ${spec.name} has ${count} partitions, fewer than the ${spec.partitions} specified; ` +
                (spec.positioned
                  ? "the topic is used as it is; adding partitions moves rooms to other partitions, whose positions start lower: stop every gateway and processor, add them with kafka-topics --alter, and raise KAFKA_LOG_EPOCH"
                  : "the topic is used as it is (add partitions with kafka-topics --alter)"),
              { topic: spec.name, partitions: count, specified: spec.partitions },
            );
          }
        }
        if (leaderless.length > 0) {
          throw new Error(`topics without leaders: ${leaderless.map((t) => t.name).join(",")}`);
        }
        return;
      }
      await pause(100, this.#signal);
      this.#throwIfClosed();
    }
  }

  /**
   * Reports existing topics that keep fewer copies, or need fewer in-sync replicas, than the
   * policy asks, with the command that fixes each; the topics are used as they are.
   */
  async #adviseOnReplication(
    admin: Admin,
    topics: ITopicMetadata[],
    policy: Replication,
    brokerIds: number[],
  ): Promise<void> {
    const ours = topics.filter((t) => {
      const spec = this.#specs.find((s) => s.name === t.name);
      return spec !== undefined && spec.replicationFactor === undefined;
    });
    if (ours.length === 0) return;
    const minIsr = new Map<string, number>();
    try {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: ours.map((t) => ({
          type: 2, // ConfigResourceTypes.TOPIC
          name: t.name,
          configNames: ["min.insync.replicas"],
        })),
      });
      for (const resource of described.resources) {
        const entry = resource.configEntries.find((e) => e.configName === "min.insync.replicas");
        if (entry) minIsr.set(resource.resourceName, Number(entry.configValue));
      }
    } catch (err) {
      this.#logger.warn("Cannot read the topics' min.insync.replicas", {
        error: describeError(err),
      });
    }
    const bootstrap = this.#clientConfig.brokers;
    for (const topic of ours) {
      const advice = replicationAdvice(
        {
          name: topic.name,
          partitions: topic.partitions.map((p) => ({
            partitionId: p.partitionId,
            replicas: p.replicas,
          })),
          minInsyncReplicas: minIsr.get(topic.name),
        },
        policy,
        brokerIds,
        Array.isArray(bootstrap) ? bootstrap.join(",") : "<brokers>",
      );
      for (const line of advice) this.#logger.warn(line, { topic: topic.name });
    }
  }

  /**
   * Waits until the leader of every partition of `topics` serves it. With KRaft a broker learns
   * about a new partition a moment after the metadata names it leader; a consumer that starts in
   * between crashes ("This server does not host this topic-partition") and leaves a dead member
   * in its group for a whole session timeout.
   */
  async #awaitServed(admin: Admin, topics: readonly string[]): Promise<void> {
    for (const topic of topics) {
      for (let attempt = 1;; attempt++) {
        try {
          await admin.fetchTopicOffsets(topic); // a ListOffsets request to each partition's leader
          break;
        } catch (err) {
          if (attempt >= 50 || !METADATA_LAG_ERRORS.has(kafkaErrorType(err) ?? "")) throw err;
        }
        await pause(100, this.#signal);
        this.#throwIfClosed();
      }
    }
  }

  /**
   * Waits, best effort and at most 5 s, until every broker's metadata lists `topics`. Brokers
   * that host no replica learn about a new topic last; a consumer asking one of them for
   * metadata in between crashes like above. kafkajs sends a fresh client's first metadata
   * request to its seed broker, so one client per broker asks exactly that broker.
   */
  async #awaitKnownEverywhere(admin: Admin, topics: string[]): Promise<void> {
    const deadline = Date.now() + 5000;
    const { brokers } = await admin.describeCluster();
    await Promise.all(brokers.map(async ({ host, port }) => {
      const probe = new Kafka({
        ...this.#clientConfig,
        brokers: [`${host}:${port}`],
        retry: { retries: 0 },
        logLevel: logLevel.NOTHING,
      }).admin({ retry: { retries: 0 } });
      try {
        await probe.connect();
        for (;;) {
          try {
            await probe.fetchTopicMetadata({ topics });
            return;
          } catch (err) {
            if (Date.now() > deadline || this.#signal.aborted) throw err;
          }
          await pause(50, this.#signal);
        }
      } catch (err) {
        this.#logger.debug("A broker does not list the new topics yet", {
          broker: `${host}:${port}`,
          error: describeError(err),
        });
      } finally {
        await settleWithin(probe.disconnect(), 2000);
      }
    }));
  }
}
