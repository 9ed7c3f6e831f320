// deno-lint-ignore-file no-console
/**
 * Fault 1: a broker is killed (SIGKILL) while two gateways publish 200 messages per second, and
 * started again later. Every acknowledged message reaches every stream exactly once, in one
 * per-room order; sends during the leader election either succeed or answer UNAVAILABLE within
 * SEND_TIMEOUT_MS (the two remaining copies of three take writes once a new leader is elected).
 */

import assert from "node:assert/strict";
import { startBroker, stopBroker } from "../../kafka/cluster.ts";
import { kafkaDeployment, stopAll } from "../processes.ts";
import { leaderFor, sleep, startRecorder } from "./harness.ts";

Deno.test("broker loss under load: nothing acknowledged is lost, duplicated or reordered", async () => {
  const deployment = kafkaDeployment();
  const a = deployment.gateway("gateway-a");
  const b = deployment.gateway("gateway-b");
  const processor = deployment.processor();
  let killed: number | undefined;
  try {
    await Promise.all([
      a.ready(),
      b.ready(),
      processor.waitForLine(/Processor took partitions/, 60_000),
    ]);
    const recorder = startRecorder({
      streams: [
        { name: "a1", user: "ann", servers: [a.grpc, b.grpc] },
        { name: "a2", user: "abe", servers: [a.grpc, b.grpc] },
        { name: "b1", user: "bob", servers: [b.grpc, a.grpc] },
        { name: "b2", user: "bea", servers: [b.grpc, a.grpc] },
      ],
      senders: [
        { user: "sam", server: a.grpc, perSecond: 100 },
        { user: "sue", server: b.grpc, perSecond: 100 },
      ],
      seconds: 35,
      // Consumers rejoin their groups after the leader moves (and again when it moves back):
      // deliveries can pause for tens of seconds, which is reported, not counted as loss.
      drainMs: 120_000,
    });
    await recorder.ready();
    await recorder.acked(600);
    killed = await leaderFor("general");
    const at = performance.now();
    await stopBroker(killed, { kill: true });
    console.log(`killed broker ${killed}, the leader of the room's partition`);
    await sleep(6000);
    await startBroker(killed);
    console.log(`broker ${killed} back after ${Math.round(performance.now() - at)} ms`);
    killed = undefined;
    const v = await recorder.verdict("broker loss", 240_000);
    if (v.lost > 0) {
      for (const s of [a.service, b.service, processor]) {
        const said = s.output.filter((l) => / (WARN|ERROR) /.test(l)).slice(-15);
        console.log(`--- ${s.name} warnings ---\n${said.join("\n")}`);
      }
    }
    assert.ok(v.acknowledged >= 1000, `enough load got through (${v.acknowledged} acknowledged)`);
    assert.equal(v.lost, 0, "no acknowledged message lost");
    assert.equal(v.duplicated, 0, "no message delivered twice");
    assert.equal(v.gaps, 0, "sequence numbers consecutive on every stream");
    assert.equal(v.reordered, 0, "one order for every stream");
    assert.deepEqual(
      Object.keys(v.refused).filter((code) => code !== "UNAVAILABLE"),
      [],
      "a refused send says UNAVAILABLE",
    );
    assert.equal(v.unanswered, 0, "every send was answered");
  } finally {
    if (killed !== undefined) await startBroker(killed).catch(() => {});
    await stopAll([a.service, b.service, processor]);
  }
});
