/**
 * compose.yaml must run the cluster the app expects: the brokers of DEFAULT_KAFKA_BROKERS, three
 * KRaft voters, replication that fits TOPICS, the same guarantees as kafka/cluster.ts, Kafka UI
 * on 8090.
 */

import assert from "node:assert/strict";
import { chooseReplication } from "../bus/kafka/replication.ts";
import { parse } from "yaml";
import { DEFAULT_KAFKA_BROKERS } from "../core/config.ts";
import { GUARANTEE_SETTINGS } from "../kafka/layout.ts";

interface Service {
  image?: string;
  hostname?: string;
  ports?: string[];
  environment?: Record<string, string | number | boolean>;
  depends_on?: string[] | Record<string, unknown>;
}

const compose = parse(
  await Deno.readTextFile(new URL("../compose.yaml", import.meta.url)),
  { merge: true },
) as { services: Record<string, Service> };

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
