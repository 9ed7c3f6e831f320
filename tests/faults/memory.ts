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
 */

import type { ChatClient } from "../../client/chat_client.ts";
import { waitFor } from "../helpers.ts";
import type { Service } from "../processes.ts";
import type { Inspector } from "./inspector.ts";
import { reachableWithout, type Snapshot, type TypeFigures } from "./heap_snapshot.ts";
import { openFds, rssKiB, sleep } from "./harness.ts";

/** The runtime's handle object of an HTTP/2 session, which Deno 2.9.3 never lets go. */
export const RUNTIME_KEPT = ["Http2Session"];

export interface Reading {
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
export async function reading(
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
export function grown(before: Reading, after: Reading, top = 8): string {
  return [...after.byType].map(([key, f]) => {
    const b = before.byType.get(key) ?? { count: 0, bytes: 0 };
    return { key, bytes: f.bytes - b.bytes, count: f.count - b.count };
  }).sort((a, b) => b.bytes - a.bytes).slice(0, top)
    .map((r) => `${r.key} +${r.count} (+${Math.round(r.bytes / 1024)} KiB)`).join(", ");
}

export const MiB = 1024 * 1024;

/**
 * Heap (outside what the runtime keeps of closed sessions, and compiled code) that a churn round
 * may add to an equal round before it. Measured: 35 KiB (V8's own lists) once the project kept
 * nothing; what is in flight when the snapshot is taken (a Kafka fetch, a heartbeat) can add some
 * tens more. A map entry kept per connection or per user (100-300 bytes) adds 0.5-1.5 MiB over
 * 5,000 connections, a stream's state kept by the gateway (its LocalStream, sink and closures:
 * over 1 KiB) 2 MiB over 2,000 streams.
 */
export const PROJECT_SLACK = 0.25 * MiB;

/**
 * RSS envelope of a first churn round, per connection. Deno 2.9.3 keeps the native half of every
 * HTTP/2 server session: 17-30 KiB of RSS per connection as measured, 22-24 KiB in the churn
 * scenarios. Twice the upper figure, so that a larger native cost per connection fails. The
 * slack is for the first round's own growth: V8's heap reaching its working size, compiled code,
 * the allocator's arenas. Only a first round is judged by RSS: the heap snapshot taken after it
 * leaves tens of MiB of freed pages that the allocator keeps.
 */
export const RSS_PER_CONNECTION = 64 * 1024;
export const RSS_SLACK = 48 * MiB;

/**
 * Waits (bounded) until none of the users whose id contains `run` is online as `observer` sees
 * it; other tests may share the cluster and its presence. On a timeout, says what `services`
 * logged about the first user still online.
 */
export async function awaitOffline(
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
export const mib = (bytes: number): string => (bytes / MiB).toFixed(1);
export const kib = (bytes: number): string => (bytes / 1024).toFixed(1);
