// deno-lint-ignore-file no-console
/**
 * Fan-out in embedded mode over real gRPC: a processor and 1 or 2 gateways on the memory bus in
 * THIS process (tests/helpers.ts `startSystem`, ports 0), subscriber streams and one sender in two
 * separate client processes (bench/clients.ts), so this process's CPU and memory are the
 * gateways' alone.
 *
 * Measures, for N streams in room `general` (one user per stream, each on its own channel and
 * TCP connection unless `channels` says otherwise; streams spread round-robin over the gateways)
 * and M messages sent as fast as acks allow with W sends in flight:
 * - send throughput: acknowledged sends per second (first send → last ack);
 * - deliveries per second: messages × streams received / (first send → last delivery);
 * - end-to-end latency p50/p95/p99/max: receive time − send time carried in the content;
 * - memory per idle stream: this process's RSS and V8 heap growth after opening N idle streams
 *   (each after two full GCs when run with `--v8-flags=--expose-gc`), divided by N;
 * - CPU: this (server) process's and the subscriber process's CPU time over the run.
 */

import process from "node:process";
import { startSystem, type System } from "../tests/helpers.ts";
import { ClientProcess } from "./clients.ts";
import type { DeliveryStats, SendStats } from "./load.ts";
import {
  type LatencySummary,
  loadAverage,
  loadNow,
  memorySnapshot,
  nowMs,
  summarise,
  until,
} from "./stats.ts";

export interface FanoutOptions {
  streams: number;
  gateways: number;
  messages: number;
  window: number;
  /** Channels (TCP connections) for the subscriber streams; default one per stream. */
  channels?: number;
  /** Warm-up messages before measuring (JIT, connections). */
  warmup: number;
  /** Messages per second for a paced run; unset: as fast as acks allow. */
  rate?: number;
  /** Upper bound for the measured phase. */
  timeoutMs: number;
  /** Shown in the table but not checked against the targets. */
  informational?: boolean;
  /** Progress lines (to stderr in the CLI). */
  progress?: (line: string) => void;
}

export interface FanoutResult {
  options: FanoutOptions;
  loadBefore: string;
  loadAfter: string;
  send: SendStats;
  delivery: DeliveryStats;
  /** Whether every stream received every message in time. */
  complete: boolean;
  sendPerSecond: number;
  deliveriesPerSecond: number;
  expectedDeliveries: number;
  rssPerStream: number;
  heapPerStream: number;
  /** Server process CPU time / wall time over the measured phase (1.0 = one core). */
  serverCores: number;
  /** Server process CPU time per delivery, in microseconds: robust against other load. */
  serverUsPerDelivery: number;
  /** Subscriber process CPU time / wall time over the measured phase. */
  clientCores: number;
  /** Streams cut or ended during the run. */
  cut: number;
  /**
   * Send time → the gateway's `hub.deliver()` (measured in this process): the part of the latency
   * spent before fan-out (sender, gRPC call, bus, processor). The rest is fan-out and the client.
   */
  toHub: LatencySummary;
  /** Duration of one `hub.deliver()` call: the event loop is blocked that long per message. */
  deliverMs: LatencySummary;
  /** How late a 10 ms timer fired in this (gateway) process during the run: event-loop stalls. */
  loopLag: LatencySummary;
  /** Messages per second actually offered (paced runs) or undefined. */
  rate?: number;
}

/** This process's CPU time (user + system) in ms. */
export const serverCpuMs = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/** A system tuned for benchmarking: production timers, rate limits out of the way. */
export function benchSystem(
  gateways: number,
  extra: Record<string, unknown> = {},
): Promise<System> {
  return startSystem({
    gateways,
    config: {
      rateLimitPerSecond: 1_000_000,
      rateLimitBurst: 1_000_000,
      heartbeatIntervalMs: 3000,
      heartbeatTimeoutMs: 10_000,
      shutdownTimeoutMs: 5000,
      ...extra,
    },
  });
}

/**
 * Wraps each gateway's `hub.deliver` (on the instance, the code is untouched) to record how long
 * after its send time each measured message reached each gateway's hub, and how long one
 * `deliver()` call (the synchronous fan-out of one message to all streams) took.
 */
function watchHubs(
  system: System,
  messages: number,
): { toHub(): LatencySummary; deliverMs(): LatencySummary } {
  const toHub = new Float64Array(messages * system.gateways.length);
  const took = new Float64Array(messages * system.gateways.length);
  let n = 0;
  for (const gateway of system.gateways) {
    const hub = gateway.hub;
    const deliver = hub.deliver.bind(hub);
    hub.deliver = (message) => {
      const m = /^b:\d+:([\d.]+)$/.exec(message.content);
      if (!m || n >= toHub.length) return deliver(message);
      const start = performance.now();
      toHub[n] = nowMs() - Number(m[1]);
      const count = deliver(message);
      took[n++] = performance.now() - start;
      return count;
    };
  }
  return {
    toHub: () => summarise(toHub.subarray(0, n)),
    deliverMs: () => summarise(took.subarray(0, n)),
  };
}

