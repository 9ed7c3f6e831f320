/**
 * The small, safe subset of formatting a message's text may use, read into a tree that the page
 * renders as elements, never as HTML: code blocks (```), code spans (`x`), bold (**x**), italics
 * (*x* or _x_) and links to http and https addresses written out in full. Anything else,
 * HTML included, stays text. Reading is linear in the text's length (every search moves
 * forward and never goes back over what it passed), so a hostile 64 KiB message of unmatched
 * markers costs no more than a plain one.
 */

export type Inline =
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "code"; readonly text: string }
  | { readonly kind: "bold"; readonly children: readonly Inline[] }
  | { readonly kind: "italic"; readonly children: readonly Inline[] }
  | { readonly kind: "link"; readonly href: string; readonly text: string };

export type Block =
  | { readonly kind: "paragraph"; readonly children: readonly Inline[] }
  | { readonly kind: "code-block"; readonly text: string };

/** A fence line: three backticks, then perhaps a language name (never another backtick). */
const FENCE = /^```[^`]*$/;

/** The blocks of `text`: code blocks between fence lines, and paragraphs of inline text. */
export function parseRichText(text: string): Block[] {
  const blocks: Block[] = [];
  let paragraph: string[] = [];
  const endParagraph = () => {
    if (paragraph.length > 0) {
      blocks.push({ kind: "paragraph", children: parseInline(paragraph.join("\n")) });
    }
    paragraph = [];
  };
  const lines = text.split("\n");
  // Where the next fence line is, found by one pass from the end, so that an opening fence
  // without a closing one is known at once (it stays text) instead of by a search per line.
  const nextFence: number[] = new Array(lines.length + 1).fill(-1);
  for (let i = lines.length - 1; i >= 0; i--) {
    nextFence[i] = FENCE.test(lines[i]!.trimEnd()) ? i : nextFence[i + 1]!;
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const close = FENCE.test(line.trimEnd()) ? nextFence[i + 1]! : -1;
    if (close < 0) {
      paragraph.push(line);
      continue;
    }
    endParagraph();
    blocks.push({ kind: "code-block", text: lines.slice(i + 1, close).join("\n") });
    i = close;
  }
  endParagraph();
  return blocks;
}

