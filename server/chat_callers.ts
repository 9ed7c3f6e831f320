/**
 * Who is calling the chat service, and the name shown for them. With a token (AUTH=on, or a
 * token in classic mode) the caller is the token's account and its name is the account's; in
 * classic mode (AUTH=off) without one, the caller is the user id the request names and the name is
 * the one its stream gave.
 */

import { ChatError } from "../core/errors.ts";
import type { Presence } from "../core/types.ts";
import { DISPLAY_NAME_MAX_LENGTH, nameProblem } from "../protocol/names.ts";
import type { Auth, Identity } from "./auth.ts";
import { checkUserId } from "./chat_checks.ts";
import type { Caller } from "./chat_types.ts";
import type { Hub } from "./hub.ts";

export interface CallersOptions {
  auth: Auth;
  hub: Hub;
  /** One user's presence (from the processor's registry), if known; for AUTH=off names. */
  presenceOf?: (userId: string) => Presence | undefined;
}

export class Callers {
  readonly #auth: Auth;
  readonly #hub: Hub;
  readonly #presenceOf: CallersOptions["presenceOf"];

  constructor(options: CallersOptions) {
    this.#auth = options.auth;
    this.#hub = options.hub;
    this.#presenceOf = options.presenceOf;
  }

  /**
   * The caller's identity; in classic mode (AUTH=off) the id the request names.
   * `claimed` is undefined for requests that have no user field.
   */
  async identify(caller: Caller, claimed: string | undefined, action: string): Promise<Identity> {
    const identity = await this.#auth.identify(
      caller.authorization,
      (claimed ?? "").trim(),
      action,
    );
    if (claimed === undefined && identity.userId === "") {
      // Classic mode, and the request has no user field: only a token says who this is.
      throw new ChatError(
        "unauthenticated",
        `${action}: sign in first and send the token as \`authorization: Bearer <token>\``,
      );
    }
    checkUserId(action, identity.userId);
    return identity;
  }

  /**
   * The name shown for `me`: with a token (AUTH=on, or a token in classic mode), the account's,
   * never one from the request; without, `given` (what the client's Connect said) or the user id.
   * An account name from before the name rules that breaks them shows as the user id.
   */
  shownName(caller: Caller, me: Identity, given: string | undefined): string {
    if ((caller.authorization ?? "").trim() !== "") {
      return nameProblem("", me.displayName, DISPLAY_NAME_MAX_LENGTH) === undefined
        ? me.displayName
        : me.userId;
    }
    return given || me.userId;
  }

  /** The name shown for `me` now: see `shownName`; without a token, the name of its stream. */
  nameOf(caller: Caller, me: Identity): string {
    return this.shownName(
      caller,
      me,
      this.#hub.displayNameOf(me.userId) ?? this.#presenceOf?.(me.userId)?.displayName,
    );
  }
}
