/**
 * The Dockerfile, ops/prometheus/prometheus.yml, Grafana's provisioning and ops/kubernetes/ must
 * agree with the application: the Deno release it runs on, the modules its entry points import,
 * its settings (names from core/config.ts, values it accepts), its default ports, its health
 * endpoints and its drain on shutdown. Docker and Kubernetes cannot run here; the files are read.
 */

import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import { loadConfig } from "../core/config.ts";
import {
  execForm,
  finalStage,
  imageEnv,
  readCompose,
  readDockerfile,
  readText,
  ROOT,
  serviceEnv,
  settingNames,
} from "./deployment_files.ts";

const dockerfile = readDockerfile();
const runtime = finalStage(dockerfile);
const defaults = loadConfig({});

/** The folders of the checkout whose modules `entry` imports, by `deno info`. */
async function localFolders(entry: string): Promise<Set<string>> {
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(success, `deno info ${entry}`);
  const info: { modules: { specifier: string }[] } = JSON.parse(new TextDecoder().decode(stdout));
  const root = ROOT.href;
  return new Set(
    info.modules.map((m) => m.specifier).filter((s) => s.startsWith(root))
      .map((s) => s.slice(root.length).split("/")[0]!),
  );
}

Deno.test("Dockerfile: the official image of this Deno release, the lockfile's packages, the page built", () => {
  const bases = dockerfile.filter((i) => i.keyword === "FROM").map((i) => i.args.split(" ")[0]);
  assert.ok(bases.length > 0);
  for (const base of bases) assert.equal(base, `denoland/deno:${Deno.version.deno}`);
  const runs = dockerfile.filter((i) => i.keyword === "RUN").map((i) => i.args);
  assert.ok(runs.some((r) => /deno task build/.test(r)), "the page is built in the image build");
  const installs = runs.filter((r) => /deno install/.test(r));
  assert.ok(
    installs.length > 0 && installs.every((r) => r.includes("--frozen")),
    "deno.lock holds",
  );
  const copied = runtime.find((i) => i.keyword === "COPY" && i.args.includes("web/dist"));
  assert.ok(copied, "the built page is in the image that runs");
});

Deno.test("Dockerfile: the image holds every module the gateway and the processor import", async () => {
  const copied = new Set(
    runtime.filter((i) => i.keyword === "COPY" && !i.args.includes("--from"))
      .flatMap((i) => i.args.split(/\s+/).filter((a) => !a.startsWith("--")).slice(0, -1)),
  );
  // proto/ is read at run time: the health service's descriptor (server/grpc_server.ts).
  const needed = new Set(["proto", "deno.json", "deno.lock"]);
  for (const entry of ["main.ts", "processor.ts"]) {
    for (const folder of await localFolders(entry)) needed.add(folder);
  }
  for (const path of needed) assert.ok(copied.has(path), `the image copies ${path}`);
  const ignored = readText(".dockerignore").split("\n").map((l) => l.trim());
  for (const path of ["node_modules", ".git", "data", "dist"]) {
    assert.ok(ignored.includes(path), `.dockerignore keeps ${path} out of the build`);
  }
});

Deno.test("Dockerfile: a non-root user, the default ports exposed, only real settings", () => {
  const user = runtime.findLast((i) => i.keyword === "USER")?.args;
  assert.ok(user && user !== "root" && user !== "0", "runs as a non-root user");
  const lastUser = runtime.findLastIndex((i) => i.keyword === "USER");
  assert.ok(
    lastUser < runtime.findIndex((i) => i.keyword === "ENTRYPOINT"),
    "USER comes before the entry point",
  );
  const exposed = runtime.filter((i) => i.keyword === "EXPOSE").flatMap((i) => i.args.split(/\s+/))
    .map(Number).sort();
  assert.deepEqual(exposed, [defaults.httpPort, defaults.grpcPort, defaults.metricsPort].sort());
  const names = settingNames();
  const env = imageEnv(dockerfile);
  for (const name of Object.keys(env)) assert.ok(names.has(name), `ENV ${name} is a setting`);
  const config = loadConfig(env);
  assert.equal(config.httpHost, "0.0.0.0");
  assert.equal(config.grpcHost, "0.0.0.0");
  const entrypoint = execForm(runtime.findLast((i) => i.keyword === "ENTRYPOINT")!.args);
  assert.deepEqual(entrypoint.slice(0, 2), ["deno", "run"]);
});

