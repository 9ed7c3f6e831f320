/**
 * The rules of the room directory: how long a room's topic and a directory search may be, and
 * what they may hold. Pure, like names.ts, so that the page checks them before it sends them.
 */

import { nameProblem } from "./names.ts";

/** The longest topic a room may have, in characters. */
export const TOPIC_MAX_LENGTH = 200;
/** The longest directory search, in characters. */
export const ROOM_SEARCH_MAX_LENGTH = 64;
/** How many rooms a directory listing gives when the request names no limit. */
export const DIRECTORY_DEFAULT_LIMIT = 50;
/** The most rooms one directory listing may give. */
export const DIRECTORY_MAX_LIMIT = 200;

/**
 * What is wrong with `topic` (trimmed) as a room's topic, or undefined; an empty one is fine (it
 * takes the topic away). It follows the rules of a name (no control character, well-formed).
 */
export function topicProblem(topic: string): string | undefined {
  return topic === "" ? undefined : nameProblem("the topic", topic, TOPIC_MAX_LENGTH);
}

/** What is wrong with `search` (trimmed) as a directory search, or undefined; empty is fine. */
export function roomSearchProblem(search: string): string | undefined {
  return search === "" ? undefined : nameProblem("the search", search, ROOM_SEARCH_MAX_LENGTH);
}
