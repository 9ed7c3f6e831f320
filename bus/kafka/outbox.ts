/**
 * The producer's outbox: records `publish()` accepted, one lane per topic partition, sent in
 * batches over kafkajs's idempotent producer.
 *
 * A partition that cannot take writes (its leader gone, too few in-sync replicas) holds up only
 * its own lane, never heartbeats, presence or rooms on other partitions. Each lane sends one
 * produce request at a time, and everything that queued while a request was out goes in the
 * next one: kafkajs's idempotent producer sends one request per broker at a time anyway, so one
 * request per message would queue them behind each other (and, while a leader moves, make each
 * wait out the whole failover in turn). A request that outlives the publish timeout fails its
 * callers, but the lane waits for it to end (kafkajs bounds its retries) before the next, so a
 * partition's records never overtake each other. When a request fails, the records queued behind
 * it in an ordered lane fail too, unsent: written, they would land before the failed ones that
 * their callers send again (a processor's deliveries: a gateway takes a room's sequence numbers
 * in the order Kafka holds them, and one that came after a higher one would be dropped as a
 * repeat).
 *
 * kafkajs's idempotent producer numbers each partition's records, and after a request fails it
 * numbers the next one as if the failed one had not been written. If the broker did write it (the
 * connection cut after the write, a timeout), the next request is taken for a repeat of it when
 * it holds as many records, and answered as written although it was not; with another count it is
 * refused as out of order, for good. So after any failed request the producer's numbering is in
 * doubt: the outbox hands the producer to its connection to be replaced (a new producer id numbers
 * from zero) before the lane sends again, and tells when that producer's last request is done,
 * to close it then. Until the new producer is there, that lane refuses its records; the other
 * lanes go on with the old producer, whose numbering of their partitions is sound. A record
 * written twice that way is a repeat, which readers drop.
 */

import {
  Partitioners,
  type PartitionMetadata,
  type Producer,
  type RecordMetadata,
  type TopicMessages,
} from "kafkajs";
import { ChatError, describeError } from "../../core/errors.ts";
import type { Metrics } from "../../core/metrics.ts";
import type { Published } from "./types.ts";
import { withTimeout } from "./waits.ts";

/** A record waiting in the outbox, and its caller. */
interface Outgoing {
  topic: string;
  key: string;
  value: string;
  partition: number;
  resolve(published: Published): void;
  reject(error: unknown): void;
}

/** One partition's queue of records to send. */
interface Lane {
  readonly outbox: Outgoing[];
  /** Whether a request waits for the one before it (see `KafkaTopicSpec.unordered`). */
  readonly ordered: boolean;
  flushing: boolean;
}

/** The most one produce request carries: under the brokers' 1 MiB limit on a record batch. */
const MAX_BATCH_BYTES = 512 * 1024;
const MAX_BATCH_RECORDS = 2000;

/** Takes the oldest records of `outbox`, as many as one produce request should carry (at least one). */
function takeBatch(outbox: Outgoing[]): Outgoing[] {
  let bytes = 0;
  let count = 0;
  while (count < outbox.length && count < MAX_BATCH_RECORDS) {
    bytes += outbox[count]!.value.length + outbox[count]!.key.length;
    if (count > 0 && bytes > MAX_BATCH_BYTES) break;
    count++;
  }
  return outbox.splice(0, count);
}

const defaultPartitioner = Partitioners.DefaultPartitioner();
const partitionLists = new Map<number, PartitionMetadata[]>();

/**
 * The partition kafkajs's default partitioner picks for `key` among `partitions` (murmur2, as
 * the Java client): chosen here, so that each record's offset can be told from the batch's
 * answer. `partitions` must be the count the topic really has (see `TopicAdmin`).
 */
export function partitionOf(key: string, partitions: number): number {
  let partitionMetadata = partitionLists.get(partitions);
  if (!partitionMetadata) {
    partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      replicas: [],
      isr: [],
      partitionErrorCode: 0,
    }));
    partitionLists.set(partitions, partitionMetadata);
  }
  return defaultPartitioner({ topic: "", partitionMetadata, message: { key, value: null } });
}

function topicMessagesOf(batch: Outgoing[]): TopicMessages[] {
  const byTopic = new Map<string, TopicMessages>();
  for (const r of batch) {
    let entry = byTopic.get(r.topic);
    if (!entry) byTopic.set(r.topic, entry = { topic: r.topic, messages: [] });
    entry.messages.push({ key: r.key, value: r.value, partition: r.partition });
  }
  return [...byTopic.values()];
}

/** Resolves each record with its offset: a partition's records got consecutive ones, in order. */
function settleBatch(batch: Outgoing[], sent: RecordMetadata[]): void {
  const next = new Map<string, number>();
  for (const meta of sent) {
    const base = meta.baseOffset ?? meta.offset;
    if (base !== undefined) next.set(`${meta.topicName}/${meta.partition}`, Number(base));
  }
  for (const r of batch) {
    const at = `${r.topic}/${r.partition}`;
    const offset = next.get(at);
    if (offset === undefined) {
      r.reject(
        new ChatError(
          "unavailable",
          `Cannot publish to ${r.topic}: Kafka returned no offset for partition ${r.partition}`,
        ),
      );
      continue;
    }
    next.set(at, offset + 1);
    r.resolve({ topic: r.topic, partition: r.partition, offset: String(offset) });
  }
}

