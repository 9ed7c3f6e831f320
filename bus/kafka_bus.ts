/**
 * The Kafka bus: the `Bus` port over kafkajs, for several gateways and processors on many
 * machines.
 *
 * It never lets a Kafka outage reach its callers as a hang or a crash: `start()` resolves at
 * once and connects in the background (retrying with backoff until `close()`), `publish()`
 * rejects with an `unavailable` ChatError while Kafka is away, and subscriptions registered
 * meanwhile start once Kafka is back.
 *
 * kafkajs behaviours this adapter relies on or works around:
 * - A handler error is retried here, inside `eachMessage`, with a pause and a heartbeat between
 *   attempts. Throwing out of `eachMessage` would also re-deliver the record, but only after a
 *   fetch restart, and a `TypeError` there counts as "not retriable": the consumer would crash
 *   with `restart: false` and stay dead.
 * - Offsets are resolved only after the handler resolved; kafkajs commits resolved offsets at
 *   the end of each batch, before a rebalance and when the consumer stops.
 * - A consumer that crashes with `restart: false` is replaced here; other crashes are restarted
 *   by kafkajs (`restartOnFailure`, which answers "no" once the subscription is closed).
 * - The idempotent producer takes a per-broker lock around each produce request, so concurrent
 *   `publish()` calls get distinct sequence numbers (kafkajs issue #1005 was about that).
 * - `createTopics` returns `false` without waiting for leaders when any topic already existed,
 *   so only the missing topics are created and leaders are checked afterwards.
 */

import {
  type Admin,
  type Consumer,
  type EachMessagePayload,
  type ITopicMetadata,
  Kafka,
  type KafkaConfig,
  type LogEntry,
  logLevel,
  Partitioners,
  type PartitionMetadata,
  type Producer,
  type RecordMetadata,
  type TopicMessages,
} from "kafkajs";
// Internal module, for the idle-loop fix below (kafkajs has no "exports" map; 2.2.4 is pinned).
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";
import type { KafkaTopicSpec } from "../core/config.ts";
import {
  applyReplication,
  chooseReplication,
  type Replication,
  replicationAdvice,
  ReplicationSettingError,
  type ReplicationSettings,
} from "./kafka_replication.ts";
import { ChatError, describeError } from "../core/errors.ts";
import type { LogFields, Logger } from "../core/logger.ts";
import type {
  Bus,
  BusRecord,
  Published,
  SubscribeOptions,
  Subscription,
  TopicSpecs,
} from "./bus.ts";

export interface KafkaBusOptions {
  brokers: string[];
  clientId: string;
  topics: TopicSpecs;
  logger: Logger;
  ssl?: KafkaConfig["ssl"];
  sasl?: KafkaConfig["sasl"];
  /** Longest pause between two connection attempts (default 5 s; the first pause is 200 ms). */
  maxBackoffMs?: number;
  /** Pause before a failed handler sees its record again (default 200 ms, doubling up to 5 s). */
  retryDelayMs?: number;
  /** How long `close()` waits for consumers, producer and admin (default 10 s). */
  closeTimeoutMs?: number;
  /** How long `publish()` waits for Kafka's acknowledgement (default 30 s). */
  publishTimeoutMs?: number;
  /** How often a ready bus checks that Kafka still answers (default 5 s, 0 turns it off). */
  healthCheckIntervalMs?: number;
  /** Replication asked for; unset parts follow the cluster's size (bus/kafka_replication.ts). */
  replication?: ReplicationSettings;
  /**
   * Called once when a setting can never work on this cluster (a replication factor above its
   * broker count): the bus stops trying, and the service should exit. Default: logged only.
   */
  onFatal?: (error: Error) => void;
}

/** Consumer settings: short fetch waits keep delivery, heartbeats and `close()` prompt. */
const CONSUMER_SETTINGS = {
  maxWaitTimeInMs: 250,
  heartbeatInterval: 1000,
  sessionTimeout: 10_000,
} as const;

