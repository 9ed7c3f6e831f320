// deno-lint-ignore-file no-console
/**
 * A warden: a small detached process that holds a lease on the tests' Kafka cluster
 * (kafka/cluster.ts) or PostgreSQL (scripts/postgres.ts) on behalf of another process, and gives
 * it back once that process is gone.
 *
 * Why: a plain `deno test` process cannot release a lease itself when it ends; Deno does not wait
 * for async work in `unload`, and a crash or SIGKILL runs nothing at all. The warden watches the
 * test process's pid instead. When the pid is gone (or belongs to a newer process), it releases
 * the lease, which stops the cluster or the server when it was the last holder and they were
 * started for leases. tests/fixtures.ts starts wardens through `ensure`.
 *
 * ```sh
 * deno run -A scripts/lease_warden.ts ensure kafka|postgres <pid>  # start (or find) the warden
 *                                                                  # of <pid>; prints {"url": ...}
 * deno run -A scripts/lease_warden.ts hold kafka|postgres <pid>    # the warden itself
 * ```
 *
 * One warden per service and watched pid: several test modules of one `deno test` process share
 * it (each module has its own JS realm, so an in-memory cache is not enough). Its state lives in
 * `.tmp/wardens/<service>-<pid>.{lock,pid,json,log}`; the log is kept only when something failed.
 */

import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { tail } from "./files.ts";

export type Service = "kafka" | "postgres";
const SERVICES: readonly Service[] = ["kafka", "postgres"];

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/+$/, "");
const STATE_DIR = `${ROOT}/.tmp/wardens`;
const SELF = fileURLToPath(import.meta.url);
/** How often the warden looks at the watched pid. */
const POLL_MS = 250;
/** Longest wait for a warden to be ready: a fresh machine first fetches the Kafka jars. */
const READY_TIMEOUT_MS = 15 * 60_000;

/** What the warden writes once it holds the lease (or could not take it). */
interface WardenState {
  warden?: number;
  url?: string;
  error?: string;
}

function files(service: Service, pid: number) {
  const base = `${STATE_DIR}/${service}-${pid}`;
  return {
    lock: `${base}.lock`,
    pid: `${base}.pid`,
    state: `${base}.json`,
    log: `${base}.log`,
  };
}

/**
 * The start time of process `pid` (clock ticks after boot, from /proc), or undefined when it is
 * gone or a zombie. Comparing it tells a living pid from a reused one.
 */
export function processStart(pid: number): string | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // Fields after the command name in parentheses (which may hold spaces): state is the 3rd
  // field of the line, the start time the 22nd.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return undefined;
  return fields[19];
}

/** Whether `pid` is a warden process (of any service and pid). */
function isWarden(pid: number): boolean {
  try {
    const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    return args.includes(SELF) && args.includes("hold");
  } catch {
    return false;
  }
}

