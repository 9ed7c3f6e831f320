/**
 * "OK means delivered", attacked through a real gateway over gRPC: content and fields that the
 * stores would refuse after the answer (and so send to the dead-letter topic), another user's
 * message id, and client timestamps that cannot be represented or are far off. Each attack gets
 * its status before anything is published; whatever is answered OK is delivered; bob and carol
 * keep chatting meanwhile.
 */

import { setTimeout as sleep } from "node:timers/promises";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  assertStatus,
  attacker,
  encodeMessage,
  OWN_CONNECTION,
  rawCall,
  status,
  statusOf,
  underAttack,
  withAttackSystem,
} from "./attack_support.ts";
import { waitFor } from "./helpers.ts";

const encoder = new TextEncoder();

/** Protobuf bytes of a `chat.Message` whose content is `content` exactly (any bytes). */
function messageWithContentBytes(userId: string, content: Uint8Array): Uint8Array {
  const id = encoder.encode(userId);
  return Uint8Array.from([0x0a, id.length, ...id, 0x12, content.length, ...content]);
}

Deno.test("content or fields a store would refuse are INVALID_ARGUMENT before OK: nothing published, nothing dead-lettered; others keep chatting", async () => {
  await withAttackSystem({}, async ({ system, b, published }) => {
    const mallory = await attacker(system, "mallory", "off");
    const raw = new grpc.Client(
      system.address(),
      grpc.credentials.createInsecure(),
      OWN_CONNECTION,
    );
    try {
      const attacks: [string, () => Promise<{ code: number; details: string }>, RegExp][] = [
        [
          "NUL in content",
          () => statusOf(mallory.send("mallory", "a\u0000b")),
          /^Cannot send message: the content holds a NUL character \(U\+0000\)$/,
        ],
        [
          // ED A0 80 is a surrogate in UTF-8's clothing: no valid UTF-8, so no valid string
          // field (proto3 strings are checked as they are decoded). Let through, it would decode
          // to an unpaired surrogate that the stores would silently replace with U+FFFD.
          "unpaired surrogate in content",
          () =>
            rawCall(
              raw,
              "BroadcastMessage",
              messageWithContentBytes("mallory", Uint8Array.from([0x61, 0xed, 0xa0, 0x80])),
            ),
          /^Cannot read request: the message is not a valid chat\.Message \(/,
        ],
        [
          "NUL in message id",
          () => statusOf(mallory.send("mallory", "hi", { messageId: "id\u0000x" })),
          /^Cannot send message: the message id holds a NUL character/,
        ],
        [
          "NUL in display name",
          () => statusOf(mallory.send("mallory", "hi", { displayName: "M\u0000" })),
          /^Cannot send message: the display name holds a NUL character/,
        ],
        [
          "NUL in room",
          () => statusOf(mallory.send("mallory", "hi", { room: "dm:\u0000:bob" })),
          /^Cannot send message: the room name holds a NUL character/,
        ],
        [
          "NUL in user id",
          () => statusOf(mallory.send("mal\u0000lory", "hi")),
          /^Cannot send message: the user id holds a NUL character/,
        ],
      ];
      for (const [what, attack, details] of attacks) {
        const answer = await underAttack(b, what, attack);
        assertStatus(answer, status.INVALID_ARGUMENT, details, what);
      }
      // What a store takes is taken: tabs, newlines, controls and bidi in content are content.
      const fine = "line one\n\tline two \u0001 \u202e reversed 😀";
      assertStatus(await statusOf(mallory.send("mallory", fine)), status.OK, "", "plain content");
      await waitFor(() => b.carol.contents().includes(fine), 5000, "the fine message delivered");
      const fromMallory = published.chatting
        .filter((m) => m.userId.startsWith("mal"));
      assert.deepEqual(fromMallory.map((m) => m.content), [fine], "only the OK one was published");
    } finally {
      raw.close();
    }
  });
});

Deno.test("another user's message id: both messages are delivered, and a sender's own retry once", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b }) => {
    const mallory = await attacker(system, "mallory", "on");
    const id = crypto.randomUUID();
    // Mallory learns (or guesses) the id bob's client will use, and sends first with it.
    const first = await underAttack(
      b,
      "id squatting",
      () => statusOf(mallory.send("", "mallory was here", { messageId: id })),
    );
    assertStatus(first, status.OK, "", "mallory's own message");
    assertStatus(
      await statusOf(b.bob.client.send("", "bob's real message", { messageId: id })),
      status.OK,
      "",
      "bob's message",
    );
    // Bob's client retries (its answer was lost): an idempotent retry, delivered once.
    assertStatus(
      await statusOf(b.bob.client.send("", "bob's real message", { messageId: id })),
      status.OK,
      "",
      "bob's retry",
    );
    // And mallory reusing an id bob already used, after him.
    const later = await underAttack(
      b,
      "id reuse",
      () => statusOf(mallory.send("", "mallory again", { messageId: id })),
    );
    assertStatus(later, status.OK, "", "mallory's retry of her own id");
    await b.exchange("after the ids");
    const withId = () => b.carol.received.filter((m) => m.messageId === id);
    await waitFor(() => withId().length >= 2, 5000, "both messages with the id");
    await sleep(100);
    assert.deepEqual(
      withId().map((m) => [m.id, m.content]),
      [["mallory", "mallory was here"], ["bob", "bob's real message"]],
      "each sender's message once: bob's is not dropped, neither is repeated",
    );
    const stored = await system.store.since("general", 0, 1000);
    assert.equal(stored.filter((m) => m.id === id).length, 2);
  });
});

