/**
 * The terminal's line editor (client/line_editor.ts) as a user sees it: keys typed in, the
 * screen out, with lines arriving while a line is half typed.
 */

import assert from "node:assert/strict";
import { LineEditor } from "../client/line_editor.ts";
import { screen } from "./terminal_screen.ts";

/** An editor on a fake terminal `columns` wide; `keys()` types, `screen()` shows. */
function terminal(columns = 80) {
  let output = "";
  const edits: string[] = [];
  const editor = new LineEditor({
    write: (text) => (output += text, true),
    columns: () => columns,
    onEdit: (typed) => edits.push(typed),
  });
  let push!: (bytes: Uint8Array) => void;
  let end!: () => void;
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      push = (bytes) => controller.enqueue(bytes);
      end = () => controller.close();
    },
  });
  const lines: string[] = [];
  let ended = false;
  const reading = (async () => {
    for await (const line of editor.lines(input)) lines.push(line);
    ended = true;
  })();
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
  return {
    editor,
    lines,
    edits,
    ended: () => ended,
    reading,
    async keys(text: string | Uint8Array) {
      push(typeof text === "string" ? new TextEncoder().encode(text) : text);
      await settle();
    },
    end: () => end(),
    screen: () => screen(output),
  };
}

Deno.test("a line arriving while one is half typed prints above it; the typed part is drawn again", async () => {
  const t = terminal();
  t.editor.prompt = "#general> ";
  await t.keys("hel");
  t.editor.print("[12:00:00] ann: hi carol");
  t.editor.print("* bob is online\n  and well");
  assert.deepEqual(t.screen(), [
    "[12:00:00] ann: hi carol",
    "* bob is online",
    "  and well",
    "#general> hel",
  ]);
  await t.keys("lo\r");
  assert.deepEqual(t.lines, ["hello"]);
  assert.deepEqual(t.screen().slice(3), ["#general> hello", "#general> "]);
  t.editor.prompt = "@ann> ";
  assert.deepEqual(t.screen().slice(4), ["@ann> "]);
  t.end();
  await t.reading;
});

Deno.test("editing keys: Backspace, Ctrl-W, Ctrl-U; arrows and other controls are ignored", async () => {
  const t = terminal();
  t.editor.prompt = "> ";
  await t.keys("héllo wörld\x7f\x7f\x7fk");
  assert.deepEqual(t.screen(), ["> héllo wök"]);
  await t.keys("\x17\x17again\x1b[A\x1b[D\x1bOB\t\x07 ok");
  assert.deepEqual(t.screen(), ["> again ok"]);
  await t.keys("\x15gone? no\r\n");
  // A pasted CRLF ends one line, not two.
  await t.keys("two\r\nlines\r\n");
  // A character split across reads arrives whole.
  await t.keys(new Uint8Array([0x63, 0x61, 0x66, 0xc3]));
  await t.keys(new Uint8Array([0xa9, 0x0d]));
  assert.deepEqual(t.lines, ["gone? no", "two", "lines", "café"]);
  t.end();
  await t.reading;
});

Deno.test("Ctrl-D ends the input on an empty line only; end of input sends the rest", async () => {
  const t = terminal();
  await t.keys("half\x04");
  assert.equal(t.ended(), false, "Ctrl-D on a typed line is ignored");
  await t.keys("\r\x04");
  await t.reading;
  assert.deepEqual(t.lines, ["half"]);

  const u = terminal();
  await u.keys("unfinished");
  u.end();
  await u.reading;
  assert.deepEqual(u.lines, ["unfinished"]);
});

Deno.test("a line wider than the terminal scrolls sideways and stays on its row", async () => {
  const t = terminal(20);
  t.editor.prompt = "#general> ";
  await t.keys("abcdefghijklmnopqrstuvwxyz");
  assert.deepEqual(t.screen(), ["#general> rstuvwxyz"]);
  await t.keys("\x7f".repeat(20));
  assert.deepEqual(t.screen(), ["#general> abcdef"]);
  // Wide characters count twice; a long room name leaves half the row for the text.
  t.editor.prompt = "#a-very-long-room-name> ";
  await t.keys("\x15漢字漢字漢字");
  assert.deepEqual(t.screen(), ["#a-very…> 漢字漢字"]);
  t.end();
  await t.reading;
});

Deno.test("every change of the line is told (for is typing…), and Enter empties it; the prompt may change meanwhile", async () => {
  const t = terminal();
  t.editor.prompt = "#general> ";
  await t.keys("hi\x7f\x7fyo");
  t.editor.prompt = "#general (bob is typing…)> ";
  assert.deepEqual(t.screen(), ["#general (bob is typing…)> yo"]);
  await t.keys("\r");
  assert.deepEqual(t.edits, ["h", "hi", "h", "", "y", "yo", ""]);
  assert.deepEqual(t.lines, ["yo"]);
});
