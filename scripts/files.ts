/**
 * Small file checks and a command runner that the scripts running local servers (kafka/, scripts/postgres.ts,
 * scripts/lease_warden.ts, scripts/system_deps.ts) all need, kept here once.
 */

/** Whether `path` exists; any error but "not found" is thrown. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Whether `path` is a file someone may execute. */
export function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** The last `lines` lines of a log file, for an error message; `(no log)` when it cannot be read. */
export function tail(path: string, lines = 20): string {
  try {
    return Deno.readTextFileSync(path).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** `1.2 s`: the time since `started` (a `performance.now()`), for progress lines. */
export function seconds(started: number): string {
  return `${((performance.now() - started) / 1000).toFixed(1)} s`;
}

/**
 * Runs `cmd` and returns its stdout; throws a sentence starting "Cannot <what>" with its output
 * when it is not installed or fails.
 */
export async function run(cmd: string, args: string[], what: string): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot ${what}: ${cmd} is not installed`);
    }
    throw error;
  }
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr);
    throw new Error(`Cannot ${what}: ${cmd} exited with ${output.code}\n${stdout}${stderr}`.trim());
  }
  return stdout;
}
