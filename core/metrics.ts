/**
 * The Prometheus metrics of a gateway or processor: every metric is defined here once (name,
 * help, labels, buckets), and the code that counts calls a method named for what happened
 * (`delivered`, `sendRefused`, …). One `Metrics` is made by the entry point and passed to the
 * parts that count; `METRICS=off` passes {@linkcode NO_METRICS}, whose methods do nothing, so
 * the hot path pays one empty call.
 *
 * Served in the text format by `metricsResponse` (the gateway's HTTP port) and `serveMetrics`
 * (the processor's `METRICS_PORT`). prom-client's default metrics work under Deno 2.9
 * (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `nodejs_heap_*`, and
 * `nodejs_eventloop_lag_*` from node:perf_hooks' `monitorEventLoopDelay`).
 */

import http from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** How a client reaches the gateway: native gRPC, or the browser API (gRPC-Web, Connect). */
export type Transport = "native" | "grpc_web";

/** What the hub reports of its slowest streams when scraped. */
export interface QueueDepths {
  /** Frames queued on the stream that is furthest behind. */
  deepest: number;
  /** Streams past half their queue limit. */
  crowded: number;
}

/** One timed store call: call with the outcome when it ends. */
export type StoreTimer = (ok: boolean) => void;

export interface Metrics {
  readonly enabled: boolean;
  streamOpened(transport: Transport): void;
  streamClosed(transport: Transport): void;
  /** Reads the open connections of `transport` at each scrape. */
  watchConnections(transport: Transport, open: () => number): void;
  sendAccepted(): void;
  /** `code` is the gRPC status name in lower case (`ChatError.code`), e.g. `resource_exhausted`. */
  sendRefused(code: string): void;
  /**
   * A message was written to `streams` streams; `acknowledgedAt` is its RFC 3339 timestamp, set
   * when its gateway acknowledged it. Called once per message, not per stream.
   */
  delivered(streams: number, acknowledgedAt: string): void;
  /** A stream was cut for falling behind. */
  streamCut(): void;
  /** Reads the hub's queue depths at each scrape. */
  watchQueues(depths: () => QueueDepths): void;
  /** One Kafka produce request to `topic` ended, after `seconds`; `ok` false counts an error. */
  produced(topic: string, seconds: number, ok: boolean): void;
  /** A consumer's lag behind the end of `topic`/`partition`, as of a batch's start or end. */
  consumerLag(group: string, topic: string, partition: number, lag: number): void;
  /**
   * `group`'s consumer here joined (again) and holds `assigned` (topic to partitions): the lag of
   * partitions it no longer holds stops being reported, so a partition that moved to another
   * member does not keep its last value here.
   */
  consumerAssigned(group: string, assigned: Readonly<Record<string, readonly number[]>>): void;
  /** Starts timing one store call of `operation`. */
  storeTimer(operation: string): StoreTimer;
  /** A processor declared a gateway dead. */
  gatewayDeclaredDead(): void;
  /** `outcome`: `signed_in`, `created`, or the refusal's code (`unauthenticated`, …). */
  signIn(outcome: string): void;
  /** The exposition in the text format, or undefined when metrics are off. */
  render(): Promise<string | undefined>;
}

/** The content type of the text format that `render` writes. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const SECONDS_FAST = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SECONDS_SLOW = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const TRANSPORTS: readonly Transport[] = ["native", "grpc_web"];
const NOT_COUNTERS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

const noop = () => {};
const noopTimer: StoreTimer = noop;

/** The metrics of a process with `METRICS=off`: nothing counted, nothing served. */
export const NO_METRICS: Metrics = {
  enabled: false,
  streamOpened: noop,
  streamClosed: noop,
  watchConnections: noop,
  sendAccepted: noop,
  sendRefused: noop,
  delivered: noop,
  streamCut: noop,
  watchQueues: noop,
  produced: noop,
  consumerLag: noop,
  consumerAssigned: noop,
  storeTimer: () => noopTimer,
  gatewayDeclaredDead: noop,
  signIn: noop,
  render: () => Promise.resolve(undefined),
};

/** The metrics `enabled` asks for: counted in a registry of their own, or {@linkcode NO_METRICS}. */
export function createMetrics(enabled: boolean): Metrics {
  return enabled ? new PrometheusMetrics() : NO_METRICS;
}

