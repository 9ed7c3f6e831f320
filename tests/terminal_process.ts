/**
 * The terminal client as a real process on a terminal of its own: util-linux `script` runs
 * `deno run -A client/main.ts` on a pseudo-terminal, so the client draws its prompt and line
 * editor as it does for a person. The test types at it key by key and reads it as a screen
 * (tests/terminal_screen.ts).
 */

import { screen } from "./terminal_screen.ts";
import { waitFor } from "./helpers.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("../client/main.ts", import.meta.url).pathname;
/** util-linux `script`, which runs a command on a pseudo-terminal of its own. */
const SCRIPT = "/usr/bin/script";
const encoder = new TextEncoder();

/** Whether this machine has `script` (the CI installs it; tests that need it say so when not). */
export const hasScript = await Deno.stat(SCRIPT).then(() => true, () => false);

export interface TerminalProcess {
  /** The screen's rows as they read, without empty ones and trailing spaces. */
  shown(): string[];
  /** Types `text` (a key at a time as far as the client is concerned; `\r` is Enter). */
  keys(text: string): Promise<void>;
  /** Waits until the screen's rows pass `check`. */
  see(what: string, check: (rows: string[]) => boolean, timeoutMs?: number): Promise<void>;
  readonly status: Promise<Deno.CommandStatus>;
  stderr(): string;
  dispose(): Promise<void>;
}

/** Starts the terminal client with `args` (user name, `--server ...`), signed in with `password`. */
export function spawnInTerminal(password: string, ...args: string[]): TerminalProcess {
  const command = [Deno.execPath(), "run", "-A", MAIN, ...args].map((a) => `'${a}'`).join(" ");
  const child = new Deno.Command(SCRIPT, {
    args: ["-qfec", command, "/dev/null"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", CHAT_SERVER: "", CHAT_PASSWORD: password, COLUMNS: "100" },
  }).spawn();
  let output = "";
  let errors = "";
  const decoder = new TextDecoder();
  const reading = child.stdout.pipeTo(
    new WritableStream({ write: (chunk) => void (output += decoder.decode(chunk)) }),
  );
  const readingErrors = child.stderr.pipeTo(
    new WritableStream({ write: (chunk) => void (errors += decoder.decode(chunk)) }),
  );
  const keyboard = child.stdin.getWriter();
  const shown = () => screen(output).map((row) => row.trimEnd()).filter((row) => row !== "");
  return {
    shown,
    keys: (text) => keyboard.write(encoder.encode(text)),
    async see(what, check, timeoutMs = 15_000) {
      await waitFor(() => check(shown()), timeoutMs, `${what} on:\n${shown().join("\n")}`);
    },
    status: child.status,
    stderr: () => errors,
    async dispose() {
      await keyboard.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await reading.catch(() => {});
      await readingErrors.catch(() => {});
    },
  };
}
