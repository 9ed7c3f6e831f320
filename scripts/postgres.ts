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
 * The binaries come from Debian's newest /usr/lib/postgresql/N/bin, else /usr/local/bin, else the
 * PATH; `PG_BIN` names a directory to use instead.
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

export const HOST = "127.0.0.1";
export const DEFAULT_PORT = 55432;
export const DATABASE = "chat_test";
const OS_USER = "postgres";
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
// Binaries and users

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

const TOOLS = ["initdb", "pg_ctl", "postgres"];

/** The directory holding initdb, pg_ctl and postgres (see the module comment for the order). */
export function findBinDir(env: Record<string, string | undefined> = Deno.env.toObject()): string {
  const has = (dir: string) => TOOLS.every((tool) => isExecutable(`${dir}/${tool}`));
  const candidates: string[] = [];
  if (env.PG_BIN) {
    if (has(env.PG_BIN)) return env.PG_BIN;
    throw new Error(`Cannot find PostgreSQL: PG_BIN=${env.PG_BIN} lacks ${TOOLS.join(", ")}`);
  }
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((e) => e.name)
      .filter((name) => /^\d+$/.test(name))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // no Debian packages
  }
  candidates.push("/usr/local/bin", "/usr/bin");
  candidates.push(...(env.PATH ?? "").split(":").filter(Boolean));
  const found = candidates.find(has);
  if (!found) {
    throw new Error(
      `Cannot find PostgreSQL: no directory with ${
        TOOLS.join(", ")
      } in /usr/lib/postgresql/*/bin, /usr/local/bin or the PATH; install it (apt-get install postgresql) or set PG_BIN`,
    );
  }
  return found;
}

function osUser(name: string): { uid: number; gid: number } | undefined {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

const asRoot = () => Deno.uid() === 0;

/** Runs a PostgreSQL tool (as the postgres OS user when we are root); returns its output. */
async function tool(
  bin: string,
  name: string,
  args: string[],
  what: string,
  cwd: string,
  allowCodes: number[] = [0],
): Promise<{ code: number; output: string }> {
  const [cmd, cmdArgs] = asRoot()
    ? ["runuser", ["-u", OS_USER, "--", `${bin}/${name}`, ...args]]
    : [`${bin}/${name}`, args];
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(cmd, {
      args: cmdArgs,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { LC_ALL: "C.UTF-8" },
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`Cannot ${what}: ${cmd} not found`);
    throw error;
  }
  const output = new TextDecoder().decode(result.stdout) + new TextDecoder().decode(result.stderr);
  if (!allowCodes.includes(result.code)) {
    throw new Error(`Cannot ${what}: ${name} exited with ${result.code}\n${output.trim()}`);
  }
  return { code: result.code, output };
}

/** Holds an exclusive lock on `path` while `body` runs, so two `up`s do not race. */
async function locked<T>(path: string, body: () => Promise<T>): Promise<T> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { create: true, write: true, mode: 0o666 });
  } catch (error) {
    // A machine-wide lock file another user made: flock needs no write access.
    if (!(error instanceof Deno.errors.PermissionDenied)) throw error;
    file = await Deno.open(path, { read: true });
  }
  try {
    await file.lock(true);
    return await body();
  } finally {
    file.close(); // releases the lock
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

const seconds = (started: number) => `${((performance.now() - started) / 1000).toFixed(1)} s`;

async function tail(path: string, lines = 20): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster

/**
 * Whether process `pid` lives. A zombie does not: a killed server stays one until its parent
 * reaps it, and the init of some containers does that late, so pg_ctl would still see it.
 */
function processAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    return true; // no /proc to look at: let pg_ctl decide
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

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
    })\n${await tail(logPath)}`,
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
 * Pids holding a lease; removes the leases of processes that are gone, so a test run killed with
 * SIGKILL does not keep the server up for ever.
 */
async function liveLeases(p: ReturnType<typeof paths>): Promise<number[]> {
  const live: number[] = [];
  try {
    for await (const entry of Deno.readDir(p.leases)) {
      const pid = Number(entry.name);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) live.push(pid);
      else await Deno.remove(`${p.leases}/${entry.name}`).catch(() => {});
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return live;
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
  return await locked(p.lock, async () => {
    const started = performance.now();
    await ensureCluster(bin, p, log);
    let port = await runningPort(bin, p.data, p.dir);
    if (port !== undefined && pinned !== undefined && port !== pinned) {
      throw new Error(
        `Cannot start PostgreSQL on port ${pinned}: it runs already on port ${port}; run "deno run -A scripts/postgres.ts down" first`,
      );
    }
    if (options.lease) {
      await Deno.mkdir(p.leases, { recursive: true });
      // Only a server this call starts is stopped by the last lease; one started by hand stays.
      if (port === undefined) await Deno.writeTextFile(p.marker, "");
      await Deno.writeTextFile(`${p.leases}/${Deno.pid}`, "");
    }
    if (port === undefined) {
      port = await locked(PORT_LOCK, async () => {
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
          throw new Error(`${failure.message}\n--- ${p.log} ---\n${await tail(p.log)}`);
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
  await locked(p.lock, async () => {
    const users = (await liveLeases(p)).filter((pid) => pid !== Deno.pid);
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
  return await locked(p.lock, async () => {
    await Deno.remove(`${p.leases}/${options.pid ?? Deno.pid}`).catch(() => {});
    const others = await liveLeases(p);
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
  return await liveLeases(paths(options.dir ?? defaultPostgresDir()));
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
