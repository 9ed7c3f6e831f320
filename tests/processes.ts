/** Runs the real entry points as separate processes, the way an operator would, for integration tests. */

import { waitFor } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A free TCP port on 127.0.0.1 (bound once, then released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The brokers of the test cluster; fails loudly rather than skipping when Kafka is not there. */
export function kafkaBrokers(): string {
  const brokers = Deno.env.get("KAFKA_BROKERS");
  if (!brokers) {
    throw new Error(
      "KAFKA_BROKERS is not set: run the suite with `deno task test`, which starts Kafka",
    );
  }
  return brokers;
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
  options: { args?: string[]; env?: Record<string, string>; stdin?: boolean } = {},
): Service {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", entry, ...(options.args ?? [])],
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
