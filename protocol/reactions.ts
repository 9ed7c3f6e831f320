/**
 * What a reaction may be: one emoji, as people pick them (a base emoji with its skin tone,
 * variation selector, joiners or keycap; a flag). The server refuses anything else; the page
 * and the terminal offer the quick ones. Pure, so that both sides can import it.
 */

/** The most bytes (UTF-8) of one reaction: the longest joined emoji are about 35. */
export const REACTION_MAX_BYTES = 64;
/** The most different emoji one message may have. */
export const MAX_REACTIONS_PER_MESSAGE = 20;
/**
 * The most reactions one message holds in all (each user's each emoji): they travel with the
 * message in every history page and replay, so a crowd must not make one message unbounded.
 */
export const MAX_REACTIONS_TOTAL = 200;
/** What the page's picker and the terminal's help offer first. */
export const QUICK_REACTIONS: readonly string[] = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

/** Emoji code points, and what may join, modify or finish them; nothing else. */
const EMOJI_SEQUENCE =
  /^(?:\p{Extended_Pictographic}|\p{Regional_Indicator}|\p{Emoji_Modifier}|[#*0-9]\uFE0F?\u20E3|\u200D|\uFE0F|[\u{E0020}-\u{E007F}])+$/u;
const HAS_PICTURE = /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20E3/u;
/** One emoji is one grapheme, as a person sees it ("😀😀" is two). */
const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** What is wrong with `emoji` as a reaction, or undefined. */
export function reactionProblem(emoji: string): string | undefined {
  if (emoji === "") return "the emoji is empty";
  const bytes = new TextEncoder().encode(emoji).length;
  if (bytes > REACTION_MAX_BYTES) {
    return `the emoji is ${bytes} bytes, the limit is ${REACTION_MAX_BYTES}`;
  }
  if (
    !EMOJI_SEQUENCE.test(emoji) || !HAS_PICTURE.test(emoji) ||
    [...graphemes.segment(emoji)].length !== 1
  ) {
    return `${JSON.stringify(emoji)} is not one emoji`;
  }
  return undefined;
}
