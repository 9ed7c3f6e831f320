/**
 * The dashboard (ops/grafana/chat.json), the alert rules (ops/prometheus/alerts.yml) and their
 * tests' series (ops/prometheus/alerts_test.yml) query only metrics that the processes expose: a
 * renamed metric in core/metrics.ts must fail here, not leave an empty panel or an alert that can
 * never fire, and so must a label they match or group by that the metric lacks. What is exposed is
 * read from the module itself, as Prometheus would see it. The dashboard's queries must also be
 * PromQL that Prometheus parses: promtool checks them as recording rules (promtool is installed by
 * scripts/system_deps.ts; without it that test fails, it is not skipped).
 */

import assert from "node:assert/strict";
import { parse, stringify } from "yaml";
import { createMetrics } from "../core/metrics.ts";
import { goProgram } from "../scripts/system_deps.ts";

/** The labels Prometheus adds to every series of a target. */
const TARGET_LABELS = ["job", "instance"];

/** Series that Prometheus makes itself for every target, not the processes. */
const PROMETHEUS_SERIES = ["up", "scrape_duration_seconds", "scrape_samples_scraped"];

/**
 * Every series name the exposition of `core/metrics.ts` holds (histograms' included), with the
 * labels its samples carry once each kind of event has been counted. Read once, outside the
 * tests: the default metrics start an event-loop monitor that outlives the call.
 */
async function exposedSeries(): Promise<Map<string, Set<string>>> {
  const metrics = createMetrics(true);
  metrics.streamOpened("native");
  metrics.watchConnections("grpc_web", () => 1);
  metrics.sendAccepted();
  metrics.sendRefused("unavailable");
  metrics.delivered(2, new Date().toISOString());
  metrics.streamCut();
  metrics.watchQueues(() => ({ deepest: 3, crowded: 1 }));
  metrics.produced("chatting", 0.01, false);
  metrics.consumerLag("chatting-processor-group", "chatting", 0, 5);
  metrics.storeTimer("append")(true);
  metrics.gatewayDeclaredDead();
  metrics.signIn("signed_in");
  const text = await metrics.render();
  assert.ok(text, "metrics are on, so there is an exposition");
  const series = new Map(PROMETHEUS_SERIES.map((name) => [name, new Set(TARGET_LABELS)]));
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const suffixes = type === "histogram"
      ? ["_bucket", "_sum", "_count"]
      : type === "summary"
      ? ["", "_sum", "_count"]
      : [""];
    for (const suffix of suffixes) series.set(name + suffix, new Set(TARGET_LABELS));
  }
  for (const [, name, labels] of text.matchAll(/^(\w+)\{([^}]*)\}/gm)) {
    for (const [, label] of labels!.matchAll(/(\w+)="/g)) series.get(name!)?.add(label!);
  }
  return series;
}

const EXPOSED = await exposedSeries();

/** PromQL's words that look like names but are not series. */
const KEYWORDS = new Set(["and", "or", "unless", "offset", "bool", "atan2", "inf", "nan"]);

/**
 * The metric names `expr` selects. Label matchers, strings, ranges and label lists are dropped
 * first, so that what is left are functions (followed by "("), keywords, numbers and names.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "")
    .replace(/\b(?:group_left|group_right)\b/g, "");
  const names: string[] = [];
  for (const match of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const [word] = match;
    const before = bare[match.index - 1] ?? "";
    const after = bare.slice(match.index + word.length);
    if (/[0-9.]/.test(before) || /^\s*\(/.test(after) || KEYWORDS.has(word.toLowerCase())) continue;
    names.push(word);
  }
  return names;
}

/** The label names `expr` matches on or groups by. */
function labelNames(expr: string): string[] {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  const matched = [...bare.matchAll(/\{([^}]*)\}/g)]
    .flatMap(([, body]) => [...body!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map(([, name]) => name!));
  const listed = [
    ...bare.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g),
  ].flatMap(([, list]) => list!.split(",").map((name) => name.trim()).filter(Boolean));
  return [...matched, ...listed];
}

