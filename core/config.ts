/**
 * Configuration, read once from environment variables with typed defaults.
 *
 * Every setting of the gateway, the processor and the client lives here so
 * the README's table and the start-up banner have one source.
 */

export type BusKind = "memory" | "kafka";

export interface KafkaTopicSpec {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Extra topic-level configs, for example `cleanup.policy`. */
  readonly configs?: Readonly<Record<string, string>>;
}

/** The topics of the original design plus the additive ones; names and counts are the wire contract. */
export const TOPICS = {
  chatting: { name: "chatting", partitions: 2, replicationFactor: 2 },
  userConnections: { name: "user-connections", partitions: 3, replicationFactor: 2 },
  heartbeats: {
    name: "gateway-heartbeats",
    partitions: 1,
    replicationFactor: 2,
    configs: { "retention.ms": String(60 * 60 * 1000) },
  },
  deliveries: { name: "chat-deliveries", partitions: 2, replicationFactor: 2 },
  presence: {
    name: "presence",
    partitions: 3,
    replicationFactor: 2,
    configs: { "cleanup.policy": "compact" },
  },
} as const satisfies Record<string, KafkaTopicSpec>;

/** Every topic the service uses, for creating them. */
export const ALL_TOPICS: readonly KafkaTopicSpec[] = Object.values(TOPICS);

export const PROCESSOR_GROUP = "chatting-processor-group";
export const DEFAULT_KAFKA_BROKERS = ["127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"];
export const DEFAULT_ROOM = "general";

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
  databasePath: string;
  databaseUrl: string | undefined;
  shutdownTimeoutMs: number;
  /** Origins a browser page may call the gRPC-Web bridge from besides its own (`CORS_ORIGINS`). */
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
  /** The longest room name, in characters (`MAX_ROOM_NAME_LENGTH`). */
  maxRoomNameLength: number;
  /** How many rooms one user may be a member of (`MAX_ROOMS_PER_USER`). */
  maxRoomsPerUser: number;
  /** How many open message streams one user may hold (`MAX_STREAMS_PER_USER`). */
  maxStreamsPerUser: number;
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`Cannot read configuration: ${name} is "${raw}", expected a whole number`);
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new Error(
      `Cannot read configuration: ${name} is "${raw}", expected one of ${allowed.join(", ")}`,
    );
  }
  return raw as T;
}

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
    databasePath: env.DATABASE_PATH || "data/chat.db",
    databaseUrl: env.DATABASE_URL || undefined,
    shutdownTimeoutMs: int(env, "SHUTDOWN_TIMEOUT_MS", 10_000),
    corsOrigins: (env.CORS_ORIGINS ?? "").split(",").map((o) => o.trim()).filter(Boolean),
    auth: oneOf(env, "AUTH", ["on", "off"] as const, "on"),
    authSecret: env.AUTH_SECRET || undefined,
    authSecretFile: env.AUTH_SECRET_FILE || "data/auth-secret",
    tokenTtlSeconds: int(env, "TOKEN_TTL_SECONDS", 7 * 24 * 60 * 60),
    rateLimitPerSecond: int(env, "RATE_LIMIT_PER_SECOND", 5),
    rateLimitBurst: int(env, "RATE_LIMIT_BURST", 20),
    maxRoomNameLength: int(env, "MAX_ROOM_NAME_LENGTH", 64),
    maxRoomsPerUser: int(env, "MAX_ROOMS_PER_USER", 100),
    maxStreamsPerUser: int(env, "MAX_STREAMS_PER_USER", 10),
  };
}

/** The settings as `name=value` lines for the start-up banner. */
export function describeConfig(config: Config): string {
  return Object.entries(config)
    .map(([k, v]) => {
      // The token-signing secret is never shown, only whether it is set.
      if (k === "authSecret") return `${k}=${v === undefined ? "undefined" : "***"}`;
      const text = Array.isArray(v) ? v.join(",") : String(v);
      // A database URL may hold a password: show it without one.
      return `${k}=${
        k === "databaseUrl" ? text.replace(/\/\/([^:/@]*):[^@]*@/, "//$1:***@") : text
      }`;
    })
    .join(" ");
}