class PrometheusMetrics implements Metrics {
  readonly enabled = true;
  readonly registry = new Registry();
  readonly #connectionSources = new Map<Transport, () => number>();
  #queues: (() => QueueDepths) | undefined;

  readonly #streams = new Gauge({
    name: "chat_streams_open",
    help: "Chat streams (Subscribe calls) open on this gateway, by transport.",
    labelNames: ["transport"] as const,
    registers: [this.registry],
  });
  readonly #connections = new Gauge({
    name: "chat_connections_open",
    help:
      "Client connections open on this gateway, by transport (native: the gRPC port; grpc_web: the HTTP port).",
    labelNames: ["transport"] as const,
    registers: [this.registry],
    collect: () => {
      for (const [transport, open] of this.#connectionSources) {
        this.#connections.set({ transport }, open());
      }
    },
  });
  readonly #accepted = new Counter({
    name: "chat_messages_accepted_total",
    help: "Messages a client sent that the gateway accepted (appended to their room's log).",
    registers: [this.registry],
  });
  readonly #refused = new Counter({
    name: "chat_messages_refused_total",
    help: "Messages a client sent that the gateway refused, by gRPC status code name.",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  readonly #deliveries = new Counter({
    name: "chat_deliveries_total",
    help: "Messages written to streams on this gateway: one per message per stream.",
    registers: [this.registry],
  });
  readonly #deliveryLatency = new Histogram({
    name: "chat_delivery_latency_seconds",
    help:
      "Time from a message's timestamp (stamped when a gateway accepted it) to its write on this gateway's streams, once per message.",
    buckets: SECONDS_SLOW,
    registers: [this.registry],
  });
  readonly #cut = new Counter({
    name: "chat_streams_cut_total",
    help: "Streams cut because their client fell too far behind.",
    registers: [this.registry],
  });
  readonly #deepest = new Gauge({
    name: "chat_stream_queue_depth_max",
    help: "Frames queued on this gateway's slowest stream.",
    registers: [this.registry],
    collect: () => {
      const depths = this.#queues?.();
      this.#deepest.set(depths?.deepest ?? 0);
      this.#crowded.set(depths?.crowded ?? 0);
    },
  });
  readonly #crowded = new Gauge({
    name: "chat_streams_crowded",
    help: "Streams on this gateway past half their queue limit.",
    registers: [this.registry],
  });
  readonly #produceLatency = new Histogram({
    name: "chat_kafka_produce_duration_seconds",
    help: "Time of one Kafka produce request (a batch of records), by topic.",
    labelNames: ["topic"] as const,
    buckets: SECONDS_SLOW,
    registers: [this.registry],
  });
  readonly #produceErrors = new Counter({
    name: "chat_kafka_produce_errors_total",
    help: "Kafka produce requests that failed or timed out, by topic.",
    labelNames: ["topic"] as const,
    registers: [this.registry],
  });
  readonly #lag = new Gauge({
    name: "chat_kafka_consumer_lag",
    help:
      "Records a consumer has yet to handle on a partition, as of its latest batch's start and end (group: the consumer group, or 'private' for a gateway's own).",
    labelNames: ["group", "topic", "partition"] as const,
    registers: [this.registry],
  });
  /** The lag series each group has reported, to drop those of partitions it gave up. */
  readonly #lagSeries = new Map<string, Set<string>>();
  readonly #store = new Histogram({
    name: "chat_store_duration_seconds",
    help: "Time of one store call, by operation and outcome (ok, error).",
    labelNames: ["operation", "outcome"] as const,
    buckets: SECONDS_FAST,
    registers: [this.registry],
  });
  readonly #dead = new Counter({
    name: "chat_gateway_dead_verdicts_total",
    help: "Gateways this processor declared dead because their heartbeats stopped.",
    registers: [this.registry],
  });
  readonly #signIns = new Counter({
    name: "chat_sign_ins_total",
    help:
      "Sign-in attempts by outcome: signed_in, created, or the refusal's gRPC status code name.",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Gauges whose "_total" suffix Prometheus reserves for counters (`promtool check metrics`
    // refuses them); their unsuffixed twins (`nodejs_active_handles`, …) stay.
    for (const name of NOT_COUNTERS) this.registry.removeSingleMetric(name);
    // Both transports are listed from the start, so that a rate over them is never missing.
    for (const transport of TRANSPORTS) this.#streams.set({ transport }, 0);
  }

  streamOpened(transport: Transport): void {
    this.#streams.inc({ transport });
  }

  streamClosed(transport: Transport): void {
    this.#streams.dec({ transport });
  }

  watchConnections(transport: Transport, open: () => number): void {
    this.#connectionSources.set(transport, open);
  }

  sendAccepted(): void {
    this.#accepted.inc();
  }

  sendRefused(code: string): void {
    this.#refused.inc({ code });
  }

  delivered(streams: number, acknowledgedAt: string): void {
    if (streams === 0) return;
    this.#deliveries.inc(streams);
    const age = Date.now() - Date.parse(acknowledgedAt);
    // A client's own timestamp may be ahead of this clock by up to MAX_CLOCK_SKEW_MS.
    if (!Number.isNaN(age)) this.#deliveryLatency.observe(Math.max(0, age) / 1000);
  }

  streamCut(): void {
    this.#cut.inc();
  }

  watchQueues(depths: () => QueueDepths): void {
    this.#queues = depths;
  }

  produced(topic: string, seconds: number, ok: boolean): void {
    this.#produceLatency.observe({ topic }, seconds);
    if (!ok) this.#produceErrors.inc({ topic });
  }

  consumerLag(group: string, topic: string, partition: number, lag: number): void {
    this.#lag.set({ group, topic, partition }, lag);
    const held = this.#lagSeries.get(group) ?? new Set<string>();
    held.add(`${topic}\u0000${partition}`);
    this.#lagSeries.set(group, held);
  }

  consumerAssigned(group: string, assigned: Readonly<Record<string, readonly number[]>>): void {
    const held = this.#lagSeries.get(group);
    if (!held) return;
    for (const key of held) {
      const [topic = "", partition = ""] = key.split("\u0000");
      if (assigned[topic]?.includes(Number(partition))) continue;
      this.#lag.remove({ group, topic, partition });
      held.delete(key);
    }
  }

  storeTimer(operation: string): StoreTimer {
    const started = performance.now();
    return (ok) =>
      this.#store.observe(
        { operation, outcome: ok ? "ok" : "error" },
        (performance.now() - started) / 1000,
      );
  }

  gatewayDeclaredDead(): void {
    this.#dead.inc();
  }

  signIn(outcome: string): void {
    this.#signIns.inc({ outcome });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/** The answer to `GET /metrics` (404 when metrics are off), or undefined for another request. */
export async function metricsResponse(
  metrics: Metrics,
  request: Request,
): Promise<Response | undefined> {
  if (new URL(request.url).pathname !== "/metrics") return undefined;
  const body = request.method === "GET" || request.method === "HEAD"
    ? await metrics.render()
    : undefined;
  if (body === undefined) {
    return new Response(
      metrics.enabled
        ? "Cannot serve /metrics: only GET and HEAD are answered\n"
        : "Not found: metrics are off (METRICS=off)\n",
      { status: metrics.enabled ? 405 : 404 },
    );
  }
  return new Response(request.method === "HEAD" ? null : body, {
    headers: { "content-type": METRICS_CONTENT_TYPE },
  });
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` and nothing else on `hostname`:`port` (the processor, which has no HTTP
 * port of its own).
 */
export function serveMetrics(
  metrics: Metrics,
  hostname: string,
  port: number,
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(path === "/metrics" ? 405 : 404, { "content-type": "text/plain" });
      res.end(path === "/metrics" ? "Only GET and HEAD are answered\n" : "Not found\n");
      return;
    }
    metrics.render().then((body) => {
      res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE });
      res.end(req.method === "HEAD" ? undefined : body);
    }, (err) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`Cannot render metrics: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
  // Scrapes are short: an idle connection is not kept for long.
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once(
      "error",
      (err) => reject(new Error(`Cannot serve metrics on ${hostname}:${port}: ${err.message}`)),
    );
    server.listen(port, hostname, () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : port,
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
