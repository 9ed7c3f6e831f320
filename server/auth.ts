/**
 * Authentication: sign-in with a username and password, and signed tokens for every later call.
 *
 * - The first sign-in of a free username creates the account; later sign-ins check the password.
 * - Passwords are hashed with argon2id through `@node-rs/argon2` (a napi addon, prebuilt per
 *   platform and shipped in the npm registry as optional dependencies, so `deno install` with
 *   `deno.lock` fetches the linux-x64 binary and needs no compiler). It was chosen over the
 *   pure-JS `bcryptjs` because argon2id is the current OWASP recommendation, is memory-hard,
 *   and runs natively off the main thread, so a sign-in does not block the event loop. The cost
 *   is OWASP's baseline (19 MiB, 2 passes, 1 lane): a sign-in measured 25–30 ms (median) on
 *   this 2-core machine at load average 5, up to about 90 ms in worse moments. At most
 *   {@linkcode MAX_CONCURRENT_HASHES} hashes run at once, so a burst of sign-ins queues instead
 *   of taking all cores and 19 MiB each.
 * - Tokens are JWTs (`jose`), HS256 with the server secret: `sub` = user id, `name` = display
 *   name, `iat`, `exp`, issuer "chat". They are stateless: every gateway holding the same secret
 *   accepts them, and none is kept in the store.
 *
 * In mode "off" the user id a call claims is trusted (for local development and the original
 * clients); a token, if sent anyway, is still verified and wins.
 */

import { type Algorithm, hash, verify } from "@node-rs/argon2";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { basename, dirname } from "node:path";
import type { Config } from "../core/config.ts";
import { ChatError, describeError, invalidArgument } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { preparePrivateDirectory, tightenFile } from "../core/private_files.ts";
import type { Store } from "../store/store.ts";

export interface Identity {
  userId: string;
  displayName: string;
}

export interface SignInResult {
  token: string;
  identity: Identity;
  /** Whether this sign-in created the account. */
  created: boolean;
  expiresAt: Date;
}

export interface Auth {
  readonly mode: "on" | "off";
  /** Signs in, creating the account on the first sign-in of a free username. */
  signIn(username: string, password: string, displayName?: string): Promise<SignInResult>;
  /**
   * Who makes a call. `authorization` is the call's `authorization` metadata, `claimedUserId`
   * the user id the request names ("" when it names none), `action` the start of any error
   * message ("Cannot send message").
   */
  identify(
    authorization: string | undefined,
    claimedUserId: string,
    action: string,
  ): Promise<Identity>;
}

export interface AuthOptions {
  mode: "on" | "off";
  /** The HMAC key tokens are signed with: at least 32 bytes. */
  secret: Uint8Array;
  store: Store;
  logger: Logger;
  tokenTtlSeconds: number;
  /** The clock, in milliseconds since the epoch (for tests). */
  now?: () => number;
}

export const ISSUER = "chat";
export const USERNAME_MAX = 32;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;
export const DISPLAY_NAME_MAX = 64;
export const SECRET_MIN_BYTES = 32;
/** Argon2id hashes (or checks) running at once; more wait their turn. */
export const MAX_CONCURRENT_HASHES = 2;

/** OWASP's argon2id baseline: m = 19 MiB, t = 2, p = 1. */
const ARGON2_OPTIONS = {
  // Algorithm.Argon2id: the typings declare a const enum, which isolated modules cannot read.
  algorithm: 2 as Algorithm,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

const USERNAME_PATTERN = /^[A-Za-z0-9._-]+$/;
// deno-lint-ignore no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const unauthenticated = (message: string) => new ChatError("unauthenticated", message);

/** Length in characters (code points), as a person counts them. */
function characters(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function checkUsername(username: string): void {
  const length = characters(username);
  if (length === 0) throw invalidArgument("Cannot sign in: the username is empty");
  if (length > USERNAME_MAX) {
    throw invalidArgument(
      `Cannot sign in: the username is ${length} characters, the limit is ${USERNAME_MAX}`,
    );
  }
  if (!USERNAME_PATTERN.test(username)) {
    throw invalidArgument(
      `Cannot sign in: the username ${
        JSON.stringify(username)
      } may only hold letters, digits, '.', '_' and '-'`,
    );
  }
}

function checkPassword(password: string): void {
  const length = characters(password);
  if (length < PASSWORD_MIN) {
    throw invalidArgument(
      `Cannot sign in: the password is ${length} characters, it must be at least ${PASSWORD_MIN}`,
    );
  }
  if (length > PASSWORD_MAX) {
    throw invalidArgument(
      `Cannot sign in: the password is ${length} characters, the limit is ${PASSWORD_MAX}`,
    );
  }
}

/** The display name to store: trimmed, the username when empty. */
function cleanDisplayName(displayName: string | undefined, username: string): string {
  const name = (displayName ?? "").trim();
  if (name === "") return username;
  const length = characters(name);
  if (length > DISPLAY_NAME_MAX) {
    throw invalidArgument(
      `Cannot sign in: the display name is ${length} characters, the limit is ${DISPLAY_NAME_MAX}`,
    );
  }
  if (CONTROL_CHARACTERS.test(name)) {
    throw invalidArgument("Cannot sign in: the display name holds control characters");
  }
  return name;
}

/** A counting semaphore: runs at most `limit` tasks at once, the rest in arrival order. */
function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next(); // hands the slot over: `running` stays the same
      else running--;
    }
  };
}

