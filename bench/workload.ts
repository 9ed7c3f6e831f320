/**
 * The load of one benchmark run, driven from the benchmark's own process: S streams spread over
 * the system's gateways in subscriber processes and one publisher process (bench/clients.ts),
 * warmed until every stream is reached, then measured phase by phase (open loop at a rate, or a
 * closed loop with a window of sends in flight). bench/scenarios.ts composes scenarios of these.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { ClientProcess } from "./clients.ts";
import { type DeliveryStats, newRun, type PublishStats } from "./load.ts";
import {
  mergeHistograms,
  nowMs,
  num,
  type Percentiles,
  percentiles,
  round,
  watchProcesses,
} from "./stats.ts";
import type { SystemUnderTest } from "./system.ts";

/** Progress lines of a scenario. */
export type Say = (line: string) => void;

/** The longest wait for a backlog to drain after the last send. */
const DRAIN_CAP_MS = 180_000;

export interface PhaseSpec {
  label: string;
  messages: number;
  bytes: number;
  /** Open loop at this many messages per second, or closed loop with `window` in flight. */
  rate?: number;
  window?: number;
  /** After the last send, how long without any delivery ends the wait for the rest. */
  drainMs: number;
}

export interface PhaseResult {
  deliveriesPerSecond: number;
  e2e: Percentiles;
  rpc: Percentiles;
  delivered: number;
  lost: number;
  duplicated: number;
  publish: PublishStats;
  ends: DeliveryStats["ends"];
  usage: ReturnType<ReturnType<typeof watchProcesses>["stop"]>;
  /** CPU of the load's own processes (subscribers and publisher), cores. */
  loadCores: number;
  /** Wall time from the first due send to the last delivery (s). */
  seconds: number;
}

/** S streams over the system's gateways in client processes, and a publisher process. */
export class Load {
  readonly #subs: ClientProcess[] = [];
  readonly #publisher = new ClientProcess("publisher");

  private constructor(readonly system: SystemUnderTest, readonly streams: number) {}

  static async open(
    system: SystemUnderTest,
    streams: number,
    perProcess: number,
    userPrefix = "bench-",
  ): Promise<Load> {
    const load = new Load(system, streams);
    try {
      for (let first = 0; first < streams; first += perProcess) {
        const p = new ClientProcess(`subscribers-${load.#subs.length + 1}`);
        load.#subs.push(p);
        await p.subscribe({
          addresses: system.addresses,
          streams: Math.min(perProcess, streams - first),
          first,
          userPrefix,
        });
      }
    } catch (err) {
      await load.close();
      throw err;
    }
    return load;
  }

  /** Adds a process with `count` streams that never read (slow readers). */
  async addPaused(count: number, userPrefix: string): Promise<ClientProcess> {
    const p = new ClientProcess("paused");
    this.#subs.push(p);
    await p.subscribe({
      addresses: this.system.addresses,
      streams: count,
      first: 0,
      userPrefix,
      paused: Array.from({ length: count }, (_, i) => i),
    });
    return p;
  }

  get #reading(): ClientProcess[] {
    return this.#subs.filter((p) => p.name !== "paused");
  }

  opened(): number {
    return this.#subs.reduce((n, p) => n + p.tick.opened, 0);
  }

  /** Streams that ended, and how the first one did. */
  ended(): { count: number; first: string } {
    return {
      count: this.#subs.reduce((n, p) => n + p.tick.ended, 0),
      first: this.#subs.find((p) => p.tick.ended)?.tick.firstEnd ?? "",
    };
  }

  /**
   * Sends a warm-up message every 500 ms until every reading stream got one: proof that the
   * gateways hold every stream and (in Kafka mode) that the consumers have their partitions.
   * Returns how many streams got one.
   */
  async reachAll(timeoutMs: number, say: Say): Promise<number> {
    const run = newRun();
    await Promise.all(this.#subs.map((p) => p.phase(run, 0)));
    const deadline = performance.now() + timeoutMs;
    const warmed = () => this.#reading.reduce((n, p) => n + p.tick.warmed, 0);
    let n = 0;
    let best = 0;
    let progressAt = performance.now();
    while (warmed() < this.streams && performance.now() < deadline) {
      if (warmed() > best) [best, progressAt] = [warmed(), performance.now()];
      if (best > 0 && performance.now() - progressAt > 30_000) break;
      await this.#publisher.publish({
        address: this.system.addresses[0]!,
        userId: "bench-publisher",
        run,
        messages: 1,
        bytes: 0,
        window: 1,
        warm: true,
        timeoutMs: 10_000,
      });
      say(`warm-up message ${++n}: ${num(warmed())} of ${num(this.streams)} streams reached`);
      await sleep(500);
      if (n % 2 === 0) await sleep(600); // the counters come once a second
    }
    return warmed();
  }

  async phase(spec: PhaseSpec, say: Say): Promise<PhaseResult> {
    const run = newRun();
    await Promise.all(this.#subs.map((p) => p.phase(run, spec.messages)));
    const watch = watchProcesses(this.system.pids);
    const clients = watchProcesses(
      Object.fromEntries([...this.#subs, this.#publisher].map((p) => [p.name, p.pid])),
    );
    const started = nowMs();
    const expected = spec.messages * this.streams;
    const timer = setInterval(() => {
      const delivered = this.#reading.reduce((n, p) => n + p.tick.delivered, 0);
      const t = this.#publisher.tick;
      const s = (nowMs() - started) / 1000;
      say(
        `${spec.label}: ${num(s)} s, sent ${num(t.sent)}/${num(spec.messages)}, acked ${
          num(t.acked)
        }, delivered ${num(delivered)}/${num(expected)} (${num(delivered / s)}/s)`,
      );
    }, 1000);
    try {
      const publish = await this.#publisher.publish({
        address: this.system.addresses[0]!,
        userId: "bench-publisher",
        run,
        messages: spec.messages,
        bytes: spec.bytes,
        rate: spec.rate,
        window: spec.window,
        timeoutMs: (spec.rate ? (spec.messages / spec.rate) * 1000 : 0) + 300_000,
      });
      const stats = await Promise.all(
        this.#reading.map((p) => p.complete(spec.drainMs, DRAIN_CAP_MS)),
      );
      const usage = watch.stop();
      const load = clients.stop();
      const e2e = mergeHistograms(stats.map((s) => s.latency));
      const rpc = mergeHistograms([publish.rpc]);
      const lastAt = Math.max(...stats.map((s) => s.lastAt).filter(Number.isFinite));
      const delivered = stats.reduce((n, s) => n + s.delivered, 0);
      const duplicated = stats.reduce((n, s) => n + s.duplicated + s.unexpected, 0);
      const seconds = (lastAt - publish.startAt) / 1000;
      const result: PhaseResult = {
        deliveriesPerSecond: round((delivered - duplicated) / seconds, 0),
        e2e: percentiles(e2e),
        rpc: percentiles(rpc),
        delivered,
        lost: stats.reduce((n, s) => n + s.lost, 0),
        duplicated,
        publish,
        ends: stats.flatMap((s) => s.ends),
        usage,
        loadCores: round(Object.values(load).reduce((n, u) => n + (u.cores || 0), 0), 2),
        seconds,
      };
      e2e.destroy();
      rpc.destroy();
      return result;
    } finally {
      clearInterval(timer);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#subs, this.#publisher].map((p) => p.close()));
  }
}
