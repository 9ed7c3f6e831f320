/** scripts/test_summary.ts: reading deno test's summary and judging the run. */

import assert from "node:assert/strict";
import { closingLine, parseTestSummary, testRunProblems } from "../scripts/test_summary.ts";

Deno.test("parseTestSummary reads a passing summary with ignored tests", () => {
  const output = "running 3 tests\n...\n\nok | 12 passed | 0 failed | 1 ignored (3s)\n\n";
  assert.deepEqual(parseTestSummary(output), {
    ok: true,
    passed: 12,
    failed: 0,
    ignored: 1,
    filteredOut: 0,
  });
});

Deno.test("parseTestSummary reads a failing summary with steps, colours and filtered tests", () => {
  const output = "\x1b[0m\x1b[1m\x1b[31mFAILED\x1b[0m | 11 passed (4 steps) | 1 failed | " +
    "2 filtered out \x1b[0m\x1b[38;5;245m(2s)\x1b[0m\n";
  assert.deepEqual(parseTestSummary(output), {
    ok: false,
    passed: 11,
    failed: 1,
    ignored: 0,
    filteredOut: 2,
  });
});

Deno.test("parseTestSummary takes the last summary and ignores look-alike lines", () => {
  const output =
    "ok | 1 passed | 0 failed (1ms)\nok | not a summary\nok | 2 passed | 0 failed (1s)\n";
  assert.equal(parseTestSummary(output)?.passed, 2);
  assert.equal(parseTestSummary("error: Module not found\n"), undefined);
});

Deno.test("testRunProblems fails failures, skipped tests, empty runs and bad exits", () => {
  const ok = { ok: true, passed: 3, failed: 0, ignored: 0, filteredOut: 0 };
  assert.deepEqual(testRunProblems(ok, 0), []);
  assert.equal(testRunProblems({ ...ok, filteredOut: 5 }, 0).length, 0);
  assert.match(testRunProblems({ ...ok, ok: false, failed: 1 }, 1).join(), /1 failed/);
  assert.match(testRunProblems({ ...ok, ignored: 1 }, 0).join(), /ignored/);
  assert.match(testRunProblems({ ...ok, passed: 0 }, 0).join(), /no test ran/);
  assert.match(testRunProblems(ok, 1).join(), /exited with 1/);
  assert.match(testRunProblems(undefined, 1).join(), /no summary/);
});

Deno.test("closingLine is `tests: N passed, M failed`", () => {
  assert.equal(
    closingLine({ ok: false, passed: 12, failed: 1, ignored: 0, filteredOut: 0 }),
    "tests: 12 passed, 1 failed",
  );
  assert.equal(closingLine(undefined), "tests: 0 passed, 0 failed");
});
