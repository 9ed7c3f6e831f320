// deno-lint-ignore-file no-console
/**
 * `deno task test [args]`: runs the test suite, with everything it needs, in one command.
 *
 * 1. Checks the system programs the tests need and installs what is missing, or stops with one
 *    message saying what to install (scripts/system_deps.ts).
 * 2. Runs `deno task build` if deno.json has a `build` task.
 * 3. For a whole folder (no arguments, or `--dir=tests/faults`), which needs Kafka and
 *    PostgreSQL anyway: unless KAFKA_BROKERS is set, starts the three brokers of kafka/cluster.ts
 *    and sets KAFKA_BROKERS=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 for the tests; at the
 *    same time, unless DATABASE_URL is set, starts the test PostgreSQL of scripts/postgres.ts and
 *    sets DATABASE_URL. So all files share one cluster. With file arguments nothing starts up
 *    front: a test file that needs Kafka or PostgreSQL starts it through tests/fixtures.ts, as
 *    under a plain `deno test -A`, and `deno task test tests/config_test.ts` starts nothing.
 * 4. Runs `deno test -A tests/<file>` for each test file in its own process (or
 *    `deno test -A <args>` once when arguments are given), streaming the output.
 *    `--dir=tests/faults` runs the files of that folder instead (`deno task test:faults`).
 *    After each process it waits for the wardens of its fixtures (scripts/lease_warden.ts) to
 *    give back what they held, so the run ends with the services it caused stopped.
 * 5. Stops the cluster (and PostgreSQL) it started and deletes their data, also when tests fail
 *    or on Ctrl-C; when tests failed, the broker logs are kept in .tmp/kafka-logs. Both are
 *    shared through leases: a second `deno task test` (or a `deno test` with the fixtures) in the
 *    same checkout uses the running ones, and the last user to finish stops them. A cluster
 *    started by hand (`deno task kafka:up`) stays up.
 * 6. Prints `tests: N passed, M failed` as the last line, after a `FAILED TEST:` line for each
 *    failed test (name, place, first line of its error). Exits non-zero when a test failed, a
 *    test was ignored (a skipped test must fail CI), no test ran, or deno test failed. A file
 *    whose Deno runtime aborted (exit 134 or 139) counts as a failed test and is named in an
 *    `ABORTED: <file>: ...` line just before the closing line; no file is ever run twice.
 */

import { fileURLToPath } from "node:url";
import { clusterUp, releaseCluster } from "../kafka/cluster.ts";
import { BROKERS } from "../kafka/layout.ts";
import { waitForWardens } from "./lease_warden.ts";
import { postgresUp, releasePostgres } from "./postgres.ts";
import { ensureSystemDeps } from "./system_deps.ts";
import {
  addUp,
  closingLine,
  type FileResult,
  judgeFile,
  parseTestSummary,
  testRunProblems,
  type TestSummary,
} from "./test_summary.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/+$/, "");
/** How much of deno test's output is kept to find the summary line. */
const KEEP_OUTPUT = 64 * 1024;

let interrupted: Deno.Signal | undefined;
let interruptedAt = 0;
let child: Deno.ChildProcess | undefined;

function onSignal(signal: Deno.Signal): void {
  // One Ctrl-C can arrive twice: from the terminal and forwarded by `deno task`.
  if (interrupted !== undefined && performance.now() - interruptedAt < 1_000) return;
  if (interrupted !== undefined) {
    console.error(`\n${signal} again: exiting now; stop Kafka with: deno task kafka:down`);
    Deno.exit(130);
  }
  interrupted = signal;
  interruptedAt = performance.now();
  console.error(`\n${signal}: stopping the tests, then Kafka (${signal} again: exit at once)`);
  try {
    child?.kill(signal);
  } catch { /* already exited */ }
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

async function writeAll(bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
}

async function hasBuildTask(): Promise<boolean> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  return typeof config?.tasks?.build === "string" || typeof config?.tasks?.build === "object";
}

async function run(args: string[]): Promise<number> {
  child = new Deno.Command(Deno.execPath(), { args, cwd: ROOT, stdin: "null" }).spawn();
  const { code } = await child.status;
  child = undefined;
  return code;
}

/** Runs deno test once, copying its output through; returns its exit code and the output's tail. */
async function runTests(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...(args.length > 0 ? args : ["tests/"])],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  for await (const chunk of child.stdout) {
    await writeAll(chunk);
    output = (output + decoder.decode(chunk, { stream: true })).slice(-KEEP_OUTPUT);
  }
  const { code } = await child.status;
  const pid = child.pid;
  child = undefined;
  await waitForWardens(pid);
  return { code, output: output + decoder.decode() };
}

/** The run: every file's counts added up, the lines explaining failures, the worst exit code. */
interface RunResult {
  code: number;
  summary: TestSummary;
  lines: string[];
}

/**
 * Runs each test file in its own `deno test` process (or the given arguments as one run), and
 * adds up their summaries. A file whose Deno runtime aborted (exit 134 or 139) fails the run and
 * is named in an `ABORTED:` line; nothing is ever run twice.
 */
