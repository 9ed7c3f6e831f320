/**
 * Files at rest that only the service's own user may read: the SQLite database (direct messages,
 * password hashes) with its `-wal`, `-shm` and `-journal` companions, and the token-signing
 * secret. Each is created 600 in a directory created 700, whatever the umask; one an older
 * version left readable by others is tightened at start-up, and the change is logged.
 *
 * SQLite creates `-wal` and `-shm` with the mode of the database file, so a database file that
 * is 600 before SQLite opens it keeps its companions private too.
 *
 * A directory that already exists is tightened only when it holds nothing but the service's own
 * files (the database's, and files already private to their owner, such as the secret): a
 * database put in the working directory or in /tmp must not change who may list those. It is
 * then left as it is, with a warning; the files themselves are private either way.
 */

import { basename, dirname } from "node:path";
import { describeError } from "./errors.ts";
import type { Logger } from "./logger.ts";

const FILE_MODE = 0o600;
const DIRECTORY_MODE = 0o700;
/** The bits that let other users (group, others) in. */
const SHARED = 0o077;
const STICKY = 0o1000;

/** The files SQLite keeps next to database `path`. */
export function databaseFiles(path: string): string[] {
  return [path, `${path}-wal`, `${path}-shm`, `${path}-journal`];
}

const supported = () => Deno.build.os !== "windows";
const octal = (mode: number) => (mode & 0o7777).toString(8);

function statOf(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Makes an existing `path` readable by its owner only, logging what changed. Returns false when
 * it does not exist. A file that cannot be changed (another user's) is logged, not fatal.
 */
export function tightenFile(path: string, logger: Logger, what: string): boolean {
  if (!supported()) return statOf(path) !== undefined;
  const stat = statOf(path);
  if (!stat) return false;
  if (stat.mode === null || (stat.mode & SHARED) === 0) return true;
  try {
    Deno.chmodSync(path, FILE_MODE);
    logger.warn(`Tightened the permissions of the ${what}: other users could read it`, {
      path,
      was: octal(stat.mode),
      now: octal(FILE_MODE),
    });
  } catch (err) {
    logger.warn(`Cannot tighten the permissions of the ${what}: other users can read it`, {
      path,
      mode: octal(stat.mode),
      error: describeError(err),
    });
  }
  return true;
}

/**
 * Creates directory `dir` (and its missing parents) 700; when it exists and others may enter
 * it, makes it 700 if every entry in it is the service's own (named in `ownNames`, or a file
 * private to its owner already), else warns.
 */
export function preparePrivateDirectory(
  dir: string,
  logger: Logger,
  ownNames: ReadonlySet<string>,
): void {
  const ours = (entry: Deno.DirEntry) => ownNames.has(entry.name) || privateFile(dir, entry);
  const stat = statOf(dir);
  if (!stat) {
    Deno.mkdirSync(dir, { recursive: true, mode: DIRECTORY_MODE });
    if (supported()) Deno.chmodSync(dir, DIRECTORY_MODE); // whatever the umask
    return;
  }
  if (!supported() || stat.mode === null || (stat.mode & SHARED) === 0) return;
  const others = (stat.mode & STICKY) !== 0
    ? ["(a shared directory)"]
    : [...Deno.readDirSync(dir)].filter((entry) => !ours(entry)).map((entry) => entry.name);
  if (others.length > 0) {
    logger.warn(
      "The data directory is readable by other users and holds other files: left as it is (its data files are private; give them a directory of their own)",
      { path: dir, mode: octal(stat.mode), other: others.slice(0, 3).join(",") },
    );
    return;
  }
  try {
    Deno.chmodSync(dir, DIRECTORY_MODE);
    logger.warn("Tightened the permissions of the data directory: other users could list it", {
      path: dir,
      was: octal(stat.mode),
      now: octal(DIRECTORY_MODE),
    });
  } catch (err) {
    logger.warn("Cannot tighten the permissions of the data directory", {
      path: dir,
      mode: octal(stat.mode),
      error: describeError(err),
    });
  }
}

/** Whether `entry` of `dir` is a file only its owner may read or write. */
function privateFile(dir: string, entry: Deno.DirEntry): boolean {
  if (!entry.isFile) return false;
  const mode = statOf(`${dir}/${entry.name}`)?.mode;
  return mode !== null && mode !== undefined && (mode & SHARED) === 0;
}

/**
 * Before SQLite opens database `path`: its directory private (see above), the database file
 * created 600 when missing, and the database and its companions tightened when older versions
 * left them readable.
 */
export function preparePrivateDatabase(path: string, logger: Logger): void {
  preparePrivateDirectory(dirname(path), logger, new Set(databaseFiles(basename(path))));
  if (!tightenFile(path, logger, "database file")) {
    // Created private now, so that SQLite's -wal and -shm files are created private too. An
    // empty file is an empty database to SQLite; another process creating it at the same
    // moment is fine (no truncation).
    const file = Deno.openSync(path, { write: true, create: true, mode: FILE_MODE });
    file.close();
    if (supported()) Deno.chmodSync(path, FILE_MODE);
  }
  for (const companion of databaseFiles(path).slice(1)) {
    tightenFile(companion, logger, "database file");
  }
}
