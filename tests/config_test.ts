import assert from "node:assert/strict";
import { describeConfig, loadConfig } from "../core/config.ts";

Deno.test("defaults match the README", () => {
  const c = loadConfig({});
  assert.equal(c.bus, "memory");
  assert.equal(c.grpcPort, 8081);
  assert.equal(c.httpPort, 8080);
  assert.deepEqual(c.kafkaBrokers, ["127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"]);
  assert.equal(c.maxMessageBytes, 65536);
  assert.equal(c.heartbeatTimeoutMs, 10_000);
  assert.match(c.serverId, /^grpc-server-.+-\d+$/);
});

Deno.test("settings come from the environment", () => {
  const c = loadConfig({
    BUS: "kafka",
    KAFKA_BROKERS: "10.0.0.1:9092, 10.0.0.2:9092",
    SERVER_ID: "gw-a",
    GRPC_PORT: "9001",
    MAX_MESSAGE_BYTES: "100",
  });
  assert.equal(c.bus, "kafka");
  assert.deepEqual(c.kafkaBrokers, ["10.0.0.1:9092", "10.0.0.2:9092"]);
  assert.equal(c.serverId, "gw-a");
  assert.equal(c.grpcPort, 9001);
  assert.equal(c.maxMessageBytes, 100);
});

Deno.test("a bad setting is refused with a message naming it", () => {
  assert.throws(
    () => loadConfig({ GRPC_PORT: "eighty" }),
    /GRPC_PORT is "eighty", expected a whole number/,
  );
  assert.throws(
    () => loadConfig({ BUS: "redis" }),
    /BUS is "redis", expected one of memory, kafka/,
  );
});

Deno.test("the start-up banner hides database passwords", () => {
  const text = describeConfig(loadConfig({ DATABASE_URL: "postgres://chat:s3cret@db:5432/chat" }));
  assert.match(text, /databaseUrl=postgres:\/\/chat:\*\*\*@db:5432\/chat/);
  assert.doesNotMatch(text, /s3cret/);
});
