/**
 * The services tests need, for `deno test -A` as well as `deno task test`: the Kafka cluster and
 * the throwaway PostgreSQL.
 *
 * ```ts
 * const brokers = await kafkaBrokers();   // "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
 * const url = await databaseUrl();        // "postgres://postgres@127.0.0.1:55432/chat_test"
 * ```
 *
 * KAFKA_BROKERS and DATABASE_URL win when set (`deno task test` sets them when it runs the whole
 * suite, so that all files share one cluster). Otherwise the first call starts the local cluster
 * (kafka/cluster.ts) or the server (scripts/postgres.ts) through a warden, scripts/lease_warden.ts,
 * which holds a lease for this test process and gives it back when the process has ended: the
 * last holder out stops what was started for leases. Only a test file that calls these starts
 * anything; importing this module starts nothing.
 */

import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/+$/, "");
const WARDEN = `${ROOT}/scripts/lease_warden.ts`;

type Service = "kafka" | "postgres";

/** Per JS realm (one test module); the warden's own state makes the modules share one lease. */
const pending = new Map<Service, Promise<string>>();
const resolved = new Map<Service, string>();

function command(service: Service): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WARDEN, "ensure", service, String(Deno.pid)],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    // The warden's progress ("Starting Kafka node 1, 2, 3 ...") shows while the tests wait.
    stderr: "inherit",
  });
}

function answer(service: Service, output: Deno.CommandOutput): string {
  const text = new TextDecoder().decode(output.stdout).trim();
  let parsed: { url?: string; error?: string } = {};
  try {
    parsed = JSON.parse(text.split("\n").pop() ?? "");
  } catch {
    // reported below
  }
  if (!output.success || !parsed.url) {
    const what = service === "kafka" ? "the Kafka cluster" : "PostgreSQL";
    throw new Error(
      `Cannot start ${what} for the tests: ${parsed.error || text || `exit ${output.code}`}`,
    );
  }
  resolved.set(service, parsed.url);
  return parsed.url;
}

function lease(service: Service): Promise<string> {
  let promise = pending.get(service);
  if (!promise) {
    promise = command(service).output().then((output) => answer(service, output));
    // A failed start is not cached: the next test asks again (and shows the error again).
    promise.catch(() => pending.delete(service));
    pending.set(service, promise);
  }
  return promise;
}

/** The brokers of the test cluster, `host:port,...`: KAFKA_BROKERS, else the local cluster. */
export function kafkaBrokers(): Promise<string> {
  const given = Deno.env.get("KAFKA_BROKERS");
  return given ? Promise.resolve(given) : lease("kafka");
}

/** The URL of the test database: DATABASE_URL, else the local throwaway server. */
export function databaseUrl(): Promise<string> {
  const given = Deno.env.get("DATABASE_URL");
  return given ? Promise.resolve(given) : lease("postgres");
}

/**
 * {@linkcode kafkaBrokers} for synchronous callers (tests/processes.ts `kafkaDeployment`): the
 * answer this module already has, else it blocks until the cluster is up. Prefer
 * `await kafkaBrokers()` at the top of a test file, which makes this return at once.
 */
export function kafkaBrokersSync(): string {
  const given = Deno.env.get("KAFKA_BROKERS");
  if (given) return given;
  return resolved.get("kafka") ?? answer("kafka", command("kafka").outputSync());
}
