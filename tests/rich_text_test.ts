/** web/rich_text.ts: the formatting a message may use, and what stays text. */

import assert from "node:assert/strict";
import { type Inline, parseInline, parseRichText } from "../web/rich_text.ts";

const text = (t: string): Inline => ({ kind: "text", text: t });

Deno.test("plain text stays one text, newlines included", () => {
  assert.deepEqual(parseRichText("hello\nworld"), [
    { kind: "paragraph", children: [text("hello\nworld")] },
  ]);
});

Deno.test("code spans keep what is inside as written, formatting and HTML included", () => {
  assert.deepEqual(parseInline("run `**x** <b>` now"), [
    text("run "),
    { kind: "code", text: "**x** <b>" },
    text(" now"),
  ]);
  assert.deepEqual(parseInline("``a ` b``"), [{ kind: "code", text: "a ` b" }]);
  assert.deepEqual(parseInline("unclosed `tick and `` double"), [
    text("unclosed `tick and `` double"),
  ]);
});

Deno.test("bold holds italics; italics by * or by _ at word edges only", () => {
  assert.deepEqual(parseInline("**bold _and italic_** then *it*"), [
    {
      kind: "bold",
      children: [text("bold "), { kind: "italic", children: [text("and italic")] }],
    },
    text(" then "),
    { kind: "italic", children: [text("it")] },
  ]);
  assert.deepEqual(parseInline("snake_case_name and 2*3*4"), [
    text("snake_case_name and 2"),
    { kind: "italic", children: [text("3")] },
    text("4"),
  ]);
  assert.deepEqual(parseInline("a * b * c, ** d **, __"), [text("a * b * c, ** d **, __")]);
});

Deno.test("links: http and https only, without the sentence's punctuation", () => {
  assert.deepEqual(parseInline("see https://example.com/a_(b)?q=1, then."), [
    text("see "),
    { kind: "link", href: "https://example.com/a_(b)?q=1", text: "https://example.com/a_(b)?q=1" },
    text(", then."),
  ]);
  assert.deepEqual(parseInline("(at http://x.test/path)"), [
    text("(at "),
    { kind: "link", href: "http://x.test/path", text: "http://x.test/path" },
    text(")"),
  ]);
  for (const hostile of ["javascript:alert(1)", "data:text/html,<script>", "ftp://x.test/"]) {
    assert.deepEqual(parseInline(hostile), [text(hostile)], hostile);
  }
  // A quote or angle bracket ends the address: nothing can break out of the attribute.
  assert.deepEqual(parseInline('https://x.test/"onmouseover="alert(1)'), [
    { kind: "link", href: "https://x.test/", text: "https://x.test/" },
    text('"onmouseover="alert(1)'),
  ]);
  assert.deepEqual(parseInline("**https://x.test/**"), [
    {
      kind: "bold",
      children: [{ kind: "link", href: "https://x.test/", text: "https://x.test/" }],
    },
  ]);
});

Deno.test("code blocks between fence lines; a fence without its closing line stays text", () => {
  assert.deepEqual(parseRichText("look:\n```ts\nconst a = **1**;\n<b>\n```\ndone"), [
    { kind: "paragraph", children: [text("look:")] },
    { kind: "code-block", text: "const a = **1**;\n<b>" },
    { kind: "paragraph", children: [text("done")] },
  ]);
  assert.deepEqual(parseRichText("```\nnot closed"), [
    { kind: "paragraph", children: [text("```\nnot closed")] },
  ]);
  assert.deepEqual(parseRichText("```a```\n```b```"), [
    {
      kind: "paragraph",
      children: [{ kind: "code", text: "a" }, text("\n"), { kind: "code", text: "b" }],
    },
  ]);
});

Deno.test("hostile runs of unmatched markers read in linear time", () => {
  // Each shape makes every marker of a naive parser search to the end of the text. At 1 MiB
  // (16 times the largest message) a linear reading takes milliseconds and a quadratic one
  // hours, so the bound below is a guard against the shape of the algorithm, not a measure of
  // speed: it holds on any machine that can run the suite at all.
  const shapes = [
    "**a ",
    "*a ",
    "_a ",
    "`",
    "``a",
    "https://x.test/(",
    "```\n",
    "a_",
    "https://x)",
  ];
  const size = 1024 * 1024;
  for (const shape of shapes) {
    const hostile = shape.repeat(Math.ceil(size / shape.length)).slice(0, size);
    const start = performance.now();
    const blocks = parseRichText(hostile);
    const took = performance.now() - start;
    assert.ok(blocks.length > 0);
    assert.ok(took < 20_000, `${JSON.stringify(shape)}: ${took.toFixed(0)} ms`);
  }
});
