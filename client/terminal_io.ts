/**
 * The terminal's side of input and output: lines from a byte stream, a password typed without
 * echo, and writes that notice a reader that went away (a closed pipe).
 */

/** Splits a byte stream into lines (without their line ends); stops reading when `signal` aborts. */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<string> {
  const reader = stream.getReader();
  const cancel = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    while (!signal?.aborted) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        yield buffered.slice(0, newline).replace(/\r$/, "");
        buffered = buffered.slice(newline + 1);
      }
    }
    buffered += decoder.decode();
    if (buffered !== "" && !signal?.aborted) yield buffered.replace(/\r$/, "");
  } finally {
    signal?.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}

const encoder = new TextEncoder();

/** `rest` first, then what `stream` gives. */
export function prepend(
  rest: Uint8Array,
  stream: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  if (rest.length === 0) return stream;
  const reader = stream.getReader();
  let first: Uint8Array | undefined = rest;
  return new ReadableStream({
    async pull(controller) {
      if (first) {
        controller.enqueue(first);
        first = undefined;
        return;
      }
      const { value, done } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

/**
 * Asks for a password on the terminal without echoing it. Enter ends it; Backspace and
 * Ctrl-U edit; Ctrl-C and Ctrl-D (on an empty line) give up. `rest` is what was typed
 * after Enter.
 */
export async function askPassword(
  prompt: string,
): Promise<{ password: string; rest: Uint8Array } | "interrupted" | "ended"> {
  const out = Deno.stdout.isTerminal() ? Deno.stdout : Deno.stderr;
  writeAll(out, prompt);
  const typed: number[] = [];
  const buffer = new Uint8Array(1024);
  Deno.stdin.setRaw(true);
  try {
    while (true) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) return "ended";
      for (let i = 0; i < n; i++) {
        const byte = buffer[i]!;
        if (byte === 0x0d || byte === 0x0a) {
          const next = byte === 0x0d && buffer[i + 1] === 0x0a && i + 1 < n ? i + 2 : i + 1;
          return {
            password: new TextDecoder().decode(new Uint8Array(typed)),
            rest: buffer.slice(next, n),
          };
        }
        if (byte === 0x03) return "interrupted";
        if (byte === 0x04 && typed.length === 0) return "ended";
        if (byte === 0x15) typed.length = 0;
        if (byte === 0x7f || byte === 0x08) {
          // Drop the last character: its UTF-8 continuation bytes, then its first byte.
          while (typed.length > 0) {
            if ((typed.pop()! & 0xc0) !== 0x80) break;
          }
        }
        if (byte >= 0x20 && byte !== 0x7f) typed.push(byte);
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    writeAll(out, "\n");
  }
}

/** Writes all of `text`; false when the reader has gone (a closed pipe). */
export function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): boolean {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
    return true;
  } catch {
    return false;
  }
}
