/**
 * MarkRead under attack, through a real gateway over gRPC with sign-in: hostile field values sent
 * as raw bytes, and a client marking read as fast as it can (which must reach the store and the
 * bus only once per interval). Bob and carol keep chatting meanwhile.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  assertStatus,
  attacker,
  encodeRequest,
  OWN_CONNECTION,
  rawCall,
  status,
  tokenOf,
  underAttack,
  withAttackSystem,
} from "./attack_support.ts";
import { connectUser, waitFor } from "./helpers.ts";

Deno.test("hostile MarkRead fields are refused with INVALID_ARGUMENT and move nothing", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b }) => {
    const vera = await attacker(system, "vera", "on");
    await vera.createRoom("vera-room");
    await vera.send("", "one", { room: "vera-room" });
    const raw = new grpc.Client(
      system.address(),
      grpc.credentials.createInsecure(),
      OWN_CONNECTION,
    );
    try {
      const attacks: [string, Uint8Array, number, RegExp][] = [
        [
          "seq 0",
          encodeRequest("MarkRead", { room: "vera-room", seq: 0n }),
          status.INVALID_ARGUMENT,
          /^Cannot mark read: seq is 0; /,
        ],
        [
          "seq 2^63",
          encodeRequest("MarkRead", { room: "vera-room", seq: 2n ** 63n }),
          status.INVALID_ARGUMENT,
          /the largest sequence number is 9007199254740991$/,
        ],
        [
          "a NUL in the room",
          encodeRequest("MarkRead", { room: "vera\u0000room", seq: 1n }),
          status.INVALID_ARGUMENT,
          /^Cannot mark read: /,
        ],
        [
          "a 100 kB room name",
          encodeRequest("MarkRead", { room: "r".repeat(100_000), seq: 1n }),
          status.INVALID_ARGUMENT,
          /^Cannot mark read: /,
        ],
        [
          "not a ReadRequest",
          new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
          status.INVALID_ARGUMENT,
          /not a valid chat\.ReadRequest/,
        ],
        [
          "someone's direct room",
          encodeRequest("MarkRead", { room: "dm:bob:carol", seq: 1n }),
          status.NOT_FOUND,
          /^Cannot mark read: room "dm:bob:carol" does not exist$/,
        ],
      ];
      for (const [what, bytes, code, details] of attacks) {
        const answer = await underAttack(
          b,
          what,
          () => rawCall(raw, "MarkRead", bytes, tokenOf(vera)),
        );
        assertStatus(answer, code, details, what);
      }
      assert.deepEqual(await system.store.readStates("vera", ["vera-room"]), [
        { room: "vera-room", readSeq: 0, unread: 0, mentions: 0 },
      ]);
    } finally {
      raw.close();
    }
  });
});

Deno.test("marking read as fast as it can costs one store write and one event per interval", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b }) => {
    const vera = await attacker(system, "vera", "on");
    const elsewhere = connectUser(system.address(), "vera", {
      client: await attacker(system, "vera", "on"),
      presenceEvents: true,
    });
    await vera.createRoom("flood");
    for (let i = 0; i < 5; i++) await vera.send("", `m${i}`, { room: "flood" });
    await waitFor(() => elsewhere.contents().length === 5);
    const store = system.store;
    const markRead = store.markRead.bind(store);
    let writes = 0;
    store.markRead = (...args) => (writes++, markRead(...args));
    await underAttack(b, "a MarkRead flood", () =>
      Promise.all(
        Array.from({ length: 300 }, (_, i) => vera.markRead("flood", 1 + (i % 5))),
      ));
    await waitFor(
      () => elsewhere.received.some((m) => m.read?.seq === 5n),
      5000,
      "the newest position",
    );
    assert.ok(writes <= 2, `${writes} store writes for 300 marks`);
    assert.ok(
      elsewhere.received.filter((m) => m.read).length <= 2,
      "at most two read events",
    );
    assert.deepEqual(await store.readStates("vera", ["flood"]), [
      { room: "flood", readSeq: 5, unread: 0, mentions: 0 },
    ]);
  });
});
