// deno-lint-ignore-file no-console
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
import { newClient } from "../helpers.ts";
import { freePort, kafkaDeployment, stopAll } from "../processes.ts";
import { openFds, rssKiB } from "./harness.ts";
import { connectInspector, type Inspector } from "./inspector.ts";
import {
  awaitOffline,
  grown,
  kib,
  mib,
  PROJECT_SLACK,
  reading,
  RSS_PER_CONNECTION,
  RSS_SLACK,
} from "./memory.ts";

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

Deno.test("connection churn: thousands of clients connect, call or stream, and close; the gateway keeps nothing of them", async () => {
  const deployment = kafkaDeployment();
  const [gatewayInspector, processorInspector] = [freePort(), freePort()];
  const a = deployment.gateway("gateway-a", {}, [`--inspect=127.0.0.1:${gatewayInspector}`]);
  const processor = deployment.processor("processor", {}, [
    `--inspect=127.0.0.1:${processorInspector}`,
  ]);
  const inspectors: Inspector[] = [];
  try {
    await Promise.all([a.ready(), processor.waitForLine(/Processor took partitions/)]);
    const [gw, proc] = await Promise.all(
      [gatewayInspector, processorInspector].map((port) => connectInspector(port)),
    );
    inspectors.push(gw!, proc!);
    const pid = a.service.process.pid;
    const start = { rss: rssKiB(pid) * 1024, fds: openFds(pid) };
    const observer = newClient(a.grpc);
    const run = crypto.randomUUID().slice(0, 6);
    const allOffline = () => awaitOffline(observer, run, [a.service, processor]);

    // The first round compiles code and fills whatever pools and caches stay; the second, equal
    // to it, must add nothing but what the runtime keeps of each closed session.
    const first = await round(a.grpc, `${run}-1`);
    await allOffline();
    // The gateway's RSS is read before any heap snapshot, whose buffers would count.
    const one = await reading(gw!, pid);
    const processorOne = await reading(proc!, processor.process.pid, 0);
    const second = await round(a.grpc, `${run}-2`);
    await allOffline();
    const two = await reading(gw!, pid);
    const processorTwo = await reading(proc!, processor.process.pid, 0);
    observer.close();

    const connections = BARE + 2 * (UNARY + STREAMS);
    const rounds = [...first, ...second];
    const failed = rounds.reduce((n, c) => n + c.failed, 0);
    const own = two.own - one.own;
    const processorOwn = processorTwo.own - processorOne.own;
    const runtime = two.heapUsed - one.heapUsed - own;
    console.log(
      `FIGURES connection churn: 2 rounds of ${BARE} bare HTTP/2 connections (GOAWAY on an idle ` +
        `session) and ${UNARY + STREAMS} grpc-js and as many grpcio clients (${STREAMS} of each ` +
        `streaming), each on its own connection; ${failed} failed; gateway heap after GC ${
          mib(one.heapUsed)
        } MiB after the first round, ${mib(two.heapUsed)} after the second: ${
          kib(runtime / connections)
        } KiB per connection in the ${
          two.keptSessions - one.keptSessions
        } HTTP/2 sessions the runtime kept, ${Math.round(own / 1024)} KiB elsewhere ` +
        `(processor ${Math.round(processorOwn / 1024)} KiB); gateway RSS ${
          mib(start.rss)
        } MiB at the start, ${mib(one.rss)} after the first round (${
          kib((one.rss - start.rss) / connections)
        } KiB per connection); file descriptors ${start.fds}, ${one.fds}, ${two.fds}`,
    );
    for (const c of rounds) assert.deepEqual(c.errors, {}, "every connection did its work");
    assert.equal(rounds.reduce((n, c) => n + c.ok, 0), 2 * connections);
    assert.ok(
      own <= PROJECT_SLACK,
      `the gateway kept ${mib(own)} MiB more heap after the second round, outside the ` +
        `runtime's sessions: ${grown(one, two)}`,
    );
    assert.ok(
      processorOwn <= PROJECT_SLACK,
      `the processor kept ${mib(processorOwn)} MiB more heap after the second round: ${
        grown(processorOne, processorTwo)
      }`,
    );
    // The first round opens the Kafka connections the gateway makes lazily; the second, none.
    assert.ok(two.fds <= one.fds + 2, "no file descriptor kept");
    assert.ok(
      one.rss - start.rss <= connections * RSS_PER_CONNECTION + RSS_SLACK,
      `gateway RSS grew ${
        mib(one.rss - start.rss)
      } MiB in the first round, beyond the runtime's envelope`,
    );
    assert.equal(await a.readyz(), 200, "the gateway still serves");
    const complaints = a.service.output.filter((l) => /unhandled|uncaught/i.test(l));
    assert.deepEqual(complaints, [], "no unhandled rejection or exception");
  } finally {
    for (const inspector of inspectors) inspector.close();
    await stopAll([a.service, processor]);
  }
});
