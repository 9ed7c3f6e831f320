/**
 * Tokens: after a sign-in, every call carries a JWT (`jose`), HS256 with the server secret: `sub`
 * = user id, `name` = display name, `iat`, `exp`, issuer "chat". They are stateless: every
 * gateway holding the same secret accepts them, and none is kept in the store. Here they are
 * issued, and a call's `authorization` is turned into who makes it.
 */

import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { ChatError } from "../core/errors.ts";
import { nameKey } from "../protocol/names.ts";

export interface Identity {
  userId: string;
  displayName: string;
}

const ISSUER = "chat";

export interface TokenOptions {
  mode: "on" | "off";
  /** The HMAC key tokens are signed with. */
  secret: Uint8Array;
  tokenTtlSeconds: number;
  /** The clock, in milliseconds since the epoch. */
  now: () => number;
}

export interface Tokens {
  issue(identity: Identity): Promise<{ token: string; expiresAt: Date }>;
  /** See `Auth.identify`. */
  identify(
    authorization: string | undefined,
    claimedUserId: string,
    action: string,
  ): Promise<Identity>;
}

export const unauthenticated = (message: string) => new ChatError("unauthenticated", message);

export function createTokens(options: TokenOptions): Tokens {
  const { mode, secret, tokenTtlSeconds, now } = options;

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

  return { issue, identify };
}
