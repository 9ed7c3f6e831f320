// deno-lint-ignore-file no-console
/**
 * Whether a gateway keeps memory for connections and streams that are gone, for the churn
 * scenarios. RSS cannot tell: V8 grows its heap lazily and the allocator keeps freed pages, so
 * RSS after a round depends on what the machine did meanwhile. The JavaScript heap after a full
 * collection counts only what is still reachable, so the scenarios judge that, read over the
 * inspector (`inspector.ts`) from a heap snapshot.
 *
 * One thing is reachable that the project cannot free: Deno 2.9.3's `node:http2` server never
 * releases a session. Its native half holds a V8 global handle to the session's `Http2Session`
 * handle object, and through it the `ServerHttp2Session`, its socket and grpc-js's per-session
 * closures stay: 4-6 KB of heap per connection (more for a session that ended before any
 * stream), and 17-30 KiB of RSS. A plain `node:http2` server on 2.9.3 keeps every session the
 * same way even for a bare TCP connect and close; Deno 2.9.6 frees them all. So the heap is
 * judged without what only those handles hold (`reachableWithout`): any growth there is kept by
 * something else (the project's maps, a closure, a timer), whatever the runtime does.
 *
 * Deno's `node:timers` (2.9.3 and 2.9.6) also keeps an empty `TimersList` of about 130 bytes for
 * every distinct duration of a timeout that was cleared, where Node deletes it. That is counted:
 * a timer armed per connection with a duration of its own (grpc-js's jittered
 * `grpc.max_connection_age_ms` is one) grows the heap with every connection.
 *
 * {@linkcode churnTwice} is the scenario both churn tests run, with their own rounds.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { ChatClient } from "../../client/chat_client.ts";
import { newClient, waitFor } from "../helpers.ts";
import { freePort, kafkaDeployment, type Service, stopAll } from "../processes.ts";
import { connectInspector, type Inspector } from "./inspector.ts";
import { reachableWithout, type Snapshot, type TypeFigures } from "./heap_snapshot.ts";
import { openFds, processorsHolding, rssKiB } from "./harness.ts";

/** The runtime's handle object of an HTTP/2 session, which Deno 2.9.3 never lets go. */
const RUNTIME_KEPT = ["Http2Session"];

interface Reading {
  /** V8 heap in use after two full collections, bytes. */
  heapUsed: number;
  /** Resident set size, bytes (VmRSS, as the other fault scenarios report it). */
  rss: number;
  /** Open file descriptors. */
  fds: number;
  /** Heap the GC roots hold without going through the runtime's kept sessions, bytes; no code. */
  own: number;
  /** Sessions the runtime keeps (closed ones, and any still open). */
  keptSessions: number;
  /** `own`, by type, for saying what grew. */
  byType: Map<string, TypeFigures>;
}

/**
 * The process's memory once it had `settleMs` to finish what the last round left (closing
 * sessions, publishing the last connection events).
 */
async function reading(
  inspector: Inspector,
  pid: number,
  settleMs = 3000,
): Promise<Reading> {
  await sleep(settleMs);
  const { heapUsed } = await inspector.memoryAfterGc();
  // Before the snapshot, whose own buffers would count.
  const rss = rssKiB(pid) * 1024;
  const fds = openFds(pid);
  const snapshot = JSON.parse(await inspector.takeHeapSnapshot()) as Snapshot;
  const reachable = reachableWithout(snapshot, RUNTIME_KEPT);
  // Compiled code grows while V8 optimizes more functions (150 KiB between two equal rounds),
  // bounded by the program: not kept for connections.
  const own = reachable.bytes - (reachable.byType.get("code:")?.bytes ?? 0);
  return { heapUsed, rss, fds, own, keptSessions: reachable.excluded, byType: reachable.byType };
}

/** The types whose heap grew most from `before` to `after`, for a failure message. */
function grown(before: Reading, after: Reading, top = 8): string {
  return [...after.byType].map(([key, f]) => {
    const b = before.byType.get(key) ?? { count: 0, bytes: 0 };
    return { key, bytes: f.bytes - b.bytes, count: f.count - b.count };
  }).sort((a, b) => b.bytes - a.bytes).slice(0, top)
    .map((r) => `${r.key} +${r.count} (+${Math.round(r.bytes / 1024)} KiB)`).join(", ");
}

const MiB = 1024 * 1024;

/**
 * Heap (outside what the runtime keeps of closed sessions, and compiled code) that a churn round
 * may add to an equal round before it. Measured: 35 KiB (V8's own lists) once the project kept
 * nothing; what is in flight when the snapshot is taken (a Kafka fetch, a heartbeat) can add some
 * tens more. A map entry kept per connection or per user (100-300 bytes) adds 0.5-1.5 MiB over
 * 5,000 connections, a stream's state kept by the gateway (its LocalStream, sink and closures:
 * over 1 KiB) 2 MiB over 2,000 streams.
 */
const PROJECT_SLACK = 0.25 * MiB;

/**
 * RSS envelope of a first churn round, per connection. Deno 2.9.3 keeps the native half of every
 * HTTP/2 server session: 17-30 KiB of RSS per connection as measured, 22-24 KiB in the churn
 * scenarios. Twice the upper figure, so that a larger native cost per connection fails. The
 * slack is for the first round's own growth: V8's heap reaching its working size, compiled code,
 * the allocator's arenas. Only a first round is judged by RSS: the heap snapshot taken after it
 * leaves tens of MiB of freed pages that the allocator keeps.
 */
const RSS_PER_CONNECTION = 64 * 1024;
const RSS_SLACK = 48 * MiB;

/**
 * Waits (bounded) until none of the users whose id contains `run` is online as `observer` sees
 * it; other tests may share the cluster and its presence. On a timeout, says what `services`
 * logged about the first user still online.
 */
