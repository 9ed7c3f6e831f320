/**
 * Mentions: which members of a room a message names as `@id`. Found once, by the gateway that
 * takes the message, and carried with it to the store and every reader, so that readers need
 * not guess from the text and a name that is not a member's stays plain text.
 */

import type { Presence } from "../core/types.ts";
import { MAX_MENTIONS } from "../protocol/limits.ts";
import { DEFAULT_ROOM, nameKey, USERNAME_MAX_LENGTH } from "../protocol/names.ts";
import type { Store } from "../store/store.ts";

/**
 * `@` then a username's characters, not inside a word or an address (`ann@example.test`). The
 * longest run is read; a name may also be named with sentence punctuation after it ("@ann.").
 */
const MENTION = new RegExp(
  `(?<![A-Za-z0-9._@-])@([A-Za-z0-9._-]{1,${USERNAME_MAX_LENGTH}})(?![A-Za-z0-9._-])`,
  "g",
);

/**
 * The names `content` may mention, each as written and, if it ends in punctuation, without it; in
 * order, without repeats (by name without case), at most {@linkcode MAX_MENTIONS} of them.
 */
export function mentionCandidates(content: string): string[][] {
  if (!content.includes("@")) return [];
  const seen = new Set<string>();
  const candidates: string[][] = [];
  for (const match of content.matchAll(MENTION)) {
    const written = match[1]!;
    const bare = written.replace(/[._-]+$/, "");
    const forms = bare && bare !== written ? [written, bare] : [written];
    if (seen.has(nameKey(written))) continue;
    seen.add(nameKey(written));
    candidates.push(forms);
    if (candidates.length === MAX_MENTIONS) break;
  }
  return candidates;
}

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