Deno.test("prometheus.yml scrapes every gateway's HTTP port and every processor's METRICS_PORT", () => {
  const prometheus = parse(readText("ops/prometheus/prometheus.yml")) as {
    rule_files: string[];
    scrape_configs: {
      job_name: string;
      metrics_path?: string;
      static_configs: { targets: string[] }[];
    }[];
  };
  for (const file of prometheus.rule_files) Deno.statSync(new URL(`ops/prometheus/${file}`, ROOT));
  const { services } = readCompose();
  const chat = Object.entries(services).filter(([, s]) => s.build !== undefined);
  const expected = chat.map(([name, service]) => {
    const config = loadConfig(serviceEnv(service, dockerfile));
    const port = service.command?.includes("processor.ts") ? config.metricsPort : config.httpPort;
    return `${name}:${port}`;
  }).sort();
  const targets = prometheus.scrape_configs.flatMap((job) => {
    assert.equal(job.metrics_path ?? "/metrics", "/metrics", job.job_name);
    return job.static_configs.flatMap((c) => c.targets);
  }).sort();
  assert.deepEqual(targets, expected);
  // compose mounts the folder where --config.file looks.
  const server = Object.values(services).find((s) => s.image?.startsWith("prom/prometheus:"))!;
  const mount = server.volumes!.find((v) => v.startsWith("./ops/prometheus:"))!.split(":")[1];
  assert.ok(server.command?.includes(`--config.file=${mount}/prometheus.yml`));
});

Deno.test("Grafana is provisioned with the compose Prometheus and ops/grafana/chat.json", () => {
  const { services } = readCompose();
  const datasources = parse(readText("ops/grafana/provisioning/datasources/prometheus.yml")) as {
    datasources: { type: string; url: string }[];
  };
  const [name] = Object.entries(services).find(([, s]) => s.image?.startsWith("prom/prometheus:"))!;
  assert.deepEqual(datasources.datasources.map((d) => [d.type, d.url]), [
    ["prometheus", `http://${name}:9090`],
  ]);
  const providers = parse(readText("ops/grafana/provisioning/dashboards/chat.yml")) as {
    providers: { options: { path: string } }[];
  };
  const grafana = Object.values(services).find((s) => s.image?.startsWith("grafana/grafana:"))!;
  const mounts = new Map(grafana.volumes!.map((v) => [v.split(":")[0]!, v.split(":")[1]!]));
  assert.equal(mounts.get("./ops/grafana/provisioning"), "/etc/grafana/provisioning");
  const dashboard = mounts.get("./ops/grafana/chat.json")!;
  assert.equal(
    dashboard.slice(0, dashboard.lastIndexOf("/")),
    providers.providers[0]!.options.path,
  );
  JSON.parse(readText("ops/grafana/chat.json"));
});

// Kubernetes.

interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  image: string;
  args?: string[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  env?: { name: string; value?: string }[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec: {
    selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
    template?: {
      metadata: { labels: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds?: number;
        securityContext?: { runAsNonRoot?: boolean };
        containers: Container[];
      };
    };
    ports?: { port: number; targetPort: string | number }[];
  };
}

const manifests: Manifest[] = [...Deno.readDirSync(new URL("ops/kubernetes/", ROOT))]
  .filter((e) => e.name.endsWith(".yaml")).sort((a, b) => a.name.localeCompare(b.name))
  .flatMap((e) => parseAllDocuments(readText(`ops/kubernetes/${e.name}`)).map((d) => d.toJS()));
const ofKind = (kind: string) => manifests.filter((m) => m.kind === kind);
const settingsMap = ofKind("ConfigMap")[0]!;
const deployment = (name: string) => ofKind("Deployment").find((d) => d.metadata.name === name)!;

/** The settings a container reads: the ConfigMap's, then its own `env` values. */
function containerConfig(container: Container) {
  const own = Object.fromEntries(
    (container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]),
  );
  return loadConfig({ ...imageEnv(dockerfile), ...settingsMap.data, ...own });
}

