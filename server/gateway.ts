/**
 * A gateway: holds client streams, publishes what they send, and delivers
 * what the processor routes back. `createGateway()` sets it up; `start()`
 * listens; tests build one in-process on port 0.
 */

import { type Config, readTlsFiles } from "../core/config.ts";
import { ChatError, describeError } from "../core/errors.ts";
import { Liveness } from "../core/liveness.ts";
import type { Logger } from "../core/logger.ts";
import { type Metrics, metricsResponse, NO_METRICS } from "../core/metrics.ts";
import type { ChatMessage, Delivery, Presence } from "../core/types.ts";
import type { Bus, Following, Subscription } from "../bus/bus.ts";
import { Announcer } from "./announcer.ts";
import { type ChatService, createChatService } from "./chat_service.ts";
import { countedChat } from "./chat_metrics.ts";
import { createGrpcServer, type GrpcServer, tlsServerCredentials } from "./grpc_server.ts";
import { createWebApi } from "./web_api.ts";
import { createHttpHandler, type HttpHandler, type HttpServer, serveHttp } from "./http_server.ts";
import type { ConnectionLimits, GuardStats } from "./connection_guard.ts";
import { Hub } from "./hub.ts";
import { DeliveryOrder } from "./delivery_order.ts";
import type { Auth } from "./auth.ts";
import { RateLimiter } from "./rate_limiter.ts";
import type { Store } from "../store/store.ts";
import { createStaticHandler } from "./static_files.ts";

export interface GatewayOptions {
  config: Config;
  bus: Bus;
  /** History, rooms and accounts; shared with the processor. */
  store: Store;
  auth: Auth;
  logger: Logger;
  /** What the gateway counts, served on its HTTP port at `/metrics`; default: nothing. */
  metrics?: Metrics;
}

