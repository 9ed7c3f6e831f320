/**
 * Mentions: which members of a room a message names as `@id`. Found once, by the gateway that
 * takes the message, and carried with it to the store and every reader, so that readers need
 * not guess from the text and a name that is not a member's stays plain text.
 */

import type { Presence } from "../core/types.ts";
import { mentionCandidates } from "../protocol/mentions.ts";
import { DEFAULT_ROOM, nameKey } from "../protocol/names.ts";
import type { Store } from "../store/store.ts";

export interface MentionsOptions {
  store: Pick<Store, "members" | "getAccount">;
  /** One user's presence, if known: in "general" with AUTH=off, users have no accounts. */
  presenceOf?: (userId: string) => Presence | undefined;
}

export class Mentions {
  readonly #options: MentionsOptions;

  constructor(options: MentionsOptions) {
    this.#options = options;
  }

  /**
   * The ids of the members of `room` (as stored) that `content` names, in the order first named.
   * Everybody is in "general": there a name counts if it is an account's, or a user's who is
   * online. Costs nothing for a message without `@`, and one read of the members otherwise.
   */
  async find(room: string, content: string): Promise<string[]> {
    const candidates = mentionCandidates(content);
    if (candidates.length === 0) return [];
    const found: string[] = [];
    const add = (id: string | undefined) => {
      if (id !== undefined && !found.includes(id)) found.push(id);
    };
    if (room === DEFAULT_ROOM) {
      for (const forms of candidates) add(await this.#anyone(forms));
      return found;
    }
    const members = new Map<string, string>();
    for (const id of await this.#options.store.members(room)) {
      // An exact spelling wins over one that only matches without case.
      members.set(id, id);
      if (!members.has(nameKey(id))) members.set(nameKey(id), id);
    }
    for (const forms of candidates) {
      add(forms.map((form) => members.get(form) ?? members.get(nameKey(form))).find(Boolean));
    }
    return found;
  }

  async #anyone(forms: readonly string[]): Promise<string | undefined> {
    for (const form of forms) {
      const account = await this.#options.store.getAccount(form);
      if (account) return account.id;
      const presence = this.#options.presenceOf?.(form);
      if (presence?.online) return presence.userId;
    }
    return undefined;
  }
}
