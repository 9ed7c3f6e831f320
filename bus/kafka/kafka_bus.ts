/**
 * The Kafka adapter of the bus ports (bus/bus.ts), for several gateways and processors on many
 * machines. This is where the ports meet the wire contract: which topic carries what, keyed by
 * what (bus/kafka/topics.ts), the JSON records (bus/kafka/records.ts), the processors' consumer
 * group, and the dead-letter topic. The connection itself (clients, outbox, subscriptions,
 * topic administration, health) is bus/kafka/connection.ts.
 *
 * Records that cannot be read: the processors' input (`chatting`, `user-connections`) goes to
 * `chat-dead-letters` with the reason, and only once that copy is acknowledged is the record
 * passed over (if it cannot be written, the record is retried like any failure, so nothing is
 * lost). On the fan-out topics every gateway reads every record, and a dead letter per reader
 * would be noise: an unreadable delivery, presence or heartbeat is logged and skipped.
 */

import { ChatError } from "../../core/errors.ts";
import type { Logger } from "../../core/logger.ts";
import type {
  ChatMessage,
  ConnectionEvent,
  Delivery,
  Heartbeat,
  Presence,
} from "../../core/types.ts";
import type { Bus, Following, ProcessorHandlers, Subscription } from "../bus.ts";
import { KafkaConnection, type KafkaConnectionOptions } from "./connection.ts";
import {
  decodeChatMessage,
  decodeConnectionEvent,
  decodeDelivery,
  decodeHeartbeat,
  decodePresence,
  encodeChatMessage,
  encodeConnectionEvent,
  encodeDeadLetter,
  encodeDelivery,
  encodeHeartbeat,
  encodePresence,
  RecordError,
} from "./records.ts";
import {
  HandedOffsets,
  positionAt,
  positionOf,
  RECENT_SENDS,
  RecentSends,
  StoredWatch,
} from "./positions.ts";
import { type KafkaNames, kafkaNames } from "./topics.ts";
import type { LogRecord, RecordHandler, TopicLog } from "./types.ts";

export interface KafkaBusOptions extends Omit<KafkaConnectionOptions, "topics"> {
  /** How long `stored` waits for the processors (default 10 s). */
  storedTimeoutMs?: number;
  /** The room logs' epoch (bus/kafka/positions.ts; default 0). */
  logEpoch?: number;
  /**
   * Puts every topic and the processors' group under `<namespace>.` (see `kafkaNames`), for
   * deployments or test runs that share a cluster. Unset: the contract's names.
   */
  namespace?: string;
}

/** What `KafkaBus` is built on: the topics, their names, and where to log. */
export interface KafkaBusParts {
  readonly log: TopicLog;
  readonly names: KafkaNames;
  readonly logger: Logger;
  readonly storedTimeoutMs?: number;
  readonly logEpoch?: number;
}

const encoder = new TextEncoder();

/** The key of a delivery: one room's deliveries stay on one partition, in order. */
function deliveryKey(delivery: Delivery): string {
  switch (delivery.type) {
    case "room-event":
    case "room-action":
    case "typing":
      return delivery.event.room;
    case "message-change":
      // The room's key: after the message itself, which the editor had to receive first.
      return delivery.change.room;
    case "reaction":
      return delivery.event.room;
    case "read":
      return delivery.read.room;
    case "block":
      // The blocker's key: one user's blocks and unblocks stay in order.
      return delivery.block.userId;
    case "gateway-dead":
      return delivery.serverId;
    case "resync":
      return "resync";
  }
}

/**
 * Whether `err` says the record itself is bad, so that handling it again can never succeed: it
 * cannot be read, or the processor refuses its content (PostgreSQL takes no NUL character).
 * Anything else (Kafka or the database away) may pass, and is retried.
 */
function isPoison(err: unknown): err is Error {
  return err instanceof RecordError ||
    (err instanceof ChatError && err.code === "invalid_argument");
}

export class KafkaBus implements Bus {
  readonly #connection: TopicLog;
  readonly #names: KafkaNames;
  readonly #logger: Logger;
  readonly #setAsideRecords = new WeakSet<LogRecord>();
  readonly #stored: StoredWatch;
  readonly #epoch: number;

  /** A bus over a Kafka cluster. */
  static connect(options: KafkaBusOptions): KafkaBus {
    const names = kafkaNames(options.namespace);
    const log = new KafkaConnection({ ...options, topics: Object.values(names.topics) });
    return new KafkaBus({
      log,
      names,
      logger: options.logger,
      ...(options.storedTimeoutMs !== undefined
        ? { storedTimeoutMs: options.storedTimeoutMs }
        : {}),
      ...(options.logEpoch !== undefined ? { logEpoch: options.logEpoch } : {}),
    });
  }