export interface Gateway {
  readonly service: ChatService;
  readonly hub: Hub;
  readonly grpc: GrpcServer;
  readonly http: HttpHandler;
  /** Ports actually bound (after `start()`); useful when configured as 0. */
  readonly grpcPort: number;
  readonly httpPort: number;
  /** What each port's connection guard counted (after `start()`). */
  connectionStats(): { http?: GuardStats; grpc?: GuardStats };
  ready(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createGateway(options: GatewayOptions): Gateway {
  const { config, bus, store, auth } = options;
  const metrics = options.metrics ?? NO_METRICS;
  const logger = options.logger.with({ server: config.serverId });
  // Read now, so a missing or unreadable certificate stops the start-up before anything runs.
  const tls = readTlsFiles(config);
  const hub = new Hub({ logger, queueLimit: config.streamQueueLimit, metrics });
  metrics.watchQueues(() => hub.queueDepths());
  const announcer = new Announcer(bus, logger);
  /**
   * Who is online, by user id. An offline record is dropped rather than kept: every user who
   * ever connected would otherwise stay here for the life of the process.
   */
  const presence = new Map<string, Presence>();
  const startedAt = Date.now();
  /**
   * The gateways' heartbeats, to tell live presence from stale; a gateway not heard from yet
   * has a whole timeout from this one's start.
   */
  const liveness = new Liveness({ unheardSince: startedAt });
  /**
   * A presence record can outlive its gateway when every processor was down as well (nobody
   * published the offline record): it counts only while one of its gateways is alive.
   */
  const alive = (serverId: string) =>
    serverId === config.serverId ||
    liveness.isAlive(serverId, Date.now(), config.heartbeatTimeoutMs);
  const subscriptions: Subscription[] = [];
  let following: Following | undefined;
  const order = new DeliveryOrder({
    handed: (room) => following?.handed(room) ?? Infinity,
    show,
    logger,
  });
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let httpServer: HttpServer | undefined;
  let grpcPort = 0;
  let httpPort = 0;
  let stopping = false;

  const service = createChatService({
    bus,
    hub,
    store,
    auth,
    limiter: new RateLimiter({
      ratePerSecond: config.rateLimitPerSecond,
      burst: config.rateLimitBurst,
    }),
    announcer,
    logger,
    config,
    online: () =>
      [...presence.values()].filter((p) => p.online && p.servers.some(alive)).sort((a, b) =>
        a.userId.localeCompare(b.userId)
      ),
    presenceOf: (userId) => presence.get(userId),
  });
  const limits: ConnectionLimits = {
    maxConnections: config.maxConnections,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    maxCallsPerAddress: config.maxCallsPerAddress,
    headersTimeoutMs: config.headersTimeoutMs,
    bodyTimeoutMs: config.bodyTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
  };
  const grpc = createGrpcServer(countedChat(service, metrics, "native"), logger, {
    // A peer that vanished without closing (a dropped network) is noticed even when idle, and
    // its streams and presence go with it.
    "grpc.keepalive_time_ms": config.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": config.keepaliveTimeoutMs,
  }, {
    limits,
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    maxConnectionAgeMs: config.maxConnectionAgeMs,
    maxSessionMemoryMb: config.maxSessionMemoryMb,
    reportIntervalMs: config.limitsReportIntervalMs,
    maxResumeRooms: config.maxResumeRooms,
  });
  // Room for a message at the size limit, base64-encoded, with its other fields.
  const maxRequestBytes = Math.max(256 * 1024, config.maxMessageBytes * 2);
  const webApi = createWebApi(countedChat(service, metrics, "grpc_web"), {
    logger,
    allowedOrigins: config.corsOrigins,
    maxRequestBytes,
    maxResumeRooms: config.maxResumeRooms,
  });
  const http = createHttpHandler({
    readiness: () =>
      stopping
        ? { ready: false, reason: "shutting down" }
        : bus.ready()
        ? { ready: true }
        : { ready: false, reason: "Kafka is unavailable" },
    handlers: [
      (request) => metricsResponse(metrics, request),
      webApi,
      // The web page, as built by `deno task build`.
      createStaticHandler(new URL("../web/dist", import.meta.url)),
    ],
  });

  /** Announces every open stream again, for a processor that rebuilds its registry. */
  function reannounce(reason: string): void {
    logger.info("Re-announcing open streams", { reason, streams: hub.size });
    for (const s of hub.streams()) {
      announcer.announce({
        userId: s.userId,
        serverId: config.serverId,
        connected: true,
        timestamp: new Date().toISOString(),
        displayName: s.displayName,
        streamId: s.streamId,
      });
    }
  }

  /**
   * A backlog (after Kafka paused) arrives faster than sockets drain: each message or delivery
   * waits for the streams that are draining before the next, so no fast reader is cut as slow.
   */
  function onMessage(message: ChatMessage): Promise<void> {
    try {
      metrics.delivered(hub.deliver(message), message.timestamp);
    } catch (err) {
      // Showing it again would fail the same way and hold up every room behind it in the log.
      logger.error("Cannot show a message; skipped", {
        room: message.room,
        seq: message.seq,
        error: describeError(err),
      });
    }
    order.advanced(message.room);
    return hub.settle();
  }

  async function onDelivery(delivery: Delivery): Promise<void> {
    await order.accept(delivery);
    await hub.settle();
  }

  function show(delivery: Delivery): void {
    try {
      showNow(delivery);
    } catch (err) {
      // Showing it again would fail the same way and hold up every room behind it on the topic.
      logger.error("Cannot show a delivery; skipped", {
        type: delivery.type,
        error: describeError(err),
      });
    }
  }

  function showNow(delivery: Delivery): void {
    switch (delivery.type) {
      case "resync":
        reannounce(delivery.reason);
        break;
      case "gateway-dead":
        if (delivery.serverId === config.serverId) reannounce("declared dead by a processor");
        break;
      case "room-event":
        hub.roomEvent(delivery.event);
        break;
      case "room-action":
        hub.roomAction(delivery.event);
        break;
      case "message-change":
        hub.change(delivery.change);
        break;
      case "reaction":
        hub.reaction(delivery.event);
        break;
      case "typing":
        hub.typing(delivery.event);
        break;
      case "read":
        hub.read(delivery.read);
        break;
      case "block":
        hub.block(delivery.block);
        break;
    }
  }

  function onPresence(p: Presence): void {
    const before = presence.get(p.userId);
    if (p.online) presence.set(p.userId, p);
    else presence.delete(p.userId);
    // Records from before this gateway started are the state it catches up on, not news.
    const news = Date.parse(p.timestamp) >= startedAt;
    if (news && (before?.online ?? false) !== p.online) hub.presence(p);
  }

  function sendHeartbeat(): void {
    liveness.forgetSilent(Date.now(), config.heartbeatTimeoutMs);
    grpc.setServing(bus.ready() && !stopping);
    if (!bus.ready()) return;
    bus.beat({
      serverId: config.serverId,
      timestamp: new Date().toISOString(),
      streams: hub.size,
    }).catch((err) => logger.debug("Heartbeat not sent", { error: describeError(err) }));
  }

  return {
    service,
    hub,
    grpc,
    http,
    get grpcPort() {
      return grpcPort;
    },
    get httpPort() {
      return httpPort;
    },
    connectionStats: () => ({ http: httpServer?.guard.stats(), grpc: grpc.guard?.stats() }),
    ready: () => bus.ready() && !stopping,
    async start() {
      bus.onReady(() => {
        logger.info("Bus is ready");
        sendHeartbeat();
        announcer.nudge();
      });
      following = await bus.follow(onMessage);
      subscriptions.push(
        following,
        await bus.onDelivery(onDelivery),
        await bus.observeHeartbeats((hb) => liveness.beat(hb.serverId, Date.now())),
        await bus.observePresence(onPresence),
      );
      heartbeat = setInterval(sendHeartbeat, config.heartbeatIntervalMs);
      grpcPort = await grpc.listen(
        config.grpcHost,
        config.grpcPort,
        tls ? tlsServerCredentials(tls) : undefined,
      );
      // HTTPS: the browser API and the page are then served over TLS too, with client
      // certificates required as on the gRPC port when TLS_CLIENT_CA_FILE is set.
      httpServer = await serveHttp(http, {
        hostname: config.httpHost,
        port: config.httpPort,
        tls,
        limits,
        maxStreamsPerConnection: config.maxStreamsPerConnection,
        maxSessionMemoryMb: config.maxSessionMemoryMb,
        hstsMaxAgeSeconds: config.hstsMaxAgeSeconds,
        maxBodyBytes: maxRequestBytes,
        reportIntervalMs: config.limitsReportIntervalMs,
        logger,
        refuse: webApi.refuse,
      });
      httpPort = httpServer.port;
      const { guard } = httpServer;
      metrics.watchConnections("grpc_web", () => guard.stats().open);
      metrics.watchConnections("native", () => grpc.guard?.stats().open ?? 0);
      grpc.setServing(bus.ready());
      logger.info("Gateway listening", {
        grpc: `${config.grpcHost}:${grpcPort}`,
        http: `${tls ? "https" : "http"}://${config.httpHost}:${httpPort}`,
        tls: tls
          ? `on (gRPC TLS, HTTPS${tls.clientCa ? ", both with client certificates" : ""})`
          : "off (plaintext; set TLS_CERT_FILE and TLS_KEY_FILE to encrypt)",
      });
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      grpc.setServing(false);
      if (heartbeat !== undefined) clearInterval(heartbeat);
      // Tell clients to reconnect elsewhere; each closed stream queues its disconnect event.
      const bye = new ChatError(
        "unavailable",
        "Stream closed: the server is shutting down; reconnect",
      );
      for (const s of hub.streams()) s.sink.fail(bye);
      await service.flush();
      await announcer.flush(config.shutdownTimeoutMs);
      await grpc.close(1000);
      await httpServer?.shutdown();
      await Promise.all(subscriptions.splice(0).map((s) => s.close()));
      order.close();
      logger.info("Gateway stopped");
    },
  };
}
