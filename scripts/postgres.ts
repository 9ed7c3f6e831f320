// deno-lint-ignore-file no-console
/**
 * A throwaway local PostgreSQL for the tests, without systemd or Docker.
 *
 * ```sh
 * deno run -A scripts/postgres.ts up            # initdb if needed, start, wait, create chat_test
 * deno run -A scripts/postgres.ts down [--clean] [--force] # stop; --clean deletes it
 * deno run -A scripts/postgres.ts status        # exit 0 and print the URL when it runs
 * ```
 *
 * The cluster lives outside the checkout, in `<temp dir>/chat-tests-<hash of the checkout
 * path>/postgres` (`data/` and `postgres.log`): as root the server runs as the `postgres` OS user
 * (PostgreSQL refuses root, via `runuser`), and that user cannot reach a checkout inside a private
 * folder such as /root. The hash keeps two checkouts apart. It listens on 127.0.0.1 only, with no
 * Unix socket, and trusts every local connection: it is for tests, never for data anyone wants to
 * keep (fsync is off too). The port is `PGPORT` when set; else 55432, or a free port when 55432 is
 * taken (by another checkout's server, say): the URL tells which.
 * The binaries are found and run by scripts/postgres_binaries.ts.
 *
 * Leases, as kafka/cluster.ts has them: `postgresUp({ lease: true })` records the calling process,
 * and {@linkcode releasePostgres} by the last live holder stops the server and deletes it, if it
 * was started for leases. scripts/test.ts and the tests' fixture (tests/fixtures.ts, through
 * scripts/lease_warden.ts) share one server that way.
 *
 * `up` prints `DATABASE_URL=postgres://postgres@127.0.0.1:55432/chat_test`.
 */

import postgres from "postgres";
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { exists, seconds, tail } from "./files.ts";
import { asRoot, findBinDir, OS_USER, osUser, tool } from "./postgres_binaries.ts";
import { dropLease, liveLeases, processAlive, takeLease, withLock } from "./leases.ts";

export const HOST = "127.0.0.1";
export const DEFAULT_PORT = 55432;
export const DATABASE = "chat_test";
const DB_USER = "postgres";

/** Progress lines; pass `() => {}` to keep quiet. */
export type Log = (line: string) => void;
const defaultLog: Log = (line) => console.error(line);

export interface PostgresOptions {
  /** Where the cluster lives; default {@linkcode defaultPostgresDir}. */
  dir?: string;
  /** The port to use; default `PGPORT`, else 55432 or a free port when that is taken. */
  port?: number;
  log?: Log;
}

/** The port from `PGPORT`, or undefined when it is not set (then any free port will do). */
export function postgresPort(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): number | undefined {
  const raw = env.PGPORT;
  if (raw === undefined || raw === "") return undefined;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`Cannot start PostgreSQL: PGPORT is "${raw}", expected a port number`);
  }
  return port;
}

/** The URL of the test database on `port`. */
export function postgresUrl(port: number, database = DATABASE): string {
  return `postgres://${DB_USER}@${HOST}:${port}/${database}`;
}

/**
 * This checkout's folder under the system temp dir, `chat-tests-<hash>`: what another OS user
 * must reach lives there, not in the checkout (whose parents may be private, as /root is). The
 * hash of the checkout's real path keeps two checkouts apart and finds the same folder on every
 * run.
 */
export function checkoutTempDir(
  checkout = fileURLToPath(new URL("..", import.meta.url)),
  temp = tmpdir(),
): string {
  let real = checkout.replace(/\/+$/, "");
  try {
    real = Deno.realPathSync(real);
  } catch {
    // not there (a test passing a made-up path): hash it as given
  }
  const hash = createHash("sha256").update(real).digest("hex").slice(0, 12);
  return `${temp.replace(/\/+$/, "")}/chat-tests-${hash}`;
}

/** Where this checkout's test server lives: `postgres` in {@linkcode checkoutTempDir}. */
export function defaultPostgresDir(): string {
  return `${checkoutTempDir()}/postgres`;
}

/**
 * The files of the cluster in `dir`. The lock, the leases and the marker sit next to `dir`, not
 * in it: as root `dir` belongs to the postgres OS user, and `clean` deletes it.
 */
function paths(dir: string) {
  return {
    dir,
    data: `${dir}/data`,
    log: `${dir}/postgres.log`,
    lock: `${dir}.lock`,
    leases: `${dir}.leases`,
    /** Present while the running server was started for leases: the last lease out stops it. */
    marker: `${dir}.started-for-leases`,
  };
}

