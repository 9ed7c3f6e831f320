// deno-lint-ignore-file no-console
/**
 * Fault 6: churn. Streams open and close at 50 per second for 40 s (2,000 in all), each on its own
 * connection that its client then closes (GOAWAY), as short-lived client programs do; after a first
 * round as long: the gateway and the processor keep no heap for the streams beyond what the runtime
 * keeps of each closed connection (`memory.ts`), the gateway holds no more file descriptors than
 * after the first round, nobody churned is left online, and no rejection went unhandled.
 */

import assert from "node:assert/strict";
import { newClient } from "../helpers.ts";
import { freePort, kafkaDeployment, spawn, stopAll } from "../processes.ts";
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

const PER_SECOND = 50;
const SECONDS = 40;
const STREAMS = PER_SECOND * SECONDS;

/** One round: streams held 1 s each, every one by a user new to the gateway. */
async function churn(server: string, userPrefix: string) {
  const run = spawn("churn", "tests/faults/stream_clients.ts", {
    args: ["churn", server, String(PER_SECOND), String(SECONDS), "1000", userPrefix],
  });
  const line = await run.waitForLine(/^churned /, (SECONDS + 60) * 1000);
  await run.exit();
  return JSON.parse(line.slice("churned ".length)) as { opened: number; failed: number };
}

Deno.test("churn: 2,000 streams opening and closing, each on its own connection, leave no memory, descriptors or users behind", async () => {
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

    // A first round as long as the measured one compiles code and fills the pools and caches
    // that stay; the baseline is taken after it. Both read the heap after garbage collection.
    const warm = await churn(a.grpc, `churn-${run}-1`);
    await allOffline();
    const one = await reading(gw!, pid);
    const processorOne = await reading(proc!, processor.process.pid, 0);
    const counts = await churn(a.grpc, `churn-${run}-2`);
    await allOffline();
    const two = await reading(gw!, pid);
    const processorTwo = await reading(proc!, processor.process.pid, 0);
    observer.close();

    const own = two.own - one.own;
    const processorOwn = processorTwo.own - processorOne.own;
    const runtime = two.heapUsed - one.heapUsed - own;
    console.log(
      `FIGURES churn: ${counts.opened} streams opened and closed, each on its own connection ` +
        `(${counts.failed} failed), after a first round as long; gateway heap after GC ${
          mib(one.heapUsed)
        } MiB after the first round, ${mib(two.heapUsed)} after the second: ${
          kib(runtime / STREAMS)
        } KiB per connection in the ${
          two.keptSessions - one.keptSessions
        } HTTP/2 sessions the runtime kept, ${Math.round(own / 1024)} KiB elsewhere ` +
        `(processor ${Math.round(processorOwn / 1024)} KiB); gateway RSS ${
          mib(start.rss)
        } MiB at the start, ${mib(one.rss)} after the first round (${
          kib((one.rss - start.rss) / STREAMS)
        } KiB per connection); file descriptors ${start.fds}, ${one.fds}, ${two.fds}`,
    );
    for (const c of [warm, counts]) {
      assert.equal(c.failed, 0, "every stream opened");
      assert.equal(c.opened, STREAMS);
    }
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
      one.rss - start.rss <= STREAMS * RSS_PER_CONNECTION + RSS_SLACK,
      `gateway RSS grew ${mib(one.rss - start.rss)} MiB in the first round, beyond the ` +
        `runtime's envelope`,
    );
    assert.equal(await a.readyz(), 200, "the gateway is still serving");
    const complaints = a.service.output.filter((l) => /unhandled|uncaught/i.test(l));
    assert.deepEqual(complaints, [], "no unhandled rejection or exception");
  } finally {
    for (const inspector of inspectors) inspector.close();
    await stopAll([a.service, processor]);
  }
});
