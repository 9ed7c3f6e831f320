/**
 * Reads `deno test`'s closing summary and decides whether a test run passed, for scripts/test.ts.
 *
 * The summary line looks like `ok | 12 passed | 0 failed | 1 ignored (3s)` or
 * `FAILED | 11 passed (4 steps) | 1 failed (2s)`. scripts/test.ts runs each test file in its own
 * process; {@linkcode judgeFile} turns one process's summary and exit code into counts and the
 * lines that explain a failure, and {@linkcode closingLine} is the last line CI reads.
 */

export interface TestSummary {
  ok: boolean;
  passed: number;
  failed: number;
  ignored: number;
  filteredOut: number;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** The counts of the last summary line in `output`, or undefined when there is none. */
export function parseTestSummary(output: string): TestSummary | undefined {
  const lines = output.replace(ANSI, "").split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    const head = line.match(/^(ok|FAILED) \| (.*)$/);
    if (!head) continue;
    const count = (name: string) => {
      const match = head[2]!.match(new RegExp(`(\\d+) ${name}\\b`));
      return match ? Number(match[1]) : 0;
    };
    if (!/\d+ passed/.test(head[2]!)) continue;
    return {
      ok: head[1] === "ok",
      passed: count("passed"),
      failed: count("failed"),
      ignored: count("ignored"),
      filteredOut: count("filtered out"),
    };
  }
  return undefined;
}

/**
 * One line per failed test in `output` (deno test's ERRORS section): its name, where it is and
 * the first line of its error, so that the last lines of a long run say which test failed and
 * why without scrolling back through its output.
 */
export function failedTests(output: string): string[] {
  const lines = output.replace(ANSI, "").split(/\r?\n/);
  const start = lines.findLastIndex((line) => line.trim() === "ERRORS");
  if (start < 0) return [];
  const failures: string[] = [];
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "FAILURES") break;
    // A test (`name => file:line:col`), or a file whose stray promise failed outside any test.
    const test = line.match(/^(\S.*) => (\S+:\d+:\d+)$/) ??
      line.match(/^(\S+) \((uncaught error)\)$/);
    if (!test) continue;
    const error = lines.slice(i + 1, i + 4).find((next) => next.startsWith("error: "));
    const why = error ? `: ${error.slice("error: ".length).slice(0, 300)}` : "";
    failures.push(`FAILED TEST: ${test[1]} (${test[2]})${why}`);
  }
  return failures;
}

/** Why the run fails (empty when it passes): a failure, a skipped test, no test at all. */
export function testRunProblems(summary: TestSummary | undefined, exitCode: number): string[] {
  const problems: string[] = [];
  if (summary === undefined) problems.push("deno test printed no summary");
  else {
    if (summary.failed > 0) problems.push(`${summary.failed} failed`);
    if (summary.ignored > 0) {
      problems.push(`${summary.ignored} ignored (a skipped test fails the run)`);
    }
    if (summary.passed + summary.failed === 0) problems.push("no test ran");
    if (!summary.ok && summary.failed === 0) problems.push("deno test reported FAILED");
  }
  if (exitCode !== 0) problems.push(`deno test exited with ${exitCode}`);
  return problems;
}

/** The closing line, `tests: 12 passed, 0 failed`. */
export function closingLine(summary: TestSummary | undefined): string {
  return `tests: ${summary?.passed ?? 0} passed, ${summary?.failed ?? 0} failed`;
}

/**
 * Exit codes of a Deno process killed by SIGABRT (134) or SIGSEGV (139): the runtime died, not a
 * test (Deno 2.9's node:http2 can abort inside nghttp2, denoland/deno#36788). Such a file is a
 * failure like any other: it is never run again, since a retry would hide a crash users can hit.
 */
export const RUNTIME_ABORT_CODES: ReadonlySet<number> = new Set([134, 139]);

/** What one `deno test` process adds to the run. */
export interface FileResult {
  passed: number;
  failed: number;
  ignored: number;
  /** Lines to print before the closing line, such as `ABORTED: tests/x_test.ts: ...`. */
  lines: string[];
}

/**
 * Judges the `deno test` process that ran `name` (a file, or the arguments of one run): its
 * summary (undefined when it printed none), exit code and output; each failed test is named in a
 * `FAILED TEST:` line. A runtime abort or a missing summary
 * counts as one more failed test, so that the closing line shows it.
 */
export function judgeFile(
  name: string,
  summary: TestSummary | undefined,
  exitCode: number,
  output = "",
): FileResult {
  const result: FileResult = {
    passed: summary?.passed ?? 0,
    failed: summary?.failed ?? 0,
    ignored: summary?.ignored ?? 0,
    lines: summary && summary.failed > 0 ? failedTests(output) : [],
  };
  if (RUNTIME_ABORT_CODES.has(exitCode)) {
    result.failed += 1;
    result.lines.push(`ABORTED: ${name}: the Deno runtime aborted (exit ${exitCode})`);
  } else if (summary === undefined) {
    result.failed += 1;
    result.lines.push(`FAILED: ${name} printed no summary (exit ${exitCode})`);
  }
  return result;
}

/** The run's summary: the files' counts added up; ok when no file failed. */
export function addUp(results: readonly FileResult[]): TestSummary {
  const total = { ok: true, passed: 0, failed: 0, ignored: 0, filteredOut: 0 };
  for (const r of results) {
    total.passed += r.passed;
    total.failed += r.failed;
    total.ignored += r.ignored;
  }
  total.ok = total.failed === 0;
  return total;
}
