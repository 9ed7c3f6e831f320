/**
 * Fault 6: churn. Streams open and close at 50 per second for 40 s (2,000 in all), each on its own
 * connection that its client then closes (GOAWAY), as short-lived client programs do; after a first
 * round as long: the gateway and the processor keep no heap for the streams beyond what the runtime
 * keeps of each closed connection (`memory.ts`), the gateway holds no more file descriptors than
 * after the first round, nobody churned is left online, and no rejection went unhandled.
 */

import assert from "node:assert/strict";
import { spawn } from "../processes.ts";
import { churnTwice } from "./memory.ts";

const PER_SECOND = 50;
const SECONDS = 40;
const STREAMS = PER_SECOND * SECONDS;

interface Churned {
  opened: number;
  failed: number;
}

/** One round: streams held 1 s each, every one by a user new to the gateway. */
async function churn(server: string, tag: string): Promise<Churned> {
  const run = spawn("churn", "tests/faults/stream_clients.ts", {
    args: ["churn", server, String(PER_SECOND), String(SECONDS), "1000", `churn-${tag}`],
  });
  const line = await run.waitForLine(/^churned /, (SECONDS + 60) * 1000);
  await run.exit();
  return JSON.parse(line.slice("churned ".length)) as Churned;
}

Deno.test("churn: 2,000 streams opening and closing, each on its own connection, leave no memory, descriptors or users behind", async () => {
  await churnTwice({
    name: "churn",
    connections: STREAMS,
    round: churn,
    describe: (_, second) =>
      `${second.opened} streams opened and closed, each on its own connection ` +
      `(${second.failed} failed), after a first round as long`,
    check(first, second) {
      for (const c of [first, second]) {
        assert.equal(c.failed, 0, "every stream opened");
        assert.equal(c.opened, STREAMS);
      }
    },
  });
});
