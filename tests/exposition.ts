/**
 * Reading a Prometheus text exposition in tests: its samples by name and labels, and Prometheus's
 * own check of it (`promtool check metrics`, installed by scripts/system_deps.ts; a missing
 * promtool fails the test, it is never skipped).
 */

import { goProgram } from "../scripts/system_deps.ts";

/** One sample line: `name{label="value",...} number`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`Cannot read the exposition: "${line}" is not a sample line`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of the samples of `name` whose labels include `labels` (0 when there is none). */
export function total(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Fetches `url` (a `/metrics`), checks its content type, and returns its text and samples. */
export async function scrape(url: string): Promise<{ text: string; samples: Sample[] }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`Cannot scrape ${url}: status ${response.status}: ${text}`);
  }
  const type = response.headers.get("content-type") ?? "";
  if (!type.startsWith("text/plain; version=0.0.4")) {
    throw new Error(`Cannot scrape ${url}: the content type is "${type}", not the text format`);
  }
  return { text, samples: parseExposition(text) };
}

/** Runs `promtool check metrics` on `text`; throws its findings when it finds a problem. */
export async function promtoolCheckMetrics(text: string): Promise<void> {
  const path = goProgram("promtool");
  if (!path) {
    throw new Error(
      "Cannot check the exposition: promtool is missing; install it with: deno run -A scripts/system_deps.ts",
    );
  }
  const child = new Deno.Command(path, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  if (code !== 0) throw new Error(`promtool check metrics exited with ${code}:\n${output}`);
}
