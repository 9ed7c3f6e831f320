/**
 * The users this session's user blocked, as the server last listed them: what the views offer
 * "Unblock" for, and whose messages they stop showing at once (the server leaves out what comes
 * after; a view may still hold what came before). Names compare without case, as the server's.
 */

import { nameKey } from "../../protocol/names.ts";

export class BlockedUsers {
  #ids: readonly string[] = [];
  #keys = new Set<string>();

  /** The blocked users' ids, sorted as the server lists them. */
  get list(): readonly string[] {
    return this.#ids;
  }

  has(userId: string): boolean {
    return this.#keys.has(nameKey(userId));
  }

  /** The server's list, as it answered; whether it differs from the one held. */
  listed(ids: readonly string[]): boolean {
    const same = ids.length === this.#ids.length && ids.every((id, i) => id === this.#ids[i]);
    this.#ids = [...ids];
    this.#keys = new Set(ids.map(nameKey));
    return !same;
  }
}
