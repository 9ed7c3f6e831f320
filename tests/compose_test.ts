/**
 * compose.yaml must run the cluster the app expects: the brokers of DEFAULT_KAFKA_BROKERS, three
 * KRaft voters, replication that fits TOPICS, the same guarantees as kafka/cluster.ts, Kafka UI
 * on 8090 (profile `kafka`); and (profile `full`) gateways and processors of the Dockerfile's
 * image whose settings, ports, health checks and start order agree with core/config.ts.
 */

import assert from "node:assert/strict";
import { chooseReplication } from "../bus/kafka/replication.ts";
import { DEFAULT_KAFKA_BROKERS, loadConfig } from "../core/config.ts";
import { GUARANTEE_SETTINGS } from "../kafka/layout.ts";
import {
  type ComposeService as Service,
  execForm,
  fetchedUrl,
  finalStage,
  readCompose,
  readDockerfile,
  serviceEnv,
  settingNames,
} from "./deployment_files.ts";

const compose = readCompose();

const services = Object.entries(compose.services);
const brokers = services.filter(([, s]) => s.image?.startsWith("apache/kafka:"));

function env(service: Service, name: string): string {
  const value = service.environment?.[name];
  assert.notEqual(value, undefined, `${name} is not set`);
  return String(value);
}

/** `KAFKA_ABC___DEF__G_H` -> `abc-def_g.h`, the apache/kafka image's naming. */
function propertyName(variable: string): string {
  return variable.slice("KAFKA_".length).toLowerCase()
    .replaceAll("___", "-").replaceAll("__", "\0").replaceAll("_", ".").replaceAll("\0", "_");
}

function properties(service: Service): Map<string, string> {
  const result = new Map<string, string>();
  for (const [name, value] of Object.entries(service.environment ?? {})) {
    if (name.startsWith("KAFKA_")) result.set(propertyName(name), String(value));
  }
  return result;
}

/** `PLAINTEXT://host:9092,CONTROLLER://:9093` -> Map of listener name -> { host, port }. */
function listeners(value: string): Map<string, { host: string; port: number }> {
  const result = new Map<string, { host: string; port: number }>();
  for (const entry of value.split(",")) {
    const match = entry.trim().match(/^([A-Z_]+):\/\/([^:]*):(\d+)$/);
    assert.ok(match, `cannot read listener "${entry}"`);
    result.set(match[1]!, { host: match[2]!, port: Number(match[3]) });
  }
  return result;
}

/** `"127.0.0.1:9092:9092"` -> { ip, host, container }. */
function portMapping(mapping: string): { ip: string; host: number; container: number } {
  const parts = mapping.split(":");
  assert.equal(parts.length, 3, `port mapping "${mapping}" should name the host IP`);
  return { ip: parts[0]!, host: Number(parts[1]), container: Number(parts[2]) };
}

/** The listener of a broker that the host reaches: the one on the published container port. */
function hostListener(service: Service) {
  assert.equal(service.ports?.length, 1, "a broker publishes exactly one port");
  const mapping = portMapping(service.ports![0]!);
  const own = listeners(env(service, "KAFKA_LISTENERS"));
  const name = [...own].find(([, l]) => l.port === mapping.container)?.[0];
  assert.ok(name, `no listener on container port ${mapping.container}`);
  const advertised = listeners(env(service, "KAFKA_ADVERTISED_LISTENERS")).get(name);
  assert.ok(advertised, `listener ${name} is not advertised`);
  return { name, mapping, advertised };
}

Deno.test("compose runs three apache/kafka 3.9.1 brokers in KRaft combined mode", () => {
  assert.equal(brokers.length, 3);
  for (const [, service] of brokers) {
    assert.equal(service.image, "apache/kafka:3.9.1");
    assert.equal(env(service, "KAFKA_PROCESS_ROLES"), "broker,controller");
  }
  const ids = brokers.map(([, s]) => env(s, "KAFKA_NODE_ID")).sort();
  assert.deepEqual(ids, ["1", "2", "3"]);
  const clusterIds = new Set(brokers.map(([, s]) => env(s, "CLUSTER_ID")));
  assert.equal(clusterIds.size, 1, "every broker has the same CLUSTER_ID");
  assert.match([...clusterIds][0]!, /^[A-Za-z0-9_-]{22}$/);
});