/** An address written out in full; what may follow it is checked by {@linkcode linkEnd}. */
const LINK = /\bhttps?:\/\/[^\s<>"'`]+/gi;
/** Punctuation that ends a sentence after a link more often than it belongs to it. */
const TRAILING = new Set([".", ",", ";", ":", "!", "?", "'", '"', "*", "_"]);

/**
 * The inline content of one paragraph: code spans first (nothing inside them is formatting),
 * then bold, italics and links in what is left.
 */
export function parseInline(text: string): Inline[] {
  const out: Inline[] = [];
  let from = 0;
  let at = 0;
  // After a backtick run of some length has no closing run, none later can close either.
  const unclosed = new Set<number>();
  while ((at = text.indexOf("`", at)) >= 0) {
    let end = at;
    while (text[end] === "`") end++;
    const run = end - at;
    const close = unclosed.has(run) ? -1 : closingRun(text, end, run);
    if (close < 0) {
      unclosed.add(run);
      at = end;
      continue;
    }
    emphasis(text.slice(from, at), out);
    const code = text.slice(end, close);
    out.push({ kind: "code", text: code.trim() === "" ? code : code.replace(/^ (.*) $/s, "$1") });
    from = at = close + run;
  }
  emphasis(text.slice(from), out);
  return out;
}

/** Where a run of exactly `run` backticks starts at or after `from`, or -1. */
function closingRun(text: string, from: number, run: number): number {
  let at = from;
  while ((at = text.indexOf("`", at)) >= 0) {
    let end = at;
    while (text[end] === "`") end++;
    if (end - at === run) return at;
    at = end;
  }
  return -1;
}

type Marker = "**" | "*" | "_";

/**
 * Bold and italics in `text` (no code spans in it), then links in what is plain. A marker opens
 * only before a non-space and closes only after one; `_` only at a word's edge, so snake_case
 * stays as written. Bold may hold italics; neither holds itself.
 */
function emphasis(text: string, out: Inline[], allowed: readonly Marker[] = ["**", "*", "_"]) {
  if (text === "") return;
  let from = 0;
  let at = 0;
  // The first place each marker can no longer close: searches never pass it again.
  const exhausted = new Map<Marker, number>();
  while (at < text.length) {
    const marker = markerAt(text, at, allowed);
    if (!marker || !opens(text, at, marker)) {
      at += marker?.length ?? 1;
      continue;
    }
    const start = at + marker.length;
    const close = (exhausted.get(marker) ?? Infinity) <= start ? -1 : closer(text, start, marker);
    if (close < 0) {
      exhausted.set(marker, Math.min(exhausted.get(marker) ?? Infinity, start));
      at = start;
      continue;
    }
    links(text.slice(from, at), out);
    const children: Inline[] = [];
    emphasis(text.slice(start, close), children, marker === "**" ? ["*", "_"] : []);
    out.push({ kind: marker === "**" ? "bold" : "italic", children });
    from = at = close + marker.length;
  }
  links(text.slice(from), out);
}

function markerAt(text: string, at: number, allowed: readonly Marker[]): Marker | undefined {
  const c = text[at];
  if (c === "*") {
    if (text[at + 1] === "*") return allowed.includes("**") ? "**" : undefined;
    return allowed.includes("*") ? "*" : undefined;
  }
  if (c === "_" && allowed.includes("_")) return "_";
  return undefined;
}

const SPACE = /\s/;
const WORD = /[\p{L}\p{N}]/u;

function opens(text: string, at: number, marker: Marker): boolean {
  const next = text[at + marker.length];
  if (next === undefined || SPACE.test(next) || next === marker[0]) return false;
  return marker !== "_" || at === 0 || !WORD.test(text[at - 1]!);
}

/** Where `marker` closes at or after `from` (after a non-space, not inside a longer run), or -1. */
function closer(text: string, from: number, marker: Marker): number {
  let at = from;
  while ((at = text.indexOf(marker, at)) >= 0) {
    const before = text[at - 1]!;
    const after = text[at + marker.length];
    const ok = at > from && !SPACE.test(before) && before !== marker[0] &&
      after !== marker[0] && (marker !== "_" || after === undefined || !WORD.test(after));
    if (ok) return at;
    at += 1;
  }
  return -1;
}

/** Links to http and https addresses in plain `text`, the rest as text. */
function links(text: string, out: Inline[]) {
  if (text === "") return;
  let from = 0;
  for (const match of text.matchAll(LINK)) {
    const end = match.index + linkEnd(match[0]);
    const href = text.slice(match.index, end);
    if (!isWebAddress(href)) continue;
    if (match.index > from) out.push({ kind: "text", text: text.slice(from, match.index) });
    out.push({ kind: "link", href, text: href });
    from = end;
  }
  if (from < text.length) out.push({ kind: "text", text: text.slice(from) });
}

/** How much of `candidate` is the address: without trailing punctuation or an unopened ")". */
function linkEnd(candidate: string): number {
  let unopened = 0;
  for (const c of candidate) {
    if (c === "(") unopened--;
    else if (c === ")") unopened++;
  }
  let end = candidate.length;
  for (;;) {
    const last = candidate[end - 1]!;
    if (TRAILING.has(last)) end--;
    else if (last === ")" && unopened > 0) {
      end--;
      unopened--;
    } else return end;
  }
}

/** Whether `href` parses as an http or https URL with a host: nothing else becomes a link. */
function isWebAddress(href: string): boolean {
  if (!URL.canParse(href)) return false;
  const url = new URL(href);
  return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
}