const MAX_HANDLER_RETRY_DELAY_MS = 5000;
/** How often a private subscription checks that it keeps up, and how long it may idle behind. */
const STALL_CHECK_MS = 5000;
const STALL_MS = 15_000;
const SUBSCRIBE_WAIT_MS = 15_000;
const PROBE_TIMEOUT_MS = 10_000;
const PROBE_ATTEMPTS = 6;
/** Errors of a topic that exists but that some broker does not know (yet). */
const METADATA_LAG_ERRORS = new Set([
  "UNKNOWN_TOPIC_OR_PARTITION",
  "LEADER_NOT_AVAILABLE",
  "NOT_LEADER_FOR_PARTITION",
  "NOT_LEADER_OR_FOLLOWER",
]);

/**
 * Works around a kafkajs 2.2.4 bug (issues #1556, #1604, #1704; unmerged fixes #1667, #1768):
 * after every response a connection's request queue arms `setTimeout(check, -1 - Date.now())`,
 * which runs after 1 ms and arms the next one, so every open connection spins a 1 ms timer loop
 * for as long as it lives (an idle bus with two subscriptions used ~10% of a core) and Node's
 * `TimeoutNegativeWarning` is printed. The timer exists to send queued requests once a broker's
 * throttle ends; with nothing queued and no throttle there is nothing to wait for (a request
 * queued later arms its own timer). Applied once, to kafkajs's shared prototype.
 */
function fixKafkajsIdleTimerLoop(logger: Logger): void {
  type Queue = { pending: unknown[]; throttledUntil: number };
  type Schedule = ((this: Queue) => void) & { idleLoopFix?: true };
  const proto = (RequestQueue as { prototype?: { scheduleCheckPendingRequests?: Schedule } })
    ?.prototype;
  const original = proto?.scheduleCheckPendingRequests;
  if (!proto || typeof original !== "function") {
    logger.warn("Cannot apply the kafkajs idle timer fix: RequestQueue has changed");
    return;
  }
  if (original.idleLoopFix) return;
  const fixed: Schedule = function (this: Queue) {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return;
    original.call(this);
  };
  fixed.idleLoopFix = true;
  proto.scheduleCheckPendingRequests = fixed;
}

/** A pause that ends early when `signal` aborts; never leaves a timer behind. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(id);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const id = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** `promise`, or a rejection after `ms`; a late rejection of `promise` is swallowed. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const timer = new Promise<never>((_, reject) => {
    id = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  promise.catch(() => {});
  return Promise.race([promise, timer]).finally(() => clearTimeout(id));
}

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
 * The partition kafkajs's default partitioner picks for `key` (murmur2, as the Java client):
 * chosen here, so that each record's offset can be told from the batch's answer.
 */
function partitionOf(key: string, partitions: number): number {
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

/** Waits for `promise` at most `ms`, ignoring its outcome. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  try {
    await withTimeout(promise, ms, "wait");
    return true;
  } catch {
    return false;
  }
}

/** The Kafka error code name (`UNKNOWN_TOPIC_OR_PARTITION`) of a kafkajs error or its causes. */
function kafkaErrorType(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const { type, cause } = e as { type?: unknown; cause?: unknown };
    if (typeof type === "string") return type;
    e = cause;
  }
  return undefined;
}

/** kafkajs log entries carry big objects (assignments, stacks); keep the short scalar fields. */
function kafkaFields(namespace: string, log: LogEntry["log"]): LogFields {
  const fields: LogFields = { kafka: namespace || "client" };
  for (const [key, value] of Object.entries(log)) {
    if (key === "message" || key === "timestamp" || key === "logger" || key === "stack") continue;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      fields[key] = value;
    }
  }
  return fields;
}

/** Forwards kafkajs logs to `logger`: its chatty INFO becomes debug, ERROR becomes warn. */
function kafkaLogCreator(logger: Logger) {
  return () => ({ namespace, level, log }: LogEntry) => {
    const message = `kafkajs: ${log.message}`;
    const fields = kafkaFields(namespace, log);
    // retries: 5 on the idempotent producer is a deliberate choice (bounded publish latency).
    if (log.message.startsWith("Limiting retries for the idempotent producer")) {
      logger.debug(message, fields);
    } else if (namespace === "Connection" && log.message.startsWith("Response ")) {
      // An error answer to one request ("This server does not host this topic-partition" while
      // a new topic spreads, "The group is rebalancing"): kafkajs retries or reacts, and what
      // fails for good is logged again above it.
      logger.debug(message, fields);
    } else if (level === logLevel.ERROR || level === logLevel.WARN) {
      logger.warn(message, fields);
    } else {
      logger.debug(message, fields);
    }
  };
}