/** The container port a probe or Service names (by name or number). */
function portOf(container: Container, port: string | number): number {
  if (typeof port === "number") return port;
  const named = container.ports?.find((p) => p.name === port);
  assert.ok(named, `no container port named ${port}`);
  return named.containerPort;
}

Deno.test("kubernetes: only real settings, with values the app accepts; no secret committed", () => {
  const names = settingNames();
  assert.equal(ofKind("ConfigMap").length, 1);
  assert.equal(ofKind("Secret").length, 0, "the Secret is created by hand, not committed");
  for (const name of Object.keys(settingsMap.data ?? {})) {
    assert.ok(names.has(name), `ConfigMap: ${name} is not a setting of core/config.ts`);
  }
  for (const d of ofKind("Deployment")) {
    for (const container of d.spec.template!.spec.containers) {
      for (const { name } of container.env ?? []) {
        assert.ok(names.has(name), `${d.metadata.name}: ${name} is not a setting`);
      }
      const sources = container.envFrom ?? [];
      assert.ok(sources.some((s) => s.configMapRef?.name === settingsMap.metadata.name));
      assert.equal(containerConfig(container).bus, "kafka", `${d.metadata.name} runs on Kafka`);
      assert.equal(container.image, readCompose().services["gateway-1"]!.image);
      assert.ok(d.spec.template!.spec.securityContext?.runAsNonRoot, d.metadata.name);
    }
  }
});

Deno.test("kubernetes gateways: ready on /readyz, alive on /healthz, the configured ports, a Service", () => {
  const gateway = deployment("chat-gateway");
  const [container] = gateway.spec.template!.spec.containers as [Container];
  const config = containerConfig(container);
  assert.deepEqual(container.args, ["main.ts"]);
  assert.equal(container.readinessProbe?.httpGet?.path, "/readyz");
  assert.equal(container.livenessProbe?.httpGet?.path, "/healthz");
  for (const probe of [container.readinessProbe!, container.livenessProbe!]) {
    assert.equal(portOf(container, probe.httpGet!.port), config.httpPort);
  }
  assert.deepEqual(
    container.ports!.map((p) => p.containerPort).sort(),
    [config.httpPort, config.grpcPort].sort(),
  );
  const service = ofKind("Service").find((s) => s.metadata.name === "chat-gateway")!;
  const labels = gateway.spec.template!.metadata.labels;
  for (const [key, value] of Object.entries(service.spec.selector!)) {
    assert.equal(labels[key], value, `the Service selects the gateways: ${key}`);
  }
  assert.deepEqual(
    service.spec.ports!.map((p) => portOf(container, p.targetPort)).sort(),
    [config.httpPort, config.grpcPort].sort(),
  );
});

Deno.test("kubernetes gateways: a disruption budget, and termination longer than the drain", () => {
  const gateway = deployment("chat-gateway");
  const budget = ofKind("PodDisruptionBudget").find((p) => p.metadata.name === "chat-gateway");
  assert.ok(budget, "a PodDisruptionBudget for the gateways");
  const labels = gateway.spec.template!.metadata.labels;
  for (const [key, value] of Object.entries(budget.spec.selector!.matchLabels!)) {
    assert.equal(labels[key], value, `the budget selects the gateways: ${key}`);
  }
  for (const d of [gateway, deployment("chat-processor")]) {
    const spec = d.spec.template!.spec;
    const [container] = spec.containers as [Container];
    const pause = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    const drain = containerConfig(container).shutdownTimeoutMs / 1000;
    assert.ok(
      (spec.terminationGracePeriodSeconds ?? 30) > pause + drain,
      `${d.metadata.name}: terminationGracePeriodSeconds > preStop ${pause} s + drain ${drain} s`,
    );
  }
});

Deno.test("kubernetes processors: processor.ts, /metrics on METRICS_PORT", () => {
  const processor = deployment("chat-processor");
  const [container] = processor.spec.template!.spec.containers as [Container];
  assert.deepEqual(container.args, ["processor.ts"]);
  const { metricsPort } = containerConfig(container);
  assert.deepEqual(container.ports!.map((p) => p.containerPort), [metricsPort]);
  assert.equal(container.livenessProbe?.httpGet?.path, "/metrics");
  assert.equal(portOf(container, container.livenessProbe!.httpGet!.port), metricsPort);
});
