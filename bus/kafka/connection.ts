/**
 * The connection to Kafka: clients, readiness, and topic-level publish and subscribe for the
 * adapter of bus/kafka/kafka_bus.ts.
 *
 * It never lets a Kafka outage reach its callers as a hang or a crash: `start()` resolves at once
 * and connects in the background (retrying with backoff until `close()`), `publish()` rejects
 * with an `unavailable` ChatError while Kafka is away, and subscriptions registered meanwhile
 * start once Kafka is back. The idempotent producer takes a per-broker lock around each produce
 * request, so concurrent publishes get distinct sequence numbers (kafkajs issue #1005).
 */

import {
  type Admin,
  Kafka,
  type KafkaConfig,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import { ChatError, describeError } from "../../core/errors.ts";
import type { LogFields, Logger } from "../../core/logger.ts";
import { ReplicationSettingError, type ReplicationSettings } from "./replication.ts";
import { HealthWatch } from "./health.ts";
import { type Metrics, NO_METRICS } from "../../core/metrics.ts";
import { fixKafkajsIdleTimerLoop } from "./idle_timer_fix.ts";
import { Outbox, partitionOf } from "./outbox.ts";
import { KafkaSubscription, type SubscriptionContext } from "./subscription.ts";
import { TopicAdmin } from "./topic_admin.ts";
import type { Published, SubscribeOptions, TopicLog, TopicSpecs } from "./types.ts";
import { pause, settleWithin } from "./waits.ts";

export interface KafkaConnectionOptions {
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
  /** Replication asked for; unset parts follow the cluster's size (bus/kafka/replication.ts). */
  replication?: ReplicationSettings;
  /**
   * Called once when a setting can never work on this cluster (a replication factor above its
   * broker count): the bus stops trying, and the service should exit. Default: logged only.
   */
  onFatal?: (error: Error) => void;
  /** Counts produce requests and consumer lag; default: nothing. */
  metrics?: Metrics;
}

const SUBSCRIBE_WAIT_MS = 15_000;

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

export class KafkaConnection implements TopicLog {
  readonly #kafka: Kafka;
  readonly #logger: Logger;
  readonly #specs: TopicSpecs;
  readonly #clientId: string;
  readonly #maxBackoffMs: number;
  readonly #closeTimeoutMs: number;
  readonly #listeners: (() => void)[] = [];
  readonly #subscriptions = new Set<KafkaSubscription>();
  readonly #abort = new AbortController();
  readonly #topics: TopicAdmin;
  readonly #outbox: Outbox;
  readonly #health: HealthWatch;
  readonly #context: SubscriptionContext;
  readonly #onFatal: ((error: Error) => void) | undefined;
  #admin: Admin | undefined;
  #producer: Producer | undefined;
  /** Producers being closed once kafkajs is done with their requests, or being connected. */
  readonly #retiring = new Set<Promise<unknown>>();
  #renewing: Promise<unknown> | undefined;
  #ready = false;
  #started = false;
  #lastError = "not connected yet";
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: KafkaConnectionOptions) {
    this.#logger = options.logger;
    if (!fixKafkajsIdleTimerLoop()) {
      options.logger.warn("Cannot apply the kafkajs idle timer fix: RequestQueue has changed");
    }
    this.#specs = options.topics;
    this.#clientId = options.clientId;
    this.#maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.#onFatal = options.onFatal;
    const clientConfig: KafkaConfig = {
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
      ...clientConfig,
      logLevel: logLevel.INFO,
      logCreator: kafkaLogCreator(options.logger),
    });
    this.#topics = new TopicAdmin({
      specs: options.topics,
      clientConfig,
      logger: options.logger,
      replication: options.replication ?? {},
      signal: this.#abort.signal,
    });
    this.#health = new HealthWatch({
      admin: () => this.#admin,
      ready: () => this.ready(),
      lost: (reason) => this.#lost(reason),
      signal: this.#abort.signal,
    }, options.healthCheckIntervalMs ?? 5000);
    const metrics = options.metrics ?? NO_METRICS;
    this.#outbox = new Outbox({
      metrics,
      producer: () => this.ready() ? this.#producer : undefined,
      publishTimeoutMs: options.publishTimeoutMs ?? 30_000,
      unavailable: (topic, cause) => this.#unavailable(topic, cause),
      suspect: (reason) => this.#health.suspect(reason),
      inDoubt: (producer, reason) => this.#renewProducer(producer, reason),
    });
    this.#context = {
      kafka: this.#kafka,
      logger: this.#logger,
      retryDelayMs: options.retryDelayMs ?? 200,
      closeTimeoutMs: this.#closeTimeoutMs,
      ready: () => this.ready(),
      admin: () => this.#admin,
      suspect: (reason) => this.#health.suspect(reason),
      metrics,
    };
  }

  get #closed(): boolean {
    return this.#abort.signal.aborted;
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
        await pause(delay, this.#abort.signal);
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
    await this.#topics.ensure(admin);
    this.#throwIfClosed();
    const producer = this.#newProducer();
    this.#producer = producer;
    await producer.connect();
    this.#throwIfClosed();
  }

  #newProducer(): Producer {
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
    return producer;
  }

  /**
   * A request of `old` failed and may have been written (bus/kafka/outbox.ts): a new producer is
   * connected and takes over (meanwhile the outbox keeps `old` from the partition in doubt, and
   * the other partitions keep writing through it). When the new one cannot connect, Kafka is
   * treated as lost.
   */
  #renewProducer(old: Producer, reason: string): void {
    if (old !== this.#producer || this.#closed || this.#renewing) return;
    this.#logger.warn("A write to Kafka failed and may have been made: starting a new producer", {
      reason,
    });
    const producer = this.#newProducer();
    const renewing = producer.connect().then(
      () => {
        if (this.#closed || this.#connecting || this.#producer !== old) {
          return settleWithin(producer.disconnect(), 5000);
        }
        this.#producer = producer;
        this.#retire(old);
        this.#logger.info("A new Kafka producer took over");
      },
      async (err) => {
        await settleWithin(producer.disconnect(), 5000);
        if (this.#producer === old) {
          this.#lost(`a new producer could not connect: ${describeError(err)}`);
        }
      },
    ).finally(() => {
      this.#retiring.delete(renewing);
      this.#renewing = undefined;
    });
    this.#renewing = renewing;
    this.#retiring.add(renewing);
  }

  /**
   * Closes `producer` once kafkajs is done with its requests: closed earlier, a request still
   * retrying would connect it again, and nothing would close it then.
   */
  #retire(producer: Producer): void {
    const retiring = this.#outbox.settled(producer)
      .then(() => settleWithin(producer.disconnect(), 5000))
      .then(() => this.#logger.info("Closed a Kafka producer that was replaced"))
      .finally(() => this.#retiring.delete(retiring));
    this.#retiring.add(retiring);
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new Error("the bus was closed");
  }

  #becomeReady(attempt: number): void {
    this.#ready = true;
    this.#lastError = "";
    this.#logger.info("Connected to Kafka", { attempts: attempt });
    for (const listener of [...this.#listeners]) this.#callListener(listener);
    for (const subscription of this.#subscriptions) void subscription.ensureRunning();
    this.#health.schedule();
  }

  /** Kafka seems gone: stop accepting publishes and reconnect in the background. */
  #lost(reason: string): void {
    if (this.#closed || !this.#started) return;
    if (this.#ready) {
      this.#ready = false;
      this.#lastError = reason;
      this.#logger.warn("Lost the connection to Kafka; reconnecting", { reason });
    }
    this.#health.pause();
    this.#reconnect();
  }

  /** How many partitions `topic` really has; undefined until connected once. */
  partitions(topic: string): number | undefined {
    return this.#topics.partitions(topic);
  }

  partitionOf(topic: string, key: string): number | undefined {
    const partitions = this.#topics.partitions(topic);
    return partitions === undefined ? undefined : partitionOf(key, partitions);
  }

  async committed(group: string, topic: string): Promise<Map<number, number>> {
    const admin = this.#admin;
    if (!admin || !this.ready()) throw this.#unavailable(topic);
    const [found] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return new Map((found?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  }

  /** Resolves once Kafka acknowledged the record; rejects with an `unavailable` ChatError otherwise. */
  publish(topic: string, key: string, value: string): Promise<Published> {
    const spec = this.#specs.find((t) => t.name === topic);
    if (!spec) {
      return Promise.reject(
        new ChatError("invalid_argument", `Cannot publish to ${topic}: the topic is not known`),
      );
    }
    const partitions = this.#topics.partitions(topic);
    if (!this.ready() || partitions === undefined) {
      return Promise.reject(this.#unavailable(topic));
    }
    return this.#outbox.send(topic, partitionOf(key, partitions), key, value, !spec.unordered);
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

  async subscribe(options: SubscribeOptions): Promise<{ close(): Promise<void> }> {
    if (this.#closed) {
      throw new ChatError("unavailable", "Cannot subscribe: the Kafka bus is closed");
    }
    const unknown = options.topics.filter((t) => !this.#specs.some((s) => s.name === t));
    if (unknown.length > 0 || options.topics.length === 0) {
      throw new ChatError(
        "invalid_argument",
        `Cannot subscribe to ${unknown.join(",") || "no topics"}: the topic is not known`,
      );
    }
    if (options.group !== undefined && typeof options.from === "object") {
      // A group's members would each move its shared position back at every start.
      throw new ChatError(
        "invalid_argument",
        `Cannot subscribe group ${options.group}: only a private subscription starts records back`,
      );
    }
    const subscription = new KafkaSubscription(this.#context, options, this.#clientId);
    this.#subscriptions.add(subscription);
    // When Kafka is up, wait until the consumer is subscribed (and a private "latest" or `back`
    // one has its position); otherwise it starts once the bus is ready.
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
    this.#ready = false;
    this.#abort.abort();
    if (this.#connecting) await settleWithin(this.#connecting, left());
    const subscriptions = [...this.#subscriptions];
    this.#subscriptions.clear();
    await settleWithin(Promise.allSettled(subscriptions.map((s) => s.close())), left());
    await this.#health.stop(Math.min(left(), 1000));
    await this.#disposeClients(Math.max(left(), 1000), true);
    await settleWithin(Promise.allSettled([...this.#retiring]), Math.max(left(), 1000));
    this.#logger.info("Kafka bus closed");
  }

  /**
   * Disconnects the admin client and the producer; never throws. When reconnecting, the
   * producer is retired (closed once its requests are done) rather than closed under them.
   */
  async #disposeClients(timeoutMs = 5000, closing = false): Promise<void> {
    const producer = this.#producer;
    const admin = this.#admin;
    this.#producer = undefined;
    this.#admin = undefined;
    const pending: Promise<unknown>[] = [];
    if (producer && closing) pending.push(producer.disconnect());
    else if (producer) this.#retire(producer);
    if (admin) pending.push(admin.disconnect());
    await settleWithin(Promise.allSettled(pending), timeoutMs);
  }
}