/** What a subscription needs from its bus. */
interface BusContext {
  readonly kafka: Kafka;
  readonly logger: Logger;
  readonly retryDelayMs: number;
  readonly closeTimeoutMs: number;
  ready(): boolean;
  admin(): Admin | undefined;
  /** Something failed in a way that may mean Kafka is gone: check, and reconnect if so. */
  suspect(reason: string): void;
}

class KafkaSubscription implements Subscription {
  readonly groupId: string;
  readonly isPrivate: boolean;
  #consumer: Consumer | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;
  #startedOnce = false;
  #failures = 0;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #abort = new AbortController();
  readonly #logger: Logger;
  /** When a record was last handled (for the stall watchdog of a private subscription). */
  #progressAt = Date.now();
  /** Each partition's end offset when the watchdog last saw progress ("topic/partition" → offset). */
  #endsAtProgress = new Map<string, number>();
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #watching = false;
  #checkedAt = 0;
  /** Since when records have been waiting with none handled. */
  #behindSince: number | undefined;

  constructor(
    private readonly bus: BusContext,
    private readonly options: SubscribeOptions,
    clientId: string,
  ) {
    this.isPrivate = options.group === undefined;
    this.groupId = options.group ?? `${clientId}-private-${crypto.randomUUID()}`;
    this.#logger = bus.logger.with({ group: this.groupId, topics: options.topics.join(",") });
    if (this.isPrivate) {
      this.#watchdog = setInterval(() => void this.#checkProgress(), STALL_CHECK_MS);
    }
  }