export function createAuth(options: AuthOptions): Auth {
  const { mode, secret, store, logger, tokenTtlSeconds } = options;
  const now = options.now ?? Date.now;
  if (secret.byteLength < SECRET_MIN_BYTES) {
    throw new Error(
      `Cannot start authentication: the secret is ${secret.byteLength} bytes, it must be at least ${SECRET_MIN_BYTES}`,
    );
  }
  if (!Number.isInteger(tokenTtlSeconds) || tokenTtlSeconds <= 0) {
    throw new Error(
      `Cannot start authentication: the token lifetime is ${tokenTtlSeconds} seconds, it must be a positive whole number`,
    );
  }
  const hashing = limiter(MAX_CONCURRENT_HASHES);

  async function passwordMatches(username: string, stored: string, password: string) {
    try {
      return await hashing(() => verify(stored, password));
    } catch (err) {
      logger.error("Cannot check a password: the stored hash cannot be read", {
        user: username,
        error: describeError(err),
      });
      throw new ChatError(
        "internal",
        `Cannot sign in: the stored password of ${username} cannot be read`,
        { cause: err },
      );
    }
  }

  async function issue(identity: Identity): Promise<{ token: string; expiresAt: Date }> {
    const issuedAt = Math.floor(now() / 1000);
    const expiresAt = issuedAt + tokenTtlSeconds;
    const token = await new SignJWT({ name: identity.displayName })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuer(ISSUER)
      .setSubject(identity.userId)
      .setIssuedAt(issuedAt)
      .setExpirationTime(expiresAt)
      .sign(secret);
    return { token, expiresAt: new Date(expiresAt * 1000) };
  }

  async function signIn(
    username: string,
    password: string,
    displayName?: string,
  ): Promise<SignInResult> {
    checkUsername(username);
    checkPassword(password);
    const name = cleanDisplayName(displayName, username);

    let account = await store.getAccount(username);
    let created = false;
    if (!account) {
      const passwordHash = await hashing(() => hash(password, ARGON2_OPTIONS));
      const result = await store.createAccount({
        id: username,
        displayName: name,
        passwordHash,
        createdAt: new Date(now()).toISOString(),
      });
      account = result.account;
      created = result.created;
      if (created) logger.info("Account created", { user: username });
    }
    // An existing account, or one another sign-in created while this one was hashing.
    if (!created && !await passwordMatches(username, account.passwordHash, password)) {
      logger.info("Sign-in refused: wrong password", { user: username });
      throw unauthenticated(`Cannot sign in: wrong password for ${username}`);
    }
    const identity = { userId: account.id, displayName: account.displayName };
    const { token, expiresAt } = await issue(identity);
    return { token, identity, created, expiresAt };
  }

  async function verifyToken(token: string, action: string): Promise<Identity> {
    try {
      const { payload } = await jwtVerify(token, secret, {
        issuer: ISSUER,
        algorithms: ["HS256"],
        requiredClaims: ["sub", "iat", "exp"],
        currentDate: new Date(now()),
      });
      const userId = payload.sub;
      const displayName = payload.name;
      if (typeof userId !== "string" || userId === "" || typeof displayName !== "string") {
        throw unauthenticated(`${action}: the token is invalid (it names no user), sign in again`);
      }
      return { userId, displayName };
    } catch (err) {
      if (err instanceof ChatError) throw err;
      if (err instanceof joseErrors.JWTExpired) {
        const exp = err.payload.exp;
        const when = typeof exp === "number" ? ` at ${new Date(exp * 1000).toISOString()}` : "";
        throw unauthenticated(`${action}: the token expired${when}, sign in again`);
      }
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
        throw unauthenticated(
          `${action}: the token is invalid (its signature does not match), sign in again`,
        );
      }
      if (err instanceof joseErrors.JWTClaimValidationFailed) {
        throw unauthenticated(`${action}: the token is invalid (${err.message}), sign in again`);
      }
      throw unauthenticated(`${action}: the token is invalid (it is malformed), sign in again`);
    }
  }

  async function identify(
    authorization: string | undefined,
    claimedUserId: string,
    action: string,
  ): Promise<Identity> {
    const header = (authorization ?? "").trim();
    if (header === "" && mode === "off") {
      return { userId: claimedUserId, displayName: claimedUserId };
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      throw unauthenticated(
        `${action}: sign in first and send the token as \`authorization: Bearer <token>\``,
      );
    }
    const identity = await verifyToken(match[1]!, action);
    if (claimedUserId !== "" && claimedUserId !== identity.userId) {
      throw new ChatError(
        "permission_denied",
        `${action}: signed in as ${identity.userId}, cannot act as ${claimedUserId}`,
      );
    }
    return identity;
  }

  return { mode, signIn, identify };
}

