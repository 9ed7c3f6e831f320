/**
 * The Kafka adapter's own vocabulary: records of topics, where they were written, and how a
 * subscription reads them. Used inside bus/kafka/ only; the rest of the service speaks the
 * ports of bus/bus.ts.
 */

import type { KafkaTopicSpec } from "./topics.ts";

export interface LogRecord {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offsets are 64-bit; kept as a decimal string as kafkajs does. */
  readonly offset: string;
  readonly key: string;
  readonly value: string;
  /**
   * The value's bytes exactly as stored; `value` is their UTF-8 decoding, which replaces bytes
   * that are not UTF-8. Kept for dead letters.
   */
  readonly raw?: Uint8Array;
}

export interface Published {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export type RecordHandler = (record: LogRecord) => Promise<void>;
export type RunHandler = (records: readonly LogRecord[]) => Promise<void>;

export interface SubscribeOptions {
  readonly topics: readonly string[];
  /**
   * A shared group: each record goes to one member, records of one partition in order, and the
   * group's position moves on only after the handler resolved. Without a group the subscription
   * is private and sees every record.
   */
  readonly group?: string;
  /**
   * Where a private subscription, or a group with no position yet, starts. `{ back: n }`, for a
   * private subscription only, starts each partition `n` records before its end, never before its
   * start: a reader that needs to know what came just before it (bus/kafka/positions.ts).
   */
  readonly from: "earliest" | "latest" | { readonly back: number };
  /**
   * For a private subscription from "latest" or `back`: called with where each partition of
   * `topic` ended when its first consumer started (not at `subscribe`: Kafka may be away then),
   * before any record is handed. The records from there on came after the start.
   */
  readonly onStart?: (topic: string, ends: ReadonlyMap<number, number>) => void;
  /**
   * Called for each record, one at a time per partition. When it throws, the same record is
   * handed again after a pause: nothing is skipped.
   */
  readonly handler: RecordHandler;
  /**
   * Records of `topics` go to `handler` instead, in runs: the consecutive records of one
   * partition fetched together (at most `RUN_LIMIT`), so that the handler can do one store
   * transaction and one produce for all of them. When it throws, the same run is handed again.
   */
  readonly runs?: { readonly topics: readonly string[]; readonly handler: RunHandler };
  /**
   * Called when this member receives partitions (first join and every rebalance), once their
   * positions are settled: records published after the call are sure to be read.
   */
  readonly onAssigned?: () => void;
}

export type TopicSpecs = readonly KafkaTopicSpec[];

/** Topics as `KafkaConnection` serves them: what the ports of `KafkaBus` are built on. */
export interface TopicLog {
  start(): Promise<void>;
  ready(): boolean;
  onReady(listener: () => void): void;
  /** Resolves once the record is acknowledged; rejects with an `unavailable` ChatError otherwise. */
  publish(topic: string, key: string, value: string): Promise<Published>;
  subscribe(options: SubscribeOptions): Promise<{ close(): Promise<void> }>;
  /** The partition `publish` writes `key`'s records of `topic` to; undefined before connected. */
  partitionOf(topic: string, key: string): number | undefined;
  /** `group`'s committed offsets of `topic` (the next record it reads, -1: none), by partition. */
  committed(group: string, topic: string): Promise<Map<number, number>>;
  close(): Promise<void>;
}