async function awaitOffline(
  observer: ChatClient,
  run: string,
  services: Service[],
  timeoutMs = 60_000,
): Promise<void> {
  const online = async () =>
    (await observer.listOnline()).map((u) => u.id).filter((id) => id.includes(run));
  await waitFor(async () => (await online()).length === 0, timeoutMs, "every churned user offline")
    .catch(async (err) => {
      const left = await online();
      const said = services.flatMap((s) =>
        s.output.filter((l) => l.includes(`=${left[0]} `) || l.includes(`User ${left[0]} `))
      );
      throw new Error(`${err.message}; still online: ${left.slice(0, 5)}\n${said.join("\n")}`);
    });
}
const mib = (bytes: number): string => (bytes / MiB).toFixed(1);
const kib = (bytes: number): string => (bytes / 1024).toFixed(1);

export interface ChurnPlan<R> {
  /** What the FIGURES line calls the scenario: "churn". */
  name: string;
  /** Connections one round makes (each its own), for the per-connection figures. */
  connections: number;
  /** One round against the gateway at gRPC `server`; `tag` is new each round, for user ids. */
  round(server: string, tag: string): Promise<R>;
  /** What the two rounds did, for the start of the FIGURES line. */
  describe(first: R, second: R): string;
  /** Asserts that the rounds did their work, before memory is judged. */
  check(first: R, second: R): void;
}

/**
 * A gateway and a processor on Kafka, both with an inspector, and two equal churn rounds against
 * the gateway: the first compiles code and fills the pools and caches that stay, so the second
 * must add nothing but what the runtime keeps of each closed session. After each round, once no
 * churned user is online, both processes' memory is read. Prints the FIGURES line, then judges:
 * neither process kept heap ({@linkcode PROJECT_SLACK}), the gateway kept no file descriptor and
 * its first round stayed in the runtime's RSS envelope, it still serves, and nothing went
 * unhandled.
 */
export async function churnTwice<R>(plan: ChurnPlan<R>): Promise<void> {
  const deployment = kafkaDeployment();
  const [gatewayInspector, processorInspector] = [freePort(), freePort()];
  const a = deployment.gateway("gateway-a", {}, [`--inspect=127.0.0.1:${gatewayInspector}`]);
  const processor = deployment.processor("processor", { KAFKA_CLIENT_ID: "processor" }, [
    `--inspect=127.0.0.1:${processorInspector}`,
  ]);
  const inspectors: Inspector[] = [];
  try {
    await Promise.all([a.ready(), processorsHolding(["processor"])]);
    const [gw, proc] = await Promise.all(
      [gatewayInspector, processorInspector].map((port) => connectInspector(port)),
    );
    inspectors.push(gw!, proc!);
    const pid = a.service.process.pid;
    const start = { rss: rssKiB(pid) * 1024, fds: openFds(pid) };
    const observer = newClient(a.grpc);
    const run = crypto.randomUUID().slice(0, 6);
    const measuredRound = async (n: number) => {
      const result = await plan.round(a.grpc, `${run}-${n}`);
      await awaitOffline(observer, run, [a.service, processor]);
      // The gateway's RSS is read before any heap snapshot, whose buffers would count.
      const gateway = await reading(gw!, pid);
      return { result, gateway, processor: await reading(proc!, processor.process.pid, 0) };
    };
    const one = await measuredRound(1);
    const two = await measuredRound(2);
    observer.close();

    const own = two.gateway.own - one.gateway.own;
    const processorOwn = two.processor.own - one.processor.own;
    const runtime = two.gateway.heapUsed - one.gateway.heapUsed - own;
    const firstRss = one.gateway.rss - start.rss;
    console.log(
      `FIGURES ${plan.name}: ${plan.describe(one.result, two.result)}; gateway heap after GC ${
        mib(one.gateway.heapUsed)
      } MiB after the first round, ${mib(two.gateway.heapUsed)} after the second: ${
        kib(runtime / plan.connections)
      } KiB per connection in the ${
        two.gateway.keptSessions - one.gateway.keptSessions
      } HTTP/2 sessions the runtime kept, ${Math.round(own / 1024)} KiB elsewhere ` +
        `(processor ${Math.round(processorOwn / 1024)} KiB); gateway RSS ${
          mib(start.rss)
        } MiB at the start, ${mib(one.gateway.rss)} after the first round (${
          kib(firstRss / plan.connections)
        } KiB per connection); file descriptors ${start.fds}, ${one.gateway.fds}, ${two.gateway.fds}`,
    );
    plan.check(one.result, two.result);
    assert.ok(
      own <= PROJECT_SLACK,
      `the gateway kept ${mib(own)} MiB more heap after the second round, outside the ` +
        `runtime's sessions: ${grown(one.gateway, two.gateway)}`,
    );
    assert.ok(
      processorOwn <= PROJECT_SLACK,
      `the processor kept ${mib(processorOwn)} MiB more heap after the second round: ${
        grown(one.processor, two.processor)
      }`,
    );
    // The first round opens the Kafka connections the gateway makes lazily; the second, none.
    assert.ok(two.gateway.fds <= one.gateway.fds + 2, "no file descriptor kept");
    assert.ok(
      firstRss <= plan.connections * RSS_PER_CONNECTION + RSS_SLACK,
      `gateway RSS grew ${mib(firstRss)} MiB in the first round, beyond the runtime's envelope`,
    );
    assert.equal(await a.readyz(), 200, "the gateway still serves");
    const complaints = a.service.output.filter((l) => /unhandled|uncaught/i.test(l));
    assert.deepEqual(complaints, [], "no unhandled rejection or exception");
  } finally {
    for (const inspector of inspectors) inspector.close();
    await stopAll([a.service, processor]);
  }
}