function readState(path: string): WardenState | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as WardenState;
  } catch {
    return undefined; // missing, or half-written by a warden that died
  }
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(Deno.readTextFileSync(path).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function removeQuietly(...paths: string[]): Promise<void> {
  for (const path of paths) await Deno.remove(path).catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// ensure: find or start the warden of a pid

/**
 * Returns the URL (Kafka: the brokers, `host:port,...`; PostgreSQL: a postgres:// URL) of the
 * service held for `pid`, starting a warden for it unless one runs already. Copies the warden's
 * progress lines to stderr while it starts the service.
 */
export async function ensureWarden(service: Service, pid: number): Promise<string> {
  if (processStart(pid) === undefined) throw new Error(`Cannot hold ${service}: no process ${pid}`);
  await Deno.mkdir(STATE_DIR, { recursive: true });
  const f = files(service, pid);
  const lock = await Deno.open(f.lock, { create: true, write: true });
  try {
    await lock.lock(true);
    const known = readState(f.state);
    if (known?.url && known.warden && isWarden(known.warden)) return known.url;
    await removeQuietly(f.state, f.pid, f.log);

    // setsid -f: the warden runs in a session of its own, so the Ctrl-C that ends the tests does
    // not reach it, and nothing waits for it; its output goes to the log, so no pipe of the
    // caller stays open. `exec` keeps the pid the shell writes.
    const script = 'pid_file=$1; log=$2; shift 2; echo $$ > "$pid_file"; ' +
      'exec "$@" >> "$log" 2>&1 < /dev/null';
    const spawned = await new Deno.Command("setsid", {
      args: [
        "-f",
        "sh",
        "-c",
        script,
        "sh",
        f.pid,
        f.log,
        Deno.execPath(),
        "run",
        "-A",
        SELF,
        "hold",
        service,
        String(pid),
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!spawned.success) {
      throw new Error(
        `Cannot start the ${service} warden: setsid exited with ${spawned.code}: ${
          new TextDecoder().decode(spawned.stderr).trim()
        }`,
      );
    }
    return await waitReady(service, f);
  } finally {
    lock.close();
  }
}

async function waitReady(service: Service, f: ReturnType<typeof files>): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let shown = 0; // characters of the log already copied
  const showProgress = () => {
    let text: string;
    try {
      text = Deno.readTextFileSync(f.log);
    } catch {
      return; // not there yet
    }
    const end = text.lastIndexOf("\n") + 1; // whole lines only
    if (end > shown) console.error(text.slice(shown, end).trimEnd());
    shown = Math.max(shown, end);
  };
  while (Date.now() < deadline) {
    await sleep(100);
    showProgress();
    const state = readState(f.state);
    if (state?.url) return state.url;
    if (state?.error) throw new Error(state.error);
    const warden = readPid(f.pid);
    if (warden !== undefined && processStart(warden) === undefined) {
      // Gone without a word: its last lines say why.
      await sleep(100);
      const late = readState(f.state);
      if (late?.url) return late.url;
      throw new Error(
        late?.error ?? `Cannot start ${service}: its warden exited\n--- ${f.log}\n${tail(f.log)}`,
      );
    }
  }
  throw new Error(`Cannot start ${service}: not ready in time\n--- ${f.log}\n${tail(f.log)}`);
}

/**
 * Waits until no warden of `pid` runs any more (they notice its end within a quarter second,
 * then release their leases, which may stop Kafka); scripts/test.ts uses it, so that a run
 * ends only once what its tests started is stopped.
 */
export async function waitForWardens(pid: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const service of SERVICES) {
    const f = files(service, pid);
    while (Date.now() < deadline) {
      const warden = readPid(f.pid);
      if (warden === undefined || !isWarden(warden)) break;
      await sleep(100);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// hold: the warden

async function hold(service: Service, pid: number): Promise<number> {
  const f = files(service, pid);
  const watched = processStart(pid);
  if (watched === undefined) return 0; // gone before we began: nothing to hold
  const log = (line: string) => console.log(line);
  const writeState = async (state: WardenState) => {
    await Deno.writeTextFile(`${f.state}.new`, JSON.stringify(state));
    await Deno.rename(`${f.state}.new`, f.state); // whole, or not at all, for the readers
  };

  let stopping = false;
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    Deno.addSignalListener(signal, () => stopping = true);
  }

  // Imported here, not at the top: `ensure` runs in every test process that needs a service
  // and should start fast.
  let release: () => Promise<unknown>;
  let url: string;
  try {
    if (service === "kafka") {
      const cluster = await import("../kafka/cluster.ts");
      let foreign = false;
      release = () => foreign ? Promise.resolve() : cluster.releaseCluster({ log });
      try {
        foreign = (await cluster.clusterUp({ lease: true, log })).foreign;
      } catch (error) {
        await release().catch(() => {});
        throw error;
      }
      url = (await import("../kafka/layout.ts")).BROKERS.join(",");
    } else {
      const pg = await import("./postgres.ts");
      release = () => pg.releasePostgres({ log });
      try {
        url = await pg.postgresUp({ lease: true, log });
      } catch (error) {
        await release().catch(() => {});
        throw error;
      }
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    await writeState({ error: message });
    return 1;
  }
  await writeState({ warden: Deno.pid, url });
  log(`Holding ${service} (${url}) for process ${pid}`);

  while (!stopping && processStart(pid) === watched) await sleep(POLL_MS);
  log(stopping ? "Stopped by a signal: releasing" : `Process ${pid} ended: releasing ${service}`);
  let code = 0;
  try {
    await release();
  } catch (error) {
    console.error(`Cannot release ${service}: ${(error as Error).message}`);
    code = 1;
  }
  await removeQuietly(f.state, f.pid, f.lock);
  if (code === 0) await removeQuietly(f.log);
  return code;
}

// ---------------------------------------------------------------------------------------------

const USAGE = "Usage: deno run -A scripts/lease_warden.ts ensure|hold kafka|postgres <pid>";

async function main(args: string[]): Promise<number> {
  const [command, service, pidArg] = args;
  const pid = Number(pidArg);
  if (
    !["ensure", "hold"].includes(command ?? "") || !SERVICES.includes(service as Service) ||
    !Number.isInteger(pid) || pid <= 0
  ) {
    console.error(USAGE);
    return 2;
  }
  if (command === "hold") return await hold(service as Service, pid);
  try {
    console.log(JSON.stringify({ url: await ensureWarden(service as Service, pid) }));
    return 0;
  } catch (error) {
    console.log(JSON.stringify({ error: error instanceof Error ? error.message : String(error) }));
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
