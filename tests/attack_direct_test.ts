/**
 * OpenDirect under attack, through a real gateway over gRPC with sign-in: throwaway accounts
 * putting a victim into more direct rooms than the room limit (after which she could create or
 * join nothing), one user opening direct rooms as fast as she can, and a user who keeps writing
 * to someone who left. Bob and carol keep chatting meanwhile.
 */

import { setTimeout as sleep } from "node:timers/promises";
import assert from "node:assert/strict";
import {
  assertStatus,
  attacker,
  status,
  statusOf,
  underAttack,
  withAttackSystem,
} from "./attack_support.ts";
import { connectUser, waitFor } from "./helpers.ts";

Deno.test("throwaway accounts' direct rooms use none of the victim's room allowance; leaving one blocks its sender", async () => {
  await withAttackSystem({ auth: "on", maxRoomsPerUser: 3 }, async ({ system, b }) => {
    const veraClient = await attacker(system, "vera", "on");
    const vera = connectUser(system.address(), "vera", { client: veraClient });
    await waitFor(() => system.gateways[0]!.hub.countOf("vera") === 1);
    const throwaways = await Promise.all(
      Array.from({ length: 6 }, (_, i) => attacker(system, `throwaway${i}`, "on")),
    );
    const opened = await underAttack(
      b,
      "direct rooms with vera",
      () => Promise.all(throwaways.map((t) => statusOf(t.openDirect("vera")))),
    );
    for (const answer of opened) assertStatus(answer, status.OK, "", "each opener's own room");
    assert.equal((await system.store.roomsOf("vera")).length, 6, "vera is in 6 direct rooms");

    // More direct rooms than MAX_ROOMS_PER_USER, and vera still creates and joins her rooms.
    await veraClient.createRoom("vera-1");
    await veraClient.createRoom("vera-2");
    await b.bob.client.createRoom("bobs-room");
    await veraClient.joinRoom("bobs-room");
    // Her group rooms are what the limit counts.
    assertStatus(
      await statusOf(veraClient.createRoom("vera-4")),
      status.RESOURCE_EXHAUSTED,
      "Cannot create room: vera is in 3 rooms, the limit is 3; leave one first",
    );

    // Vera leaves throwaway0's room: that blocks it, until she opens it again.
    const dm = "dm:throwaway0:vera";
    await veraClient.leaveRoom(dm);
    const blocked = [
      ["send", () => statusOf(throwaways[0]!.send("", "still there?", { room: dm }))],
      ["reopen", () => statusOf(throwaways[0]!.openDirect("vera"))],
    ] as const;
    for (const [what, attack] of blocked) {
      assertStatus(
        await underAttack(b, `blocked ${what}`, attack),
        status.PERMISSION_DENIED,
        /: vera left the direct conversation with throwaway0; only vera can open it again$/,
        what,
      );
    }
    assert.deepEqual(await system.store.members(dm), ["throwaway0"]);
    // Only vera can open it again, and then it works both ways.
    assert.deepEqual((await veraClient.openDirect("throwaway0")).members, ["throwaway0", "vera"]);
    await throwaways[0]!.send("", "hello again", { room: dm });
    await waitFor(() => vera.contents().includes("hello again"), 5000, "vera gets it");
    assert.ok(!vera.contents().includes("still there?"), "nothing from while she was away");

    // Both leave: each one's opening lifts only their own block, so neither is locked out.
    const dm1 = "dm:throwaway1:vera";
    await veraClient.leaveRoom(dm1);
    await throwaways[1]!.leaveRoom(dm1);
    assertStatus(
      await statusOf(throwaways[1]!.openDirect("vera")),
      status.PERMISSION_DENIED,
      /vera left the direct conversation with throwaway1; only vera can open it again \(you are back in it for when vera does\)$/,
      "reopening while vera still blocks",
    );
    assert.deepEqual((await veraClient.openDirect("throwaway1")).members, ["throwaway1", "vera"]);
    await throwaways[1]!.send("", "both back", { room: dm1 });
    await waitFor(() => vera.contents().includes("both back"), 5000, "the room works again");
  });
});

Deno.test("one user opening direct rooms as fast as she can is RESOURCE_EXHAUSTED with the wait; her own rooms are bounded", async () => {
  await withAttackSystem(
    { auth: "on", directRoomsBurst: 3, directRoomsPerMinute: 60, maxDirectRoomsPerUser: 4 },
    async ({ system, b }) => {
      const mallory = await attacker(system, "mallory", "on");
      const targets = ["t0", "t1", "t2", "t3", "t4", "t5"];
      for (const t of targets) await attacker(system, t, "on");
      const answers = await underAttack(b, "direct room flood", async () => {
        const out = [];
        for (const t of targets) out.push(await statusOf(mallory.openDirect(t)));
        return out;
      });
      assert.deepEqual(answers.slice(0, 3).map((a) => a.code), [status.OK, status.OK, status.OK]);
      for (const answer of answers.slice(3)) {
        assertStatus(
          answer,
          status.RESOURCE_EXHAUSTED,
          /^Cannot open direct messages: the limit is 60 new direct conversations per minute \(3 at once\); retry in [01]\.\d s$/,
        );
      }
      // Opening one that exists again is no new room: not limited.
      assertStatus(await statusOf(mallory.openDirect("t0")), status.OK, "", "reopening");
      // Others open their own rooms with mallory's targets meanwhile: the limit is hers.
      assertStatus(await statusOf(b.bob.client.openDirect("t4")), status.OK, "", "bob");

      // The bound on rooms she opened and is still in (4), whatever the rate.
      const aToken = () => sleep(1100); // 60 a minute
      await aToken();
      assertStatus(await statusOf(mallory.openDirect("t3")), status.OK, "", "the fourth");
      await aToken();
      assertStatus(
        await statusOf(mallory.openDirect("t4")),
        status.RESOURCE_EXHAUSTED,
        "Cannot open direct messages: mallory opened 4 direct conversations and is still in them, the limit is 4; leave one first",
      );
      await mallory.leaveRoom("dm:mallory:t0");
      await aToken();
      assertStatus(await statusOf(mallory.openDirect("t4")), status.OK, "", "after leaving one");
    },
  );
});

Deno.test("both sides opening one direct room at once: both are answered OK and both are in it", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b }) => {
    const names = ["p0", "q0", "p1", "q1", "p2", "q2"];
    const clients = await Promise.all(names.map((n) => attacker(system, n, "on")));
    const answers = await underAttack(b, "simultaneous opens", () =>
      Promise.all(
        [0, 2, 4].flatMap((i) => [
          statusOf(clients[i]!.openDirect(names[i + 1]!)),
          statusOf(clients[i + 1]!.openDirect(names[i]!)),
        ]),
      ));
    for (const answer of answers) assertStatus(answer, status.OK, "", "each side");
    for (const i of [0, 2, 4]) {
      const room = `dm:${names[i]}:${names[i + 1]}`;
      assert.deepEqual(await system.store.members(room), [names[i], names[i + 1]]);
      await clients[i]!.send("", "hi", { room });
    }
  });
});
