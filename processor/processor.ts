/**
 * The Message Processor: stores chat messages (the history), keeps the registry
 * of who is on which gateway, and cleans up after gateways that went silent.
 * A message the store refuses for its content (`invalid_argument`) is set aside by the bus (Kafka:
 * the dead-letter topic) instead of blocking its room.
 *
 * Runs over any `Bus` and `Store`; `processor.ts` at the top wires it to Kafka,
 * `main.ts` runs it in-process on the memory bus.
 */

import type { Config } from "../core/config.ts";
import { describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { type Metrics, NO_METRICS } from "../core/metrics.ts";
import type { ChatMessage, ConnectionEvent } from "../core/types.ts";
import type { Bus, Subscription } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import { Registry } from "./registry.ts";

export interface ProcessorOptions {
  bus: Bus;
  store: Store;
  logger: Logger;
  config: Pick<Config, "heartbeatTimeoutMs" | "heartbeatIntervalMs">;
  /** Milliseconds since epoch; tests pass a fake clock. */
  now?: () => number;
  /** Counts dead-gateway verdicts; default: nothing. */
  metrics?: Metrics;
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
  const metrics = options.metrics ?? NO_METRICS;
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
    bus.beat({
      serverId: canaryId,
      timestamp: new Date(now()).toISOString(),
      streams: 0,
      role: "processor",
    }).then(
      () => {},
      (err) => logger.debug("Processor heartbeat not sent", { error: describeError(err) }),
    );

  /**
   * One store transaction for the run. The gateways deliver the messages from the log
   * themselves: storing is off their path.
   */
  async function handleMessages(messages: readonly ChatMessage[]): Promise<ChatMessage[]> {
    const stored = await store.appendAll(messages);
    for (const m of stored) logger.debug("Message stored", { room: m.room, seq: m.seq, id: m.id });
    return stored;
  }

  async function handleConnection(event: ConnectionEvent): Promise<void> {
    if (event.connected) {
      logger.info(`User ${event.userId} connected to server ${event.serverId}`);
    } else {
      logger.info(`User ${event.userId} disconnected from server ${event.serverId}`);
    }
    const change = registry.apply(event, now());
    if (change) await bus.publishPresence(change);
  }

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
      metrics.gatewayDeclaredDead();
      const users = disconnected.filter((d) => d.serverId === serverId).length;
      logger.warn(
        `Gateway ${serverId} sent no heartbeat for ${timeout} ms: declared dead, ${users} stream(s) closed`,
      );
      await bus.deliver({ type: "gateway-dead", serverId });
    }
    const timestamp = new Date(at).toISOString();
    for (const d of disconnected) {
      await bus.announce({ ...d, connected: false, timestamp });
    }
    for (const p of presence) await bus.publishPresence(p);
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
        await bus.process({
          messages: handleMessages,
          connection: handleConnection,
          // A processor that takes rooms and users over knows nothing of their streams yet: ask
          // the gateways again.
          onTakeOver: () => {
            logger.info("Processor took over rooms: asking gateways to re-announce their streams");
            bus.deliver({ type: "resync", reason: "processor assigned partitions" }).catch((err) =>
              logger.warn("Could not ask gateways to resync", { error: describeError(err) })
            );
          },
        }),
        await bus.observeHeartbeats((hb) => {
          if (hb.serverId === canaryId) canarySeenAt = now();
          else if (hb.role !== "processor") registry.heartbeat(hb.serverId, now());
        }),
      );
      canarySeenAt = now();
      void sendCanary();
      timer = setInterval(() => {
        void sendCanary();
        sweep().catch((err) => logger.warn("Sweep failed", { error: describeError(err) }));
      }, Math.max(250, Math.min(config.heartbeatIntervalMs, config.heartbeatTimeoutMs / 4)));
      logger.info("Processor started");
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      await sweeping?.catch(() => {});
      await Promise.all(subscriptions.splice(0).map((s) => s.close()));
      logger.info("Processor stopped");
    },
  };
}