async function runTestFiles(args: string[], env: Record<string, string>): Promise<RunResult> {
  const dir = args[0]?.startsWith("--dir=") ? args.shift()!.slice("--dir=".length) : "tests";
  const runs = args.length > 0 ? [args] : testFiles(dir).map((file) => [file]);
  const results: FileResult[] = [];
  let code = 0;
  for (const run of runs) {
    if (interrupted) break;
    const { code: exitCode, output } = await runTests(run, env);
    const result = judgeFile(run.join(" "), parseTestSummary(output), exitCode, output);
    // A process that died mid-line (an abort) leaves the cursor after its last words.
    if (result.lines.length > 0 && output !== "" && !output.endsWith("\n")) console.log();
    for (const line of result.lines) console.log(line);
    if (exitCode !== 0 && code === 0) code = exitCode;
    results.push(result);
  }
  return { code, summary: addUp(results), lines: results.flatMap((r) => r.lines) };
}

/** The `*_test.ts` files of `dir`, sorted. */
function testFiles(dir: string): string[] {
  return [...Deno.readDirSync(`${ROOT}/${dir}`)]
    .filter((e) => e.isFile && e.name.endsWith("_test.ts"))
    .map((e) => `${dir}/${e.name}`)
    .sort();
}

async function main(args: string[]): Promise<number> {
  const started = performance.now();
  let result: RunResult | undefined;
  const problems: string[] = [];
  let leased = false;
  let leasedPostgres = false;

  try {
    // Before anything starts: a missing program should stop the run at once, in one message.
    await ensureSystemDeps(args.some((a) => a.includes("faults")) ? "faults" : "suite");
    if (interrupted) throw new Error(`Interrupted by ${interrupted}`);
    if (await hasBuildTask()) {
      const buildStart = performance.now();
      console.log("deno task build");
      const code = await run(["task", "build"]);
      if (code !== 0) throw new Error(`Cannot run the tests: deno task build exited with ${code}`);
      console.log(`Built in ${seconds(buildStart)}`);
    }
    if (interrupted) throw new Error(`Interrupted by ${interrupted}`);

    const env: Record<string, string> = {};
    // A whole folder needs both services: start them once for all its files. Single files start
    // what they need themselves, through tests/fixtures.ts.
    const wholeFolder = args.length === 0 || (args.length === 1 && args[0]!.startsWith("--dir="));
    const kafka = async () => {
      const given = Deno.env.get("KAFKA_BROKERS");
      if (given) {
        console.log(`Using the Kafka cluster at KAFKA_BROKERS=${given}`);
        return;
      }
      leased = true; // even if start-up fails half-way, releaseCluster cleans up
      const up = await clusterUp({ lease: true });
      if (up.foreign) leased = false;
      env.KAFKA_BROKERS = BROKERS.join(",");
    };
    const database = async () => {
      if (Deno.env.get("DATABASE_URL")) {
        console.log("Using the PostgreSQL database at DATABASE_URL");
        return;
      }
      leasedPostgres = true; // even if start-up fails half-way, releasePostgres cleans up
      env.DATABASE_URL = await postgresUp({ lease: true });
    };
    const starts: Promise<void>[] = wholeFolder ? [kafka(), database()] : [];
    const failures = (await Promise.allSettled(starts))
      .filter((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failures.length > 0) {
      throw new Error(failures.map((f) => (f.reason as Error)?.message ?? f.reason).join("\n"));
    }
    if (interrupted) throw new Error(`Interrupted by ${interrupted}`);

    const testStart = performance.now();
    result = await runTestFiles(args, env);
    console.log(`deno test finished in ${seconds(testStart)}`);
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  } finally {
    if (leased) {
      const failed = result === undefined ||
        testRunProblems(result.summary, result.code).length > 0;
      try {
        await releaseCluster({ keepLogsIn: failed ? `${ROOT}/.tmp/kafka-logs` : undefined });
      } catch (error) {
        problems.push(`Cannot stop Kafka: ${(error as Error).message}`);
      }
    }
    if (leasedPostgres) {
      try {
        await releasePostgres();
      } catch (error) {
        problems.push(`Cannot stop PostgreSQL: ${(error as Error).message}`);
      }
    }
  }

  if (result) problems.push(...testRunProblems(result.summary, result.code));
  if (interrupted) problems.push(`interrupted by ${interrupted}`);
  console.log(`Test run took ${seconds(started)}`);
  for (const problem of problems) console.log(`FAILED: ${problem}`);
  // Repeated here, next to the closing line, so that a crashed file is not lost in the output.
  for (const line of result?.lines ?? []) console.log(line);
  console.log(closingLine(result?.summary));
  if (interrupted) return 130;
  return problems.length > 0 ? 1 : 0;
}

if (import.meta.main) {
  Deno.addSignalListener("SIGINT", () => onSignal("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => onSignal("SIGTERM"));
  Deno.exit(await main(Deno.args));
}