/** Each PromQL expression of the dashboard: its panels' targets and its variables' queries. */
async function dashboardQueries(): Promise<string[]> {
  const dashboard = JSON.parse(
    await Deno.readTextFile(new URL("../ops/grafana/chat.json", import.meta.url)),
  ) as {
    panels: { targets?: { expr: string }[] }[];
    templating: { list: { type: string; query: string | { query: string } }[] };
  };
  const targets = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
  const variables = dashboard.templating.list
    .filter((v) => v.type === "query")
    .map((v) => typeof v.query === "string" ? v.query : v.query.query)
    // label_values(<selector>, <label>): the selector is PromQL, the label is not.
    .map((query) => query.match(/^label_values\((.*),\s*\w+\)$/)?.[1] ?? query);
  return [...targets, ...variables];
}

async function readYaml(path: string): Promise<unknown> {
  return parse(await Deno.readTextFile(new URL(path, import.meta.url)));
}

/** Each expression of the alert rules, and each series and expression of their tests. */
async function ruleQueries(): Promise<string[]> {
  const rules = await readYaml("../ops/prometheus/alerts.yml") as {
    groups: { rules: { expr: string }[] }[];
  };
  const tests = await readYaml("../ops/prometheus/alerts_test.yml") as {
    tests: { input_series: { series: string }[]; promql_expr_test?: { expr: string }[] }[];
  };
  return [
    ...rules.groups.flatMap((g) => g.rules).map((r) => r.expr),
    ...tests.tests.flatMap((t) => t.input_series).map((s) => s.series),
    ...tests.tests.flatMap((t) => t.promql_expr_test ?? []).map((t) => t.expr),
  ];
}

Deno.test("metricNames finds the series of an expression and nothing else", () => {
  assert.deepEqual(
    metricNames(
      'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{job=~"$job", code!="b"}[5m])))' +
        " / on (job) group_left () sum without (code) (rate(c_total[$__rate_interval] offset 5m))" +
        " > 1e3 and d > bool 0.5 unless up == 0",
    ),
    ["a_bucket", "c_total", "d", "up"],
  );
});

Deno.test("labelNames finds the labels an expression matches and groups by", () => {
  assert.deepEqual(
    labelNames(
      'sum by (job, le) (rate(a{code!="x{y}", instance=~"$i"}[5m])) / on () group_left (b) c',
    ),
    ["code", "instance", "job", "le", "b"],
  );
});

for (
  const [file, queries] of [
    ["ops/grafana/chat.json", dashboardQueries],
    ["ops/prometheus/alerts.yml and alerts_test.yml", ruleQueries],
  ] as const
) {
  Deno.test(`${file} query only metrics and labels that core/metrics.ts exposes`, async () => {
    const all = await queries();
    assert.ok(all.length > 0, `${file} has no queries`);
    for (const expr of all) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `no metric found in "${expr}"`);
      for (const name of names) {
        assert.ok(
          EXPOSED.has(name),
          `"${expr}" queries ${name}, which core/metrics.ts does not define`,
        );
      }
      const known = new Set(names.flatMap((name) => [...EXPOSED.get(name)!]));
      for (const label of labelNames(expr)) {
        assert.ok(known.has(label), `"${expr}" uses label ${label}, which none of ${names} has`);
      }
    }
  });
}

/** What Grafana puts in place of the dashboard's variables before Prometheus sees a query. */
function asPrometheusSees(expr: string): string {
  return expr.replaceAll("$__rate_interval", "1m").replaceAll("$job", ".*")
    .replaceAll("$instance", ".*");
}

Deno.test("ops/grafana/chat.json's queries are PromQL that promtool parses", async () => {
  const promtool = goProgram("promtool");
  if (!promtool) {
    throw new Error(
      "Cannot check the dashboard's queries: promtool is missing; install it with: deno run -A scripts/system_deps.ts",
    );
  }
  const queries = await dashboardQueries();
  const dir = await Deno.makeTempDir({ prefix: "chat-dashboard-" });
  try {
    const file = `${dir}/dashboard_rules.yml`;
    await Deno.writeTextFile(
      file,
      stringify({
        groups: [{
          name: "dashboard",
          rules: queries.map((expr, i) => ({
            record: `dashboard:query_${i}`,
            expr: asPrometheusSees(expr),
          })),
        }],
      }),
    );
    const { code, stdout, stderr } = await new Deno.Command(promtool, {
      args: ["check", "rules", file],
      stdin: "null",
    }).output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, `promtool check rules on the dashboard's queries failed:\n${output}`);
    assert.match(output, new RegExp(`SUCCESS: ${queries.length} rules found`), output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
