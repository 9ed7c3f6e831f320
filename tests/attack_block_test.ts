/**
 * Block and ListBlocked under attack, through a real gateway over gRPC: hostile user ids
 * (megabytes, NUL, control and bidirectional characters, oneself in another case), no token,
 * garbage bytes, and a flood of blocks. Each gets its clear status; nothing is appended to a
 * room's log; mallory blocking bob hides nothing from anyone else; bob and carol keep chatting.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  assertStatus,
  attacker,
  OWN_CONNECTION,
  rawCall,
  status,
  statusOf,
  tokenOf,
  underAttack,
  withAttackSystem,
} from "./attack_support.ts";
import { newClient } from "./helpers.ts";

Deno.test("AUTH=on: hostile Block fields get INVALID_ARGUMENT or UNAUTHENTICATED; a flood RESOURCE_EXHAUSTED", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b, published }) => {
    const mallory = await attacker(system, "mallory", "on");
    const cases: [string, string, RegExp][] = [
      ["empty", "", /^Cannot block user: the user id is empty$/],
      [
        "a megabyte of user id",
        "u".repeat(1 << 20),
        /^Cannot block user: the user id is 1048576 characters, the limit is \d+$/,
      ],
      ["NUL", "bo\u0000b", /^Cannot block user: the user id holds a NUL character \(U\+0000\)/],
      ["escape", "\x1b[31mbob", /^Cannot block user: the user id holds a control character/],
      ["right-to-left override", "\u202ebob", /bidirectional control character \(U\+202E\)/],
      ["oneself in another case", "MALLORY", /^Cannot block user: that is yourself$/],
    ];
    await underAttack(b, "hostile Block fields", async () => {
      for (const [what, user, details] of cases) {
        assertStatus(
          await statusOf(mallory.block(user)),
          status.INVALID_ARGUMENT,
          details,
          what,
        );
      }
    });
    const raw = new grpc.Client(
      system.address(),
      grpc.credentials.createInsecure(),
      OWN_CONNECTION,
    );
    assertStatus(
      await rawCall(raw, "Block", new Uint8Array([0x0a, 0xff]), tokenOf(mallory)),
      status.INVALID_ARGUMENT,
      /^Cannot read request: the message is not a valid chat\.BlockRequest/,
      "garbage bytes",
    );
    raw.close();
    const anonymous = newClient(system.address());
    for (const call of [anonymous.block("bob"), anonymous.listBlocked()]) {
      assertStatus(await statusOf(call), status.UNAUTHENTICATED, /^Cannot (block user|list)/);
    }

    // A flood: the burst passes, the rest is refused; bob and carol chat on, unhidden.
    const answers = await underAttack(b, "Block flood", () =>
      Promise.all(
        Array.from({ length: 100 }, (_, i) => statusOf(mallory.block("bob", i % 2 === 0))),
      ));
    const refused = answers.filter((a) => a.code === status.RESOURCE_EXHAUSTED);
    assert.ok(refused.length >= 50, `${refused.length} of 100 refused`);
    assert.match(refused[0]!.details, /^Cannot (un)?block user: the rate limit is \d+ messages/);
    assert.ok(
      answers.every((a) => a.code === status.OK || a.code === status.RESOURCE_EXHAUSTED),
      JSON.stringify(answers.find((a) => a.code !== status.OK)),
    );
    assert.deepEqual(
      published.chatting.filter((m) => m.userId === "mallory"),
      [],
      "nothing appended to a room's log",
    );
  });
});

Deno.test("AUTH=off: blocking needs a token (blocks belong to a signed-in user); any valid id may be blocked", async () => {
  await withAttackSystem({ auth: "off" }, async ({ system, b }) => {
    const anonymous = newClient(system.address());
    await underAttack(b, "anonymous blocks", async () => {
      assertStatus(
        await statusOf(anonymous.block("bob")),
        status.UNAUTHENTICATED,
        /^Cannot block user: sign in first/,
      );
    });
    const signed = newClient(system.address());
    await signed.signIn("mallory", "correct horse battery");
    await signed.block("nobody-has-this-name");
    assert.deepEqual(await signed.listBlocked(), ["nobody-has-this-name"]);
  });
});
