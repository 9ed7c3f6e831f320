/**
 * A fix for a kafkajs 2.2.4 bug that has no option and no hook: after every response a
 * connection's request queue arms `setTimeout(check, -1 - Date.now())`, which runs after 1 ms
 * and arms the next one, so every open connection spins a 1 ms timer loop for as long as it
 * lives (an idle bus with two subscriptions used ~10% of a core), and the runtime prints a
 * `TimeoutNegativeWarning` for it. Upstream: issues tulios/kafkajs#1556, #1604, #1704, #1751;
 * fixes #1667, #1755 and #1768 are open and unmerged, and kafkajs has had no release since 2.2.4.
 *
 * The timer exists to send queued requests once a broker's throttle ends; with nothing queued
 * and no throttle there is nothing to wait for (a request queued later arms its own timer), so
 * the fix skips arming it then (the change proposed in the review of #1768), applied once to
 * the shared prototype.
 * tests/kafka_idle_timer_test.ts fails if the loop (or its warning) comes back, for example
 * after kafkajs is upgraded and its internals moved.
 *
 * Why at run time: kafkajs offers no option or hook for this timer, and Deno patches an npm
 * package only through `links` in deno.json to a whole local copy of it, which would vendor all
 * of kafkajs (2.5 MB of sources) for a two-line change. Process-wide warning filters are no longer
 * needed: with the loop gone, the negative timeout is never set.
 */

// Internal module (kafkajs has no "exports" map; 2.2.4 is pinned in deno.json).
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

type Queue = { pending: unknown[]; throttledUntil: number };
type Schedule = ((this: Queue) => void) & { idleLoopFix?: true };

/** Applies the fix; returns false when kafkajs's RequestQueue no longer looks as expected. */
export function fixKafkajsIdleTimerLoop(): boolean {
  const proto = (RequestQueue as { prototype?: { scheduleCheckPendingRequests?: Schedule } })
    ?.prototype;
  const original = proto?.scheduleCheckPendingRequests;
  if (!proto || typeof original !== "function") return false;
  if (original.idleLoopFix) return true;
  const fixed: Schedule = function (this: Queue) {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return;
    original.call(this);
  };
  fixed.idleLoopFix = true;
  proto.scheduleCheckPendingRequests = fixed;
  return true;
}
