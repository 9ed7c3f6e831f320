/**
 * How a message names people: `@` and a username. The server reads the names from the text to
 * find which are members of the room (server/mentions.ts); the page reads them again to show
 * those the server found (`Message.mentions`). Pure, so that both can import it.
 */

import { MAX_MENTIONS } from "./limits.ts";
import { nameKey, USERNAME_MAX_LENGTH } from "./names.ts";

/**
 * `@` then a username's characters, not inside a word or an address (`ann@example.test`). The
 * longest run is read; a name may also be named with sentence punctuation after it ("@ann.").
 */
export const MENTION = new RegExp(
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
