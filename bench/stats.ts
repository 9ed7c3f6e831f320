/**
 * Small helpers the benchmarks share: percentiles over latency samples, the machine's load
 * average (printed with every result, since the 2-core box is often busy with other work),
 * memory snapshots after a full garbage collection, and a fixed-width table.
 */

/** The `q` quantile (0..1) of `sorted` (ascending), nearest rank; NaN when empty. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export interface LatencySummary {
  samples: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Sorts `samples` in place and summarises them (milliseconds). */
export function summarise(samples: Float64Array): LatencySummary {
  samples.sort();
  return {
    samples: samples.length,
    p50: quantile(samples, 0.5),
    p95: quantile(samples, 0.95),
    p99: quantile(samples, 0.99),
    max: samples.length ? samples[samples.length - 1]! : NaN,
  };
}

/** `/proc/loadavg`'s 1, 5 and 15 minute averages, as printed there ("?" where unreadable). */
export function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

/** The CPU pressure stall share over the last 10 s (`/proc/pressure/cpu` "some avg10", %). */
export function cpuPressure(): string {
  try {
    return /some avg10=([\d.]+)/.exec(Deno.readTextFileSync("/proc/pressure/cpu"))?.[1] ?? "?";
  } catch {
    return "?";
  }
}

/** Load average and CPU pressure in one short string, for tables: "1.95/25%". */
export function loadNow(): string {
  return `${loadAverage().split(" ")[0]}/${cpuPressure()}%`;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Whether `--v8-flags=--expose-gc` is on, so memory snapshots are taken after a full GC. */
export const canCollect: boolean = typeof gc === "function";

export interface MemorySnapshot {
  rss: number;
  heapUsed: number;
  external: number;
}

/** This process's memory after (when possible) two full collections and a short settle. */
export async function memorySnapshot(): Promise<MemorySnapshot> {
  for (let i = 0; i < 2; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = Deno.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

/** Formats a number with `digits` decimals, or "-" when it is not finite. */
export function num(value: number, digits = 0): string {
  return Number.isFinite(value)
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

/** One checked target: printed as a PASS or FAIL line. */
export interface Verdict {
  pass: boolean;
  line: string;
}

export function verdict(pass: boolean, what: string, measured: string, target: string): Verdict {
  return { pass, line: `${pass ? "PASS" : "FAIL"}  ${what}: ${measured} (target ${target})` };
}

/** Sleeps `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

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
