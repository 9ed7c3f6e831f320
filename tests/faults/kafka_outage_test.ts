// deno-lint-ignore-file no-console
/**
 * Fault 5: all three brokers killed for 30 s, then started again. The gateways stay up and answer
 * UNAVAILABLE meanwhile, report not ready, and recover by themselves with no restart; no message
 * acknowledged before the outage is lost.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { clusterUp, stopBroker } from "../../kafka/cluster.ts";
import { NODE_IDS } from "../../kafka/layout.ts";
import { waitFor } from "../helpers.ts";
import { kafkaDeployment, stopAll } from "../processes.ts";
import { processorsHolding, startRecorder } from "./harness.ts";

const OUTAGE_MS = 30_000;

Deno.test("Kafka down for 30 s: gateways answer UNAVAILABLE, then recover by themselves, losing nothing", async () => {
  const deployment = kafkaDeployment();
  const a = deployment.gateway("gateway-a");
  const b = deployment.gateway("gateway-b");
  const processor = deployment.processor("processor", { KAFKA_CLIENT_ID: "processor" });
  let down = false;
  try {
    await Promise.all([a.ready(), b.ready(), processorsHolding(["processor"])]);
    const recorder = startRecorder({
      streams: [
        { name: "a1", user: "ann", servers: [a.grpc, b.grpc] },
        { name: "b1", user: "bob", servers: [b.grpc, a.grpc] },
      ],
      senders: [
        { user: "sam", server: a.grpc, perSecond: 20 },
        { user: "sue", server: b.grpc, perSecond: 20 },
      ],
      seconds: 75,
      drainMs: 60_000,
    });
    await recorder.ready();
    await recorder.acked(200);
    down = true;
    await Promise.all(NODE_IDS.map((node) => stopBroker(node, { kill: true })));
    const downAt = performance.now();
    console.log("killed all three brokers");
    await waitFor(
      async () => await a.readyz() === 503 && await b.readyz() === 503,
      OUTAGE_MS,
      "both gateways to report not ready",
    );
    await sleep(OUTAGE_MS - (performance.now() - downAt));
    await clusterUp();
    down = false;
    const upAt = performance.now();
    await waitFor(
      async () => await a.readyz() === 200 && await b.readyz() === 200,
      60_000,
      "both gateways ready again",
    );
    console.log(
      `FIGURES Kafka outage: down ${Math.round(upAt - downAt)} ms; gateways ready ` +
        `${Math.round(performance.now() - upAt)} ms after the brokers answered`,
    );
    const v = await recorder.verdict("Kafka outage", 180_000);
    assert.ok((v.refused.UNAVAILABLE ?? 0) > 0, "sends during the outage answered UNAVAILABLE");
    assert.deepEqual(
      Object.keys(v.refused).filter((code) => code !== "UNAVAILABLE"),
      [],
      "a refused send says UNAVAILABLE",
    );
    assert.equal(v.unanswered, 0, "every send was answered");
    assert.ok(v.lastAcknowledged, "sending works again after the outage, with no restart");
    assert.equal(v.lost, 0, "no acknowledged message lost");
    assert.equal(v.duplicated, 0, "no message delivered twice");
    assert.equal(v.backwards, 0, "sequence numbers rising on every stream");
    assert.equal(v.reordered, 0, "one order for every stream");
  } finally {
    if (down) await clusterUp().catch(() => {});
    await stopAll([a.service, b.service, processor]);
  }
});
