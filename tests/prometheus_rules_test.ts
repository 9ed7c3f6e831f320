/**
 * ops/prometheus/alerts.yml, checked by Prometheus's own promtool as CI does: the rules parse and
 * their expressions are valid PromQL (`promtool check rules`), and every alert fires, and stays
 * quiet, on the series of ops/prometheus/alerts_test.yml (`promtool test rules`), which has both
 * cases for every alert. promtool is
 * installed by scripts/system_deps.ts; without it these tests fail, they are not skipped.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { goProgram } from "../scripts/system_deps.ts";

const OPS = fileURLToPath(new URL("../ops/prometheus/", import.meta.url));

/** Runs `promtool args...` in ops/prometheus; returns its output, or throws it with its status. */
async function promtool(args: string[]): Promise<string> {
  const path = goProgram("promtool");
  if (!path) {
    throw new Error(
      "Cannot check the Prometheus rules: promtool is missing; install it with: deno run -A scripts/system_deps.ts",
    );
  }
  const { code, stdout, stderr } = await new Deno.Command(path, { args, cwd: OPS, stdin: "null" })
    .output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  if (code !== 0) throw new Error(`promtool ${args.join(" ")} exited with ${code}:\n${output}`);
  return output;
}

Deno.test("promtool check rules: alerts.yml is valid", async () => {
  const output = await promtool(["check", "rules", "alerts.yml"]);
  assert.match(output, /SUCCESS: \d+ rules found/, output);
});

Deno.test("promtool test rules: every alert fires and stays quiet as alerts_test.yml expects", async () => {
  const output = await promtool(["test", "rules", "alerts_test.yml"]);
  assert.match(output, /SUCCESS/, output);
});

interface RuleFile {
  groups: { rules: { alert?: string }[] }[];
}
interface RuleTests {
  rule_files: string[];
  tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}

Deno.test("alerts_test.yml has a firing and a quiet case for every alert of alerts.yml", async () => {
  const rules = parse(await Deno.readTextFile(`${OPS}alerts.yml`)) as RuleFile;
  const tests = parse(await Deno.readTextFile(`${OPS}alerts_test.yml`)) as RuleTests;
  assert.deepEqual(tests.rule_files, ["alerts.yml"]);
  const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
  const alerts = rules.groups.flatMap((g) => g.rules).flatMap((r) => r.alert ?? []);
  assert.ok(alerts.length > 0, "alerts.yml has no alerts");
  for (const alert of alerts) {
    const mine = cases.filter((c) => c.alertname === alert);
    assert.ok(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${alert} has no firing case`);
    assert.ok(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${alert} has no quiet case`);
  }
});
