/**
 * One subscription over a kafkajs consumer: handlers called in order per partition, positions
 * committed only after the handler resolved, failed handlers retried on the same record, and a
 * consumer that crashed or stalled replaced.
 *
 * kafkajs behaviours this relies on or works around:
 * - A handler error is retried here, inside `eachMessage` (or `eachBatch` for a subscription
 *   with runs), with a pause and a heartbeat between attempts. Throwing out of it would also
 *   re-deliver the record, but only after a fetch restart, and a `TypeError` there counts as
 *   "not retriable": the consumer would crash with `restart: false` and stay dead.
 * - Offsets are resolved only after the handler resolved; kafkajs commits resolved offsets at
 *   the end of each batch, before a rebalance and when the consumer stops.
 * - A consumer that crashes with `restart: false` is replaced here; other crashes are restarted
 *   by kafkajs (`restartOnFailure`, which answers "no" once the subscription is closed).
 * - Stall watchdog: after a broker came back, kafkajs consumers were seen to stop fetching for
 *   longer than a drain of 30 s. A private subscription whose records wait `STALL_MS` with none
 *   handled replaces its consumer, which resumes from its committed offsets.
 */

import type {
  Admin,
  Consumer,
  EachBatchPayload,
  EachMessagePayload,
  Kafka,
  KafkaMessage,
} from "kafkajs";
import { describeError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type { Metrics } from "../../core/metrics.ts";
import type { LogRecord, SubscribeOptions } from "./types.ts";
import { pause, settleWithin, withTimeout } from "./waits.ts";

/** Consumer settings: short fetch waits keep delivery, heartbeats and `close()` prompt. */
export const CONSUMER_SETTINGS = {
  maxWaitTimeInMs: 250,
  heartbeatInterval: 1000,
  sessionTimeout: 10_000,
} as const;

const MAX_HANDLER_RETRY_DELAY_MS = 5000;
/** The most records of one partition a run handler gets at once. */
const RUN_LIMIT = 500;
/** How often a private subscription checks that it keeps up, and how long it may idle behind. */
const STALL_CHECK_MS = 5000;
const STALL_MS = 15_000;

/** What a subscription needs from its connection. */
export interface SubscriptionContext {
  readonly kafka: Kafka;
  readonly logger: Logger;
  readonly retryDelayMs: number;
  readonly closeTimeoutMs: number;
  ready(): boolean;
  admin(): Admin | undefined;
  /** Something failed in a way that may mean Kafka is gone: check, and reconnect if so. */
  suspect(reason: string): void;
  /** Takes each partition's lag after every batch. */
  readonly metrics: Metrics;
}

function recordOf(topic: string, partition: number, message: KafkaMessage): LogRecord {
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key?.toString() ?? "",
    value: message.value?.toString() ?? "",
    ...(message.value ? { raw: message.value } : {}),
  };
}

/** Where a private subscription's first consumer starts, and where its topics ended then. */
interface Start {
  readonly seeks: { topic: string; partition: number; offset: string }[];
  readonly ends: Map<string, Map<number, number>>;
}

