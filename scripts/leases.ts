/**
 * Sharing one local server (the Kafka cluster of kafka/, the PostgreSQL of scripts/postgres.ts)
 * between the test processes that use it: a lock file so that two commands never interleave, and
 * a folder of leases, one empty file per process id, so that the last live user stops the server.
 * A lease of a process that is gone (a test run killed with SIGKILL) does not count and is removed.
 */

/**
 * Holds an exclusive flock on `path` while `body` runs. Not re-entrant. `onWaiting` is called
 * once when the lock is not had within a second (another command holds it).
 */
export async function withLock<T>(
  path: string,
  body: () => Promise<T>,
  onWaiting?: () => void,
): Promise<T> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { create: true, write: true, mode: 0o666 });
  } catch (error) {
    // A machine-wide lock file another user made: flock needs no write access.
    if (!(error instanceof Deno.errors.PermissionDenied)) throw error;
    file = await Deno.open(path, { read: true });
  }
  const waiting = onWaiting ? setTimeout(onWaiting, 1_000) : undefined;
  try {
    await file.lock(true);
    clearTimeout(waiting);
    return await body();
  } finally {
    clearTimeout(waiting);
    file.close(); // also releases the lock
  }
}

/**
 * Whether process `pid` lives. A zombie does not: a killed server stays one until its parent
 * reaps it, and the init of some containers does that late.
 */
export function processAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    return true; // no /proc to look at: assume it lives
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/** Records a lease of process `pid` (default: this one) in the folder `dir`. */
export async function takeLease(dir: string, pid = Deno.pid): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/${pid}`, "");
}

/** Gives back the lease of process `pid` (default: this one); fine when it holds none. */
export async function dropLease(dir: string, pid = Deno.pid): Promise<void> {
  await Deno.remove(`${dir}/${pid}`).catch(() => {});
}

/** Pids holding a lease in the folder `dir`; removes the leases of processes that are gone. */
export async function liveLeases(dir: string): Promise<number[]> {
  const live: number[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const pid = Number(entry.name);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) live.push(pid);
      else await Deno.remove(`${dir}/${entry.name}`).catch(() => {});
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return live;
}
