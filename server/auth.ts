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
 *   this 2-core machine at load average 5, up to about 90 ms in worse moments.
 * - Guessing and floods (server/sign_in_limits.ts): after `SIGNIN_FREE_FAILURES` wrong passwords
 *   for a username, or `SIGNIN_FREE_FAILURES_PER_ADDRESS` from a client address, each further
 *   try must wait, twice as long after each failure (up to `SIGNIN_MAX_DELAY_MS`); a try made
 *   earlier is answered RESOURCE_EXHAUSTED with the time to wait, before any hash or store read.
 *   A success resets the username's count; the address's count is only forgotten with time
 *   (`SIGNIN_FAILURE_WINDOW_MS`), or an attacker could clear it with sign-ins of her own
 *   account between guesses. At most `SIGNIN_HASH_CONCURRENCY` hashes run at once (not all
 *   cores and 19 MiB each), at most `SIGNIN_HASH_QUEUE` wait, served by client address in turn;
 *   one more is RESOURCE_EXHAUSTED, so a flood delays a real user's sign-in by a bounded time.
 *   A sign-in whose call was cancelled is dropped before its hash starts. New accounts are
 *   limited per address (`ACCOUNTS_PER_ADDRESS_PER_HOUR`) and in all (`ACCOUNTS_PER_HOUR`,
 *   `ACCOUNTS_BURST`).
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
import { type Config, loadConfig } from "../core/config.ts";
import { ChatError, describeError, invalidArgument } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import {
  DISPLAY_NAME_MAX_LENGTH,
  nameKey,
  nameProblem,
  USERNAME_MAX_LENGTH,
  usernameProblem,
} from "../protocol/names.ts";
import { preparePrivateDirectory, tightenFile } from "../core/private_files.ts";
import type { Store } from "../store/store.ts";
import { RateLimiter } from "./rate_limiter.ts";
import { addressKey, cancelled, FailureThrottle, HashQueue, retryIn } from "./sign_in_limits.ts";

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

/** Who asks to sign in, as the transport saw it. */
export interface SignInContext {
  /** The client's network address (IP, no port); undefined when unknown. */
  readonly address?: string;
  /** Aborted when the client cancels the call (or its deadline passes). */
  readonly signal?: AbortSignal;
}

/** How passwords are hashed and checked (argon2id; tests count or slow it). */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hash: string, password: string): Promise<boolean>;
}

/** The settings that limit sign-ins (core/config.ts). */
export type SignInLimits = Pick<
  Config,
  | "signInFreeFailures"
  | "signInFreeFailuresPerAddress"
  | "signInDelayMs"
  | "signInMaxDelayMs"
  | "signInFailureWindowMs"
  | "signInHashConcurrency"
  | "signInHashQueue"
  | "accountsPerAddressPerHour"
  | "accountsPerHour"
  | "accountsBurst"
>;

export interface Auth {
  readonly mode: "on" | "off";
  /** Signs in, creating the account on the first sign-in of a free username. */
  signIn(
    username: string,
    password: string,
    displayName?: string,
    context?: SignInContext,
  ): Promise<SignInResult>;
  /** Password hashes running and waiting now, and started since creation. */
  hashStats(): { running: number; waiting: number; started: number };
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
  /** Sign-in limits; unset ones take their defaults (`loadConfig({})`). */
  limits?: Partial<SignInLimits>;
  /** argon2id by default. */
  hasher?: PasswordHasher;
  /** The clock, in milliseconds since the epoch (for tests). */
  now?: () => number;
  /** A monotonic clock in milliseconds, for the sign-in limits (for tests). */
  monotonic?: () => number;
}

export const ISSUER = "chat";
export const USERNAME_MAX = USERNAME_MAX_LENGTH;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;
export const DISPLAY_NAME_MAX = DISPLAY_NAME_MAX_LENGTH;
export const SECRET_MIN_BYTES = 32;