const encoder = new TextEncoder();

/**
 * The token-signing secret: `AUTH_SECRET` when set, else the file at `authSecretFile`, created
 * with 32 random bytes (hex) when missing. The file is written to a temporary name and then
 * hard-linked into place, which never overwrites: when two gateways start at once, one link
 * wins and both read the winner's secret. The file is 600 and its directory 700; ones left
 * readable by others are tightened, and that is logged.
 */
export async function loadAuthSecret(
  config: Pick<Config, "authSecret" | "authSecretFile">,
  logger: Logger,
): Promise<Uint8Array> {
  if (config.authSecret !== undefined) {
    const length = characters(config.authSecret);
    if (length < SECRET_MIN_BYTES) {
      throw new Error(
        `Cannot load the auth secret: AUTH_SECRET is ${length} characters, it must be at least ${SECRET_MIN_BYTES}`,
      );
    }
    logger.info("Auth secret: from AUTH_SECRET");
    return encoder.encode(config.authSecret);
  }

  const path = config.authSecretFile;
  // Created 700, or tightened when it holds only private files (see core/private_files.ts).
  preparePrivateDirectory(dirname(path), logger, new Set([basename(path)]));
  let secret = await readSecretFile(path, logger);
  if (secret !== undefined) {
    logger.info("Auth secret: read from file", { path });
    return encoder.encode(secret);
  }

  const random = crypto.getRandomValues(new Uint8Array(32));
  const hex = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  const temp = `${path}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
  let created = false;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      await Deno.chmod(temp, 0o600); // whatever the umask
      await file.write(encoder.encode(hex + "\n"));
      await file.sync();
    } finally {
      file.close();
    }
    try {
      await Deno.link(temp, path);
      created = true;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
  } catch (err) {
    throw new Error(`Cannot create the auth secret file ${path}: ${describeError(err)}`, {
      cause: err,
    });
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
  secret = await readSecretFile(path, logger);
  if (secret === undefined) {
    throw new Error(`Cannot load the auth secret: ${path} vanished right after it was created`);
  }
  logger.info(created ? "Auth secret: created file" : "Auth secret: read from file", { path });
  return encoder.encode(secret);
}

/** The secret in the file, trimmed; undefined when the file does not exist. */
async function readSecretFile(path: string, logger: Logger): Promise<string | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot read the auth secret file ${path}: ${describeError(err)}`, {
      cause: err,
    });
  }
  const secret = text.trim();
  const length = characters(secret);
  if (length < SECRET_MIN_BYTES) {
    throw new Error(
      `Cannot load the auth secret: ${path} holds ${length} characters, it must hold at least ${SECRET_MIN_BYTES}`,
    );
  }
  // An older version, or a person, may have left it readable by others.
  tightenFile(path, logger, "auth secret file");
  return secret;
}
