/**
 * The terminal chat client:
 *
 *   deno task client alice [--server host:port] [--name "Alice Smith"]
 *
 * Reads lines from stdin and prints the chat on stdout; works the same when
 * both are pipes. The logic lives in `terminal_client.ts`; this file only
 * wires it to the process: arguments, stdin/stdout, Ctrl-C and the exit code.
 */

import { parseArguments, readLines, runTerminalClient, USAGE } from "./terminal_client.ts";

const encoder = new TextEncoder();

/** Writes all of `text`; false when the reader has gone (a closed pipe). */
function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): boolean {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<number> {
  const parsed = parseArguments(Deno.args, Deno.env.toObject());
  if ("help" in parsed) {
    writeAll(Deno.stdout, USAGE + "\n");
    return 0;
  }
  if ("error" in parsed) {
    writeAll(Deno.stderr, `Cannot start: ${parsed.error}\n${USAGE}\n`);
    return 2;
  }

  const stop = new AbortController();
  let interruptedAt: number | undefined;
  // The first Ctrl-C leaves cleanly; another one later leaves at once. One Ctrl-C can arrive
  // twice (from the terminal, and forwarded by `deno task`), so a repeat within 1 s is ignored.
  const onInterrupt = () => {
    const now = performance.now();
    if (interruptedAt === undefined) interruptedAt = now;
    else if (now - interruptedAt > 1000) Deno.exit(130);
    stop.abort();
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onInterrupt);
  try {
    return await runTerminalClient({
      userId: parsed.userId,
      displayName: parsed.displayName,
      address: parsed.server,
      input: readLines(Deno.stdin.readable, stop.signal),
      output: (line) => {
        // Nobody reads our output any more: leave like Ctrl-C.
        if (!writeAll(Deno.stdout, line + "\n")) stop.abort();
      },
      signal: stop.signal,
      interactive: Deno.stdin.isTerminal() && Deno.stdout.isTerminal(),
    });
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onInterrupt);
  }
}

// Everything the client opened is closed by now; exit explicitly because a
// read of stdin that is still pending would otherwise keep the process alive.
Deno.exit(
  await main().catch((err) => {
    writeAll(Deno.stderr, `Error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }),
);
