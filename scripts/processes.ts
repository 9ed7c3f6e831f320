/**
 * Starting and stopping the system's entry points (main.ts, processor.ts, or any script of the
 * checkout) as separate processes, the way an operator runs them: for the benchmark
 * (bench/system.ts) and the integration and fault tests (tests/processes.ts adds the test
 * cluster's brokers).
 *
 * ```ts
 * const deployment = kafkaDeployment({ brokers: "127.0.0.1:9092" });
 * const gateway = deployment.gateway("gateway-a");
 * const processor = deployment.processor();
 * try {
 *   await gateway.ready();
 * } finally {
 *   await stopAll([gateway.service, processor]);
 * }
 * ```
 */

import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const encoder = new TextEncoder();

/** The first port the kernel lends to outgoing connections (Linux's default when unreadable). */
function ephemeralPortsStart(): number {
  try {
    const low = Number(
      Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(/\s+/)[0],
    );
    if (low > 1024) return low;
  } catch {
    // Not Linux, or not readable.
  }
  return 32768;
}

/** The ports {@linkcode freePort} handed out in this process: never handed out twice. */
const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 (bound once, then released) for a process to listen on, chosen
 * below the kernel's ephemeral range: a port from that range can be taken by any outgoing
 * connection (a Kafka client's) before the process binds it, which once failed a CI run with
 * EADDRINUSE. Never one this process handed out before: its processes start together, and two
 * random picks may be the same port (the likeliest reason a gateway later lost its HTTP port to
 * EADDRINUSE, below that range, while its deployment started).
 */
export function freePort(): number {
  const low = ephemeralPortsStart();
  const from = Math.min(20_000, low - 1000);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = from + Math.floor(Math.random() * (low - from));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // Taken: try another.
    }
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

export interface Service {
  readonly name: string;
  /** Its stdout and stderr, one entry a line, as they came. */
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

export interface SpawnOptions {
  args?: string[];
  /** Added to this process's environment. */
  env?: Record<string, string>;
  stdin?: boolean;
  /** Flags for `deno run` itself, such as `--v8-flags=--prof` to profile the process. */
  denoFlags?: string[];
  /** Copies every output line to this process's stderr, indented, as it comes. */
  echo?: boolean;
}

/** The lines of a byte stream (a child's stdout, say) as they come, the last one unterminated too. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = lines.pop()!;
    yield* lines;
  }
  rest += decoder.decode();
  if (rest) yield rest;
}

/** Appends the lines of `stream` to `sink`, calling `onLine` after each. */
async function pump(
  stream: ReadableStream<Uint8Array>,
  sink: string[],
  onLine: (line: string) => void,
) {
  for await (const line of readLines(stream)) {
    sink.push(line);
    onLine(line);
  }
}

/** Starts `deno run -A <entry> [...args]` in the checkout's root. */
export function spawn(name: string, entry: string, options: SpawnOptions = {}): Service {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...(options.denoFlags ?? []), entry, ...(options.args ?? [])],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  // Fires on every line and once at the end, for waitForLine.
  const changes = new EventTarget();
  const onLine = (line: string) => {
    if (options.echo) Deno.stderr.writeSync(encoder.encode(`  | ${line}\n`));
    changes.dispatchEvent(new Event("change"));
  };
  const writer = options.stdin ? child.stdin.getWriter() : undefined;
  let ended: Deno.CommandStatus | undefined;
  const finished = Promise.all([
    child.status,
    pump(child.stdout, output, onLine),
    pump(child.stderr, output, onLine),
  ]).then(([status]) => {
    ended = status;
    changes.dispatchEvent(new Event("change"));
    return status;
  });
  const send = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  };
  const tail = () => `--- ${name} output ---\n${output.slice(-40).join("\n")}`;
  return {
    name,
    output,
    process: child,
    async waitForLine(pattern, timeoutMs = 30_000) {
      const deadline = AbortSignal.timeout(timeoutMs);
      for (let seen = 0;;) {
        const line = output.slice(seen).find((l) => pattern.test(l));
        if (line !== undefined) return line;
        seen = output.length;
        if (ended) {
          throw new Error(`${name} exited (${ended.code}) before printing ${pattern}\n${tail()}`);
        }
        if (deadline.aborted) {
          throw new Error(
            `Timed out after ${timeoutMs} ms waiting for ${name} to print ${pattern}\n${tail()}`,
          );
        }
        await once(changes, "change", { signal: deadline }).catch(() => {});
      }
    },
    async write(text) {
      await writer!.write(encoder.encode(text));
    },
    async closeStdin() {
      await writer?.close();
    },
    kill(signal = "SIGTERM") {
      if (!ended) send(signal);
    },
    async crash() {
      send("SIGKILL");
      await child.status;
    },
    async exit(timeoutMs = 15_000) {
      const timer = setTimeout(() => send("SIGKILL"), timeoutMs);
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

export interface DeploymentOptions {
  /** The Kafka cluster, `host:port,...`. */
  brokers: string;
  auth?: "on" | "off";
  /** Default 3000, with a heartbeat every 500 ms. */
  heartbeatTimeoutMs?: number;
  /** As for {@linkcode spawn}. */
  echo?: boolean;
  /**
   * The store's settings for every process (`DATABASE_URL`, `DATABASE_PATH`); by default an
   * SQLite file in a new temporary folder, whatever PostgreSQL the caller's environment names.
   */
  store?: Record<string, string>;
}

/** How long one `/readyz` request may take before it counts as no answer. */
const READYZ_TIMEOUT_MS = 5_000;

export function kafkaDeployment(options: DeploymentOptions): Deployment {
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3000;
  const common = {
    KAFKA_BROKERS: options.brokers,
    ...(options.store ?? {
      DATABASE_PATH: `${Deno.makeTempDirSync({ prefix: "chat-kafka-deployment-" })}/chat.db`,
      DATABASE_URL: "",
    }),
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
  const echo = options.echo;
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
        echo,
      });
      const http = `http://127.0.0.1:${httpPort}`;
      const readyz = async () => {
        try {
          const res = await fetch(`${http}/readyz`, {
            signal: AbortSignal.timeout(READYZ_TIMEOUT_MS),
          });
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
          const deadline = Date.now() + timeoutMs;
          await service.waitForLine(/Gateway listening/, timeoutMs);
          while (await readyz() !== 200) {
            if (Date.now() > deadline) {
              throw new Error(
                `Timed out after ${timeoutMs} ms waiting for ${name} /readyz to answer 200`,
              );
            }
            await sleep(20);
          }
        },
      };
    },
    processor(name = "processor", env = {}, denoFlags = []) {
      // Each its own metrics port: several processors on one machine would all ask for 9464.
      const metrics = { METRICS_PORT: String(freePort()) };
      return spawn(name, "processor.ts", {
        env: { ...common, ...metrics, ...env },
        denoFlags,
        echo,
      });
    },
  };
}
