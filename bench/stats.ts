/**
 * What the benchmark measures with, shared by the parent and the client processes:
 * HdrHistograms of latencies (recorded in microseconds, reported in milliseconds), the lost and
 * duplicated deliveries of a run, memory and CPU of other processes read from /proc, the
 * machine's load, and a fixed-width table.
 */

import { setTimeout as sleep } from "node:timers/promises";
import * as hdr from "hdr-histogram-js";

export type Histogram = hdr.Histogram;

/** Highest latency a histogram tracks: one hour in microseconds; longer ones count as one hour. */
const HIGHEST_US = 3_600_000_000;

/** An empty latency histogram: microseconds, 3 significant digits (pure JS, no WebAssembly). */
export function histogram(): Histogram {
  return hdr.build({
    useWebAssembly: false,
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
  });
}

/** Records a latency given in milliseconds (clamped to 0 .. one hour). */
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.min(HIGHEST_US, Math.max(0, Math.round(ms * 1000))));
}

/** A histogram as text, to pass between processes. */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** The sum of encoded histograms (from several client processes). */
export function mergeHistograms(encoded: readonly string[]): Histogram {
  const total = histogram();
  for (const text of encoded) {
    const h = hdr.decodeFromCompressedBase64(text, 32, false);
    total.add(h);
    h.destroy();
  }
  return total;
}

/** Latency percentiles in milliseconds (NaN when nothing was recorded: `null` in JSON). */
export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

const ms3 = (us: number) => Math.round(us) / 1000;

export function percentiles(h: Histogram): Percentiles {
  const count = h.totalCount;
  const at = (p: number) => count ? ms3(h.getValueAtPercentile(p)) : NaN;
  return {
    count,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: count ? ms3(h.maxValue) : NaN,
  };
}

/**
 * Which measured messages each stream received, to count lost and duplicated deliveries:
 * `messages` per stream are expected (indices 0 .. messages - 1).
 */
export class Tally {
  readonly #seen: Uint8Array;
  /** Deliveries of an index no sender sent (outside 0 .. messages - 1). */
  unexpected = 0;

  constructor(readonly streams: number, readonly messages: number) {
    this.#seen = new Uint8Array(streams * messages);
  }

  /** Counts one delivery of message `index` to `stream`; true when it is the first. */
  record(stream: number, index: number): boolean {
    if (!(index >= 0 && index < this.messages && stream >= 0 && stream < this.streams)) {
      this.unexpected++;
      return false;
    }
    const at = stream * this.messages + index;
    const n = this.#seen[at]!;
    if (n < 255) this.#seen[at] = n + 1;
    return n === 0;
  }

  /** Distinct messages `stream` received. */
  received(stream: number): number {
    let n = 0;
    const base = stream * this.messages;
    for (let i = 0; i < this.messages; i++) if (this.#seen[base + i]) n++;
    return n;
  }

  /** Expected deliveries not received, over the streams `counted` selects. */
  lost(counted: (stream: number) => boolean = () => true): number {
    let n = 0;
    for (let s = 0; s < this.streams; s++) {
      if (counted(s)) n += this.messages - this.received(s);
    }
    return n;
  }

  /** Deliveries beyond the first of a message to a stream (saturates at 254 per pair). */
  duplicated(): number {
    let n = 0;
    for (const c of this.#seen) if (c > 1) n += c - 1;
    return n;
  }
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Kernel clock ticks per second (`getconf CLK_TCK`; 100 on Linux). */
const CLOCK_TICKS = 100;

/** A process's resident memory and CPU time so far, from /proc; undefined when it is gone. */
export function procSample(pid: number): { rssKiB: number; cpuMs: number } | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    // Fields after the command name "(...)": state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (!rss || !Number.isFinite(ticks)) return undefined;
    return { rssKiB: Number(rss[1]), cpuMs: (ticks * 1000) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

export interface ProcessUsage {
  /** Highest resident memory seen while watched, MiB. */
  rssMiB: number;
  /** CPU time / wall time while watched (1 = one core busy). */
  cores: number;
}

/** Samples named processes once a second until `stop()`: peak RSS and average CPU. */
export function watchProcesses(pids: Record<string, number>): {
  stop(): Record<string, ProcessUsage>;
} {
  const start = nowMs();
  const first = new Map<string, number>();
  const peak = new Map<string, number>();
  const sample = () => {
    for (const [name, pid] of Object.entries(pids)) {
      const s = procSample(pid);
      if (!s) continue;
      if (!first.has(name)) first.set(name, s.cpuMs);
      peak.set(name, Math.max(peak.get(name) ?? 0, s.rssKiB));
    }
  };
  sample();
  const timer = setInterval(sample, 1000);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const wall = nowMs() - start;
      const out: Record<string, ProcessUsage> = {};
      for (const [name, pid] of Object.entries(pids)) {
        const end = procSample(pid);
        out[name] = {
          rssMiB: round((peak.get(name) ?? NaN) / 1024, 1),
          cores: round(end ? (end.cpuMs - (first.get(name) ?? end.cpuMs)) / wall : NaN, 2),
        };
      }
      return out;
    },
  };
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** `/proc/loadavg`'s 1, 5 and 15 minute averages, as printed there ("?" where unreadable). */
export function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

/** Formats a number with `digits` decimals, or "-" when it is not finite. */
export function num(value: number | null | undefined, digits = 0): string {
  return typeof value === "number" && Number.isFinite(value)
    ? value.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    })
    : "-";
}

/** A fixed-width text table: the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) =>
    r.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)).join("  ");
  return [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)]
    .join("\n");
}

/** Sleeps `ms`. */
/** Polls `predicate` every `everyMs` until true; false after `timeoutMs`. */
export async function until(
  predicate: () => boolean,
  timeoutMs: number,
  everyMs = 20,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}
