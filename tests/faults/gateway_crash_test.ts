// deno-lint-ignore-file no-console
/**
 * Fault 4: a gateway with terminal clients on it is killed (SIGKILL). The clients move to the
 * next gateway of their server list and resume from their last sequence number: every line
 * shows once, in order. A user who can only reach the dead gateway is marked offline within the
 * heartbeat timeout, and online again when the gateway is back.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { waitFor } from "../helpers.ts";
import { kafkaDeployment, type Service, spawn, stopAll } from "../processes.ts";
import { gatewayDeadVerdicts, processorsHolding } from "./harness.ts";

const LINES = 150;

const PASSWORD = "a long password";

function terminal(user: string, servers: string[]): Service {
  return spawn(user, "client/main.ts", {
    args: [user, "--server", servers.join(",")],
    env: { CHAT_PASSWORD: PASSWORD },
    stdin: true,
  });
}

/** The lines `from` typed, as `who` saw them, in the order shown. */
function seen(who: Service, from: string): string[] {
  const pattern = new RegExp(`\\] ${from}: (line-\\d+)$`);
  return who.output.map((l) => pattern.exec(l)?.[1]).filter((l) => l !== undefined);
}

Deno.test("gateway killed: its terminal clients resume on another with no gap and no duplicate", async () => {
  const deployment = kafkaDeployment({ auth: "on", heartbeatTimeoutMs: 3000 });
  const a = deployment.gateway("gateway-a");
  const b = deployment.gateway("gateway-b");
  const processor = deployment.processor("processor", { KAFKA_CLIENT_ID: "processor" });
  let aAgain: ReturnType<typeof deployment.gateway> | undefined;
  const clients: Service[] = [];
  try {
    await Promise.all([a.ready(), b.ready(), processorsHolding(["processor"])]);
    const readers = [terminal("alice", [a.grpc, b.grpc]), terminal("abe", [a.grpc, b.grpc])];
    const dave = terminal("dave", [a.grpc]);
    const carol = terminal("carol", [b.grpc, a.grpc]);
    clients.push(...readers, dave, carol);
    await Promise.all(clients.map((c) => c.waitForLine(/^Connected to server as user/, 90_000)));

    let killedAt = 0;
    let killedAtWall = 0;
    let offlineSeen: Promise<number> | undefined;
    for (let i = 1; i <= LINES; i++) {
      await carol.write(`line-${String(i).padStart(4, "0")}\n`);
      if (i === 40) {
        await waitFor(() => readers.every((r) => seen(r, "carol").length >= 20), 30_000, "lines");
        await a.service.crash();
        killedAt = performance.now();
        killedAtWall = Date.now();
        offlineSeen = carol.waitForLine(/\* dave went offline/, 60_000).then(() =>
          Math.round(performance.now() - killedAt)
        );
        console.log("killed gateway-a");
      }
      await sleep(50);
    }
    const expected = Array.from(
      { length: LINES },
      (_, i) => `line-${String(i + 1).padStart(4, "0")}`,
    );
    await waitFor(
      () => readers.every((r) => seen(r, "carol").length >= LINES),
      60_000,
      "every line on every reader",
    );
    await sleep(1000);
    for (const reader of readers) {
      assert.ok(
        reader.output.some((l) => l.startsWith("Disconnected:")),
        `${reader.name} noticed the crash`,
      );
      assert.deepEqual(seen(reader, "carol"), expected, `${reader.name}: each line once, in order`);
    }

    // The verdict is a gateway-dead delivery; Kafka stamps it with when it was written.
    let verdict: { at: number } | undefined;
    for (
      const deadline = Date.now() + 30_000;
      !verdict && Date.now() < deadline;
      await sleep(500)
    ) {
      verdict = (await gatewayDeadVerdicts(killedAtWall)).find((v) => v.serverId === a.serverId);
    }
    assert.ok(verdict, "the processor declared the killed gateway dead");
    const declaredMs = verdict.at - killedAtWall;
    const offlineMs = await offlineSeen!;
    console.log(
      `FIGURES gateway crash: ${LINES} lines, each shown once on ${readers.length} moved clients; ` +
        `gateway declared dead (its users offline) ${declaredMs} ms after the kill, ` +
        `shown offline to another user after ${offlineMs} ms (heartbeat timeout ${deployment.heartbeatTimeoutMs} ms)`,
    );
    // The processor looks at least every heartbeat interval: the timeout plus one interval, with
    // slack for a loaded machine.
    assert.ok(
      declaredMs < deployment.heartbeatTimeoutMs * 2,
      "the processor declared the gateway dead about the heartbeat timeout after it died",
    );

    // The gateway comes back where it was; dave's client finds it by itself.
    const port = a.grpc.split(":")[1]!;
    aAgain = deployment.gateway("gateway-a-again", { GRPC_PORT: port });
    await aAgain.ready();
    const before = carol.output.length;
    await waitFor(
      () => carol.output.slice(before).some((l) => /\* dave is online/.test(l)),
      60_000,
      "dave online again",
    );
  } finally {
    for (const c of clients) c.kill("SIGTERM");
    await Promise.all(clients.map((c) => c.exit(10_000)));
    await stopAll([a.service, b.service, aAgain?.service, processor]);
  }
});
