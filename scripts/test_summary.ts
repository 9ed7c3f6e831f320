/**
 * Reads `deno test`'s closing summary and decides whether a test run passed, for scripts/test.ts.
 *
 * The summary line looks like `ok | 12 passed | 0 failed | 1 ignored (3s)` or
 * `FAILED | 11 passed (4 steps) | 1 failed (2s)`.
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
