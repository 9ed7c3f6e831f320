/**
 * SetTyping under attack, through a real gateway over gRPC: hostile room names (megabytes, NUL,
 * control and bidirectional characters, other people's rooms, rooms that do not exist), no token,
 * garbage bytes, and a flood of calls. Each gets its clear status; a flood reaches a watcher of
 * the room no more than the coalescing allows; nothing is appended to a room's log; bob and
 * carol keep chatting meanwhile.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  assertStatus,
  attacker,
  encodeRequest,
  OWN_CONNECTION,
  PASSWORD,
  rawCall,
  status,
  statusOf,
  tokenOf,
  underAttack,
  withAttackSystem,
} from "./attack_support.ts";
import { connectUser, newClient, waitFor } from "./helpers.ts";

Deno.test("AUTH=on: hostile SetTyping fields get INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED or UNAUTHENTICATED", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b, published }) => {
    const mallory = await attacker(system, "mallory", "on");
    const owner = newClient(system.address());
    await owner.signIn("olga", PASSWORD);
    await owner.createRoom("private-club");
    await owner.openDirect("bob");
    const cases: [string, string, number, RegExp][] = [
      [
        "a megabyte of room name",
        "r".repeat(1 << 20),
        status.INVALID_ARGUMENT,
        /^Cannot set typing: the room name is 1048576 characters, the limit is \d+$/,
      ],
      [
        "NUL",
        "book\u0000club",
        status.INVALID_ARGUMENT,
        /^Cannot set typing: the room name holds a NUL character \(U\+0000\)/,
      ],
      [
        "escape",
        "\x1b[31mred",
        status.INVALID_ARGUMENT,
        /^Cannot set typing: the room name holds a control character \(U\+001B\)/,
      ],
      [
        "right-to-left override",
        "\u202eclub",
        status.INVALID_ARGUMENT,
        /^Cannot set typing: .*bidirectional control character \(U\+202E\)/,
      ],
      [
        "a room nobody made",
        "nowhere",
        status.NOT_FOUND,
        /^Cannot set typing: room "nowhere" does not exist/,
      ],
      [
        "a room mallory is not in",
        "private-club",
        status.PERMISSION_DENIED,
        /^Cannot set typing: mallory is not a member of room "private-club"; join it first$/,
      ],
      [
        "other people's direct room",
        "dm:bob:olga",
        status.PERMISSION_DENIED,
        /^Cannot set typing: mallory is not a member of room "dm:bob:olga"/,
      ],
    ];
    await underAttack(b, "hostile SetTyping fields", async () => {
      for (const [what, room, code, details] of cases) {
        assertStatus(await statusOf(mallory.setTyping(room, true)), code, details, what);
      }
    });
    const anonymous = newClient(system.address());
    assertStatus(
      await statusOf(anonymous.setTyping("general", true)),
      status.UNAUTHENTICATED,
      /^Cannot set typing: /,
      "no token",
    );
    const raw = new grpc.Client(
      system.address(),
      grpc.credentials.createInsecure(),
      OWN_CONNECTION,
    );
    assertStatus(
      await rawCall(raw, "SetTyping", new Uint8Array([0x0a, 0xff]), tokenOf(mallory)),
      status.INVALID_ARGUMENT,
      /^Cannot read request: the message is not a valid chat\.TypingRequest/,
      "garbage bytes",
    );
    const typed = encodeRequest("SetTyping", { room: "", typing: true });
    assertStatus(
      await rawCall(raw, "SetTyping", typed, tokenOf(mallory)),
      status.OK,
      "",
      "an empty room is general",
    );
    raw.close();
    assert.deepEqual(
      published.chatting.filter((m) => m.userId === "mallory"),
      [],
      "nothing appended to a room's log",
    );
  });
});

Deno.test("a flood of SetTyping costs its sender RESOURCE_EXHAUSTED and reaches a watcher at most twice a second", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b, published }) => {
    const mallory = await attacker(system, "mallory", "on");
    const wendyClient = newClient(system.address());
    await wendyClient.signIn("wendy", PASSWORD);
    const wendy = connectUser(system.address(), "wendy", {
      client: wendyClient,
      presenceEvents: true,
    });
    await waitFor(() => system.gateways[0]!.hub.size === 3, 5000, "wendy's stream");
    const started = Date.now();
    const answers = await underAttack(b, "SetTyping flood", async () => {
      const answers = [];
      for (let round = 0; round < 20; round++) {
        answers.push(
          ...await Promise.all(
            Array.from(
              { length: 25 },
              (_, i) => statusOf(mallory.setTyping("general", i % 2 === 0)),
            ),
          ),
        );
      }
      return answers;
    });
    const seconds = (Date.now() - started) / 1000;
    const refused = answers.filter((a) => a.code !== status.OK);
    assert.ok(refused.length > 0, "the flood was limited");
    for (const a of refused) {
      assertStatus(
        a,
        status.RESOURCE_EXHAUSTED,
        /^Cannot set typing: the limit is 5 calls per second/,
      );
    }
    // Everything delivered before wendy's next message: she had it all.
    await wendyClient.send("", "checking", {});
    await waitFor(() => wendy.contents().includes("checking"));
    const events = wendy.received.filter((m) => m.typing);
    assert.ok(events.length >= 1, "wendy saw mallory typing");
    assert.ok(
      events.length <= 2 * Math.ceil(seconds + 1),
      `${events.length} typing events in ${seconds.toFixed(1)} s`,
    );
    assert.deepEqual(
      published.chatting.filter((m) => m.userId === "mallory"),
      [],
      "nothing appended to a room's log",
    );
    wendy.close();
  });
});
