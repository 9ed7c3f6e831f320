// deno-lint-ignore-file no-console
/**
 * Fault 1: a broker is killed (SIGKILL) while two gateways publish 200 messages per second, and
 * started again later. Every acknowledged message reaches every stream exactly once, in one
 * per-room order; sends during the leader election either succeed or answer UNAVAILABLE within
 * SEND_TIMEOUT_MS (the two remaining copies of three take writes once a new leader is elected).
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startBroker, stopBroker } from "../../kafka/cluster.ts";
import { leaderFor, underLoad } from "./harness.ts";

Deno.test("broker loss under load: nothing acknowledged is lost, duplicated or reordered", async () => {
  let killed: number | undefined;
  try {
    const v = await underLoad(
      "broker loss",
      { seconds: 35, ackedBeforeFault: 600, verdictTimeoutMs: 240_000 },
      async () => {
        killed = await leaderFor("general");
        const at = performance.now();
        await stopBroker(killed, { kill: true });
        console.log(`killed broker ${killed}, the leader of the room's partition`);
        await sleep(6000);
        await startBroker(killed);
        console.log(`broker ${killed} back after ${Math.round(performance.now() - at)} ms`);
        killed = undefined;
      },
    );
    assert.ok(v.acknowledged >= 1000, `enough load got through (${v.acknowledged} acknowledged)`);
    assert.equal(v.lost, 0, "no acknowledged message lost");
    assert.equal(v.duplicated, 0, "no message delivered twice");
    assert.equal(v.backwards, 0, "sequence numbers rising on every stream");
    assert.equal(v.reordered, 0, "one order for every stream");
    assert.deepEqual(
      Object.keys(v.refused).filter((code) => code !== "UNAVAILABLE"),
      [],
      "a refused send says UNAVAILABLE",
    );
    assert.equal(v.unanswered, 0, "every send was answered");
  } finally {
    if (killed !== undefined) await startBroker(killed).catch(() => {});
  }
});
