// deno-lint-ignore-file no-console
/**
 * Issue-15 scenarios: one broker of three dies and stays dead, and a rolling restart as in an
 * upgrade. With three copies of every topic and two needed in sync, chat must go on: nothing
 * acknowledged is lost or repeated, no stream is cut, every send is answered (UNAVAILABLE within
 * SEND_TIMEOUT_MS at worst, never a client's deadline), and no live gateway is declared dead.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startBroker, stopBroker } from "../../kafka/cluster.ts";
import { ChatClient } from "../../client/chat_client.ts";
import {
  activeController,
  awaitFullySynced,
  leaderFor,
  type LoadOptions,
  type LoadVerdict,
  underLoad,
} from "./harness.ts";

const SEND_DEADLINE_MS = 10_000;

/**
 * The production heartbeat timeout (10 s), not the suite's short one: a producer may need a few
 * seconds to find new leaders, which must not cost a live gateway its streams.
 */
const load = (seconds: number): LoadOptions => ({
  seconds,
  ackedBeforeFault: 1000,
  verdictTimeoutMs: (seconds + 200) * 1000,
  heartbeatTimeoutMs: 10_000,
  sendDeadlineMs: SEND_DEADLINE_MS,
});

function assertChatWentOn(v: LoadVerdict): void {
  assert.equal(v.lost, 0, "no acknowledged message lost");
  assert.equal(v.duplicated, 0, "no message delivered twice");
  assert.equal(v.backwards, 0, "sequence numbers rising on every stream");
  assert.equal(v.reordered, 0, "one order for every stream");
  assert.equal(v.unanswered, 0, "every send was answered");
  assert.deepEqual(
    Object.keys(v.refused).filter((code) => code !== "UNAVAILABLE"),
    [],
    "a refused send says UNAVAILABLE, before the client's deadline",
  );
  assert.equal(v.reopened, 0, "no stream was cut");
  assert.deepEqual(v.deadVerdicts, [], "no live gateway declared dead");
  assert.ok(v.lastAcknowledged, "sends are acknowledged again at the end");
}

/**
 * Head-of-line probe: sends to a room whose `chatting` partition the dead broker does not lead,
 * every 100 ms for `ms`, through the same gateway as the load. Lanes per partition mean these
 * are acknowledged at their usual pace while the room's partition waits for a new leader.
 */
async function probeOtherPartition(
  gateway: string,
  victim: number,
  ms: number,
): Promise<string> {
  let room: string | undefined;
  for (let i = 0; i < 50 && room === undefined; i++) {
    const candidate = `hol-${i}`;
    if (
      await leaderFor(candidate) !== victim &&
      await leaderFor(candidate) !== await leaderFor("general")
    ) room = candidate;
  }
  if (room === undefined) {
    return "no partition of chatting is led by another broker than the room's";
  }
  const client = new ChatClient(gateway);
  try {
    await client.signIn("hol", crypto.randomUUID());
    await client.createRoom(room);
    const latencies: number[] = [];
    const refused: string[] = [];
    const until = performance.now() + ms;
    const sends: Promise<void>[] = [];
    for (let i = 0; performance.now() < until; i++) {
      const at = performance.now();
      sends.push(
        client.send("hol", `probe ${i}`, { room, deadlineMs: 10_000 }).then(
          () => void latencies.push(performance.now() - at),
          (err: { code?: number }) => void refused.push(String(err.code)),
        ),
      );
      await sleep(100);
    }
    await Promise.all(sends);
    const max = Math.round(Math.max(0, ...latencies));
    const p50 = Math.round(latencies.sort((x, y) => x - y)[Math.floor(latencies.length / 2)] ?? 0);
    assert.deepEqual(refused, [], `sends to ${room}, on a partition with a live leader, refused`);
    return `room ${room} on another partition: ${latencies.length} sends acknowledged, p50 ${p50} ms, max ${max} ms`;
  } finally {
    client.close();
  }
}

/** Kills `node` for good (until the test ends), reporting how long sends paused. */
async function permanentLoss(name: string, pick: () => Promise<number>, why: string) {
  let killed: number | undefined;
  let probe = "";
  try {
    const v = await underLoad(name, load(75), async (gateway) => {
      killed = await pick();
      await stopBroker(killed, { kill: true });
      console.log(`killed broker ${killed} (${why}); it stays down for the rest of the run`);
      probe = await probeOtherPartition(gateway, killed, 20_000);
    });
    console.log(`FIGURES ${name}: head-of-line probe: ${probe}`);
    assertChatWentOn(v);
    assert.ok(v.acknowledged >= 10_000, `most sends got through (${v.acknowledged} of ${v.sent})`);
    assert.ok(
      v.maxAckPauseMs < 30_000,
      `acknowledgements resumed within 30 s of the kill (longest pause ${v.maxAckPauseMs} ms)`,
    );
  } finally {
    if (killed !== undefined) {
      await startBroker(killed);
      await awaitFullySynced();
    }
  }
}

Deno.test("permanent loss of the leader of the busiest partition: chat goes on", async () => {
  await permanentLoss(
    "broker down (room leader)",
    () => leaderFor("general"),
    "the leader of the room's partition",
  );
});

Deno.test("permanent loss of the active controller: chat goes on", async () => {
  await permanentLoss("broker down (controller)", activeController, "the active controller");
});

Deno.test("rolling restart of the three brokers: nothing lost, no stream cut", async () => {
  const pauses: string[] = [];
  const v = await underLoad("rolling restart", load(120), async () => {
    for (const node of [1, 2, 3]) {
      const at = performance.now();
      await stopBroker(node);
      await startBroker(node);
      const synced = await awaitFullySynced();
      pauses.push(
        `broker ${node}: back in ${
          Math.round(performance.now() - at - synced)
        } ms, in sync ${synced} ms later`,
      );
    }
  });
  console.log(`FIGURES rolling restart: ${pauses.join("; ")}`);
  assertChatWentOn(v);
});
