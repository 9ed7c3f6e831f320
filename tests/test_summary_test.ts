/** scripts/test_summary.ts: reading deno test's summary and judging the run. */

import assert from "node:assert/strict";
import {
  addUp,
  closingLine,
  failedTests,
  judgeFile,
  parseTestSummary,
  RUNTIME_ABORT_CODES,
  testRunProblems,
} from "../scripts/test_summary.ts";

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

Deno.test("judgeFile: a runtime abort is a failure named in an ABORTED line, never retried", () => {
  const passing = { ok: true, passed: 4, failed: 0, ignored: 0, filteredOut: 0 };
  assert.deepEqual(judgeFile("tests/x_test.ts", undefined, 134), {
    passed: 0,
    failed: 1,
    ignored: 0,
    lines: ["ABORTED: tests/x_test.ts: the Deno runtime aborted (exit 134)"],
  });
  // It aborted after its summary: the tests it passed count, and so does the abort.
  assert.deepEqual(judgeFile("tests/y_test.ts", passing, 139), {
    passed: 4,
    failed: 1,
    ignored: 0,
    lines: ["ABORTED: tests/y_test.ts: the Deno runtime aborted (exit 139)"],
  });
  assert.deepEqual(judgeFile("tests/z_test.ts", undefined, 1), {
    passed: 0,
    failed: 1,
    ignored: 0,
    lines: ["FAILED: tests/z_test.ts printed no summary (exit 1)"],
  });
  assert.deepEqual(judgeFile("tests/ok_test.ts", passing, 0), {
    passed: 4,
    failed: 0,
    ignored: 0,
    lines: [],
  });
  assert.deepEqual([...RUNTIME_ABORT_CODES].sort(), [134, 139]);
});

Deno.test("addUp: an aborted file fails the run and shows in the closing line", () => {
  const files = [
    judgeFile(
      "tests/a_test.ts",
      { ok: true, passed: 300, failed: 0, ignored: 0, filteredOut: 0 },
      0,
    ),
    judgeFile("tests/x_test.ts", undefined, 134),
  ];
  const total = addUp(files);
  assert.deepEqual(total, { ok: false, passed: 300, failed: 1, ignored: 0, filteredOut: 0 });
  assert.equal(closingLine(total), "tests: 300 passed, 1 failed");
  assert.match(testRunProblems(total, 134).join("\n"), /1 failed/);
  assert.deepEqual(files.flatMap((f) => f.lines), [
    "ABORTED: tests/x_test.ts: the Deno runtime aborted (exit 134)",
  ]);
  assert.deepEqual(addUp([]), { ok: true, passed: 0, failed: 0, ignored: 0, filteredOut: 0 });
  assert.match(testRunProblems(addUp([]), 0).join(), /no test ran/);
});

Deno.test("judgeFile names each failed test of deno test's real output, with its first error line", async () => {
  // Real output of this Deno, so that a change in its format fails here, not silently in CI.
  const dir = await Deno.makeTempDir({ prefix: "test-summary-" });
  try {
    await Deno.writeTextFile(
      `${dir}/sample_test.ts`,
      `import assert from "node:assert/strict";
Deno.test("passes", () => {});
Deno.test("compares: a => b", () => { assert.equal(1, 2, "values differ"); });
Deno.test("steps", async (t) => {
  await t.step("inner", () => { throw new Error("boom\\nsecond line"); });
});
`,
    );
    const { code, stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--no-check", `${dir}/sample_test.ts`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const output = new TextDecoder().decode(stdout);
    const summary = parseTestSummary(output);
    assert.equal(summary?.failed, 2);
    const lines = judgeFile("sample_test.ts", summary, code, output).lines;
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(
      lines[0]!,
      /^FAILED TEST: compares: a => b \(\S+sample_test\.ts:3:6\): AssertionError: values differ$/,
    );
    assert.match(
      lines[1]!,
      /^FAILED TEST: steps \.\.\. inner \(\S+sample_test\.ts:5:\d+\): Error: boom$/,
    );
    assert.deepEqual(failedTests("ok | 1 passed | 0 failed (1ms)\n"), []);

    // A promise left to fail outside any test fails the file: that is named too.
    await Deno.writeTextFile(
      `${dir}/stray_test.ts`,
      `Deno.test("leaves a promise behind", async () => {
  Promise.reject(new Error("stray"));
  await new Promise((resolve) => setTimeout(resolve, 10));
});
`,
    );
    const stray = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--no-check", `${dir}/stray_test.ts`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const strayOutput = new TextDecoder().decode(stray.stdout);
    const strayLines = judgeFile("stray_test.ts", parseTestSummary(strayOutput), 1, strayOutput)
      .lines;
    assert.equal(strayLines.length, 1, strayOutput);
    assert.match(strayLines[0]!, /^FAILED TEST: \S+stray_test\.ts \(uncaught error\): .*stray/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
