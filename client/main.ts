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
 * both are pipes. The logic lives in `terminal_client.ts`; this file only
 * wires it to the process: arguments, stdin/stdout, Ctrl-C and the exit code.
 */

import type * as grpc from "@grpc/grpc-js";
import { tlsCredentials } from "./chat_client.ts";
import {
  connectChat,
  parseArguments,
  readLines,
  runTerminalClient,
  USAGE,
} from "./terminal_client.ts";

const encoder = new TextEncoder();

/** `rest` first, then what `stream` gives. */
function prepend(rest: Uint8Array, stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
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
async function askPassword(
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
  let input: AsyncIterable<string> | undefined;
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
    input = readLines(prepend(asked.rest, Deno.stdin.readable), stop.signal);
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
    input = lines;
  }
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
      password,
      servers: parsed.servers,
      ...(credentials ? { connect: (address: string) => connectChat(address, credentials) } : {}),
      input: input ?? readLines(Deno.stdin.readable, stop.signal),
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
