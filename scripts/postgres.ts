// deno-lint-ignore-file no-console
/**
 * A throwaway local PostgreSQL for the tests, without systemd or Docker.
 *
 * ```sh
 * deno run -A scripts/postgres.ts up            # initdb if needed, start, wait, create chat_test
 * deno run -A scripts/postgres.ts down [--clean] # stop (fine when nothing runs); --clean deletes it
 * deno run -A scripts/postgres.ts status        # exit 0 and print the URL when it runs
 * ```
 *
 * The cluster lives in `.tmp/postgres` (git-ignored): `data/` and `postgres.log`. It listens on
 * 127.0.0.1 only, port 55432 unless `PGPORT` says otherwise, with no Unix socket, and trusts every
 * local connection: it is for tests, never for data anyone wants to keep (fsync is off too).
 * As root the server runs as the `postgres` OS user (PostgreSQL refuses root), via `runuser`.
 * The binaries come from Debian's newest /usr/lib/postgresql/N/bin, else /usr/local/bin, else the
 * PATH; `PG_BIN` names a directory to use instead.
 *
 * `up` prints `DATABASE_URL=postgres://postgres@127.0.0.1:55432/chat_test`; scripts/test.ts calls
 * {@linkcode postgresUp} and {@linkcode postgresDown}.
 */

import postgres from "postgres";
import { dirname } from "node:path";
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
  /** Where the cluster lives; default `.tmp/postgres` in this checkout. */
  dir?: string;
  /** Default `PGPORT` or 55432. */
  port?: number;
  log?: Log;
}

/** The port from `PGPORT`, else 55432. */
export function postgresPort(env: Record<string, string | undefined> = Deno.env.toObject()) {
  const raw = env.PGPORT;
  if (raw === undefined || raw === "") return DEFAULT_PORT;
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

function defaultDir(): string {
  return fileURLToPath(new URL("../.tmp/postgres", import.meta.url));
}

function paths(dir: string) {
  return { dir, data: `${dir}/data`, log: `${dir}/postgres.log`, lock: `${dir}.lock` };
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
  const file = await Deno.open(path, { create: true, write: true });
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
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
        `Cannot start PostgreSQL: the "${OS_USER}" OS user cannot write ${p.dir} (a parent directory is not searchable by it)`,
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

/**
 * Starts the test server unless it runs already, and creates the `chat_test` database;
 * returns its URL. Safe to call again, also from several processes at once.
 */
export async function postgresUp(options: PostgresOptions = {}): Promise<string> {
  const log = options.log ?? defaultLog;
  const port = options.port ?? postgresPort();
  const p = paths(options.dir ?? defaultDir());
  const bin = findBinDir();
  await Deno.mkdir(dirname(p.dir), { recursive: true });
  return await locked(p.lock, async () => {
    const started = performance.now();
    await ensureCluster(bin, p, log);
    const running = await runningPort(bin, p.data, p.dir);
    if (running !== undefined && running !== port) {
      throw new Error(
        `Cannot start PostgreSQL on port ${port}: it runs already on port ${running}; run "deno run -A scripts/postgres.ts down" first`,
      );
    }
    if (running === undefined) {
      await tool(
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
      ).catch(async (error) => {
        throw new Error(`${(error as Error).message}\n--- ${p.log} ---\n${await tail(p.log)}`);
      });
      log(`Started PostgreSQL on ${HOST}:${port} in ${seconds(started)}`);
    }
    await waitAndCreateDatabase(port, p.log);
    return postgresUrl(port);
  });
}

/** Stops the test server; succeeds when it does not run. `clean` also deletes its files. */
export async function postgresDown(
  options: PostgresOptions & { clean?: boolean } = {},
): Promise<void> {
  const log = options.log ?? defaultLog;
  const p = paths(options.dir ?? defaultDir());
  if (!await exists(p.dir)) return;
  await locked(p.lock, async () => {
    if (await exists(`${p.data}/PG_VERSION`)) {
      const bin = findBinDir();
      if (await runningPort(bin, p.data, p.dir) !== undefined) {
        const started = performance.now();
        await tool(
          bin,
          "pg_ctl",
          [
            "stop",
            "--pgdata",
            p.data,
            "--mode",
            "fast",
            "--wait",
            "--timeout",
            "60",
            "--silent",
          ],
          "stop PostgreSQL",
          p.dir,
        );
        log(`Stopped PostgreSQL in ${seconds(started)}`);
      }
    }
    if (options.clean) {
      await Deno.remove(p.dir, { recursive: true });
      log(`Deleted ${p.dir}`);
    }
  });
}

/** The URL of the running test server, or undefined when it does not run. */
export async function postgresStatus(options: PostgresOptions = {}): Promise<string | undefined> {
  const p = paths(options.dir ?? defaultDir());
  if (!await exists(`${p.data}/PG_VERSION`)) return undefined;
  const port = await runningPort(findBinDir(), p.data, p.dir);
  return port === undefined ? undefined : postgresUrl(port);
}

if (import.meta.main) {
  const [command, ...flags] = Deno.args;
  try {
    if (command === "up") {
      console.log(`DATABASE_URL=${await postgresUp()}`);
    } else if (command === "down") {
      await postgresDown({ clean: flags.includes("--clean") });
    } else if (command === "status") {
      const url = await postgresStatus();
      if (url === undefined) {
        console.error("PostgreSQL is not running");
        Deno.exit(1);
      }
      console.log(`DATABASE_URL=${url}`);
    } else {
      console.error("Usage: deno run -A scripts/postgres.ts up | down [--clean] | status");
      Deno.exit(2);
    }
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
