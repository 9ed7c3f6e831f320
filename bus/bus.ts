/**
 * The bus port: the only way the gateway and the processor talk to each other.
 *
 * Two adapters implement it, `MemoryBus` (one process) and `KafkaBus` (many
 * machines); `tests/bus_contract.ts` holds both to the same behaviour.
 */

import type { KafkaTopicSpec } from "../core/config.ts";

export interface BusRecord {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offsets are 64-bit; kept as a decimal string as kafkajs does. */
  readonly offset: string;
  readonly key: string;
  readonly value: string;
  /**
   * The value's bytes exactly as stored, when the bus has them (Kafka); `value` is their UTF-8
   * decoding, which replaces bytes that are not UTF-8. Kept for dead letters.
   */
  readonly raw?: Uint8Array;
}

export interface Published {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export type RecordHandler = (record: BusRecord) => Promise<void>;

export interface SubscribeOptions {
  readonly topics: readonly string[];
  /**
   * A shared group: each record goes to one member, records of one partition
   * in order, and the group's position moves on only after the handler
   * resolved. Without a group the subscription is private and sees every record.
   */
  readonly group?: string;
  /** Where a private subscription, or a group with no position yet, starts. */
  readonly from: "earliest" | "latest";
  /**
   * Called for each record, one at a time per partition. When it throws, the
   * same record is handed again after a pause: nothing is skipped.
   */
  readonly handler: RecordHandler;
  /**
   * Called when this member receives partitions (first join and every rebalance), once their
   * positions are settled: records published after the call are sure to be read.
   */
  readonly onAssigned?: () => void;
}

export interface Subscription {
  close(): Promise<void>;
}

export interface Bus {
  /** Creates missing topics and connects; resolves once started, even when the backend is down. */
  start(): Promise<void>;
  /** Whether a publish can be acknowledged now. */
  ready(): boolean;
  /** Calls `listener` every time the bus becomes ready (the first time and after each outage). */
  onReady(listener: () => void): void;
  /** Resolves once the record is durably acknowledged; rejects with an `unavailable` ChatError otherwise. */
  publish(topic: string, key: string, value: string): Promise<Published>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /** Stops all subscriptions and flushes the producer. */
  close(): Promise<void>;
}

export type TopicSpecs = readonly KafkaTopicSpec[];
