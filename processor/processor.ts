/**
 * The Message Processor: stores and routes chat messages, keeps the registry
 * of who is on which gateway, and cleans up after gateways that went silent.
 * A record it can never handle goes to the dead-letter topic instead of blocking its partition.
 *
 * Runs over any `Bus` and `Store`; `processor.ts` at the top wires it to Kafka,
 * `main.ts` runs it in-process on the memory bus.
 */

import { type Config, PROCESSOR_GROUP, TOPICS } from "../core/config.ts";
import { ChatError, describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import {
  decodeChatMessage,
  decodeConnectionEvent,
  decodeHeartbeat,
  encodeConnectionEvent,
  encodeDeadLetter,
  encodeDelivery,
  encodePresence,
  RecordError,
} from "../core/records.ts";
import type { Delivery, Presence } from "../core/types.ts";
import type { Bus, BusRecord, Subscription } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import { Registry } from "./registry.ts";

const encoder = new TextEncoder();

/**
 * Whether `err` says the record itself is bad, so that handling it again can never succeed: it
 * cannot be read, or the store refuses its content (PostgreSQL takes no NUL character). Anything
 * else (Kafka or the database away) may pass, and is retried.
 */
function isPoison(err: unknown): err is Error {
  return err instanceof RecordError ||
    (err instanceof ChatError && err.code === "invalid_argument");
}

export interface ProcessorOptions {
  bus: Bus;
  store: Store;
  logger: Logger;
  config: Pick<Config, "heartbeatTimeoutMs" | "heartbeatIntervalMs">;
  /** Milliseconds since epoch; tests pass a fake clock. */
  now?: () => number;
}

export interface Processor {
  start(): Promise<void>;
  /** Runs dead-gateway detection once (the processor also runs it on a timer). */
  sweep(): Promise<void>;
  readonly registry: Registry;
  stop(): Promise<void>;
}

export function createProcessor(options: ProcessorOptions): Processor {
  const { bus, store, logger, config } = options;
  const now = options.now ?? Date.now;
  const registry = new Registry();
  const subscriptions: Subscription[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  let sweeping: Promise<void> | undefined;

  const deliver = (key: string, delivery: Delivery) =>
    bus.publish(TOPICS.deliveries.name, key, encodeDelivery(delivery));

  const publishPresence = (p: Presence) =>
    bus.publish(TOPICS.presence.name, p.userId, encodePresence(p));

  async function handleChat(record: BusRecord): Promise<void> {
    logger.info(
      `Received chat message: Topic=${record.topic}, Partition=${record.partition}, Offset=${record.offset}`,
    );
    const message = decodeChatMessage(record.value);
    const stored = await store.append(message);
    await deliver(stored.room, { type: "message", message: stored });
    logger.debug("Message routed", { room: stored.room, seq: stored.seq, id: stored.id });
  }

  async function handleConnection(record: BusRecord): Promise<void> {
    const event = decodeConnectionEvent(record.value);
    if (event.connected) {
      logger.info(`User ${event.userId} connected to server ${event.serverId}`);
    } else {
      logger.info(`User ${event.userId} disconnected from server ${event.serverId}`);
    }
    const change = registry.apply(event, now());
    if (change) await publishPresence(change);
  }

  /**
   * A record that can never be handled (unreadable, or refused by the store for its content) is
   * logged and copied to the dead-letter topic, then passed over, so it cannot block its
   * partition. Only once the copy is acknowledged: if it cannot be written, the record is
   * retried like any other failure, so nothing is lost.
   */
  const deadLettering = (handle: (r: BusRecord) => Promise<void>) => async (record: BusRecord) => {
    try {
      await handle(record);
    } catch (err) {
      if (!isPoison(err)) throw err;
      const at = await bus.publish(
        TOPICS.deadLetters.name,
        record.key,
        encodeDeadLetter({
          topic: record.topic,
          partition: record.partition,
          offset: record.offset,
          key: record.key,
          reason: err.message,
          consumer: PROCESSOR_GROUP,
          timestamp: new Date(now()).toISOString(),
          value: record.raw ?? encoder.encode(record.value),
        }),
      );
      logger.warn("Skipping unreadable record: sent to the dead-letter topic", {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        reason: err.message,
        deadLetter: `${at.topic}/${at.partition}/${at.offset}`,
      });
    }
  };

  async function sweepOnce(): Promise<void> {
    const { deadServers, disconnected, presence } = registry.expire(
      now(),
      config.heartbeatTimeoutMs,
    );
    for (const serverId of deadServers) {
      const users = disconnected.filter((d) => d.serverId === serverId).length;
      logger.warn(
        `Gateway ${serverId} sent no heartbeat for ${config.heartbeatTimeoutMs} ms: declared dead, ${users} stream(s) closed`,
      );
      await deliver(serverId, { type: "gateway-dead", serverId });
    }
    const timestamp = new Date(now()).toISOString();
    for (const d of disconnected) {
      await bus.publish(
        TOPICS.userConnections.name,
        d.userId,
        encodeConnectionEvent({ ...d, connected: false, timestamp }),
      );
    }
    for (const p of presence) await publishPresence(p);
  }

  const sweep = () => {
    // One sweep at a time; a timer tick during a slow sweep joins the running one.
    sweeping ??= sweepOnce().finally(() => sweeping = undefined);
    return sweeping;
  };

  return {
    registry,
    sweep,
    async start() {
      subscriptions.push(
        // One member subscription for both topics: members of one Kafka group must subscribe
        // to the same topics, or the group rebalances without end.
        await bus.subscribe({
          topics: [TOPICS.chatting.name, TOPICS.userConnections.name],
          group: PROCESSOR_GROUP,
          from: "latest",
          handler: deadLettering((record) =>
            record.topic === TOPICS.chatting.name ? handleChat(record) : handleConnection(record)
          ),
          // A member that gains partitions knows nothing of their users yet: ask the gateways again.
          onAssigned: () => {
            logger.info("Processor took partitions: asking gateways to re-announce their streams");
            deliver("resync", { type: "resync", reason: "processor assigned partitions" }).catch(
              (err) =>
                logger.warn("Could not ask gateways to resync", { error: describeError(err) }),
            );
          },
        }),
        await bus.subscribe({
          topics: [TOPICS.heartbeats.name],
          from: "latest",
          handler: deadLettering((record) => {
            const hb = decodeHeartbeat(record.value);
            registry.heartbeat(hb.serverId, now());
            return Promise.resolve();
          }),
        }),
      );
      timer = setInterval(() => {
        sweep().catch((err) => logger.warn("Sweep failed", { error: describeError(err) }));
      }, Math.max(250, Math.min(config.heartbeatIntervalMs, config.heartbeatTimeoutMs / 4)));
      logger.info("Processor started", { group: PROCESSOR_GROUP });
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      await sweeping?.catch(() => {});
      await Promise.all(subscriptions.splice(0).map((s) => s.close()));
      logger.info("Processor stopped");
    },
  };
}