/** What the outbox needs from its connection. */
export interface OutboxContext {
  /** The connected producer, or undefined while Kafka is away. */
  producer(): Producer | undefined;
  /** How long a send may wait for Kafka's acknowledgement. */
  readonly publishTimeoutMs: number;
  /** The error a caller gets when Kafka cannot take its record. */
  unavailable(topic: string, cause?: unknown): ChatError;
  /** A send failed in a way that may mean Kafka is gone. */
  suspect(reason: string): void;
  /**
   * A request of `producer` failed, and may have been written all the same: its record numbers
   * for that partition may no longer match the broker's (see above), so it is to be replaced.
   */
  inDoubt(producer: Producer, reason: string): void;
  /** Times each produce request. */
  readonly metrics: Metrics;
}

export class Outbox {
  readonly #lanes = new Map<string, Lane>();
  /** Each producer's requests kafkajs is not done with, and who waits for them to be done. */
  readonly #inFlight = new Map<Producer, { count: number; done: (() => void)[] }>();
  /** The lanes (`topic/partition`) each producer may no longer write to: a request failed. */
  readonly #doubted = new WeakMap<Producer, Set<string>>();

  constructor(private readonly context: OutboxContext) {}

  /**
   * Queues a record for `partition` of `topic`; resolves with where it was written. `ordered`
   * false: a new record is sent at once, never behind an earlier one Kafka has not taken yet.
   */
  send(
    topic: string,
    partition: number,
    key: string,
    value: string,
    ordered: boolean,
  ): Promise<Published> {
    return new Promise((resolve, reject) => {
      const name = `${topic}/${partition}`;
      let lane = this.#lanes.get(name);
      if (!lane) this.#lanes.set(name, lane = { outbox: [], ordered, flushing: false });
      lane.outbox.push({ topic, key, value, partition, resolve, reject });
      if (!lane.flushing) void this.#flush(name, lane);
    });
  }

  async #flush(name: string, lane: Lane): Promise<void> {
    lane.flushing = true;
    try {
      while (lane.outbox.length > 0) {
        const batch = takeBatch(lane.outbox);
        const producer = this.context.producer();
        if (!producer || this.#doubted.get(producer)?.has(name)) {
          const cause = producer && new Error(
            `a write to partition ${
              batch[0]!.partition
            } failed and may have been made; waiting for a new producer`,
          );
          for (const r of batch) r.reject(this.context.unavailable(r.topic, cause));
          if (lane.ordered) this.#failBehind(lane);
          continue;
        }
        const sent = this.#send(producer, batch, name);
        if (lane.ordered && !await sent) this.#failBehind(lane);
      }
    } finally {
      lane.flushing = false;
      if (lane.outbox.length === 0) this.#lanes.delete(name);
    }
  }

  /** Fails, unsent, every record queued in `lane` behind a batch that was not written. */
  #failBehind(lane: Lane): void {
    for (const r of lane.outbox.splice(0)) {
      r.reject(
        new ChatError(
          "unavailable",
          `Cannot publish to ${r.topic}: an earlier record of partition ${r.partition} was not written, and this one may not overtake it`,
        ),
      );
    }
  }

  /** Resolves once kafkajs is done with every request of `producer` (at once when none is out). */
  settled(producer: Producer): Promise<void> {
    const entry = this.#inFlight.get(producer);
    if (!entry) return Promise.resolve();
    return new Promise((resolve) => entry.done.push(resolve));
  }

  /**
   * One produce request; settles its callers, and resolves once kafkajs is done with it: true
   * when it was written, false when it failed (the producer then writes to `lane` no more, and
   * is handed over as in doubt).
   */
  async #send(producer: Producer, batch: Outgoing[], lane: string): Promise<boolean> {
    const started = performance.now();
    // A batch comes from one lane: one topic.
    const topic = batch[0]!.topic;
    const sending = this.#track(
      producer,
      producer.sendBatch({ acks: -1, topicMessages: topicMessagesOf(batch) }),
    );
    try {
      const sent = await withTimeout(sending, this.context.publishTimeoutMs, "the send");
      this.context.metrics.produced(topic, (performance.now() - started) / 1000, true);
      settleBatch(batch, sent);
      return true;
    } catch (err) {
      this.context.metrics.produced(topic, (performance.now() - started) / 1000, false);
      this.context.suspect(`publish failed: ${describeError(err)}`);
      for (const r of batch) r.reject(this.context.unavailable(r.topic, err));
      // Timed out but still running: written in the end or not, the lane waits to know.
      return await sending.then(() => true, (failure) => {
        let lanes = this.#doubted.get(producer);
        if (!lanes) this.#doubted.set(producer, lanes = new Set());
        lanes.add(lane);
        this.context.inDoubt(producer, describeError(failure));
        return false;
      });
    }
  }

  /** Counts `request` among `producer`'s requests in flight until kafkajs is done with it. */
  #track<T>(producer: Producer, request: Promise<T>): Promise<T> {
    let entry = this.#inFlight.get(producer);
    if (!entry) this.#inFlight.set(producer, entry = { count: 0, done: [] });
    entry.count++;
    const done = () => {
      if (--entry.count > 0) return;
      this.#inFlight.delete(producer);
      for (const resolve of entry.done) resolve();
    };
    request.then(done, done);
    return request;
  }
}
