// deno-lint-ignore-file no-console
/**
 * Faults 2 and 3: the processor is killed (SIGKILL) under load. Alone, it is started again;
 * with a second processor in the group, the group rebalances and the survivor carries on. Either
 * way no acknowledged message is lost or shown twice; the pause in delivery is reported.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { type Deployment, kafkaDeployment, type Service, stopAll } from "../processes.ts";
import type { Verdict } from "./delivery_ledger.ts";
import { processorAssignments, processorOf, processorsHolding, startRecorder } from "./harness.ts";

function assertExactlyOnce(v: Verdict): void {
  assert.equal(v.lost, 0, "no acknowledged message lost");
  assert.equal(v.duplicated, 0, "no message delivered twice");
  assert.equal(v.backwards, 0, "sequence numbers rising on every stream");
  assert.equal(v.reordered, 0, "one order for every stream");
  assert.deepEqual(Object.keys(v.refused), [], "no send refused: the gateways never lost Kafka");
}

function load(deployment: Deployment, a: string, b: string) {
  void deployment;
  return startRecorder({
    streams: [
      { name: "a1", user: "ann", servers: [a, b] },
      { name: "b1", user: "bob", servers: [b, a] },
    ],
    senders: [
      { user: "sam", server: a, perSecond: 50 },
      { user: "sue", server: b, perSecond: 50 },
    ],
    seconds: 30,
  });
}

/** A processor whose Kafka client id is its name, to find it in the group. */
function processor(deployment: Deployment, name: string): Service {
  return deployment.processor(name, { KAFKA_CLIENT_ID: name });
}

/** The processor holding the partition of the recorder's room. */
async function handling(processors: Service[]): Promise<Service> {
  const owner = await processorOf("general");
  const service = processors.find((p) => p.name === owner);
  assert.ok(service, `a processor holds the room (the group says ${owner})`);
  return service;
}

Deno.test("processor killed under load and started again: nothing lost, nothing twice", async () => {
  const deployment = kafkaDeployment();
  const a = deployment.gateway("gateway-a");
  const b = deployment.gateway("gateway-b");
  const first = processor(deployment, "processor-1");
  let second: Service | undefined;
  try {
    await Promise.all([a.ready(), b.ready(), processorsHolding(["processor-1"])]);
    const recorder = load(deployment, a.grpc, b.grpc);
    await recorder.ready();
    await recorder.acked(300);
    await first.crash();
    console.log("killed the processor");
    await sleep(2000);
    second = processor(deployment, "processor-2");
    // The killed one stays in the group until its session times out.
    await processorsHolding(["processor-2"], 90_000);
    const v = await recorder.verdict("processor crash", 120_000);
    assert.ok(v.acknowledged >= 2000, `the load got through (${v.acknowledged} acknowledged)`);
    assertExactlyOnce(v);
  } finally {
    await stopAll([a.service, b.service, first, second]);
  }
});

Deno.test("two processors, one killed: the group rebalances and delivery goes on", async () => {
  const deployment = kafkaDeployment();
  const a = deployment.gateway("gateway-a");
  const b = deployment.gateway("gateway-b");
  const processors = [processor(deployment, "processor-1"), processor(deployment, "processor-2")];
  try {
    await Promise.all([a.ready(), b.ready(), processorsHolding(["processor-1", "processor-2"])]);
    const recorder = load(deployment, a.grpc, b.grpc);
    await recorder.ready();
    await recorder.acked(300);
    const victim = await handling(processors);
    const survivor = processors.find((p) => p !== victim)!;
    await victim.crash();
    console.log(`killed ${victim.name}`);
    const v = await recorder.verdict("one of two processors killed", 120_000);
    assert.deepEqual(
      [...await processorAssignments()].map(([id, held]) => [id, held.sort()]),
      [[survivor.name, [0, 1]]],
      "the survivor holds every partition of chatting",
    );
    console.log(`FIGURES delivery paused for at most ${v.maxPauseMs} ms`);
    assert.ok(v.acknowledged >= 2000, `the load got through (${v.acknowledged} acknowledged)`);
    assertExactlyOnce(v);
  } finally {
    await stopAll([a.service, b.service, ...processors]);
  }
});