/** Samples event-loop lag: how late a 10 ms interval fires, until `stop()`. */
export function watchLoop(): { stop(): LatencySummary } {
  const samples: number[] = [];
  let last = performance.now();
  const id = setInterval(() => {
    const now = performance.now();
    if (samples.length < 1_000_000) samples.push(Math.max(0, now - last - 10));
    last = now;
  }, 10);
  return {
    stop() {
      clearInterval(id);
      return summarise(Float64Array.from(samples));
    },
  };
}

export async function runFanout(options: FanoutOptions): Promise<FanoutResult> {
  const { streams, gateways, messages, window } = options;
  const say = options.progress ?? (() => {});
  const system = await benchSystem(gateways);
  const subscribers = new ClientProcess("subscribers");
  const sender = new ClientProcess("sender");
  try {
    const addresses = system.gateways.map((_, i) => system.address(i));
    const hubSize = () => system.gateways.reduce((n, g) => n + g.hub.size, 0);

    // Memory per idle stream: before and after opening N streams that receive nothing.
    say(`opening ${streams} streams`);
    const before = await memorySnapshot();
    await subscribers.subscribe({
      addresses,
      streams,
      channels: options.channels,
      userPrefix: "sub-",
      expected: messages,
    });
    if (!await until(() => hubSize() === streams, 60_000)) {
      throw new Error(`Only ${hubSize()} of ${streams} streams opened within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 300)); // connection events and presence settle
    const after = await memorySnapshot();

    say("warming up");
    // Warm-up: the JIT, every channel, and proof that every stream receives.
    if (options.warmup > 0) {
      await sender.send({
        address: addresses[0]!,
        userId: "sender",
        messages: options.warmup,
        window,
        kind: "w",
        timeoutMs: 30_000,
      });
      if (!await subscribers.waitWarm(options.warmup, 30_000)) {
        throw new Error("Warm-up messages did not reach every stream within 30 s");
      }
    }

    await subscribers.reset();
    say(`sending ${messages} messages`);
    const hubs = watchHubs(system, messages);
    const lag = watchLoop();
    const loadBefore = loadNow();
    const cpu0 = serverCpuMs();
    const t0 = nowMs();
    const [send, delivered] = await Promise.all([
      sender.send({
        address: addresses[0]!,
        userId: "sender",
        messages,
        window,
        kind: "b",
        rate: options.rate,
        timeoutMs: options.timeoutMs,
      }),
      subscribers.wait(messages, options.timeoutMs),
    ]);
    const serverCpu = serverCpuMs() - cpu0;
    const serverCores = serverCpu / (nowMs() - t0);
    const delivery = delivered.stats;
    const span = delivery.lastAt - send.firstAt;
    const expectedDeliveries = messages * streams;
    return {
      options,
      loadBefore,
      loadAfter: loadNow(),
      send,
      delivery,
      complete: delivered.ok && delivery.delivered === expectedDeliveries,
      sendPerSecond: send.acked / ((send.lastAckAt - send.firstAt) / 1000),
      deliveriesPerSecond: delivery.delivered / (span / 1000),
      expectedDeliveries,
      rssPerStream: (after.rss - before.rss) / streams,
      heapPerStream: (after.heapUsed - before.heapUsed) / streams,
      serverCores,
      serverUsPerDelivery: (serverCpu * 1000) / delivered.stats.delivered,
      clientCores: delivery.cpuMs / (nowMs() - t0),
      cut: delivery.ends.length,
      toHub: hubs.toHub(),
      deliverMs: hubs.deliverMs(),
      loopLag: lag.stop(),
      rate: options.rate,
    };
  } finally {
    say("closing clients");
    await Promise.all([subscribers.close(), sender.close()]);
    say("stopping the system");
    await system.stop();
    say("stopped");
  }
}

/**
 * Runs one fan-out in a fresh process (`deno run -A --v8-flags=--expose-gc bench/fanout.ts
 * '<options as JSON>'`), so that memory per stream is not blurred by an earlier run's heap and
 * every run starts alike. Progress goes to stderr; the result is the last stdout line.
 */
export async function runFanoutIsolated(
  options: Omit<FanoutOptions, "progress">,
): Promise<FanoutResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      JSON.stringify(options),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, options.timeoutMs + 180_000);
  const out = await child.output();
  clearTimeout(timer);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  const last = lines.at(-1) ?? "";
  if (!out.success || !last.startsWith("{")) {
    throw new Error(
      `The fan-out process failed (exit ${out.code}): ${lines.slice(-5).join(" | ")}`,
    );
  }
  return JSON.parse(last) as FanoutResult;
}

if (import.meta.main) {
  const options = JSON.parse(Deno.args[0]!) as FanoutOptions;
  const result = await runFanout({
    ...options,
    progress: (line) =>
      console.error(
        `  … ${new Date().toISOString().slice(11, 19)} ${line} (load ${loadAverage()})`,
      ),
  });
  console.log(JSON.stringify(result));
  Deno.exit(0);
}
