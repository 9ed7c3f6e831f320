/**
 * The line being typed on a terminal, drawn by the client itself behind a prompt (`#general> `),
 * so that what arrives meanwhile is printed above it and the line is drawn again with what was
 * typed so far, instead of landing in the middle of it. For when stdin and stdout are a
 * terminal in cbreak mode (no echo, no line buffering; Ctrl-C still interrupts): `client/main.ts`
 * sets that up. Backspace, Ctrl-W and Ctrl-U edit; Enter sends; Ctrl-D on an empty line ends the
 * input like end of file; other control keys and escape sequences (arrows, ...) are ignored.
 * A line wider than the terminal scrolls sideways, so that it always fits on one row (the
 * terminal cannot be asked where a wrapped line began).
 *
 * No Deno here: bytes in, text out, so that tests drive it without a terminal.
 */

export interface LineEditorOptions {
  /** Writes to the terminal; false once nobody reads it (a closed terminal). */
  write(text: string): boolean;
  /** The terminal's width in columns, asked at each drawing (it may be resized). */
  columns(): number;
  /** Hears of every change of the line being typed (a key, an erase, Enter emptying it). */
  onEdit?(typed: string): void;
}

/** Back to the start of the row, and clear it. */
const CLEAR_ROW = "\r\x1b[K";
const ESC = "\x1b";

export class LineEditor {
  readonly #o: LineEditorOptions;
  #prompt = "";
  #typed = "";

  constructor(options: LineEditorOptions) {
    this.#o = options;
  }

  /** Shown before the line being typed: where it will go. */
  set prompt(prompt: string) {
    this.#prompt = prompt;
    this.#o.write(this.#render());
  }

  /** Prints `text` (one line or several) above the line being typed; false if nobody reads. */
  print(text: string): boolean {
    return this.#o.write(CLEAR_ROW + text.replaceAll("\n", "\r\n") + "\r\n" + this.#render());
  }

  /** Clears the line being typed from the screen, before leaving. */
  close(): void {
    this.#o.write(CLEAR_ROW);
  }

  /**
   * The lines typed on `input` (the terminal's bytes), without their ends. Ends with the input,
   * at Ctrl-D on an empty line, or when `signal` aborts.
   */
  async *lines(
    input: ReadableStream<Uint8Array>,
    signal?: AbortSignal,
  ): AsyncGenerator<string> {
    const reader = input.getReader();
    const cancel = () => reader.cancel().catch(() => {});
    signal?.addEventListener("abort", cancel, { once: true });
    const decoder = new TextDecoder();
    // Inside an escape sequence: "esc" after ESC, "csi" after ESC [ or ESC O until its last byte.
    let escape: "esc" | "csi" | undefined;
    let afterReturn = false;
    this.#o.write(this.#render());
    try {
      while (!signal?.aborted) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const char of decoder.decode(value, { stream: true })) {
          if (escape === "esc") {
            escape = char === "[" || char === "O" ? "csi" : undefined;
            continue;
          }
          if (escape === "csi") {
            if (char >= "@" && char <= "~") escape = undefined;
            continue;
          }
          // A pasted CRLF is one line end.
          const crlf = afterReturn && char === "\n";
          afterReturn = char === "\r";
          if (crlf) continue;
          if (char === "\r" || char === "\n") {
            const line = this.#typed;
            this.#typed = "";
            this.#o.write(CLEAR_ROW + this.#prompt + line + "\r\n" + this.#render());
            this.#o.onEdit?.("");
            yield line;
          } else if (char === "\x04") {
            if (this.#typed === "") return;
          } else if (char === "\x7f" || char === "\b") {
            this.#edit(Array.from(this.#typed).slice(0, -1).join(""));
          } else if (char === "\x17") {
            this.#edit(this.#typed.replace(/\S*\s*$/, ""));
          } else if (char === "\x15") {
            this.#edit("");
          } else if (char === ESC) {
            escape = "esc";
          } else if (char >= " " && !(char >= "\x7f" && char <= "\x9f")) {
            this.#edit(this.#typed + char);
          }
        }
      }
      const rest = this.#typed + decoder.decode();
      this.#typed = "";
      if (rest !== "" && !signal?.aborted) yield rest;
    } finally {
      signal?.removeEventListener("abort", cancel);
      reader.releaseLock();
    }
  }

  #edit(typed: string): void {
    this.#typed = typed;
    this.#o.write(this.#render());
    this.#o.onEdit?.(typed);
  }

  /** The prompt and as much of the end of the line as fits on one row. */
  #render(): string {
    const columns = Math.max(20, this.#o.columns());
    let prompt = this.#prompt;
    // A long room name keeps half the row for the text.
    if (width(prompt) > columns / 2) {
      prompt = fit(Array.from(prompt), Math.floor(columns / 2) - 3, "start") + "…> ";
    }
    const room = columns - 1 - width(prompt);
    return CLEAR_ROW + prompt + fit(Array.from(this.#typed), room, "end");
  }
}

/** As many characters of `chars`, from its `start` or its `end`, as fit in `columns`. */
function fit(chars: string[], columns: number, from: "start" | "end"): string {
  let used = 0;
  let n = 0;
  const at = (i: number) => chars[from === "start" ? i : chars.length - 1 - i]!;
  while (n < chars.length && used + charWidth(at(n)) <= columns) used += charWidth(at(n++));
  return from === "start" ? chars.slice(0, n).join("") : chars.slice(chars.length - n).join("");
}

function width(text: string): number {
  let columns = 0;
  for (const char of text) columns += charWidth(char);
  return columns;
}

/**
 * How many columns a terminal gives `char`: none for combining marks and joiners, two for the
 * wide East Asian scripts and most emoji, else one. Close enough to keep a line on its row.
 */
function charWidth(char: string): number {
  const c = char.codePointAt(0)!;
  if (
    (c >= 0x300 && c <= 0x36f) || c === 0x200b || c === 0x200c || c === 0x200d ||
    (c >= 0xfe00 && c <= 0xfe0f)
  ) {
    return 0;
  }
  const wide = (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) ||
    (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
    (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
    (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) ||
    (c >= 0x20000 && c <= 0x3fffd);
  return wide ? 2 : 1;
}
