/**
 * Configuration, read once from environment variables with typed defaults.
 *
 * Every setting of the gateway, the processor and the client lives here so
 * the README's table and the start-up banner have one source. How one setting is parsed is in
 * core/settings.ts; how a database URL is shown without its secrets, in core/url_secrets.ts.
 */

import { DEFAULT_MAX_RESUME_ROOMS } from "../protocol/limits.ts";
import {
  bool,
  type Env,
  int,
  intAtLeast,
  intAtMost,
  oneOf,
  optionalInt,
  pair,
  readSettingFile,
  requires,
} from "./settings.ts";
import { maskUrl } from "./url_secrets.ts";
import { MAX_LOG_EPOCH } from "../bus/kafka/positions.ts";

export type BusKind = "memory" | "kafka";

export const DEFAULT_KAFKA_BROKERS = ["127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"];

export interface Config {
  bus: BusKind;
  kafkaBrokers: string[];
  kafkaClientId: string;
  serverId: string;
  grpcHost: string;
  grpcPort: number;
  httpHost: string;
  httpPort: number;
  maxMessageBytes: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** How many not-yet-written messages a stream may hold before it is cut as too slow. */
  streamQueueLimit: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** `text` (readable lines, the original design's) or `json` (one object per line) (`LOG_FORMAT`). */
  logFormat: "text" | "json";
  /** Whether the process counts and serves Prometheus metrics (`METRICS`). */
  metrics: boolean;
  /** The processor's metrics port (`METRICS_PORT`); the gateway serves `/metrics` on `HTTP_PORT`. */
  metricsPort: number;
  databasePath: string;
  databaseUrl: string | undefined;
  shutdownTimeoutMs: number;
  /** How often the gateway pings a connection to notice a peer that vanished (`KEEPALIVE_TIME_MS`). */
  keepaliveTimeMs: number;
  /** How long a ping may go unanswered before the connection is closed (`KEEPALIVE_TIMEOUT_MS`). */
  keepaliveTimeoutMs: number;
  /**
   * Connections open at once on each port (`MAX_CONNECTIONS`). At the cap a new connection takes
   * the place of the oldest one that has no call being served (still in its handshake, headers or
   * body, or idle), or is refused when every connection has one.
   */
  maxConnections: number;
  /** Connections one client address (an IPv4 address, an IPv6 /64) may hold on each port (`MAX_CONNECTIONS_PER_ADDRESS`); at the cap as above. */
  maxConnectionsPerAddress: number;
  /** Calls one client address may have open at once on each port, streams included (`MAX_CALLS_PER_ADDRESS`); more are RESOURCE_EXHAUSTED. */
  maxCallsPerAddress: number;
  /** Calls one HTTP/2 connection may carry at once: SETTINGS_MAX_CONCURRENT_STREAMS on both ports (`MAX_STREAMS_PER_CONNECTION`). */
  maxStreamsPerConnection: number;
  /** How long a new connection may take to deliver its first request's headers, TLS handshake included (`HEADERS_TIMEOUT_MS`). */
  headersTimeoutMs: number;
  /** How long a request's body may take to arrive after its headers (`BODY_TIMEOUT_MS`). */
  bodyTimeoutMs: number;
  /** How long a connection may stay open with no call (`IDLE_TIMEOUT_MS`); gRPC connections get a GOAWAY. */
  idleTimeoutMs: number;
  /** A gRPC connection older than this gets a GOAWAY: new calls go to a new connection, open streams go on (`MAX_CONNECTION_AGE_MS`; 0: never). */
  maxConnectionAgeMs: number;
  /**
   * Memory one HTTP/2 session may buffer before it is refused more (`MAX_SESSION_MEMORY_MB`),
   * passed to node:http2 as `maxSessionMemory`. Deno 2.9.3 takes it but does not enforce it (it
   * keeps no per-session memory account: ext/node/ops/http2/stream.rs); a runtime that does will.
   */
  maxSessionMemoryMb: number;
  /** How often connections closed for breaking the limits are summed up in one log line (`LIMITS_REPORT_INTERVAL_MS`). */
  limitsReportIntervalMs: number;
  /** `Strict-Transport-Security: max-age` on HTTPS responses (`HSTS_MAX_AGE_SECONDS`; 0: no header). */
  hstsMaxAgeSeconds: number;
  /** Origins a browser page may call the browser API from besides its own (`CORS_ORIGINS`). */
  corsOrigins: string[];
  /** Whether calls need a signed-in token (`AUTH`, "on") or trust the claimed user id ("off"). */
  auth: "on" | "off";
  /** The token-signing secret (`AUTH_SECRET`, at least 32 characters); unset → `authSecretFile`. */
  authSecret: string | undefined;
  /** Where the generated secret is kept when `AUTH_SECRET` is unset (`AUTH_SECRET_FILE`). */
  authSecretFile: string;
  /** How long a sign-in token is valid (`TOKEN_TTL_SECONDS`). */
  tokenTtlSeconds: number;
  /** Calls each user (or address) may make per second, on average (`RATE_LIMIT_PER_SECOND`). */
  rateLimitPerSecond: number;
  /** Calls a user may make at once before the rate limit applies (`RATE_LIMIT_BURST`). */
  rateLimitBurst: number;
  /** Searches each user may make per second, on average (`SEARCH_RATE_PER_SECOND`). */
  searchRatePerSecond: number;
  /** Searches a user may make at once before their rate limit applies (`SEARCH_BURST`). */
  searchBurst: number;
  /** The longest room name, in characters (`MAX_ROOM_NAME_LENGTH`). */
  maxRoomNameLength: number;
  /** How many rooms one user may be a member of (`MAX_ROOMS_PER_USER`). */
  maxRoomsPerUser: number;
  /** How many open message streams one user may hold (`MAX_STREAMS_PER_USER`). */
  maxStreamsPerUser: number;
  /** How many rooms one `Connect.resume` may list (`MAX_RESUME_ROOMS`); more is INVALID_ARGUMENT. */
  maxResumeRooms: number;
  /**
   * How many direct rooms one user may have opened and still be in (`MAX_DIRECT_ROOMS_PER_USER`).
   * Direct rooms do not count against `maxRoomsPerUser`, and a room someone else opened with a
   * user does not count against that user's allowance.
   */
  maxDirectRoomsPerUser: number;
  /** New direct rooms one user may open per minute, on average (`DIRECT_ROOMS_PER_MINUTE`; 0: no limit). */
  directRoomsPerMinute: number;
  /** New direct rooms a user may open at once before `directRoomsPerMinute` applies (`DIRECT_ROOMS_BURST`, at least 1). */
  directRoomsBurst: number;
  /**
   * How far a client's message timestamp may be from the server's clock (`MAX_CLOCK_SKEW_MS`);
   * further is INVALID_ARGUMENT. Messages are stamped with the server's time either way.
   */
  maxClockSkewMs: number;
  /** PEM certificate (chain) for TLS on the gRPC port and HTTPS on the web port (`TLS_CERT_FILE`); with `tlsKeyFile`. */
  tlsCertFile: string | undefined;
  /** PEM private key of `tlsCertFile` (`TLS_KEY_FILE`). */
  tlsKeyFile: string | undefined;
  /** PEM CA certificates: when set, clients of both ports must present a certificate they signed (`TLS_CLIENT_CA_FILE`). */
  tlsClientCaFile: string | undefined;
  /** Whether the Kafka client connects with TLS (`KAFKA_SSL`). */
  kafkaSsl: boolean;
  /** PEM CA certificates the Kafka brokers' certificates are checked against (`KAFKA_SSL_CA_FILE`); unset → system roots. */
  kafkaSslCaFile: string | undefined;
  /** PEM client certificate for Kafka (`KAFKA_SSL_CERT_FILE`); with `kafkaSslKeyFile`. */
  kafkaSslCertFile: string | undefined;
  /** PEM private key of `kafkaSslCertFile` (`KAFKA_SSL_KEY_FILE`). */
  kafkaSslKeyFile: string | undefined;
  /** Whether the brokers' certificates are checked (`KAFKA_SSL_REJECT_UNAUTHORIZED`). */
  kafkaSslRejectUnauthorized: boolean;
  /** SASL mechanism for Kafka (`KAFKA_SASL_MECHANISM`); unset → no SASL. */
  kafkaSaslMechanism: KafkaSaslMechanism | undefined;
  /** `KAFKA_SASL_USERNAME`. */
  kafkaSaslUsername: string | undefined;
  /** `KAFKA_SASL_PASSWORD`; never printed. */
  kafkaSaslPassword: string | undefined;
  /** Copies Kafka keeps of each topic (`KAFKA_REPLICATION_FACTOR`); unset → min(3, brokers). */
  kafkaReplicationFactor: number | undefined;
  /** Copies a write needs before Kafka acknowledges it (`KAFKA_MIN_INSYNC_REPLICAS`); unset → min(2, factor). */
  kafkaMinInsyncReplicas: number | undefined;
  /**
   * The room logs' epoch (`KAFKA_LOG_EPOCH`, 0 to MAX_LOG_EPOCH): positions are epoch × 2^40 +
   * offset + 1. Raised after `chatting` was recreated, so that positions keep going up.
   */
  kafkaLogEpoch: number;
  /**
   * How long a send may wait for Kafka before it answers UNAVAILABLE (`SEND_TIMEOUT_MS`), well
   * under the 10 s deadline clients commonly set, so a client never has to guess from
   * DEADLINE_EXCEEDED whether its message was stored.
   */
  sendTimeoutMs: number;
  /** Start a gateway even on a Deno release known to crash it (`ALLOW_UNSAFE_DENO`; core/runtime_guard.ts). */
  allowUnsafeDeno: boolean;
  /**
   * Wrong passwords for one username before each further try must wait
   * (`SIGNIN_FREE_FAILURES`); a successful sign-in of that name resets the count.
   */
  signInFreeFailures: number;
  /**
   * Wrong passwords from one client address (an IPv4 address, an IPv6 /64), whatever the
   * usernames, before each further try from it must wait (`SIGNIN_FREE_FAILURES_PER_ADDRESS`).
   */
  signInFreeFailuresPerAddress: number;
  /** The wait after the last free failure (`SIGNIN_DELAY_MS`); it doubles with each further one. */
  signInDelayMs: number;
  /** The longest wait between tries (`SIGNIN_MAX_DELAY_MS`). */
  signInMaxDelayMs: number;
  /** Failures are forgotten this long after the last one (`SIGNIN_FAILURE_WINDOW_MS`). */
  signInFailureWindowMs: number;
  /** Password hashes (argon2id) computed at once (`SIGNIN_HASH_CONCURRENCY`). */
  signInHashConcurrency: number;
  /**
   * Sign-ins that may wait for a hash (`SIGNIN_HASH_QUEUE`); a sign-in that finds the queue full
   * is answered RESOURCE_EXHAUSTED, so a flood delays a real sign-in by at most this many hashes.
   */
  signInHashQueue: number;
  /** New accounts one client address may create per hour, all of them at once (`ACCOUNTS_PER_ADDRESS_PER_HOUR`). */
  accountsPerAddressPerHour: number;
  /** New accounts a gateway creates per hour from all addresses (`ACCOUNTS_PER_HOUR`). */
  accountsPerHour: number;
  /** New accounts a gateway creates at once from all addresses (`ACCOUNTS_BURST`). */
  accountsBurst: number;
}

export const KAFKA_SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const;
export type KafkaSaslMechanism = typeof KAFKA_SASL_MECHANISMS[number];

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** Reads the configuration from `env` (by default the process environment). */
export function loadConfig(env: Env = Deno.env.toObject()): Config {
  const brokers = (env.KAFKA_BROKERS ?? "").split(",").map((b) => b.trim()).filter(Boolean);
  const [tlsCertFile, tlsKeyFile] = pair(env, "TLS_CERT_FILE", "TLS_KEY_FILE");
  requires(env, "TLS_CLIENT_CA_FILE", "TLS_CERT_FILE and TLS_KEY_FILE", tlsCertFile !== undefined);
  const kafkaSsl = bool(env, "KAFKA_SSL", false);
  const [kafkaSslCertFile, kafkaSslKeyFile] = pair(
    env,
    "KAFKA_SSL_CERT_FILE",
    "KAFKA_SSL_KEY_FILE",
  );
  for (const name of ["KAFKA_SSL_CA_FILE", "KAFKA_SSL_CERT_FILE", "KAFKA_SSL_KEY_FILE"]) {
    requires(env, name, "KAFKA_SSL=true", kafkaSsl);
  }
  const kafkaSaslMechanism = env.KAFKA_SASL_MECHANISM
    ? oneOf(env, "KAFKA_SASL_MECHANISM", KAFKA_SASL_MECHANISMS, "plain")
    : undefined;
  for (const name of ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"]) {
    requires(env, name, "KAFKA_SASL_MECHANISM", kafkaSaslMechanism !== undefined);
    if (kafkaSaslMechanism !== undefined && !env[name]) {
      throw new Error(`Cannot read configuration: KAFKA_SASL_MECHANISM is set but ${name} is not`);
    }
  }
  return {
    bus: oneOf(env, "BUS", ["memory", "kafka"] as const, "memory"),
    kafkaBrokers: brokers.length > 0 ? brokers : [...DEFAULT_KAFKA_BROKERS],
    kafkaClientId: env.KAFKA_CLIENT_ID || "chat",
    serverId: env.SERVER_ID || `grpc-server-${hostname()}-${Deno.pid}`,
    grpcHost: env.GRPC_HOST || "127.0.0.1",
    grpcPort: int(env, "GRPC_PORT", 8081),
    httpHost: env.HTTP_HOST || "127.0.0.1",
    httpPort: int(env, "HTTP_PORT", 8080),
    maxMessageBytes: int(env, "MAX_MESSAGE_BYTES", 64 * 1024),
    heartbeatIntervalMs: int(env, "HEARTBEAT_INTERVAL_MS", 3000),
    heartbeatTimeoutMs: int(env, "HEARTBEAT_TIMEOUT_MS", 10_000),
    streamQueueLimit: int(env, "STREAM_QUEUE_LIMIT", 1000),
    logLevel: oneOf(env, "LOG_LEVEL", ["debug", "info", "warn", "error"] as const, "info"),
    logFormat: oneOf(env, "LOG_FORMAT", ["text", "json"] as const, "text"),
    metrics: oneOf(env, "METRICS", ["on", "off"] as const, "on") === "on",
    metricsPort: int(env, "METRICS_PORT", 9464),
    databasePath: env.DATABASE_PATH || "data/chat.db",
    databaseUrl: env.DATABASE_URL || undefined,
    shutdownTimeoutMs: int(env, "SHUTDOWN_TIMEOUT_MS", 10_000),
    keepaliveTimeMs: int(env, "KEEPALIVE_TIME_MS", 30_000),
    keepaliveTimeoutMs: int(env, "KEEPALIVE_TIMEOUT_MS", 10_000),
    maxConnections: intAtLeast(env, "MAX_CONNECTIONS", 10_000, 1),
    maxConnectionsPerAddress: intAtLeast(env, "MAX_CONNECTIONS_PER_ADDRESS", 500, 1),
    maxCallsPerAddress: intAtLeast(env, "MAX_CALLS_PER_ADDRESS", 1000, 1),
    maxStreamsPerConnection: intAtLeast(env, "MAX_STREAMS_PER_CONNECTION", 100, 1),
    headersTimeoutMs: intAtLeast(env, "HEADERS_TIMEOUT_MS", 10_000, 1),
    bodyTimeoutMs: intAtLeast(env, "BODY_TIMEOUT_MS", 20_000, 1),
    idleTimeoutMs: intAtLeast(env, "IDLE_TIMEOUT_MS", 30_000, 1),
    maxConnectionAgeMs: int(env, "MAX_CONNECTION_AGE_MS", 60 * 60 * 1000),
    maxSessionMemoryMb: intAtLeast(env, "MAX_SESSION_MEMORY_MB", 32, 1),
    limitsReportIntervalMs: intAtLeast(env, "LIMITS_REPORT_INTERVAL_MS", 10_000, 1),
    hstsMaxAgeSeconds: int(env, "HSTS_MAX_AGE_SECONDS", 365 * 24 * 60 * 60),
    corsOrigins: (env.CORS_ORIGINS ?? "").split(",").map((o) => o.trim()).filter(Boolean),
    auth: oneOf(env, "AUTH", ["on", "off"] as const, "on"),
    authSecret: env.AUTH_SECRET || undefined,
    authSecretFile: env.AUTH_SECRET_FILE || "data/auth-secret",
    tokenTtlSeconds: int(env, "TOKEN_TTL_SECONDS", 7 * 24 * 60 * 60),
    rateLimitPerSecond: int(env, "RATE_LIMIT_PER_SECOND", 5),
    rateLimitBurst: int(env, "RATE_LIMIT_BURST", 20),
    searchRatePerSecond: intAtLeast(env, "SEARCH_RATE_PER_SECOND", 2, 1),
    searchBurst: intAtLeast(env, "SEARCH_BURST", 5, 1),
    maxRoomNameLength: int(env, "MAX_ROOM_NAME_LENGTH", 64),
    maxRoomsPerUser: int(env, "MAX_ROOMS_PER_USER", 100),
    maxStreamsPerUser: int(env, "MAX_STREAMS_PER_USER", 10),
    maxResumeRooms: int(env, "MAX_RESUME_ROOMS", DEFAULT_MAX_RESUME_ROOMS),
    maxDirectRoomsPerUser: int(env, "MAX_DIRECT_ROOMS_PER_USER", 100),
    directRoomsPerMinute: int(env, "DIRECT_ROOMS_PER_MINUTE", 10),
    directRoomsBurst: int(env, "DIRECT_ROOMS_BURST", 5),
    maxClockSkewMs: int(env, "MAX_CLOCK_SKEW_MS", 5 * 60 * 1000),
    tlsCertFile,
    tlsKeyFile,
    tlsClientCaFile: env.TLS_CLIENT_CA_FILE || undefined,
    kafkaSsl,
    kafkaSslCaFile: env.KAFKA_SSL_CA_FILE || undefined,
    kafkaSslCertFile,
    kafkaSslKeyFile,
    kafkaSslRejectUnauthorized: bool(env, "KAFKA_SSL_REJECT_UNAUTHORIZED", true),
    kafkaSaslMechanism,
    kafkaSaslUsername: env.KAFKA_SASL_USERNAME || undefined,
    kafkaSaslPassword: env.KAFKA_SASL_PASSWORD || undefined,
    kafkaReplicationFactor: optionalInt(env, "KAFKA_REPLICATION_FACTOR", 1),
    kafkaMinInsyncReplicas: optionalInt(env, "KAFKA_MIN_INSYNC_REPLICAS", 1),
    kafkaLogEpoch: intAtMost(env, "KAFKA_LOG_EPOCH", 0, MAX_LOG_EPOCH),
    sendTimeoutMs: int(env, "SEND_TIMEOUT_MS", 5000),
    allowUnsafeDeno: bool(env, "ALLOW_UNSAFE_DENO", false),
    signInFreeFailures: int(env, "SIGNIN_FREE_FAILURES", 5),
    signInFreeFailuresPerAddress: int(env, "SIGNIN_FREE_FAILURES_PER_ADDRESS", 20),
    signInDelayMs: intAtLeast(env, "SIGNIN_DELAY_MS", 1000, 1),
    signInMaxDelayMs: intAtLeast(env, "SIGNIN_MAX_DELAY_MS", 5 * 60 * 1000, 1),
    signInFailureWindowMs: intAtLeast(env, "SIGNIN_FAILURE_WINDOW_MS", 60 * 60 * 1000, 1),
    signInHashConcurrency: intAtLeast(env, "SIGNIN_HASH_CONCURRENCY", 2, 1),
    signInHashQueue: int(env, "SIGNIN_HASH_QUEUE", 16),
    accountsPerAddressPerHour: intAtLeast(env, "ACCOUNTS_PER_ADDRESS_PER_HOUR", 20, 1),
    accountsPerHour: intAtLeast(env, "ACCOUNTS_PER_HOUR", 600, 1),
    accountsBurst: intAtLeast(env, "ACCOUNTS_BURST", 60, 1),
  };
}

/** The PEM texts of the gateway's certificate, key and client CA. */
export interface TlsFiles {
  cert: string;
  key: string;
  /** Set: clients of both ports must present a certificate signed by one of these. */
  clientCa?: string;
}

/**
 * Reads the TLS files of `config`: undefined when TLS is not configured; throws a start-up
 * error naming the setting when only one of certificate and key is set, or a file cannot be
 * read or holds no PEM certificate / key.
 */
export function readTlsFiles(
  config: Pick<Config, "tlsCertFile" | "tlsKeyFile" | "tlsClientCaFile">,
  readFile: (path: string) => string = Deno.readTextFileSync,
): TlsFiles | undefined {
  const { tlsCertFile, tlsKeyFile, tlsClientCaFile } = config;
  pair(
    { TLS_CERT_FILE: tlsCertFile, TLS_KEY_FILE: tlsKeyFile },
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
  );
  if (tlsCertFile === undefined || tlsKeyFile === undefined) {
    requires({ TLS_CLIENT_CA_FILE: tlsClientCaFile }, "TLS_CLIENT_CA_FILE", "TLS_CERT_FILE", false);
    return undefined;
  }
  const pem = (name: string, path: string, what: "certificate" | "private key") => {
    const text = readSettingFile(name, path, readFile);
    if (!new RegExp(`-----BEGIN [A-Z ]*${what.toUpperCase()}-----`).test(text)) {
      throw new Error(
        `Cannot read configuration: ${name} is "${path}", which holds no PEM ${what}`,
      );
    }
    return text;
  };
  const cert = pem("TLS_CERT_FILE", tlsCertFile, "certificate");
  const key = pem("TLS_KEY_FILE", tlsKeyFile, "private key");
  if (tlsClientCaFile === undefined) return { cert, key };
  return { cert, key, clientCa: pem("TLS_CLIENT_CA_FILE", tlsClientCaFile, "certificate") };
}

/** The settings as `name=value` lines for the start-up banner. */
export function describeConfig(config: Config): string {
  return Object.entries(config)
    .map(([k, v]) => {
      // The token-signing secret and the Kafka password are never shown, only whether they are set.
      if (k === "authSecret" || k === "kafkaSaslPassword") {
        return `${k}=${v === undefined ? "undefined" : "***"}`;
      }
      // A database URL may hold passwords (user-info, query parameters): shown masked.
      if (k === "databaseUrl" && typeof v === "string") return `${k}=${maskUrl(v)}`;
      return `${k}=${Array.isArray(v) ? v.join(",") : String(v)}`;
    })
    .join(" ");
}