Deno.test("compose publishes and advertises DEFAULT_KAFKA_BROKERS on 127.0.0.1", () => {
  const addresses = brokers.map(([name, service]) => {
    const { mapping, advertised } = hostListener(service);
    assert.equal(mapping.ip, "127.0.0.1", `${name} publishes on 127.0.0.1 only`);
    assert.equal(advertised.host, "127.0.0.1", `${name} advertises 127.0.0.1 to the host`);
    assert.equal(advertised.port, mapping.host, `${name} advertises its host port`);
    return `${advertised.host}:${mapping.host}`;
  });
  assert.deepEqual(addresses.sort(), [...DEFAULT_KAFKA_BROKERS].sort());
});

Deno.test("compose brokers talk to each other on an internal listener of the compose network", () => {
  for (const [name, service] of brokers) {
    const { name: hostName } = hostListener(service);
    const internal = env(service, "KAFKA_INTER_BROKER_LISTENER_NAME");
    assert.notEqual(internal, hostName, `${name} does not use the host listener between brokers`);
    const advertised = listeners(env(service, "KAFKA_ADVERTISED_LISTENERS")).get(internal);
    assert.ok(advertised, `${name} advertises ${internal}`);
    assert.equal(advertised.host, service.hostname ?? name);
    const protocols = new Set(
      env(service, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").split(",").map((e) => e.split(":")[0]),
    );
    for (const listener of listeners(env(service, "KAFKA_LISTENERS")).keys()) {
      assert.ok(protocols.has(listener), `${name}: ${listener} has a security protocol`);
    }
  }
});

Deno.test("compose has the three brokers as KRaft voters on their controller listener", () => {
  for (const [name, service] of brokers) {
    const voters = env(service, "KAFKA_CONTROLLER_QUORUM_VOTERS").split(",").map((v) => {
      const match = v.match(/^(\d+)@([^:]+):(\d+)$/);
      assert.ok(match, `cannot read voter "${v}"`);
      return { id: match[1]!, host: match[2]!, port: Number(match[3]) };
    });
    assert.equal(voters.length, 3, `${name} lists three voters`);
    for (const voter of voters) {
      const target = brokers.find(([n, s]) => (s.hostname ?? n) === voter.host);
      assert.ok(target, `voter ${voter.id}@${voter.host} is a broker service`);
      assert.equal(env(target[1], "KAFKA_NODE_ID"), voter.id);
      const controllerName = env(target[1], "KAFKA_CONTROLLER_LISTENER_NAMES");
      const controller = listeners(env(target[1], "KAFKA_LISTENERS")).get(controllerName);
      assert.equal(controller?.port, voter.port, `voter ${voter.id} uses the controller port`);
    }
  }
});

Deno.test("compose replication settings allow the app's replication policy", () => {
  const brokerCount = brokers.length;
  const policy = chooseReplication({}, brokerCount);
  assert.equal(policy.replicationFactor, 3, "three brokers: three copies");
  for (const [name, service] of brokers) {
    const props = properties(service);
    const minIsr = Number(props.get("min.insync.replicas") ?? "1");
    assert.equal(minIsr, policy.minInsyncReplicas, `${name}: min.insync.replicas`);
    // One broker down must leave enough in-sync replicas to keep writing with acks=all.
    assert.ok(minIsr <= policy.replicationFactor - 1, `${name}: topics survive a broker`);
    assert.equal(Number(props.get("default.replication.factor")), policy.replicationFactor);
    const offsetsRf = Number(props.get("offsets.topic.replication.factor"));
    const txnRf = Number(props.get("transaction.state.log.replication.factor"));
    const txnIsr = Number(props.get("transaction.state.log.min.isr"));
    assert.ok(offsetsRf >= 1 && offsetsRf <= brokerCount);
    assert.ok(txnRf >= 1 && txnRf <= brokerCount);
    assert.ok(txnIsr <= txnRf);
    assert.equal(props.get("auto.create.topics.enable"), "false");
  }
});

Deno.test("compose brokers have the same guarantees as kafka/cluster.ts", () => {
  for (const [name, service] of brokers) {
    const props = properties(service);
    for (const [key, value] of Object.entries(GUARANTEE_SETTINGS)) {
      assert.equal(props.get(key), value, `${name}: ${key}`);
    }
  }
});

Deno.test("compose serves Kafka UI on 127.0.0.1:8090, pointed at the internal listeners", () => {
  const ui = services.find(([, s]) => s.image?.startsWith("provectuslabs/kafka-ui"));
  assert.ok(ui, "a provectuslabs/kafka-ui service");
  const [, service] = ui;
  assert.deepEqual(service.ports?.map(portMapping), [{
    ip: "127.0.0.1",
    host: 8090,
    container: 8080,
  }]);
  const bootstrap = env(service, "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS").split(",").sort();
  const internal = brokers.map(([, s]) => {
    const listener = env(s, "KAFKA_INTER_BROKER_LISTENER_NAME");
    const advertised = listeners(env(s, "KAFKA_ADVERTISED_LISTENERS")).get(listener)!;
    return `${advertised.host}:${advertised.port}`;
  }).sort();
  assert.deepEqual(bootstrap, internal);
});

Deno.test("propertyName follows the apache/kafka image's naming", () => {
  assert.equal(propertyName("KAFKA_MIN_INSYNC_REPLICAS"), "min.insync.replicas");
  assert.equal(propertyName("KAFKA_ABC___DEF"), "abc-def");
  assert.equal(propertyName("KAFKA_ABC__DEF_G"), "abc_def.g");
});

// The `full` profile: the whole system in containers.

const dockerfile = readDockerfile();
const inProfile = (profile: string) =>
  services.filter(([, s]) => s.profiles?.includes(profile)).map(([name]) => name).sort();
const chat = services.filter(([, s]) => s.build !== undefined);
const gateways = chat.filter(([, s]) => !s.command?.includes("processor.ts"));
const processors = chat.filter(([, s]) => s.command?.includes("processor.ts"));
const effectiveEnv = (service: Service) => serviceEnv(service, dockerfile);
const dependencies = (service: Service): Record<string, { condition?: string }> =>
  Array.isArray(service.depends_on)
    ? Object.fromEntries(service.depends_on.map((name) => [name, {}]))
    : service.depends_on ?? {};

Deno.test("compose profiles: kafka is the brokers and Kafka UI, full the whole system", () => {
  const names = (entries: [string, Service][]) => entries.map(([name]) => name);
  assert.deepEqual(inProfile("kafka"), [...names(brokers), "kafka-ui"].sort());
  assert.equal(gateways.length, 2, "two gateways");
  assert.equal(processors.length, 2, "two processors");
  const postgres = services.filter(([, s]) => s.image?.startsWith("postgres:"));
  const prometheus = services.filter(([, s]) => s.image?.startsWith("prom/prometheus:"));
  const grafana = services.filter(([, s]) => s.image?.startsWith("grafana/grafana:"));
  assert.deepEqual(
    inProfile("full"),
    [brokers, postgres, gateways, processors, prometheus, grafana].flatMap(names).sort(),
  );
  for (const [name, service] of services) {
    assert.ok(service.profiles?.length, `${name} is in a profile: none starts without one`);
    if (service.image) assert.match(service.image, /:[\w.-]+$/, `${name}: a pinned tag`);
  }
});

Deno.test("compose gateways and processors run the Dockerfile's image with its entry points", async () => {
  const images = new Set(chat.map(([, s]) => s.image));
  assert.equal(images.size, 1, "one image for every role");
  const [entrypoint, defaultCommand] = ["ENTRYPOINT", "CMD"].map((keyword) =>
    execForm(finalStage(dockerfile).findLast((i) => i.keyword === keyword)!.args)
  );
  assert.deepEqual(entrypoint!.slice(0, 2), ["deno", "run"]);
  assert.deepEqual(defaultCommand, ["main.ts"], "the image runs a gateway by default");
  for (const [name, service] of chat) {
    assert.equal(service.build, ".", `${name} is built from the Dockerfile`);
    const command: string[] = service.command ?? defaultCommand!;
    await Deno.stat(new URL(`../${command[0]}`, import.meta.url));
    assert.equal(command[0], gateways.some(([n]) => n === name) ? "main.ts" : "processor.ts");
  }
});

Deno.test("compose gives the chat services only real settings, with values the app accepts", () => {
  const names = settingNames();
  for (const [name, service] of chat) {
    for (const variable of Object.keys(effectiveEnv(service))) {
      assert.ok(names.has(variable), `${name}: ${variable} is not a setting of core/config.ts`);
    }
    const config = loadConfig(effectiveEnv(service));
    assert.equal(config.bus, "kafka", `${name} runs on Kafka`);
    // The brokers' internal listener: containers cannot reach the host's 127.0.0.1.
    const internal = brokers.map(([, s]) => {
      const listener = env(s, "KAFKA_INTER_BROKER_LISTENER_NAME");
      const advertised = listeners(env(s, "KAFKA_ADVERTISED_LISTENERS")).get(listener)!;
      return `${advertised.host}:${advertised.port}`;
    });
    assert.deepEqual([...config.kafkaBrokers].sort(), internal.sort(), `${name}: KAFKA_BROKERS`);
    const database = new URL(config.databaseUrl ?? "");
    const [postgresName, postgres] = services.find(([, s]) => s.image?.startsWith("postgres:"))!;
    assert.equal(database.hostname, postgresName, `${name} uses the compose PostgreSQL`);
    assert.equal(database.username, env(postgres, "POSTGRES_USER"));
    assert.equal(database.pathname, `/${env(postgres, "POSTGRES_DB")}`);
    assert.equal(config.grpcHost, "0.0.0.0", `${name} listens beyond the container`);
    assert.equal(config.httpHost, "0.0.0.0", `${name} listens beyond the container`);
  }
  const serverIds = gateways.map(([, s]) => loadConfig(effectiveEnv(s)).serverId);
  assert.equal(new Set(serverIds).size, gateways.length, "each gateway has its own SERVER_ID");
});

Deno.test("compose gateways publish their configured ports on 127.0.0.1 and share the token secret", () => {
  const published = new Set<number>();
  const secretVolumes = new Set<string>();
  for (const [name, service] of gateways) {
    const config = loadConfig(effectiveEnv(service));
    const mappings = (service.ports ?? []).map(portMapping);
    assert.deepEqual(
      mappings.map((m) => m.container).sort(),
      [config.httpPort, config.grpcPort].sort(),
      `${name} publishes its HTTP and gRPC ports`,
    );
    for (const mapping of mappings) {
      assert.equal(mapping.ip, "127.0.0.1", `${name} publishes on 127.0.0.1 only`);
      assert.ok(!published.has(mapping.host), `${name}: host port ${mapping.host} is taken`);
      published.add(mapping.host);
    }
    // No AUTH_SECRET in the file: the first gateway writes AUTH_SECRET_FILE, the others read it.
    assert.equal(config.authSecret, undefined, `${name}: no secret written in compose.yaml`);
    const directory = config.authSecretFile.slice(0, config.authSecretFile.lastIndexOf("/"));
    const volume = service.volumes?.find((v) => v.endsWith(`:${directory}`));
    assert.ok(volume, `${name} mounts a volume on ${directory}`);
    secretVolumes.add(volume.split(":")[0]!);
  }
  assert.equal(secretVolumes.size, 1, "the gateways share one volume for the token secret");
});

Deno.test("compose health checks: gateways /healthz (the image's), processors /metrics on METRICS_PORT", () => {
  const healthcheck = finalStage(dockerfile).find((i) => i.keyword === "HEALTHCHECK");
  assert.ok(healthcheck, "the image has a HEALTHCHECK");
  const imageCheck = fetchedUrl(healthcheck.args);
  assert.equal(imageCheck.url.pathname, "/healthz");
  assert.equal(imageCheck.portSetting, "HTTP_PORT");
  assert.ok(settingNames().has(imageCheck.portSetting!));
  for (const [name, service] of gateways) {
    assert.equal(service.healthcheck, undefined, `${name} keeps the image's health check`);
    assert.equal(Number(imageCheck.url.port), loadConfig({}).httpPort, "the check's default port");
  }
  for (const [name, service] of processors) {
    const { url } = fetchedUrl(service.healthcheck?.test.join(" ") ?? "");
    assert.equal(url.pathname, "/metrics", `${name} is checked on /metrics`);
    assert.equal(Number(url.port), loadConfig(effectiveEnv(service)).metricsPort);
  }
});

Deno.test("compose start order: each service waits until what it needs is healthy", () => {
  const byName = new Map(services);
  const healthy = (name: string) =>
    byName.get(name)?.healthcheck !== undefined ||
    (byName.get(name)?.build !== undefined && !processors.some(([n]) => n === name));
  for (const [name, service] of services) {
    for (const [target, { condition }] of Object.entries(dependencies(service))) {
      assert.ok(byName.has(target), `${name} depends on ${target}, which is no service`);
      assert.equal(condition, "service_healthy", `${name} waits for ${target} to be healthy`);
      assert.ok(healthy(target), `${target} has a health check`);
      for (const profile of service.profiles ?? []) {
        assert.ok(byName.get(target)!.profiles?.includes(profile), `${target} is in ${profile}`);
      }
    }
  }
  for (const [name, service] of chat) {
    const needs = Object.keys(dependencies(service)).sort();
    const postgres = services.find(([, s]) => s.image?.startsWith("postgres:"))![0];
    assert.deepEqual(needs, [...brokers.map(([n]) => n), postgres].sort(), name);
  }
});

Deno.test("compose stops gateways and processors no sooner than their drain ends", () => {
  for (const [name, service] of chat) {
    const grace = service.stop_grace_period?.match(/^(\d+)s$/);
    assert.ok(grace, `${name} has a stop_grace_period in seconds`);
    const { shutdownTimeoutMs } = loadConfig(effectiveEnv(service));
    assert.ok(Number(grace[1]) * 1000 > shutdownTimeoutMs, `${name}: longer than the drain`);
  }
});