/** `chat.Message` bytes from `userId` with this `timestamp`. */
const timed = (userId: string, timestamp: { seconds: number; nanos: number }, content = "tick") =>
  encodeMessage({ id: userId, content, timestamp });

Deno.test("client timestamps: unrepresentable or far off is INVALID_ARGUMENT, never INTERNAL; the server's time is stored", async () => {
  await withAttackSystem({}, async ({ system, b }) => {
    const raw = new grpc.Client(
      system.address(),
      grpc.credentials.createInsecure(),
      OWN_CONNECTION,
    );
    try {
      const now = Math.floor(Date.now() / 1000);
      const attacks: [string, { seconds: number; nanos: number }, RegExp][] = [
        [
          "seconds=1 (1970)",
          { seconds: 1, nanos: 0 },
          /^Cannot send message: the timestamp 1970-01-01T00:00:01\.000Z is \d+ s behind the server's clock, the limit is 300 s; /,
        ],
        [
          "seconds=1e13",
          { seconds: 1e13, nanos: 0 },
          /^Cannot send message: the timestamp \(seconds=10000000000000, nanos=0\) is not a time /,
        ],
        [
          "seconds=-1e13",
          { seconds: -1e13, nanos: 0 },
          /^Cannot send message: the timestamp \(seconds=-10000000000000, nanos=0\) is not a time /,
        ],
        [
          "nanos=-1",
          { seconds: now, nanos: -1 },
          /^Cannot send message: the timestamp \(seconds=\d+, nanos=-1\) is not a time /,
        ],
        [
          "an hour ahead",
          { seconds: now + 3600, nanos: 0 },
          /^Cannot send message: the timestamp \S+ is 3\d\d\d s ahead of the server's clock/,
        ],
      ];
      for (const [what, timestamp, details] of attacks) {
        const answer = await underAttack(
          b,
          what,
          () => rawCall(raw, "BroadcastMessage", timed("mallory", timestamp)),
        );
        assertStatus(answer, status.INVALID_ARGUMENT, details, what);
      }
      // Within the allowed skew: accepted, and stamped with the server's clock, not the client's.
      const before = Date.now();
      const late = await rawCall(
        raw,
        "BroadcastMessage",
        timed("mallory", { seconds: now - 120, nanos: 0 }, "two minutes slow"),
      );
      assertStatus(late, status.OK, "", "two minutes slow");
      await waitFor(() => b.carol.contents().includes("two minutes slow"));
      const got = b.carol.received.find((m) => m.content === "two minutes slow")!;
      const at = Number(got.timestamp!.seconds) * 1000 + got.timestamp!.nanos / 1e6;
      assert.ok(at >= before - 1000 && at <= Date.now() + 1000, `the server's time (${at})`);
      const [stored] = await system.store.history({ room: "general", limit: 1 });
      assert.ok(Date.parse(stored!.timestamp) >= before - 1000, "stored with the server's time");
    } finally {
      raw.close();
    }
  });
});

Deno.test("a bad timestamp before signing in is UNAUTHENTICATED: nothing is read before the caller is known", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b }) => {
    const raw = new grpc.Client(
      system.address(),
      grpc.credentials.createInsecure(),
      OWN_CONNECTION,
    );
    try {
      const answer = await underAttack(
        b,
        "seconds=1e13 without a token",
        () => rawCall(raw, "BroadcastMessage", timed("", { seconds: 1e13, nanos: 0 })),
      );
      assertStatus(answer, status.UNAUTHENTICATED, /^Cannot send message: sign in first/);
    } finally {
      raw.close();
    }
  });
});
