/**
 * The terminal chat client:
 *
 *   deno task client alice [--server host:port] [--name "Alice Smith"]
 *
 * It signs in as alice: the password comes from `--password-file <file>` (its
 * first line), else `$CHAT_PASSWORD`, else it is asked for ("Password for
 * alice: ", not echoed) when stdin is a terminal, else it is stdin's first line.
 *
 * Reads lines from stdin and prints the chat on stdout; works the same when
 * both are pipes. When both are a terminal, the line being typed is drawn
 * behind a prompt naming the room it goes to (`#general> `), with what arrives
 * printed above it (`line_editor.ts`); otherwise lines are read as they come,
 * with no prompt and no escape codes. The logic lives in `terminal_client.ts`;
 * this file only wires it to the process: arguments, stdin/stdout, Ctrl-C and
 * the exit code.
 */

import type * as grpc from "@grpc/grpc-js";
import { parseArguments, USAGE } from "./arguments.ts";
import { tlsCredentials } from "./chat_client.ts";
import { connectChat } from "./grpc_transport.ts";
import { runTerminalClient } from "./terminal_client.ts";
import { LineEditor } from "./line_editor.ts";
import { askPassword, prepend, readLines, writeAll } from "./terminal_io.ts";

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
  // --tls / --ca: TLS, trusting the given CA (or self-signed certificate) or the system's roots.
  let credentials: grpc.ChannelCredentials | undefined;
  if (parsed.tls) {
    const { caFile } = parsed.tls;
    let ca: string | undefined;
    try {
      if (caFile !== undefined) ca = await Deno.readTextFile(caFile);
    } catch (err) {
      writeAll(Deno.stderr, `Cannot start: cannot read the CA file ${caFile}: ${String(err)}\n`);
      return 2;
    }
    credentials = tlsCredentials(ca);
  }

  const stop = new AbortController();
  // The password: --password-file, else $CHAT_PASSWORD, else typed on the terminal, else
  // the first line of stdin (a pipe).
  let password: string | undefined;
  // The lines after a password read from a pipe; else what was typed after the password.
  let piped: AsyncIterable<string> | undefined;
  let typedAhead: Uint8Array = new Uint8Array();
  if (parsed.passwordFile !== undefined) {
    try {
      password = (await Deno.readTextFile(parsed.passwordFile)).split(/\r?\n/)[0] ?? "";
    } catch (err) {
      writeAll(
        Deno.stderr,
        `Cannot start: cannot read the password file ${parsed.passwordFile}: ${
          err instanceof Error ? err.message : String(err)
        }\n`,
      );
      return 2;
    }
  } else if (Deno.env.get("CHAT_PASSWORD")) {
    password = Deno.env.get("CHAT_PASSWORD");
  } else if (Deno.stdin.isTerminal()) {
    const asked = await askPassword(`Password for ${parsed.userId.trim()}: `);
    if (asked === "interrupted") return 130;
    if (asked === "ended") {
      writeAll(Deno.stderr, "Cannot start: no password given\n");
      return 2;
    }
    password = asked.password;
    typedAhead = asked.rest;
  } else {
    const lines = readLines(Deno.stdin.readable, stop.signal);
    const first = await lines.next();
    if (first.done) {
      writeAll(
        Deno.stderr,
        "Cannot start: no password: stdin ended before its first line, which is the password " +
          "when stdin is not a terminal (or use --password-file or $CHAT_PASSWORD)\n",
      );
      return 2;
    }
    password = first.value;
    piped = lines;
  }
  const terminal = Deno.stdin.isTerminal() && Deno.stdout.isTerminal();
  let onEdit: ((typed: string) => void) | undefined;
  const editor = terminal && piped === undefined
    ? new LineEditor({ write, columns, onEdit: (typed) => onEdit?.(typed) })
    : undefined;
  const stdin = prepend(typedAhead, Deno.stdin.readable);
  const input = piped ??
    (editor ? editor.lines(stdin, stop.signal) : readLines(stdin, stop.signal));
  // Keys come one by one, unechoed, for the editor to draw; Ctrl-C still raises SIGINT.
  if (editor) Deno.stdin.setRaw(true, { cbreak: true });
  const restore = () => {
    if (!editor) return;
    editor.close();
    Deno.stdin.setRaw(false);
  };
  let interruptedAt: number | undefined;
  // The first Ctrl-C leaves cleanly; another one later leaves at once. One Ctrl-C can arrive
  // twice (from the terminal, and forwarded by `deno task`), so a repeat within 1 s is ignored.
  const onInterrupt = () => {
    const now = performance.now();
    if (interruptedAt === undefined) interruptedAt = now;
    else if (now - interruptedAt > 1000) {
      restore();
      Deno.exit(130);
    }
    stop.abort();
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onInterrupt);
  try {
    return await runTerminalClient({
      userId: parsed.userId,
      displayName: parsed.displayName,
      password,
      servers: parsed.servers,
      ...(credentials ? { connect: (address: string) => connectChat(address, credentials) } : {}),
      input,
      output: (line) => {
        // Nobody reads our output any more: leave like Ctrl-C.
        if (!(editor ? editor.print(line) : write(line + "\n"))) stop.abort();
      },
      ...(editor
        ? {
          prompt: (prompt: string) => editor.prompt = prompt,
          watchDraft: (listener: (draft: string) => void) => onEdit = listener,
        }
        : {}),
      signal: stop.signal,
      interactive: terminal,
    });
  } finally {
    restore();
    for (const s of signals) Deno.removeSignalListener(s, onInterrupt);
  }
}

function write(text: string): boolean {
  return writeAll(Deno.stdout, text);
}

/** The terminal's width, or the usual 80 when it cannot be asked. */
function columns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
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