  /**
   * A private subscription reads every partition of its topics, so records that arrived and wait
   * STALL_MS with none handled mean its consumer is stuck: after a broker came back, kafkajs
   * consumers were seen to stop fetching for longer than a drain of 30 s. Such a consumer is
   * replaced; it resumes from its committed offsets. Group subscriptions are left alone: their
   * handler may be retrying a record on purpose, and a second consumer would handle the same
   * partition at the same time.
   */
  async #checkProgress(): Promise<void> {
    const admin = this.bus.admin();
    const consumer = this.#consumer;
    if (this.#watching || this.#closed || !consumer || !admin || !this.bus.ready()) return;
    this.#watching = true;
    try {
      const ends = new Map<string, number>();
      for (const topic of this.options.topics) {
        for (const p of await admin.fetchTopicOffsets(topic)) {
          ends.set(`${topic}/${p.partition}`, Number(p.high));
        }
      }
      const now = Date.now();
      const progressed = this.#progressAt > this.#checkedAt;
      this.#checkedAt = now;
      if (progressed) {
        this.#endsAtProgress = ends;
        this.#behindSince = undefined;
        return;
      }
      const grown = [...ends].filter(([at, end]) => end > (this.#endsAtProgress.get(at) ?? end));
      if (grown.length === 0) {
        this.#behindSince = undefined;
        return;
      }
      // Records arrived and none was handled since: a stall once that lasts STALL_MS.
      this.#behindSince ??= now;
      if (now - this.#behindSince < STALL_MS || consumer !== this.#consumer || this.#closed) return;
      this.#logger.warn("Kafka consumer made no progress while records arrived; replacing it", {
        stalledMs: now - this.#behindSince,
        partitions: grown.map(([at]) => at).join(","),
      });
      this.#consumer = undefined;
      this.#behindSince = undefined;
      this.#progressAt = now;
      await this.#disconnect(consumer);
      void this.ensureRunning();
    } catch (err) {
      this.#logger.debug("Stall check failed", { error: describeError(err) });
    } finally {
      this.#watching = false;
    }
  }

  /** Starts a consumer unless one runs, is starting, or Kafka is away; the promise never rejects. */
  ensureRunning(): Promise<void> {
    if (this.#closed || this.#consumer || !this.bus.ready()) return Promise.resolve();
    this.#starting ??= this.#start()
      .then(() => {
        this.#failures = 0;
      })
      .catch((err) => {
        if (this.#closed) return; // close() disconnects what the start left behind
        this.#failures++;
        this.#logger.warn("Cannot start Kafka consumer; retrying", { error: describeError(err) });
        const consumer = this.#consumer;
        this.#consumer = undefined;
        if (consumer) void this.#disconnect(consumer);
        this.#scheduleRestart();
      })
      .finally(() => {
        this.#starting = undefined;
      });
    return this.#starting;
  }

  #scheduleRestart(): void {
    if (this.#closed || this.#restartTimer !== undefined) return;
    const delay = Math.min(200 * 2 ** Math.min(this.#failures, 6), 10_000);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      void this.ensureRunning();
    }, delay);
  }

  async #start(): Promise<void> {
    const consumer = this.bus.kafka.consumer({
      groupId: this.groupId,
      allowAutoTopicCreation: false,
      ...CONSUMER_SETTINGS,
      retry: { retries: 5, restartOnFailure: () => Promise.resolve(!this.#closed) },
    });
    this.#consumer = consumer;
    // onAssigned waits for the first fetch after a join: kafkajs settles the positions of
    // partitions without a committed offset ("latest") only then, and a listener that reacts
    // to the assignment (the processor asks gateways to re-announce) must not race it.
    let joined = false;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      joined = true;
    });
    consumer.on(consumer.events.FETCH, () => {
      if (!joined || this.#closed || consumer !== this.#consumer) return;
      joined = false;
      try {
        this.options.onAssigned?.();
      } catch (err) {
        this.#logger.warn("onAssigned listener failed", { error: describeError(err) });
      }
    });
    consumer.on(consumer.events.CRASH, (event) => {
      // Runs inside kafkajs's crash handling: must never throw.
      try {
        this.#onCrash(consumer, event.payload.error, event.payload.restart);
      } catch {
        // nothing sensible left to do
      }
    });

    await consumer.connect();
    this.#throwIfClosed();
    // "latest" for a private subscription means: from now on, whenever the consumer joins.
    let seeks: { topic: string; partition: number; offset: string }[] = [];
    if (this.isPrivate && this.options.from === "latest" && !this.#startedOnce) {
      seeks = await this.#endOffsets();
      this.#throwIfClosed();
    }
    await consumer.subscribe({
      topics: [...this.options.topics],
      fromBeginning: this.options.from === "earliest",
    });
    this.#throwIfClosed();
    // run() resolves only after the group join; joining goes on in the background.
    consumer.run({ eachMessage: (payload) => this.#eachMessage(payload) }).catch((err) => {
      this.#logger.warn("Kafka consumer failed to run", { error: describeError(err) });
    });
    // The consumer group exists from the first synchronous step of run(): seeks apply on the
    // first fetch after the join.
    for (const seek of seeks) consumer.seek(seek);
    this.#startedOnce = true;
    this.#logger.debug("Kafka consumer started");
  }

  async #endOffsets(): Promise<{ topic: string; partition: number; offset: string }[]> {
    const admin = this.bus.admin();
    if (!admin) throw new Error("the admin client is not connected");
    const seeks: { topic: string; partition: number; offset: string }[] = [];
    for (const topic of this.options.topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        seeks.push({ topic, partition: p.partition, offset: p.high });
      }
    }
    return seeks;
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new Error("the subscription was closed");
  }

  #onCrash(consumer: Consumer, error: Error, restart: boolean): void {
    if (this.#closed || consumer !== this.#consumer) return;
    // During an outage every consumer crashes again after each failed restart: one warning
    // ("Lost the connection to Kafka") is enough then.
    const level = this.bus.ready() ? "warn" : "debug";
    this.#logger[level]("Kafka consumer crashed", { error: describeError(error), restart });
    this.bus.suspect(`consumer ${this.groupId} crashed: ${describeError(error)}`);
    if (!restart) {
      // kafkajs has disconnected it and will not restart it: replace it.
      this.#consumer = undefined;
      this.#failures++;
      this.#scheduleRestart();
    }
  }

  async #eachMessage({ topic, partition, message, heartbeat }: EachMessagePayload): Promise<void> {
    const record: BusRecord = {
      topic,
      partition,
      offset: message.offset,
      key: message.key?.toString() ?? "",
      value: message.value?.toString() ?? "",
      ...(message.value ? { raw: message.value } : {}),
    };
    let delay = this.bus.retryDelayMs;
    for (let attempt = 1;; attempt++) {
      // Throwing leaves the offset unresolved: the record is fetched again by whoever owns it next.
      if (this.#closed) throw new Error("Subscription closed before the record was handled");
      try {
        await this.options.handler(record);
        this.#progressAt = Date.now();
        return;
      } catch (err) {
        this.#logger.warn("Record handler failed; retrying the same record", {
          topic,
          partition,
          offset: record.offset,
          attempt,
          error: describeError(err),
        });
      }
      await sleep(delay, this.#abort.signal);
      delay = Math.min(delay * 2, MAX_HANDLER_RETRY_DELAY_MS);
      // Keeps the membership alive; throws when the group rebalances, and kafkajs then rejoins
      // and fetches this record again.
      await heartbeat();
    }
  }

