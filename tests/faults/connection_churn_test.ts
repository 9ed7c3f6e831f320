/**
 * Fault 8: connection churn as ordinary clients make it. Thousands of clients come and go, each on
 * its own connection: Node's @grpc/grpc-js and Python's grpcio each make a unary call, or open a
 * stream, use it and cancel it, then close the client (GOAWAY); a hand-written HTTP/2 client says
 * hello (preface, SETTINGS, SETTINGS ack) and GOAWAY on a session that never had a stream. The
 * gateway stays up and ready, holds no more file descriptors than before, lets no rejection go
 * unhandled, and its JavaScript heap keeps nothing for the project's code beyond what the runtime
 * keeps per connection (`memory.ts` says how that is told apart).
 */

import assert from "node:assert/strict";
import { churnTwice } from "./memory.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Per round: connections that only say hello and goodbye, with no call and no stream. */
const BARE = 2000;
/**
 * Per round, for each real client: connections with one unary call, and connections with a stream.
 * Streams are few: each is two connection events and two presence records through Kafka, which
 * the processor writes one at a time (about 100 a second on a busy 2-core machine); stream churn
 * is churn_test.ts's subject.
 */
const UNARY = 1500;
const STREAMS = 250;
const CONCURRENCY = "20";

interface Churned {
  rounds: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
}

/** Runs one churning client to its end and returns its `churned` summary. */
async function churn(command: string, args: string[]): Promise<Churned> {
  const out = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output().catch((err) => {
    throw new Error(`cannot run ${command} (the fault suite needs Node.js and Python 3): ${err}`);
  });
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith("churned "));
  if (!out.success || !line) {
    throw new Error(
      `${command} ${args.join(" ")} exited with ${out.code}:\n${text}${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return JSON.parse(line.slice("churned ".length)) as Churned;
}

const grpcJs = (server: string, rounds: number, mode: string, prefix: string) =>
  churn("node", [
    "tests/faults/clients/grpc_js_churn.mjs",
    server,
    String(rounds),
    CONCURRENCY,
    mode,
    prefix,
  ]);
const grpcio = (server: string, rounds: number, mode: string, prefix: string) =>
  churn("python3", [
    "tests/faults/clients/grpcio_churn.py",
    server,
    String(rounds),
    CONCURRENCY,
    mode,
    prefix,
  ]);
const bare = (server: string, rounds: number) =>
  churn(Deno.execPath(), [
    "run",
    "-A",
    "tests/faults/clients/h2_goaway_churn.ts",
    server,
    String(rounds),
    CONCURRENCY,
  ]);

/** One round: the three clients at once, each connection its own; users new to the gateway. */
async function round(server: string, tag: string): Promise<Churned[]> {
  return await Promise.all([
    bare(server, BARE),
    grpcJs(server, UNARY, "unary", `node-${tag}`),
    grpcJs(server, STREAMS, "stream", `node-${tag}`),
    grpcio(server, UNARY, "unary", `py-${tag}`),
    grpcio(server, STREAMS, "stream", `py-${tag}`),
  ]);
}

/** Connections one round makes. */
const CONNECTIONS = BARE + 2 * (UNARY + STREAMS);

Deno.test("connection churn: thousands of clients connect, call or stream, and close; the gateway keeps nothing of them", async () => {
  await churnTwice({
    name: "connection churn",
    connections: CONNECTIONS,
    round,
    describe: (first, second) =>
      `2 rounds of ${BARE} bare HTTP/2 connections (GOAWAY on an idle session) and ` +
      `${UNARY + STREAMS} grpc-js and as many grpcio clients (${STREAMS} of each streaming), ` +
      `each on its own connection; ${
        [...first, ...second].reduce((n, c) => n + c.failed, 0)
      } failed`,
    check(first, second) {
      const rounds = [...first, ...second];
      for (const c of rounds) assert.deepEqual(c.errors, {}, "every connection did its work");
      assert.equal(rounds.reduce((n, c) => n + c.ok, 0), 2 * CONNECTIONS);
    },
  });
});