export class KafkaSubscription {
  readonly groupId: string;
  readonly isPrivate: boolean;
  #consumer: Consumer | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;
  #startedOnce = false;
  /**
   * Where the first consumer was to start: a first start that failed after reading it is tried
   * again from the same place, so that nothing appended meanwhile falls between two starts.
   */
  #firstStart: Start | undefined;
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
    private readonly bus: SubscriptionContext,
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
    const { metrics } = this.bus;
    if (metrics.enabled) {
      // Per fetched batch, not per record, from the fetch's high watermark: the backlog with the
      // batch as it starts (a handler stuck on it keeps showing it), what is left once it is done.
      // A gateway's own group is named "private": its id changes with every start.
      const group = this.isPrivate ? "private" : this.groupId;
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        metrics.consumerAssigned(group, payload.memberAssignment);
      });
      consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => {
        metrics.consumerLag(group, payload.topic, payload.partition, Number(payload.offsetLagLow));
      });
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        metrics.consumerLag(group, payload.topic, payload.partition, Number(payload.offsetLag));
      });
    }
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
    // "latest" for a private subscription means: from now on, whenever the consumer joins; `back`
    // as far back from there. A replaced consumer resumes from the offsets committed instead
    // (kafkajs commits a seek as it applies it).
    const { from } = this.options;
    const back = from === "latest" ? 0 : typeof from === "object" ? from.back : undefined;
    let start: Start = { seeks: [], ends: new Map() };
    if (this.isPrivate && back !== undefined && !this.#startedOnce) {
      start = this.#firstStart ??= await this.#startOffsets(back);
      this.#throwIfClosed();
    }
    await consumer.subscribe({
      topics: [...this.options.topics],
      // `back` reads what came before its end offsets: should its position ever fall below a
      // partition's start (retention), kafkajs resets it to the start, not past what is left.
      fromBeginning: from !== "latest",
    });
    this.#throwIfClosed();
    for (const [topic, ends] of start.ends) this.options.onStart?.(topic, ends);
    // run() resolves only after the group join; joining goes on in the background.
    consumer.run(
      this.options.runs
        ? {
          // Positions are resolved by #eachBatch run by run, never a whole batch at once: a batch
          // left halfway (a rebalance) is fetched again from where it stopped.
          eachBatchAutoResolve: false,
          eachBatch: (payload) => this.#eachBatch(payload),
        }
        : { eachMessage: (payload) => this.#eachMessage(payload) },
    ).catch((err) => {
      this.#logger.warn("Kafka consumer failed to run", { error: describeError(err) });
    });
    // The consumer group exists from the first synchronous step of run(): seeks apply on the
    // first fetch after the join.
    for (const seek of start.seeks) consumer.seek(seek);
    this.#startedOnce = true;
    this.#logger.debug("Kafka consumer started");
  }

  /**
   * Where each partition starts: `back` records before its end, never below its start (kafkajs
   * would take an offset out of range for a reset).
   */
  async #startOffsets(back: number): Promise<Start> {
    const admin = this.bus.admin();
    if (!admin) throw new Error("the admin client is not connected");
    const start: Start = { seeks: [], ends: new Map() };
    for (const topic of this.options.topics) {
      const ends = new Map<number, number>();
      for (const p of await admin.fetchTopicOffsets(topic)) {
        const offset = Math.max(Number(p.low), Number(p.high) - back);
        start.seeks.push({ topic, partition: p.partition, offset: String(offset) });
        ends.set(p.partition, Number(p.high));
      }
      start.ends.set(topic, ends);
    }
    return start;
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

  /** One record, handed to the handler until it resolves (kafkajs resolves its position then). */
  #eachMessage({ topic, partition, message, heartbeat }: EachMessagePayload): Promise<void> {
    return this.#handle(
      [recordOf(topic, partition, message)],
      (r) => this.options.handler(r[0]!),
      heartbeat,
    );
  }

  /**
   * A fetched batch of one partition, for a subscription with runs: records one at a time, or
   * (topics of `options.runs`) in runs of up to RUN_LIMIT; each position is resolved once its
   * handler resolved.
   */
  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary } =
      payload;
    const runs = this.options.runs?.topics.includes(batch.topic) ? this.options.runs : undefined;
    const records = batch.messages.map((m) => recordOf(batch.topic, batch.partition, m));
    for (let at = 0; at < records.length;) {
      // As kafkajs's own eachMessage loop: a rebalance took the partition, or the consumer stops.
      if (!isRunning() || isStale()) return;
      const run = runs ? records.slice(at, at + RUN_LIMIT) : records.slice(at, at + 1);
      await this.#handle(run, runs ? runs.handler : (r) => this.options.handler(r[0]!), heartbeat);
      resolveOffset(run.at(-1)!.offset);
      at += run.length;
      // As kafkajs does after each record of eachMessage: commits keep up within a long batch.
      await commitOffsetsIfNecessary();
      await heartbeat();
    }
  }

  /** Hands `run` to `handle` until it resolves, with a growing pause and a heartbeat between. */
  async #handle(
    run: readonly LogRecord[],
    handle: (records: readonly LogRecord[]) => Promise<void>,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    let delay = this.bus.retryDelayMs;
    for (let attempt = 1;; attempt++) {
      // Throwing leaves the offset unresolved: the record is fetched again by whoever owns it next.
      if (this.#closed) throw new Error("Subscription closed before the record was handled");
      try {
        await handle(run);
        this.#progressAt = Date.now();
        return;
      } catch (err) {
        this.#logger.warn("Record handler failed; retrying the same record", {
          topic: run[0]!.topic,
          partition: run[0]!.partition,
          offset: run.length === 1 ? run[0]!.offset : `${run[0]!.offset}-${run.at(-1)!.offset}`,
          attempt,
          error: describeError(err),
        });
      }
      await pause(delay, this.#abort.signal);
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
