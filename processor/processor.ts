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
  encodeHeartbeat,
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
  /** Publishes this processor's own heartbeat, which it reads back (also on the sweep timer). */
  heartbeat(): Promise<void>;
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
  /**
   * This processor's own heartbeat, published beside the gateways' and read back: while it does
   * not come back, Kafka is not carrying heartbeats to this processor, and a silent gateway says
   * nothing about that gateway.
   */
  const canaryId = `processor:${crypto.randomUUID()}`;
  let canarySeenAt = now();
  /** The reason verdicts are held back, while they are (logged once per episode). */
  let holding: string | undefined;

  const sendCanary = (): Promise<void> =>
    bus.publish(
      TOPICS.heartbeats.name,
      canaryId,
      encodeHeartbeat({
        serverId: canaryId,
        timestamp: new Date(now()).toISOString(),
        streams: 0,
        role: "processor",
      }),
    ).then(
      () => {},
      (err) => logger.debug("Processor heartbeat not sent", { error: describeError(err) }),
    );

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

  /**
   * Whether silent gateways may be called dead now, or the silence more likely means a sick
   * Kafka cluster: then the verdict waits, and no stream is closed. Two signs of a sick cluster:
   * this processor's own heartbeats have not come back through Kafka for half a timeout, or more than half of the
   * known gateways (at least two) fell silent together. In the second case a verdict is still
   * given once the silence lasts three timeouts, so gateways that really died together are
   * cleaned up in the end.
   */
  function verdictTimeout(at: number): number | undefined {
    const timeout = config.heartbeatTimeoutMs;
    const silent = registry.silent(at, timeout);
    let hold: { reason: string; timeout: number | undefined } | undefined;
    // Half a timeout, not a whole one: the processor's own heartbeat and a gateway's go through
    // the same partition and stop together when its leader dies, and the gateway's may have
    // stopped a moment earlier; a verdict needs the bus to have carried heartbeats well after
    // the gateway's last one. The canary goes out at least every quarter of a timeout.
    if (silent.length > 0 && at - canarySeenAt > timeout / 2) {
      hold = {
        reason: `this processor's own heartbeats have not come back through Kafka for ${
          at - canarySeenAt
        } ms`,
        timeout: undefined,
      };
    } else if (silent.length >= 2 && silent.length * 2 > registry.servers().length) {
      hold = {
        reason: `${silent.length} of ${registry.servers().length} gateways fell silent together`,
        timeout: 3 * timeout,
      };
    }
    if (hold === undefined) {
      if (holding !== undefined) {
        // The gateways' producers may still be finding the new leaders: a whole timeout each.
        registry.pardonAll(at);
        logger.info(
          `Heartbeats flow again: gateway verdicts resume, each gateway has ${timeout} ms to be heard`,
        );
      }
      holding = undefined;
      return timeout;
    }
    if (holding === undefined) {
      logger.warn(
        `Suspecting the Kafka cluster, not the gateways: ${hold.reason}; no gateway is declared dead and no stream is closed meanwhile`,
        { silent: silent.join(",") },
      );
    }
    holding = hold.reason;
    return hold.timeout;
  }

  async function sweepOnce(): Promise<void> {
    const at = now();
    const timeout = verdictTimeout(at);
    if (timeout === undefined) return;
    const { deadServers, disconnected, presence } = registry.expire(at, timeout);
    for (const serverId of deadServers) {
      const users = disconnected.filter((d) => d.serverId === serverId).length;
      logger.warn(
        `Gateway ${serverId} sent no heartbeat for ${timeout} ms: declared dead, ${users} stream(s) closed`,
      );
      await deliver(serverId, { type: "gateway-dead", serverId });
    }
    const timestamp = new Date(at).toISOString();
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
    heartbeat: sendCanary,
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
            if (hb.serverId === canaryId) canarySeenAt = now();
            else if (hb.role !== "processor") registry.heartbeat(hb.serverId, now());
            return Promise.resolve();
          }),
        }),
      );
      canarySeenAt = now();
      void sendCanary();
      timer = setInterval(() => {
        void sendCanary();
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