/** OWASP's argon2id baseline: m = 19 MiB, t = 2, p = 1. */
const ARGON2_OPTIONS = {
  // Algorithm.Argon2id: the typings declare a const enum, which isolated modules cannot read.
  algorithm: 2 as Algorithm,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** argon2id with OWASP's baseline cost, run natively off the main thread. */
export const argon2Hasher: PasswordHasher = {
  hash: (password) => hash(password, ARGON2_OPTIONS),
  verify: (stored, password) => verify(stored, password),
};

const unauthenticated = (message: string) => new ChatError("unauthenticated", message);

/** Length in characters (code points), as a person counts them. */
function characters(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** The name rules of protocol/names.ts; usernames compare without case (the store's lookups). */
function checkUsername(username: string): void {
  const problem = usernameProblem(username);
  if (problem) throw invalidArgument(`Cannot sign in: ${problem}`);
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
  const problem = nameProblem("the display name", name, DISPLAY_NAME_MAX);
  if (problem) throw invalidArgument(`Cannot sign in: ${problem}`);
  return name;
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
  const hasher = options.hasher ?? argon2Hasher;
  const monotonic = options.monotonic ?? (() => performance.now());
  const limits: SignInLimits = { ...signInDefaults(), ...options.limits };
  const throttle = (freeFailures: number) =>
    new FailureThrottle({
      freeFailures,
      delayMs: limits.signInDelayMs,
      maxDelayMs: limits.signInMaxDelayMs,
      windowMs: limits.signInFailureWindowMs,
      now: monotonic,
    });
  const byUser = throttle(limits.signInFreeFailures);
  const byAddress = throttle(limits.signInFreeFailuresPerAddress);
  const queue = new HashQueue({
    concurrency: limits.signInHashConcurrency,
    queueLimit: limits.signInHashQueue,
    now: monotonic,
  });
  const hourly = (perHour: number, burst: number) =>
    new RateLimiter({ ratePerSecond: perHour / 3600, burst, now: monotonic });
  const accountsByAddress = hourly(
    limits.accountsPerAddressPerHour,
    limits.accountsPerAddressPerHour,
  );
  const accounts = hourly(limits.accountsPerHour, limits.accountsBurst);
  /** When the last "queue full" warning was logged, and the refusals since. */
  const queueWarning = { at: -Infinity, refused: 0 };

  /** Runs a hash in the queue; a refusal for a full queue is logged at most every 10 s. */
  async function hashing<T>(address: string, task: () => Promise<T>, signal?: AbortSignal) {
    try {
      return await queue.run(address, task, signal);
    } catch (err) {
      if (err instanceof ChatError && err.code === "resource_exhausted") {
        queueWarning.refused++;
        if (monotonic() - queueWarning.at >= 10_000) {
          logger.warn("Sign-ins refused: the password-hashing queue is full", {
            refused: queueWarning.refused,
            limit: limits.signInHashQueue,
          });
          queueWarning.at = monotonic();
          queueWarning.refused = 0;
        }
      }
      throw err;
    }
  }

  /**
   * Takes one new account from the per-address and the global allowance, or refuses. Returns
   * what gives it back, for an account that is not created after all.
   */
  function allowNewAccount(username: string, address: string): () => void {
    const mine = accountsByAddress.take(address);
    if (!mine.ok) {
      logger.info("Account creation refused: too many from one address", {
        user: username,
        address,
      });
      throw new ChatError(
        "resource_exhausted",
        `Cannot sign in: ${username} would be a new account, and your address may create ${limits.accountsPerAddressPerHour} per hour; ${
          retryIn(mine.retryAfterMs)
        }`,
      );
    }
    const all = accounts.take("all");
    if (!all.ok) {
      accountsByAddress.refund(address);
      logger.warn("Account creation refused: the server's hourly allowance is used up", {
        user: username,
        address,
      });
      throw new ChatError(
        "resource_exhausted",
        `Cannot sign in: ${username} would be a new account, and this server creates at most ${limits.accountsPerHour} per hour (${limits.accountsBurst} at once); ${
          retryIn(all.retryAfterMs)
        }`,
      );
    }
    return () => {
      accountsByAddress.refund(address);
      accounts.refund("all");
    };
  }

  async function passwordMatches(
    username: string,
    stored: string,
    password: string,
    address: string,
    signal: AbortSignal | undefined,
  ) {
    try {
      return await hashing(address, () => hasher.verify(stored, password), signal);
    } catch (err) {
      if (err instanceof ChatError) throw err; // the queue's refusal, or a cancelled call
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

  /** Refuses a try while `username` or `address` must wait; else counts it as in progress. */
  function admit(userKey: string, username: string, address: string): void {
    const refusal = (
      what: string,
      admission: { retryAfterMs: number; failures: number; pending: number },
      free: number,
    ) => {
      logger.debug("Sign-in throttled", { user: username, address, ...admission });
      const state = admission.failures >= free
        ? `${admission.failures} wrong passwords ${what} in a row`
        : `${admission.pending} sign-ins ${what} are in progress and ${admission.failures} failed`;
      return new ChatError(
        "resource_exhausted",
        `Cannot sign in: ${state}; ${retryIn(admission.retryAfterMs)}`,
      );
    };
    const fromAddress = byAddress.admit(address);
    if (!fromAddress.ok) {
      throw refusal("from your address", fromAddress, limits.signInFreeFailuresPerAddress);
    }
    const forUser = byUser.admit(userKey);
    if (!forUser.ok) {
      byAddress.settle(address, "none");
      throw refusal(`for ${username}`, forUser, limits.signInFreeFailures);
    }
  }

  async function signIn(
    username: string,
    password: string,
    displayName?: string,
    context: SignInContext = {},
  ): Promise<SignInResult> {
    checkUsername(username);
    checkPassword(password);
    const name = cleanDisplayName(displayName, username);
    const { signal } = context;
    if (signal?.aborted) throw cancelled();
    const address = addressKey(context.address);
    // Names differing only in case count as one: the store may treat them as one account.
    const userKey = username.toLowerCase();
    admit(userKey, username, address);
    let outcome: "failure" | "success" | "none" = "none";
    try {
      let account = await store.getAccount(username);
      let created = false;
      if (!account) {
        const refund = allowNewAccount(username, address);
        try {
          const passwordHash = await hashing(address, () => hasher.hash(password), signal);
          const result = await store.createAccount({
            id: username,
            displayName: name,
            passwordHash,
            createdAt: new Date(now()).toISOString(),
          });
          account = result.account;
          created = result.created;
        } finally {
          // Refused by the queue, cancelled, failed, or another sign-in created it first.
          if (!created) refund();
        }
        if (created) logger.info("Account created", { user: username, address });
      }
      // An existing account, or one another sign-in created while this one was hashing.
      if (
        !created &&
        !await passwordMatches(username, account.passwordHash, password, address, signal)
      ) {
        outcome = "failure";
        logger.info("Sign-in refused: wrong password", { user: username, address });
        throw unauthenticated(`Cannot sign in: wrong password for ${username}`);
      }
      outcome = "success";
      const identity = { userId: account.id, displayName: account.displayName };
      const { token, expiresAt } = await issue(identity);
      return { token, identity, created, expiresAt };
    } finally {
      const userWait = byUser.settle(userKey, outcome);
      // A success does not clear the address: see the module comment.
      const addressWait = byAddress.settle(address, outcome === "success" ? "none" : outcome);
      if (userWait > 0 || addressWait > 0) {
        logger.warn("Sign-ins throttled after repeated wrong passwords", {
          user: username,
          address,
          waitMs: Math.max(userWait, addressWait),
        });
      }
    }
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
    // Usernames compare without case: "alice" names the account "Alice".
    if (claimedUserId !== "" && nameKey(claimedUserId) !== nameKey(identity.userId)) {
      throw new ChatError(
        "permission_denied",
        `${action}: signed in as ${identity.userId}, cannot act as ${claimedUserId}`,
      );
    }
    return identity;
  }

  return { mode, signIn, identify, hashStats: () => queue.stats };
}

/** The sign-in limits' defaults: those of the settings. */
export function signInDefaults(): SignInLimits {
  const c = loadConfig({});
  return {
    signInFreeFailures: c.signInFreeFailures,
    signInFreeFailuresPerAddress: c.signInFreeFailuresPerAddress,
    signInDelayMs: c.signInDelayMs,
    signInMaxDelayMs: c.signInMaxDelayMs,
    signInFailureWindowMs: c.signInFailureWindowMs,
    signInHashConcurrency: c.signInHashConcurrency,
    signInHashQueue: c.signInHashQueue,
    accountsPerAddressPerHour: c.accountsPerAddressPerHour,
    accountsPerHour: c.accountsPerHour,
    accountsBurst: c.accountsBurst,
  };
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