  /** A bus over `parts.log`: a `KafkaConnection`, or a stand-in where the point is the records. */
  constructor(parts: KafkaBusParts) {
    this.#connection = parts.log;
    this.#names = parts.names;
    this.#logger = parts.logger;
    this.#epoch = parts.logEpoch ?? 0;
    const chatting = this.#names.topics.chatting.name;
    this.#stored = new StoredWatch({
      partitionOf: (room) => this.#connection.partitionOf(chatting, room),
      committed: () => this.#connection.committed(this.#names.processorGroup, chatting),
      timeoutMs: parts.storedTimeoutMs ?? 10_000,
    });
  }

  start(): Promise<void> {
    return this.#connection.start();
  }

  ready(): boolean {
    return this.#connection.ready();
  }

  onReady(listener: () => void): void {
    this.#connection.onReady(listener);
  }

  close(): Promise<void> {
    return this.#connection.close();
  }

  async append(message: ChatMessage): Promise<void> {
    // Keyed by room: one room stays on one partition, so its order is the same for every reader.
    const at = await this.#connection.publish(
      this.#names.topics.chatting.name,
      message.room,
      encodeChatMessage(message),
    );
    this.#logger.info(
      `Message sent to Kafka - Topic: ${at.topic}, Partition: ${at.partition}, Offset: ${at.offset}`,
    );
  }

  async announce(event: ConnectionEvent): Promise<void> {
    await this.#connection.publish(
      this.#names.topics.userConnections.name,
      event.userId,
      encodeConnectionEvent(event),
    );
  }

  process(handlers: ProcessorHandlers): Promise<Subscription> {
    const { chatting, userConnections } = this.#names.topics;
    return this.#connection.subscribe({
      // One subscription for both topics: members of one Kafka group must subscribe to the same
      // topics, or the group rebalances without end.
      topics: [chatting.name, userConnections.name],
      group: this.#names.processorGroup,
      from: "latest",
      handler: this.#deadLettering((record) =>
        handlers.connection(decodeConnectionEvent(record.value))
      ),
      runs: {
        topics: [chatting.name],
        handler: (records) => this.#handleMessages(records, handlers),
      },
      ...(handlers.onTakeOver ? { onAssigned: handlers.onTakeOver } : {}),
    });
  }

  /**
   * A run of `chatting` records, handled together. An unreadable record is set aside on its own;
   * when the processor refuses the run for the content of one of its messages, each message is
   * handled on its own, so that only that one goes to the dead letters.
   */
  async #handleMessages(records: readonly LogRecord[], handlers: ProcessorHandlers): Promise<void> {
    const readable: { record: LogRecord; message: ChatMessage }[] = [];
    for (const record of records) {
      this.#logger.info(
        `Received chat message: Topic=${record.topic}, Partition=${record.partition}, Offset=${record.offset}`,
      );
      if (this.#setAsideRecords.has(record)) continue;
      try {
        readable.push({ record, message: this.#positioned(record) });
      } catch (err) {
        if (!isPoison(err)) throw err;
        await this.#setAside(record, err);
      }
    }
    if (readable.length === 0) return;
    try {
      // What they stored goes nowhere from here: the gateways read the same records themselves.
      await handlers.messages(readable.map((r) => r.message));
    } catch (err) {
      if (!isPoison(err)) throw err;
      if (readable.length === 1) return await this.#setAside(readable[0]!.record, err);
      for (const { record, message } of readable) {
        await this.#deadLettering(async () => {
          await handlers.messages([message]);
        })(record);
      }
    }
  }

  /**
   * A record the processor can never handle is copied to the dead-letter topic, then passed
   * over, so it cannot block its partition; only once the copy is acknowledged.
   */
  #deadLettering(handle: RecordHandler): RecordHandler {
    return async (record) => {
      try {
        await handle(record);
      } catch (err) {
        if (!isPoison(err)) throw err;
        await this.#setAside(record, err);
      }
    };
  }

  /** Copies `record` to the dead letters; a retry of its run (the same objects) then skips it. */
  async #setAside(record: LogRecord, err: Error): Promise<void> {
    const at = await this.#connection.publish(
      this.#names.topics.deadLetters.name,
      record.key,
      encodeDeadLetter({
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        key: record.key,
        reason: err.message,
        consumer: this.#names.processorGroup,
        timestamp: new Date().toISOString(),
        value: record.raw ?? encoder.encode(record.value),
      }),
    );
    this.#logger.warn("Skipping unreadable record: sent to the dead-letter topic", {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      reason: err.message,
      deadLetter: `${at.topic}/${at.partition}/${at.offset}`,
    });
    this.#setAsideRecords.add(record);
  }

  async follow(handler: (message: ChatMessage) => Promise<void>): Promise<Following> {
    const chatting = this.#names.topics.chatting.name;
    // A follower of its own: two followers in one process would each need to skip the repeats.
    const recent = new RecentSends();
    const handed = new HandedOffsets();
    /** Each partition's end when the follower started: the records from there on are shown. */
    let liveFrom: ReadonlyMap<number, number> = new Map();
    const subscription = await this.#connection.subscribe({
      topics: [chatting],
      // What came just before the start is read back, only to remember its sends: a retry of
      // one of them after the start is a repeat here too.
      from: { back: RECENT_SENDS },
      onStart: (_, ends) => {
        liveFrom = ends;
        // What came before is the store's to give, once the processors have it.
        this.#stored.startsAt(ends);
        handed.startsAt(ends);
      },
      handler: async (record) => {
        const live = Number(record.offset) >= (liveFrom.get(record.partition) ?? 0);
        let message: ChatMessage;
        try {
          message = this.#positioned(record);
        } catch (err) {
          if (!(err instanceof RecordError)) throw err;
          // The processors set it aside as a dead letter; here it is only not shown (and one read
          // back was warned of when it came).
          if (live) this.#skipUnreadable(record, err);
          return;
        }
        if (!live) {
          recent.add(record.partition, message);
          return;
        }
        if (recent.seen(record.partition, message)) {
          this.#logger.debug("Dropped a retried send already delivered", {
            room: message.room,
            id: message.id,
            offset: record.offset,
          });
          return;
        }
        // Counted before it is shown: a stream opened meanwhile reads it from the store. In the
        // same turn as the handler's call, which shows it, so `handed` is never ahead of it.
        this.#stored.handed(record);
        handed.hand(record.partition, Number(record.offset));
        await handler(message);
        recent.add(record.partition, message);
      },
    });
    return {
      close: () => subscription.close(),
      // Kafka away when it started: nothing is held back until the follower starts (at the
      // partitions' ends, whenever Kafka is back).
      handed: (room) => {
        const partition = this.#connection.partitionOf(chatting, room);
        const offset = partition === undefined ? undefined : handed.get(partition);
        return offset === undefined ? Infinity : positionAt(offset, this.#epoch);
      },
    };
  }

  /** The chat message of a `chatting` record, with its position in the log as `seq`. */
  #positioned(record: LogRecord): ChatMessage {
    return { ...decodeChatMessage(record.value), seq: positionOf(record, this.#epoch) };
  }

  stored(room: string, signal?: AbortSignal): Promise<void> {
    return this.#stored.stored(room, signal);
  }

  /** Passes over a record this reader cannot decode, with a warning (the processors dead-letter it). */
  #skipUnreadable(record: LogRecord, err: RecordError): void {
    this.#logger.warn("Skipping unreadable record", {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      error: err.message,
    });
  }

  /** Reads `topic` from `from` on, handing each readable record to `handle`. */
  #observe<T>(
    topic: string,
    from: "earliest" | "latest",
    decode: (text: string) => T,
    handle: (item: T) => Promise<void> | void,
  ): Promise<Subscription> {
    return this.#connection.subscribe({
      topics: [topic],
      from,
      handler: async (record: LogRecord) => {
        let item: T;
        try {
          item = decode(record.value);
        } catch (err) {
          if (!(err instanceof RecordError)) throw err;
          this.#skipUnreadable(record, err);
          return;
        }
        await handle(item);
      },
    });
  }

  async deliver(delivery: Delivery): Promise<void> {
    await this.#connection.publish(
      this.#names.topics.deliveries.name,
      deliveryKey(delivery),
      encodeDelivery(delivery),
    );
  }

  onDelivery(handler: (delivery: Delivery) => Promise<void>): Promise<Subscription> {
    return this.#observe(this.#names.topics.deliveries.name, "latest", decodeDelivery, handler);
  }

  async publishPresence(presence: Presence): Promise<void> {
    await this.#connection.publish(
      this.#names.topics.presence.name,
      presence.userId,
      encodePresence(presence),
    );
  }

  /** `presence` is compacted: read from the start, it holds the latest record of every user. */
  observePresence(handler: (presence: Presence) => void): Promise<Subscription> {
    return this.#observe(this.#names.topics.presence.name, "earliest", decodePresence, handler);
  }

  async beat(heartbeat: Heartbeat): Promise<void> {
    await this.#connection.publish(
      this.#names.topics.heartbeats.name,
      heartbeat.serverId,
      encodeHeartbeat(heartbeat),
    );
  }

  observeHeartbeats(handler: (heartbeat: Heartbeat) => void): Promise<Subscription> {
    return this.#observe(this.#names.topics.heartbeats.name, "latest", decodeHeartbeat, handler);
  }
}
