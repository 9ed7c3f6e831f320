/**
 * Signing in with a username and password: the first sign-in of a free username creates the
 * account, later ones check the password; a success is answered with a token (server/tokens.ts).
 *
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
 */

import { type Algorithm, hash, verify } from "@node-rs/argon2";
import { type Config, loadConfig } from "../core/config.ts";
import { ChatError, describeError, invalidArgument } from "../core/errors.ts";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import type { Logger } from "../core/logger.ts";
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from "../protocol/limits.ts";
import {
  characters,
  DISPLAY_NAME_MAX_LENGTH,
  nameProblem,
  usernameProblem,
} from "../protocol/names.ts";
import type { Store } from "../store/store.ts";
import { RateLimiter } from "./rate_limiter.ts";
import { addressKey, cancelled, FailureThrottle, HashQueue, retryIn } from "./sign_in_limits.ts";
import { type Identity, type Tokens, unauthenticated } from "./tokens.ts";

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

export interface SignInOptions {
  store: Store;
  logger: Logger;
  /** Issues the token of a successful sign-in. */
  tokens: Pick<Tokens, "issue">;
  /** Sign-in limits; unset ones take their defaults (`loadConfig({})`). */
  limits?: Partial<SignInLimits>;
  /** argon2id by default. */
  hasher?: PasswordHasher;
  /** The clock, in milliseconds since the epoch. */
  now: () => number;
  /** A monotonic clock in milliseconds, for the sign-in limits (for tests). */
  monotonic?: () => number;
}

/** Signing in, and how busy password hashing is. */
export interface SignIn {
  signIn(
    username: string,
    password: string,
    displayName?: string,
    context?: SignInContext,
  ): Promise<SignInResult>;
  /** Password hashes running and waiting now, and started since creation. */
  hashStats(): { running: number; waiting: number; started: number };
}

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

/** The name rules of protocol/names.ts; usernames compare without case (the store's lookups). */
function checkUsername(username: string): void {
  const problem = usernameProblem(username);
  if (problem) throw invalidArgument(`Cannot sign in: ${problem}`);
}

function checkPassword(password: string): void {
  const length = characters(password);
  if (length < PASSWORD_MIN_LENGTH) {
    throw invalidArgument(
      `Cannot sign in: the password is ${length} characters, it must be at least ${PASSWORD_MIN_LENGTH}`,
    );
  }
  if (length > PASSWORD_MAX_LENGTH) {
    throw invalidArgument(
      `Cannot sign in: the password is ${length} characters, the limit is ${PASSWORD_MAX_LENGTH}`,
    );
  }
}

/** The display name to store: trimmed, the username when empty. */
function cleanDisplayName(displayName: string | undefined, username: string): string {
  const name = (displayName ?? "").trim();
  if (name === "") return username;
  const problem = nameProblem("the display name", name, DISPLAY_NAME_MAX_LENGTH);
  if (problem) throw invalidArgument(`Cannot sign in: ${problem}`);
  return name;
}

export function createSignIn(options: SignInOptions): SignIn {
  const { store, logger, tokens, now } = options;
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
        if (created) {
          logger.info("Account created", { user: username, address });
          // A newcomer starts with "general" read: its past is there to scroll, not unread.
          await store.markRead(DEFAULT_ROOM, account.id, await store.lastSeq(DEFAULT_ROOM));
        }
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
      const { token, expiresAt } = await tokens.issue(identity);
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

  return { signIn, hashStats: () => queue.stats };
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
