/**
 * Blocking users in the chat service: any user blocks another, who can then no longer reach
 * them by direct message (`Rooms.requireBothInDirect`, `Rooms.openDirect`), and whose messages,
 * edits, reactions and typing the blocker's streams skip (`Hub.block`), as their history, search
 * and unread counts do (the store's `reader`). A block is told over the bus to every gateway, so
 * that each applies it to the blocker's streams it holds at once.
 */

import type { Config } from "../core/config.ts";
import { ChatError, describeError, invalidArgument } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { BlockChange } from "../core/types.ts";
import { nameKey } from "../protocol/names.ts";
import type { Fanout } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import type { Auth } from "./auth.ts";
import type { Callers } from "./chat_callers.ts";
import { checkUserId, notFound, sendingRate, takeOrRefuse } from "./chat_checks.ts";
import type { Caller } from "./chat_types.ts";
import type { Hub } from "./hub.ts";
import type { RateLimiter } from "./rate_limiter.ts";

/** The most users one user may block: each stream holds the list, each history read uses it. */
export const MAX_BLOCKED_USERS = 1000;

export interface BlocksOptions {
  bus: Fanout;
  hub: Hub;
  store: Pick<Store, "getAccount" | "setBlocked" | "blockedBy" | "isBlocked">;
  auth: Pick<Auth, "mode">;
  limiter: RateLimiter;
  callers: Callers;
  logger: Logger;
  config: Pick<Config, "rateLimitPerSecond" | "rateLimitBurst">;
}

export class Blocks {
  readonly #options: BlocksOptions;

  constructor(options: BlocksOptions) {
    this.#options = options;
  }

  /**
   * Blocks (`blocked` true) or unblocks `userId` for the caller, who must be signed in (blocks
   * belong to an account, in either auth mode); either is idempotent. The user must have an
   * account (NOT_FOUND otherwise; with AUTH=off, where nobody needs one, any valid id). Counts
   * against the sending rate.
   */
  async setBlocked(caller: Caller, userId: string, blocked: boolean): Promise<void> {
    const { store, auth, limiter, callers, config } = this.#options;
    const action = blocked ? "Cannot block user" : "Cannot unblock user";
    const me = await callers.identify(caller, undefined, action);
    const named = checkUserId(action, userId);
    if (nameKey(named) === nameKey(me.userId)) {
      throw invalidArgument(`${action}: that is yourself`);
    }
    // Before any read: a flood of blocks costs the store nothing.
    takeOrRefuse(action, limiter, me.userId, sendingRate(config));
    const account = await store.getAccount(named);
    if (auth.mode === "on" && !account) throw notFound(`${action}: there is no user "${named}"`);
    const them = account?.id ?? named;
    if (blocked && !(await store.isBlocked(me.userId, them))) {
      const count = (await store.blockedBy(me.userId)).length;
      if (count >= MAX_BLOCKED_USERS) {
        throw new ChatError(
          "resource_exhausted",
          `${action}: ${me.userId} blocked ${count} users, the limit is ${MAX_BLOCKED_USERS}; unblock one first`,
        );
      }
    }
    if (await store.setBlocked(me.userId, them, blocked)) {
      await this.#tell({ userId: me.userId, blockedId: them, blocked });
    }
  }

  /** The users the caller blocked, sorted. */
  async listBlocked(caller: Caller): Promise<string[]> {
    const me = await this.#options.callers.identify(caller, undefined, "Cannot list blocked users");
    return await this.#options.store.blockedBy(me.userId);
  }

  /** Tells every gateway (this one included), so that each changes the blocker's streams it holds. */
  async #tell(block: BlockChange): Promise<void> {
    const { bus, hub, logger } = this.#options;
    try {
      await bus.deliver({ type: "block", block });
    } catch (err) {
      // Stored: the blocker's streams elsewhere load it when they next open.
      logger.warn("Block not published", { user: block.userId, error: describeError(err) });
      hub.block(block);
    }
  }
}
