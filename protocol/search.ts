/**
 * What a search looks for, the same in every store, the server's checks and the page's
 * highlighting: words are runs of letters and digits, compared without case.
 */

/** The longest query, in characters (code points) after trimming. */
export const SEARCH_QUERY_MAX = 200;

/** The most words of a query a search looks for: the rest are ignored. */
export const SEARCH_WORDS_MAX = 16;

/**
 * The words a search looks for: runs of letters and digits, lower case, each once, at most
 * {@linkcode SEARCH_WORDS_MAX}. Everything else (quotes, `*`, `-`, `NEAR(`, SQL) is a separator,
 * so no query reaches a search engine's syntax.
 */
export function searchWords(query: string): string[] {
  return [...wordsIn(query)].slice(0, SEARCH_WORDS_MAX);
}

/** Every word of `text` as {@linkcode searchWords} finds them, without its cap. */
export function wordsIn(text: string): Set<string> {
  return new Set(text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []);
}
