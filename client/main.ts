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
import { parseArguments, USAGE } from "./arguments.ts";
import { tlsCredentials } from "./chat_client.ts";
import { connectChat } from "./grpc_transport.ts";
import { runTerminalClient } from "./terminal_client.ts";
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
