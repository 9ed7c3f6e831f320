/** Runs the real entry points as separate processes, the way an operator would, for integration tests. */

import { kafkaBrokersSync } from "./fixtures.ts";
import { waitFor } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A free TCP port on 127.0.0.1 (bound once, then released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * The brokers of the test cluster, for synchronous callers such as {@linkcode kafkaDeployment}:
 * KAFKA_BROKERS, or the local cluster that tests/fixtures.ts holds for this test process (it
 * blocks until the cluster is up unless a test file already did `await kafkaBrokers()` from
 * there, which is what test files should do).
 */
export function kafkaBrokers(): string {
  return kafkaBrokersSync();
}

export interface Service {
  readonly name: string;
  readonly output: string[];
  readonly process: Deno.ChildProcess;
  /** Resolves with the first output line matching `pattern` (already printed or still to come). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  write(text: string): Promise<void>;
  closeStdin(): Promise<void>;
  kill(signal?: Deno.Signal): void;
  /**
   * Kills the process the way a crash does (SIGKILL: no shutdown, no goodbye events) and waits
   * until it is gone. Its clients find out as clients of a crashed server do.
   */
  crash(): Promise<void>;
  /** Waits for exit (killing with SIGKILL after `timeoutMs`). */
  exit(timeoutMs?: number): Promise<Deno.CommandStatus>;
}

async function pump(stream: ReadableStream<Uint8Array>, sink: string[], echo: boolean) {
  let rest = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    const lines = rest.split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      sink.push(line);
      if (echo) Deno.stderr.writeSync(new TextEncoder().encode(`  | ${line}\n`));
    }
  }
  if (rest) sink.push(rest);
}

/** Starts `deno run -A <entry> [...args]` with `env` added to the environment. */
export function spawn(
  name: string,
  entry: string,
  options: {
    args?: string[];
    env?: Record<string, string>;
    stdin?: boolean;
    /** Flags for `deno run` itself, such as `--v8-flags=--prof` to profile the process. */
    denoFlags?: string[];
  } = {},
): Service {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...(options.denoFlags ?? []), entry, ...(options.args ?? [])],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const echo = Deno.env.get("TEST_ECHO") === "1";
  const done = Promise.all([
    pump(child.stdout, output, echo),
    pump(child.stderr, output, echo),
  ]);
  const writer = options.stdin ? child.stdin.getWriter() : undefined;
  let status: Deno.CommandStatus | undefined;
  const finished = child.status.then(async (s) => {
    status = s;
    await done;
    return s;
  });
  return {
    name,
    output,
    process: child,
    async waitForLine(pattern, timeoutMs = 30_000) {
      await waitFor(
        () => output.some((l) => pattern.test(l)) || status !== undefined,
        timeoutMs,
        `${name} to print ${pattern}`,
      ).catch((err) => {
        throw new Error(`${err.message}\n--- ${name} output ---\n${output.slice(-40).join("\n")}`);
      });
      const line = output.find((l) => pattern.test(l));
      if (line === undefined) {
        throw new Error(
          `${name} exited (${status?.code}) before printing ${pattern}\n${
            output.slice(-40).join("\n")
          }`,
        );
      }
      return line;
    },
    async write(text) {
      await writer!.write(new TextEncoder().encode(text));
    },
    async closeStdin() {
      await writer?.close();
    },
    kill(signal = "SIGTERM") {
      if (status) return;
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    },
    async crash() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    },
    async exit(timeoutMs = 15_000) {
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, timeoutMs);
      try {
        return await finished;
      } finally {
        clearTimeout(timer);
        await writer?.close().catch(() => {});
      }
    },
  };
}

/** Stops every service still running, for `finally` blocks. */
export async function stopAll(services: (Service | undefined)[]): Promise<void> {
  for (const s of services) s?.kill("SIGTERM");
  await Promise.all(services.map((s) => s?.exit(15_000)));
}

export interface GatewayProcess {
  service: Service;
  serverId: string;
  /** `host:port` of its gRPC port. */
  grpc: string;
  /** `http://host:port` of its HTTP port. */
  http: string;
  /** Waits until it listens and `/readyz` answers 200. */
  ready(timeoutMs?: number): Promise<void>;
  /** `/readyz`'s status now (0 when it does not answer). */
  readyz(): Promise<number>;
}

/**
 * A Kafka deployment of separate processes sharing one store (an SQLite file,
 * as gateways and processors on one machine do) and one token secret.
 */
export interface Deployment {
  readonly heartbeatTimeoutMs: number;
  /** `denoFlags` go to `deno run`, e.g. `--inspect=127.0.0.1:<port>` to look into its heap. */
  gateway(name: string, env?: Record<string, string>, denoFlags?: string[]): GatewayProcess;
  /** `denoFlags` as for `gateway`. */
  processor(name?: string, env?: Record<string, string>, denoFlags?: string[]): Service;
}

export function kafkaDeployment(
  options: { auth?: "on" | "off"; heartbeatTimeoutMs?: number } = {},
): Deployment {
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3000;
  const common = {
    KAFKA_BROKERS: kafkaBrokers(),
    DATABASE_PATH: `${Deno.makeTempDirSync({ prefix: "chat-kafka-test-" })}/chat.db`,
    // The runner's PostgreSQL is for the store tests; these processes share the SQLite file.
    DATABASE_URL: "",
    AUTH: options.auth ?? "off",
    AUTH_SECRET: crypto.randomUUID() + crypto.randomUUID(),
    HEARTBEAT_INTERVAL_MS: "500",
    HEARTBEAT_TIMEOUT_MS: String(heartbeatTimeoutMs),
    RATE_LIMIT_PER_SECOND: "1000",
    RATE_LIMIT_BURST: "1000",
    // One test client sends up to 100 messages/s on one connection; while Kafka elects a leader
    // each waits up to SEND_TIMEOUT_MS (5 s): 500 calls at once, past the default cap of 100,
    // which would hold them in the client until its deadline instead of reaching the gateway.
    MAX_STREAMS_PER_CONNECTION: "1000",
    // Every test client comes from 127.0.0.1: the per-address call cap would count them all as one.
    MAX_CALLS_PER_ADDRESS: "100000",
  };
  return {
    heartbeatTimeoutMs,
    gateway(name, env = {}, denoFlags = []) {
      const grpcPort = freePort();
      const httpPort = freePort();
      const serverId = `grpc-server-${name}-${crypto.randomUUID().slice(0, 8)}`;
      const service = spawn(name, "main.ts", {
        env: {
          ...common,
          BUS: "kafka",
          SERVER_ID: serverId,
          GRPC_PORT: String(grpcPort),
          HTTP_PORT: String(httpPort),
          ...env,
        },
        denoFlags,
      });
      const http = `http://127.0.0.1:${httpPort}`;
      const readyz = async () => {
        try {
          const res = await fetch(`${http}/readyz`);
          await res.body?.cancel();
          return res.status;
        } catch {
          return 0;
        }
      };
      return {
        service,
        serverId,
        grpc: `127.0.0.1:${grpcPort}`,
        http,
        readyz,
        async ready(timeoutMs = 60_000) {
          await service.waitForLine(/Gateway listening/, timeoutMs);
          await waitFor(async () => await readyz() === 200, timeoutMs, `${name} /readyz`);
        },
      };
    },
    processor(name = "processor", env = {}, denoFlags = []) {
      return spawn(name, "processor.ts", { env: { ...common, ...env }, denoFlags });
    },
  };
}
