/**
 * Reading one setting: an environment variable parsed into a typed value, or a file a setting
 * names, with an error that names the setting, its value and what was expected. core/config.ts
 * reads every setting of the system with these.
 */

/** The environment the settings are read from. */
export type Env = Record<string, string | undefined>;

/** A whole number (0 or more), `fallback` when unset. */
export function int(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`Cannot read configuration: ${name} is "${raw}", expected a whole number`);
  }
  return value;
}

/** A whole number of at least `min`, `fallback` when unset. */
export function intAtLeast(env: Env, name: string, fallback: number, min: number): number {
  const value = int(env, name, fallback);
  if (value < min) {
    throw new Error(
      `Cannot read configuration: ${name} is "${env[name]}", expected at least ${min}`,
    );
  }
  return value;
}

/** A whole number of at most `max`, `fallback` when unset. */
export function intAtMost(env: Env, name: string, fallback: number, max: number): number {
  const value = int(env, name, fallback);
  if (value > max) {
    throw new Error(
      `Cannot read configuration: ${name} is "${env[name]}", expected at most ${max}`,
    );
  }
  return value;
}

/** A whole number of at least `min`, or undefined when unset. */
export function optionalInt(env: Env, name: string, min: number): number | undefined {
  if (env[name] === undefined || env[name] === "") return undefined;
  return intAtLeast(env, name, min, min);
}

/** One of `allowed`, `fallback` when unset. */
export function oneOf<T extends string>(
  env: Env,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new Error(
      `Cannot read configuration: ${name} is "${raw}", expected one of ${allowed.join(", ")}`,
    );
  }
  return raw as T;
}

/** `true` or `false`, `fallback` when unset. */
export function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (raw !== "true" && raw !== "false") {
    throw new Error(`Cannot read configuration: ${name} is "${raw}", expected true or false`);
  }
  return raw === "true";
}

/** Both settings or neither: a certificate without its key (or the reverse) is a mistake. */
export function pair(
  env: Env,
  cert: string,
  key: string,
): [string | undefined, string | undefined] {
  const a = env[cert] || undefined;
  const b = env[key] || undefined;
  if ((a === undefined) !== (b === undefined)) {
    throw new Error(
      `Cannot read configuration: ${a === undefined ? key : cert} is set but ${
        a === undefined ? cert : key
      } is not; set both or neither`,
    );
  }
  return [a, b];
}

/** Refuses setting `name` when what it needs (`needed`) is not `present`. */
export function requires(env: Env, name: string, needed: string, present: boolean): void {
  if (env[name] && !present) {
    throw new Error(`Cannot read configuration: ${name} is set but needs ${needed}`);
  }
}

/** Reads a file named by setting `name`; the error names the setting and the file. */
export function readSettingFile(
  name: string,
  path: string,
  readFile: (path: string) => string = Deno.readTextFileSync,
): string {
  try {
    return readFile(path);
  } catch (err) {
    throw new Error(
      `Cannot read configuration: ${name} is "${path}", which cannot be read (${
        err instanceof Error ? err.message : String(err)
      })`,
    );
  }
}