// ---------------------------------------------------------------------------------------------
// The cluster

/**
 * The port the running server of `data` listens on, from its postmaster.pid; else undefined.
 * A pid file a dead (or zombie) server left behind is removed, so that a new one can start.
 */
async function runningPort(bin: string, data: string, dir: string): Promise<number | undefined> {
  if (!await exists(`${data}/PG_VERSION`)) return undefined;
  let lines: string[];
  try {
    lines = (await Deno.readTextFile(`${data}/postmaster.pid`)).split("\n");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const pid = Number(lines[0]);
  if (Number.isInteger(pid) && pid > 0 && !processAlive(pid)) {
    await Deno.remove(`${data}/postmaster.pid`).catch(() => {});
    return undefined;
  }
  // pg_ctl status: 0 running, 3 not running, 4 no data directory.
  const { code } = await tool(bin, "pg_ctl", ["status", "-D", data], "ask PostgreSQL", dir, [
    0,
    3,
    4,
  ]);
  if (code !== 0) return undefined;
  const port = Number(lines[3]);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/** Creates `dir` owned by the postgres OS user (when root) and runs initdb unless done before. */
async function ensureCluster(bin: string, p: ReturnType<typeof paths>, log: Log): Promise<void> {
  await Deno.mkdir(p.dir, { recursive: true });
  if (asRoot()) {
    const user = osUser(OS_USER);
    if (!user) {
      throw new Error(
        `Cannot start PostgreSQL as root: there is no "${OS_USER}" OS user to run it as (apt-get install postgresql creates one)`,
      );
    }
    await Deno.chown(p.dir, user.uid, user.gid);
    const reachable = await new Deno.Command("runuser", {
      args: ["-u", OS_USER, "--", "test", "-w", p.dir],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    if (!reachable.success) {
      throw new Error(
        `Cannot start PostgreSQL: the "${OS_USER}" OS user cannot write ${p.dir} (a parent directory is not searchable by it; is TMPDIR a private folder?)`,
      );
    }
  }
  await Deno.chmod(p.dir, 0o700);
  if (await exists(`${p.data}/PG_VERSION`)) return;

  const started = performance.now();
  await Deno.remove(p.data, { recursive: true }).catch(() => {}); // a half-done earlier initdb
  await tool(
    bin,
    "initdb",
    [
      "--pgdata",
      p.data,
      "--username",
      DB_USER,
      "--auth",
      "trust",
      "--encoding",
      "UTF8",
      "--locale",
      "C",
      "--no-sync",
    ],
    "initialise PostgreSQL",
    p.dir,
  );
  // Settings for a local, throwaway test server on a small machine.
  const settings = [
    "",
    "# Added by scripts/postgres.ts: a throwaway local test server.",
    `listen_addresses = '${HOST}'`,
    "unix_socket_directories = ''",
    "max_connections = 100",
    "shared_buffers = 32MB",
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    "logging_collector = off",
    "",
  ].join("\n");
  await Deno.writeTextFile(`${p.data}/postgresql.conf`, settings, { append: true });
  log(`Initialised PostgreSQL in ${p.data} (${bin}) in ${seconds(started)}`);
}

/** Waits until the server on `port` answers a query, then creates the test database if missing. */
async function waitAndCreateDatabase(port: number, logPath: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const sql = postgres(postgresUrl(port, "postgres"), {
      max: 1,
      connect_timeout: 2,
      onnotice: () => {},
    });
    try {
      const rows = await sql`SELECT 1 FROM pg_database WHERE datname = ${DATABASE}`;
      if (rows.length === 0) {
        try {
          await sql.unsafe(`CREATE DATABASE ${DATABASE}`);
        } catch (error) {
          // 42P04 duplicate_database: another `up` created it meanwhile.
          if ((error as { code?: string }).code !== "42P04") throw error;
        }
      }
      return;
    } catch (error) {
      lastError = error;
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
    }
    await sleep(200);
  }
  throw new Error(
    `Cannot start PostgreSQL: it does not accept connections on ${HOST}:${port} (${
      lastError instanceof Error ? lastError.message : String(lastError)
    })\n${tail(logPath)}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Ports and leases

/**
 * Machine-wide, like the ports: choosing a free port and binding it happen under this lock, so
 * that two checkouts starting their servers at once do not pick the same port.
 */
const PORT_LOCK = `${tmpdir()}/chat-tests-postgres-port.lock`;

/**
 * Whether `port` can be bound now. 55432 lies in Linux's ephemeral range (32768-60999), so an
 * outgoing connection can hold it (even in TIME-WAIT), and then PostgreSQL cannot bind it either.
 */
function bindable(port: number): boolean {
  try {
    Deno.listen({ hostname: HOST, port }).close();
    return true;
  } catch {
    return false;
  }
}

/** 55432 when it can be bound, else a port the kernel picks. */
function freePort(): number {
  if (bindable(DEFAULT_PORT)) return DEFAULT_PORT;
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Makes the default checkout folder (see {@linkcode checkoutTempDir}): it sits in a shared,
 * world-writable temp dir, so it must be a real directory of ours, not something another user
 * put there under the predictable name (root would otherwise chown whatever it points to).
 * Mode 711: the postgres OS user may pass through it to its own folder, nobody may list it.
 */
async function ensureCheckoutDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o711 });
  const info = await Deno.lstat(dir);
  if (!info.isDirectory || info.isSymlink || info.uid !== Deno.uid()) {
    throw new Error(
      `Cannot start PostgreSQL: ${dir} is not a directory owned by this user (uid ${Deno.uid()}); remove it`,
    );
  }
  await Deno.chmod(dir, 0o711);
}

// ---------------------------------------------------------------------------------------------
// Commands

export interface UpOptions extends PostgresOptions {
  /**
   * Take a lease for this process: a server started for leases keeps running while any lease
   * holder lives, and {@linkcode releasePostgres} by the last one stops it and deletes it.
   */
  lease?: boolean;
}

/**
 * Starts the test server unless it runs already, and creates the `chat_test` database;
 * returns its URL. Safe to call again, also from several processes at once. With `lease`, the
 * caller must call {@linkcode releasePostgres} later, also when this fails.
 */
export async function postgresUp(options: UpOptions = {}): Promise<string> {
  const log = options.log ?? defaultLog;
  const pinned = options.port ?? postgresPort();
  const p = paths(options.dir ?? defaultPostgresDir());
  const bin = findBinDir();
  if (options.dir === undefined) await ensureCheckoutDir(checkoutTempDir());
  else await Deno.mkdir(dirnameOf(p.dir), { recursive: true });
  return await withLock(p.lock, async () => {
    const started = performance.now();
    await ensureCluster(bin, p, log);
    let port = await runningPort(bin, p.data, p.dir);
    if (port !== undefined && pinned !== undefined && port !== pinned) {
      throw new Error(
        `Cannot start PostgreSQL on port ${pinned}: it runs already on port ${port}; run "deno run -A scripts/postgres.ts down" first`,
      );
    }
    if (options.lease) {
      // Only a server this call starts is stopped by the last lease; one started by hand stays.
      if (port === undefined) await Deno.writeTextFile(p.marker, "");
      await takeLease(p.leases);
    }
    if (port === undefined) {
      port = await withLock(PORT_LOCK, async () => {
        const start = (port: number) =>
          tool(
            bin,
            "pg_ctl",
            [
              "start",
              "--pgdata",
              p.data,
              "--log",
              p.log,
              "--wait",
              "--timeout",
              "60",
              "--silent",
              "-o",
              `-p ${port}`,
            ],
            "start PostgreSQL",
            p.dir,
          );
        const chosen = pinned ?? freePort();
        try {
          await start(chosen);
          return chosen;
        } catch (error) {
          // A port the kernel just handed out can be taken by an outgoing connection before the
          // server binds it: one more try on another port, unless the user pinned the port.
          let failure = error as Error;
          const other = pinned === undefined && !bindable(chosen) ? freePort() : undefined;
          if (other !== undefined) {
            try {
              await start(other);
              return other;
            } catch (retryError) {
              failure = retryError as Error;
            }
          }
          throw new Error(`${failure.message}\n--- ${p.log} ---\n${tail(p.log)}`);
        }
      });
      log(`Started PostgreSQL on ${HOST}:${port} (${p.dir}) in ${seconds(started)}`);
    }
    await waitAndCreateDatabase(port, p.log);
    return postgresUrl(port);
  });
}

/** Stops the server of `p` if it runs; with `clean` deletes it, its leases and marker too. */
async function stop(p: ReturnType<typeof paths>, clean: boolean, log: Log): Promise<void> {
  if (await exists(`${p.data}/PG_VERSION`)) {
    const bin = findBinDir();
    if (await runningPort(bin, p.data, p.dir) !== undefined) {
      const started = performance.now();
      await tool(
        bin,
        "pg_ctl",
        ["stop", "--pgdata", p.data, "--mode", "fast", "--wait", "--timeout", "60", "--silent"],
        "stop PostgreSQL",
        p.dir,
      );
      log(`Stopped PostgreSQL in ${seconds(started)}`);
    }
  }
  await Deno.remove(p.leases, { recursive: true }).catch(() => {});
  await Deno.remove(p.marker).catch(() => {});
  if (clean && await exists(p.dir)) {
    await Deno.remove(p.dir, { recursive: true });
    log(`Deleted ${p.dir}`);
  }
}

/**
 * Stops the test server (fine when it does not run) and drops its leases; `clean` also deletes
 * its files. Refuses while another live process holds a lease, unless `force`.
 */
export async function postgresDown(
  options: PostgresOptions & { clean?: boolean; force?: boolean } = {},
): Promise<void> {
  const log = options.log ?? defaultLog;
  const p = paths(options.dir ?? defaultPostgresDir());
  if (!await exists(p.dir) && !await exists(p.leases)) return;
  await withLock(p.lock, async () => {
    const users = (await liveLeases(p.leases)).filter((pid) => pid !== Deno.pid);
    if (users.length > 0 && !options.force) {
      throw new Error(
        `Cannot stop PostgreSQL: process ${users.join(", ")} is using it (the last one stops ` +
          "it when it ends); pass --force to stop it anyway",
      );
    }
    await stop(p, options.clean ?? false, log);
  });
}

/**
 * Gives back the lease of `pid` (default: this process) from `postgresUp({ lease: true })`. When
 * no other live process holds one and the server was started for leases, stops it and deletes
 * it. Returns whether it stopped the server.
 */
export async function releasePostgres(
  options: PostgresOptions & { pid?: number } = {},
): Promise<boolean> {
  const log = options.log ?? defaultLog;
  const p = paths(options.dir ?? defaultPostgresDir());
  if (!await exists(p.leases)) return false;
  return await withLock(p.lock, async () => {
    await dropLease(p.leases, options.pid);
    const others = await liveLeases(p.leases);
    if (others.length > 0) {
      log(`PostgreSQL stays up: still used by process ${others.join(", ")}`);
      return false;
    }
    if (!await exists(p.marker)) {
      log("PostgreSQL stays up: it was not started for a test run");
      await Deno.remove(p.leases, { recursive: true }).catch(() => {});
      return false;
    }
    await stop(p, true, log);
    return true;
  });
}

/** The URL of the running test server, or undefined when it does not run. */
export async function postgresStatus(options: PostgresOptions = {}): Promise<string | undefined> {
  const p = paths(options.dir ?? defaultPostgresDir());
  if (!await exists(`${p.data}/PG_VERSION`)) return undefined;
  const port = await runningPort(findBinDir(), p.data, p.dir);
  return port === undefined ? undefined : postgresUrl(port);
}

/** Pids holding a lease on the test server (for `status`). */
export async function postgresLeases(options: PostgresOptions = {}): Promise<number[]> {
  return await liveLeases(paths(options.dir ?? defaultPostgresDir()).leases);
}

function dirnameOf(path: string): string {
  return path.replace(/\/+$/, "").replace(/\/[^/]*$/, "") || "/";
}

if (import.meta.main) {
  const [command, ...flags] = Deno.args;
  try {
    if (command === "up") {
      console.log(`DATABASE_URL=${await postgresUp()}`);
    } else if (command === "down") {
      await postgresDown({ clean: flags.includes("--clean"), force: flags.includes("--force") });
    } else if (command === "status") {
      const url = await postgresStatus();
      if (url === undefined) {
        console.error(`PostgreSQL is not running (${defaultPostgresDir()})`);
        Deno.exit(1);
      }
      console.log(`DATABASE_URL=${url}`);
      const users = await postgresLeases();
      if (users.length > 0) console.log(`in use by process ${users.join(", ")}`);
    } else {
      console.error(
        "Usage: deno run -A scripts/postgres.ts up | down [--clean] [--force] | status",
      );
      Deno.exit(2);
    }
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
