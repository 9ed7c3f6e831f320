/**
 * Authentication as the gateway assembles it: the secret tokens are signed with, sign-in with a
 * username and password (server/sign_in.ts), and the signed token every later call carries
 * (server/tokens.ts).
 *
 * In mode "off" the user id a call claims is trusted (for local development and the original
 * clients); a token, if sent anyway, is still verified and wins.
 */

import { basename, dirname } from "node:path";
import type { Config } from "../core/config.ts";
import { describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { preparePrivateDirectory, tightenFile } from "../core/private_files.ts";
import { characters } from "../protocol/names.ts";
import type { Store } from "../store/store.ts";
import { createSignIn, type PasswordHasher, type SignIn, type SignInLimits } from "./sign_in.ts";
import { createTokens, type Identity } from "./tokens.ts";

// What the chat service takes from authentication, by the name it has always imported.
export type { SignInContext, SignInResult } from "./sign_in.ts";
export type { Identity } from "./tokens.ts";

export interface Auth extends SignIn {
  readonly mode: "on" | "off";
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

const SECRET_MIN_BYTES = 32;

export function createAuth(options: AuthOptions): Auth {
  const { mode, secret, tokenTtlSeconds } = options;
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
  const tokens = createTokens({ mode, secret, tokenTtlSeconds, now });
  const { signIn, hashStats } = createSignIn({ ...options, tokens, now });
  return { mode, signIn, hashStats, identify: tokens.identify };
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
