// deno-lint-ignore-file no-console
/**
 * Fault 6: churn. Streams open and close at 50 per second for 40 s (2,000 in all), after a
 * first round as long: afterwards the gateway's memory is back near its baseline, it holds no more file
 * descriptors than before, nobody churned is left online, and no rejection went unhandled.
 */

import assert from "node:assert/strict";
import { closeClients, newClient, waitFor } from "../helpers.ts";
import { kafkaDeployment, spawn, stopAll } from "../processes.ts";
import { openFds, rssKiB, sleep } from "./harness.ts";

const PER_SECOND = 50;
const SECONDS = 40;

function churn(server: string, seconds: number) {
  return spawn("churn", "tests/faults/stream_clients.ts", {
    args: ["churn", server, String(PER_SECOND), String(seconds), "1000"],
  });
}

/** RSS after the gateway had a few quiet seconds to collect its garbage. */
async function settledRss(pid: number): Promise<number> {
  await sleep(5000);
  return rssKiB(pid);
}

Deno.test("churn: 2,000 streams opening and closing leave no memory, descriptors or users behind", async () => {
  const deployment = kafkaDeployment();
  const a = deployment.gateway("gateway-a");
  const processor = deployment.processor();
  try {
    await Promise.all([a.ready(), processor.waitForLine(/Processor took partitions/)]);
    const pid = a.service.process.pid;
    // A first round as long as the measured one fills the pools and caches that stay (V8's
    // heap grows to its working size and keeps it): the baseline is taken after it.
    const warm = churn(a.grpc, SECONDS);
    await warm.waitForLine(/^churned /, (SECONDS + 60) * 1000);
    const baseline = { rss: await settledRss(pid), fds: openFds(pid) };

    const run = churn(a.grpc, SECONDS);
    const line = await run.waitForLine(/^churned /, (SECONDS + 60) * 1000);
    const counts = JSON.parse(line.slice("churned ".length)) as { opened: number; failed: number };
    const observer = newClient(a.grpc);
    await waitFor(
      async () => (await observer.listOnline()).length === 0,
      30_000,
      "every churned user offline",
    );
    closeClients();
    const after = { rss: await settledRss(pid), fds: openFds(pid) };
    console.log(
      `FIGURES churn: ${counts.opened} streams opened and closed (${counts.failed} failed); ` +
        `gateway RSS ${Math.round(baseline.rss / 1024)} MiB before, ${
          Math.round(after.rss / 1024)
        } MiB after; file descriptors ${baseline.fds} before, ${after.fds} after`,
    );
    assert.equal(counts.failed, 0, "every stream opened");
    assert.equal(counts.opened, PER_SECOND * SECONDS);
    assert.ok(after.fds <= baseline.fds + 2, "no file descriptor leaked");
    assert.ok(after.rss <= baseline.rss * 1.1 + 16 * 1024, "memory back to its baseline");
    assert.ok(await a.readyz() === 200, "the gateway is still serving");
    const complaints = a.service.output.filter((l) => /unhandled|uncaught/i.test(l));
    assert.deepEqual(complaints, [], "no unhandled rejection or exception");
  } finally {
    closeClients();
    await stopAll([a.service, processor]);
  }
});
