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
  // Positions past 2^53 would not be exact: the epoch stops where they would.
  assert.equal(loadConfig({}).kafkaLogEpoch, 0);
  assert.equal(loadConfig({ KAFKA_LOG_EPOCH: "8190" }).kafkaLogEpoch, 8190);
  assert.throws(
    () => loadConfig({ KAFKA_LOG_EPOCH: "8191" }),
    /KAFKA_LOG_EPOCH is "8191", expected at most 8190/,
  );
});

Deno.test("the start-up banner hides database passwords", () => {
  const text = describeConfig(loadConfig({ DATABASE_URL: "postgres://chat:s3cret@db:5432/chat" }));
  assert.match(text, /databaseUrl=postgres:\/\/chat:\*\*\*@db:5432\/chat/);
  assert.doesNotMatch(text, /s3cret/);
});

Deno.test("auth and limit settings have typed defaults", () => {
  const c = loadConfig({});
  assert.equal(c.auth, "on");
  assert.equal(c.authSecret, undefined);
  assert.equal(c.authSecretFile, "data/auth-secret");
  assert.equal(c.tokenTtlSeconds, 7 * 24 * 60 * 60);
  assert.equal(c.rateLimitPerSecond, 5);
  assert.equal(c.rateLimitBurst, 20);
  assert.equal(c.maxRoomNameLength, 64);
  assert.equal(c.maxRoomsPerUser, 100);
  assert.equal(c.maxStreamsPerUser, 10);
});

Deno.test("auth and limit settings come from the environment", () => {
  const c = loadConfig({
    AUTH: "off",
    AUTH_SECRET: "x".repeat(32),
    AUTH_SECRET_FILE: "/run/chat/secret",
    TOKEN_TTL_SECONDS: "60",
    RATE_LIMIT_PER_SECOND: "2",
    RATE_LIMIT_BURST: "4",
    MAX_ROOM_NAME_LENGTH: "10",
    MAX_ROOMS_PER_USER: "3",
    MAX_STREAMS_PER_USER: "1",
  });
  assert.equal(c.auth, "off");
  assert.equal(c.authSecret, "x".repeat(32));
  assert.equal(c.authSecretFile, "/run/chat/secret");
  assert.equal(c.tokenTtlSeconds, 60);
  assert.equal(c.rateLimitPerSecond, 2);
  assert.equal(c.rateLimitBurst, 4);
  assert.equal(c.maxRoomNameLength, 10);
  assert.equal(c.maxRoomsPerUser, 3);
  assert.equal(c.maxStreamsPerUser, 1);
  assert.throws(() => loadConfig({ AUTH: "maybe" }), /AUTH is "maybe", expected one of on, off/);
  assert.throws(() => loadConfig({ RATE_LIMIT_BURST: "1.5" }), /RATE_LIMIT_BURST is "1.5"/);
});

Deno.test("the start-up banner hides the auth secret", () => {
  const text = describeConfig(loadConfig({ AUTH_SECRET: "topsecret".repeat(4) }));
  assert.match(text, /authSecret=\*\*\*/);
  assert.doesNotMatch(text, /topsecret/);
  assert.match(describeConfig(loadConfig({})), /authSecret=undefined/);
});

Deno.test("resume, direct-room and clock-skew limits have typed defaults and come from the environment", () => {
  const c = loadConfig({});
  assert.equal(c.maxResumeRooms, 256);
  assert.equal(c.maxDirectRoomsPerUser, 100);
  assert.equal(c.directRoomsPerMinute, 10);
  assert.equal(c.directRoomsBurst, 5);
  assert.equal(c.maxClockSkewMs, 300_000);
  const set = loadConfig({
    MAX_RESUME_ROOMS: "8",
    MAX_DIRECT_ROOMS_PER_USER: "2",
    DIRECT_ROOMS_PER_MINUTE: "0",
    DIRECT_ROOMS_BURST: "1",
    MAX_CLOCK_SKEW_MS: "1000",
  });
  assert.deepEqual(
    [
      set.maxResumeRooms,
      set.maxDirectRoomsPerUser,
      set.directRoomsPerMinute,
      set.directRoomsBurst,
      set.maxClockSkewMs,
    ],
    [8, 2, 0, 1, 1000],
  );
  assert.throws(() => loadConfig({ MAX_RESUME_ROOMS: "-1" }), /MAX_RESUME_ROOMS is "-1"/);
});

Deno.test("connection limits and transport settings have typed defaults and come from the environment", () => {
  const c = loadConfig({});
  assert.equal(c.maxConnections, 10_000);
  assert.equal(c.maxConnectionsPerAddress, 500);
  assert.equal(c.maxCallsPerAddress, 1000);
  assert.equal(c.maxStreamsPerConnection, 100);
  assert.equal(c.headersTimeoutMs, 10_000);
  assert.equal(c.bodyTimeoutMs, 20_000);
  assert.equal(c.idleTimeoutMs, 30_000);
  assert.equal(c.maxConnectionAgeMs, 60 * 60 * 1000);
  assert.equal(c.maxSessionMemoryMb, 32);
  assert.equal(c.limitsReportIntervalMs, 10_000);
  assert.equal(c.hstsMaxAgeSeconds, 365 * 24 * 60 * 60);
  const set = loadConfig({
    MAX_CONNECTIONS: "50",
    MAX_CONNECTIONS_PER_ADDRESS: "5",
    MAX_CALLS_PER_ADDRESS: "7",
    MAX_STREAMS_PER_CONNECTION: "3",
    HEADERS_TIMEOUT_MS: "1000",
    BODY_TIMEOUT_MS: "2000",
    IDLE_TIMEOUT_MS: "3000",
    MAX_CONNECTION_AGE_MS: "0",
    MAX_SESSION_MEMORY_MB: "8",
    LIMITS_REPORT_INTERVAL_MS: "500",
    HSTS_MAX_AGE_SECONDS: "0",
  });
  assert.deepEqual(
    [
      set.maxConnections,
      set.maxConnectionsPerAddress,
      set.maxCallsPerAddress,
      set.maxStreamsPerConnection,
      set.headersTimeoutMs,
      set.bodyTimeoutMs,
      set.idleTimeoutMs,
      set.maxConnectionAgeMs,
      set.maxSessionMemoryMb,
      set.limitsReportIntervalMs,
      set.hstsMaxAgeSeconds,
    ],
    [50, 5, 7, 3, 1000, 2000, 3000, 0, 8, 500, 0],
  );
  // A cap or a timeout of 0 would refuse every connection.
  assert.throws(() => loadConfig({ MAX_CONNECTIONS: "0" }), /MAX_CONNECTIONS is "0"/);
  assert.throws(() => loadConfig({ IDLE_TIMEOUT_MS: "0" }), /IDLE_TIMEOUT_MS is "0"/);
});