  async #disconnect(consumer: Consumer): Promise<void> {
    try {
      await withTimeout(consumer.disconnect(), this.bus.closeTimeoutMs, "consumer disconnect");
    } catch (err) {
      this.#logger.debug("Kafka consumer did not disconnect cleanly", {
        error: describeError(err),
      });
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    clearInterval(this.#watchdog);
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const consumer = this.#consumer;
    if (consumer) await this.#disconnect(consumer);
    if (this.#starting) await settleWithin(this.#starting, this.bus.closeTimeoutMs);
    // A start that was connecting may have created a consumer after the first disconnect.
    if (this.#consumer && this.#consumer !== consumer) await this.#disconnect(this.#consumer);
    this.#consumer = undefined;
    if (this.isPrivate && this.#startedOnce) await this.#deleteGroup();
    this.#logger.debug("Kafka subscription closed");
  }

  /** A private group is of no use to anyone once closed: delete it (best effort). */
  async #deleteGroup(): Promise<void> {
    const admin = this.bus.admin();
    if (!admin) return;
    try {
      await withTimeout(admin.deleteGroups([this.groupId]), 5000, "deleteGroups");
    } catch (err) {
      this.#logger.debug("Cannot delete private consumer group", { error: describeError(err) });
    }
  }
}

export class KafkaBus implements Bus {
  readonly #kafka: Kafka;
  readonly #clientConfig: KafkaConfig;
  readonly #logger: Logger;
  readonly #specs: TopicSpecs;
  readonly #topicNames: Set<string>;
  readonly #clientId: string;
  readonly #maxBackoffMs: number;
  readonly #retryDelayMs: number;
  readonly #closeTimeoutMs: number;
  readonly #publishTimeoutMs: number;
  readonly #healthCheckIntervalMs: number;
  readonly #listeners: (() => void)[] = [];
  readonly #subscriptions = new Set<KafkaSubscription>();
  readonly #abort = new AbortController();
  #admin: Admin | undefined;
  #producer: Producer | undefined;
  #ready = false;
  #started = false;
  #closed = false;
  #lastError = "not connected yet";
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #probing: Promise<void> | undefined;
  #healthTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #context: BusContext;
  /**
   * Records `publish()` accepted that are not sent yet, one lane per topic partition, each in
   * order with one produce request out at a time: a partition that cannot take writes (its
   * leader gone, too few in-sync replicas) holds up only its own lane, never heartbeats,
   * presence or rooms on other partitions.
   */
  readonly #lanes = new Map<string, Lane>();
  /** Partitions each topic really has (a topic made by someone else may have fewer than specified). */
  readonly #partitionCounts = new Map<string, number>();
  readonly #replicationSettings: ReplicationSettings;
  readonly #onFatal: ((error: Error) => void) | undefined;
  #replication: Replication | undefined;

  constructor(options: KafkaBusOptions) {
    this.#logger = options.logger;
    fixKafkajsIdleTimerLoop(options.logger);
    this.#specs = options.topics;
    this.#topicNames = new Set(options.topics.map((t) => t.name));
    this.#clientId = options.clientId;
    this.#maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.#retryDelayMs = options.retryDelayMs ?? 200;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.#publishTimeoutMs = options.publishTimeoutMs ?? 30_000;
    this.#healthCheckIntervalMs = options.healthCheckIntervalMs ?? 5000;
    this.#replicationSettings = options.replication ?? {};
    this.#onFatal = options.onFatal;
    this.#clientConfig = {
      clientId: options.clientId,
      brokers: options.brokers,
      ssl: options.ssl,
      sasl: options.sasl,
      connectionTimeout: 3000,
      // kafkajs's default (5 retries from 300 ms) makes one connection attempt last ~10 s while
      // Kafka is down; this bus retries by itself, forever, so each attempt stays short.
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2000 },
    };
    this.#kafka = new Kafka({
      ...this.#clientConfig,
      logLevel: logLevel.INFO,
      logCreator: kafkaLogCreator(options.logger),
    });
    this.#context = {
      kafka: this.#kafka,
      logger: this.#logger,
      retryDelayMs: this.#retryDelayMs,
      closeTimeoutMs: this.#closeTimeoutMs,
      ready: () => this.ready(),
      admin: () => this.#admin,
      suspect: (reason) => this.#suspect(reason),
    };
  }

  start(): Promise<void> {
    if (!this.#started && !this.#closed) {
      this.#started = true;
      this.#reconnect();
    }
    return Promise.resolve();
  }

  ready(): boolean {
    return this.#ready && !this.#closed;
  }

  onReady(listener: () => void): void {
    this.#listeners.push(listener);
    if (this.ready()) queueMicrotask(() => this.#callListener(listener));
  }

  #callListener(listener: () => void): void {
    try {
      listener();
    } catch (err) {
      this.#logger.error("onReady listener failed", { error: describeError(err) });
    }
  }

  /** Starts the background connection loop unless it runs already. */
  #reconnect(): void {
    if (this.#closed || this.#connecting) return;
    this.#connecting = this.#connectLoop()
      .catch((err) => {
        this.#logger.error("Kafka connection loop stopped", { error: describeError(err) });
      })
      .finally(() => {
        this.#connecting = undefined;
      });
  }

  async #connectLoop(): Promise<void> {
    let delay = 200;
    for (let attempt = 1; !this.#closed; attempt++) {
      try {
        await this.#connectOnce();
        if (this.#closed) break;
        this.#becomeReady(attempt);
        return;
      } catch (err) {
        if (this.#closed) break;
        this.#lastError = describeError(err);
        if (err instanceof ReplicationSettingError) {
          this.#logger.error(`Cannot use the Kafka cluster: ${err.message}`);
          this.#onFatal?.(err);
          return;
        }
        this.#logger.warn("Cannot connect to Kafka; retrying", {
          attempt,
          retryInMs: delay,
          error: this.#lastError,
        });
        await sleep(delay, this.#abort.signal);
        delay = Math.min(delay * 2, this.#maxBackoffMs);
      }
    }
    // Closed while connecting: close() disconnects what this attempt may have connected.
  }

  async #connectOnce(): Promise<void> {
    await this.#disposeClients();
    const admin = this.#kafka.admin({
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    });
    this.#admin = admin;
    await admin.connect();
    this.#throwIfClosed();
    await this.#ensureTopics(admin);
    this.#throwIfClosed();
    const producer = this.#kafka.producer({
      idempotent: true,
      // Kafka allows at most 5 for idempotence. kafkajs sends one produce request per broker at
      // a time for an idempotent producer anyway (a lock around its sequence numbers), so this
      // only lets metadata requests pass alongside.
      maxInFlightRequests: 5,
      // Backoff 0.5, 1, 2, 4, 5 s: rides out a leader moving off a crashed broker (~9 s).
      retry: { retries: 5, initialRetryTime: 500, maxRetryTime: 5000 },
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    producer.on(producer.events.DISCONNECT, () => {
      if (producer === this.#producer) this.#lost("the Kafka producer disconnected");
    });
    this.#producer = producer;
    await producer.connect();
    this.#throwIfClosed();
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new Error("the bus was closed");
  }

  async #ensureTopics(admin: Admin): Promise<void> {
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
        await sleep(100, this.#abort.signal);
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
                "the topic is used as it is (add partitions with kafka-topics --alter)",
              { topic: spec.name, partitions: count, specified: spec.partitions },
            );
          }
        }
        if (leaderless.length > 0) {
          throw new Error(`topics without leaders: ${leaderless.map((t) => t.name).join(",")}`);
        }
        return;
      }
      await sleep(100, this.#abort.signal);
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
        await sleep(100, this.#abort.signal);
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
            if (Date.now() > deadline || this.#closed) throw err;
          }
          await sleep(50, this.#abort.signal);
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

  #becomeReady(attempt: number): void {
    this.#ready = true;
    this.#lastError = "";
    this.#logger.info("Connected to Kafka", { attempts: attempt });
    for (const listener of [...this.#listeners]) this.#callListener(listener);
    for (const subscription of this.#subscriptions) void subscription.ensureRunning();
    this.#scheduleHealthCheck();
  }

  /** Kafka seems gone: stop accepting publishes and reconnect in the background. */
  #lost(reason: string): void {
    if (this.#closed || !this.#started) return;
    if (this.#ready) {
      this.#ready = false;
      this.#lastError = reason;
      this.#logger.warn("Lost the connection to Kafka; reconnecting", { reason });
    }
    clearTimeout(this.#healthTimer);
    this.#healthTimer = undefined;
    this.#reconnect();
  }

  /** Checks whether Kafka still answers after a failure; marks the bus lost if not. */
  #suspect(reason: string): void {
    if (!this.ready() || this.#probing) return;
    const admin = this.#admin;
    if (!admin) return this.#lost(reason);
    this.#probing = this.#probe(admin)
      .then(
        () => {},
        (err) => {
          if (admin === this.#admin) this.#lost(`${reason}; ${describeError(err)}`);
        },
      )
      .finally(() => {
        this.#probing = undefined;
      });
  }

  /**
   * Resolves when any broker answers a metadata request. kafkajs sends it to one broker picked at
   * random from its pool, which keeps a stopped broker for a while: one failure while one broker
   * of three is down says nothing, so several attempts must fail.
   */
  async #probe(admin: Admin): Promise<void> {
    const deadline = Date.now() + PROBE_TIMEOUT_MS;
    for (let attempt = 1;; attempt++) {
      try {
        await withTimeout(admin.describeCluster(), Math.max(deadline - Date.now(), 1), "probe");
        return;
      } catch (err) {
        if (attempt >= PROBE_ATTEMPTS || Date.now() >= deadline || this.#closed) throw err;
      }
      await sleep(200, this.#abort.signal);
    }
  }

  #scheduleHealthCheck(): void {
    if (this.#healthCheckIntervalMs <= 0 || this.#closed || !this.#ready) return;
    clearTimeout(this.#healthTimer);
    this.#healthTimer = setTimeout(() => {
      this.#healthTimer = undefined;
      this.#suspect("health check");
      this.#scheduleHealthCheck();
    }, this.#healthCheckIntervalMs);
  }

  publish(topic: string, key: string, value: string): Promise<Published> {
    const spec = this.#specs.find((t) => t.name === topic);
    if (!spec) {
      return Promise.reject(
        new ChatError("invalid_argument", `Cannot publish to ${topic}: the topic is not known`),
      );
    }
    if (!this.ready() || !this.#producer) return Promise.reject(this.#unavailable(topic));
    return new Promise((resolve, reject) => {
      const partition = partitionOf(key, this.#partitionCounts.get(topic) ?? spec.partitions);
      const name = `${topic}/${partition}`;
      let lane = this.#lanes.get(name);
      if (!lane) {
        this.#lanes.set(name, lane = { outbox: [], ordered: !spec.unordered, flushing: false });
      }
      lane.outbox.push({ topic, key, value, partition, resolve, reject });
      if (!lane.flushing) void this.#flush(name, lane);
    });
  }

  #unavailable(topic: string, cause?: unknown): ChatError {
    const reason = cause !== undefined
      ? describeError(cause)
      : this.#closed
      ? "the bus is closed"
      : this.#lastError || "not connected";
    return new ChatError(
      "unavailable",
      `Cannot publish to ${topic}: Kafka is unavailable (${reason})`,
      cause === undefined ? undefined : { cause },
    );
  }

  /**
   * Sends what `publish()` queued on one lane, one produce request at a time: everything that
   * queued while a request was out goes in the next one. kafkajs's idempotent producer sends one
   * request per broker at a time anyway, so one request per message would queue them behind each
   * other (and, while a leader moves, make each wait out the whole failover in turn). A request
   * that outlives `publishTimeoutMs` fails its callers, but the lane waits for it to end (kafkajs
   * bounds its retries) before the next, so a partition's records never overtake each other.
   */
  async #flush(name: string, lane: Lane): Promise<void> {
    lane.flushing = true;
    try {
      while (lane.outbox.length > 0) {
        const batch = takeBatch(lane.outbox);
        const producer = this.#producer;
        if (!this.ready() || !producer) {
          for (const r of batch) r.reject(this.#unavailable(r.topic));
          continue;
        }
        const sent = this.#send(producer, batch);
        if (!lane.ordered) continue;
        await sent;
      }
    } finally {
      lane.flushing = false;
      if (lane.outbox.length === 0) this.#lanes.delete(name);
    }
  }

  /** One produce request; settles its callers, and resolves once kafkajs is done with it. */
  async #send(producer: Producer, batch: Outgoing[]): Promise<void> {
    const sending = producer.sendBatch({ acks: -1, topicMessages: topicMessagesOf(batch) });
    try {
      settleBatch(batch, await withTimeout(sending, this.#publishTimeoutMs, "the send"));
    } catch (err) {
      this.#suspect(`publish failed: ${describeError(err)}`);
      for (const r of batch) r.reject(this.#unavailable(r.topic, err));
      await sending.catch(() => {});
    }
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (this.#closed) {
      throw new ChatError("unavailable", "Cannot subscribe: the Kafka bus is closed");
    }
    const unknown = options.topics.filter((t) => !this.#topicNames.has(t));
    if (unknown.length > 0 || options.topics.length === 0) {
      throw new ChatError(
        "invalid_argument",
        `Cannot subscribe to ${unknown.join(",") || "no topics"}: the topic is not known`,
      );
    }
    const subscription = new KafkaSubscription(this.#context, options, this.#clientId);
    this.#subscriptions.add(subscription);
    // When Kafka is up, wait until the consumer is subscribed (and a private "latest" one has its
    // position); otherwise it starts once the bus is ready.
    await settleWithin(subscription.ensureRunning(), SUBSCRIBE_WAIT_MS);
    return {
      close: async () => {
        this.#subscriptions.delete(subscription);
        await subscription.close();
      },
    };
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const deadline = Date.now() + this.#closeTimeoutMs;
    const left = () => Math.max(0, deadline - Date.now());
    this.#closed = true;
    this.#ready = false;
    this.#abort.abort();
    clearTimeout(this.#healthTimer);
    this.#healthTimer = undefined;
    if (this.#connecting) await settleWithin(this.#connecting, left());
    const subscriptions = [...this.#subscriptions];
    this.#subscriptions.clear();
    await settleWithin(Promise.allSettled(subscriptions.map((s) => s.close())), left());
    if (this.#probing) await settleWithin(this.#probing, Math.min(left(), 1000));
    await this.#disposeClients(Math.max(left(), 1000));
    this.#logger.info("Kafka bus closed");
  }

  /** Disconnects the producer (flushing it) and the admin client; never throws. */
  async #disposeClients(timeoutMs = 5000): Promise<void> {
    const producer = this.#producer;
    const admin = this.#admin;
    this.#producer = undefined;
    this.#admin = undefined;
    const pending: Promise<unknown>[] = [];
    if (producer) pending.push(producer.disconnect());
    if (admin) pending.push(admin.disconnect());
    await settleWithin(Promise.allSettled(pending), timeoutMs);
  }
}
