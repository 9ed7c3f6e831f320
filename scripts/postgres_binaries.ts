/**
 * Finding and running PostgreSQL's programs for the tests' server (scripts/postgres.ts).
 *
 * The binaries come from Debian's newest /usr/lib/postgresql/N/bin, else /usr/local/bin, else the
 * PATH; `PG_BIN` names a directory to use instead. PostgreSQL refuses to run as root, so as root
 * every program runs as the `postgres` OS user (through `runuser`).
 */

import { isExecutable } from "./files.ts";

/** The OS user the server runs as when this process is root. */
export const OS_USER = "postgres";

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

/** The uid and gid of OS user `name`, from /etc/passwd. */
export function osUser(name: string): { uid: number; gid: number } | undefined {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** Whether this process runs as root (then PostgreSQL runs as {@linkcode OS_USER}). */
export const asRoot = (): boolean => Deno.uid() === 0;

/** Runs a PostgreSQL tool (as the postgres OS user when we are root); returns its output. */
export async function tool(
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
