/**
 * Names under attack, through a real gateway over gRPC: a display name taken from the message
 * (posting as "alice"), names with bidirectional overrides, NUL or megabytes of text, stream
 * names that would make ListOnline too big to answer, user ids with newlines that forge log
 * lines, and accounts and rooms that differ only by case. Bob and carol keep chatting meanwhile.
 */

import assert from "node:assert/strict";
import {
  assertStatus,
  attacker,
  PASSWORD,
  status,
  statusOf,
  underAttack,
  withAttackSystem,
} from "./attack_support.ts";
import { newClient, waitFor } from "./helpers.ts";
import type { ChatClient } from "../client/chat_client.ts";
import type { ServiceError } from "@grpc/grpc-js";

/** Opens a stream and resolves with how it went: OK once open, or the error it ended with. */
function openStream(
  client: ChatClient,
  userId: string,
  displayName: string,
  isOpen: () => boolean,
): Promise<{ code: number; details: string; cancel: () => void }> {
  return new Promise((resolve) => {
    const stream = client.stream(userId, () => {}, (err?: ServiceError) => {
      resolve({ code: err?.code ?? status.OK, details: err?.details ?? "", cancel: () => {} });
    }, { displayName });
    waitFor(isOpen, 5000).then(
      () => resolve({ code: status.OK, details: "", cancel: () => stream.cancel() }),
      () => {},
    );
  });
}

Deno.test("AUTH=on: the name on a message is the account's, never the message's; bad names are INVALID_ARGUMENT", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b, published }) => {
    const mallory = await attacker(system, "mallory", "on");
    // Posing as alice: accepted (the field is a valid name), but the page shows "mallory".
    const posing = await underAttack(
      b,
      "posing as alice",
      () => statusOf(mallory.send("", "hi, it's alice", { displayName: "alice" })),
    );
    assertStatus(posing, status.OK, "", "a valid name is only ignored");
    await waitFor(() => b.carol.contents().includes("hi, it's alice"));
    const shown = b.carol.received.find((m) => m.content === "hi, it's alice")!;
    assert.equal(shown.displayName, "mallory", "the account's name, not the message's");

    const bad: [string, string, RegExp][] = [
      [
        "right-to-left override",
        "\u202eecila",
        /holds a bidirectional control character \(U\+202E\)/,
      ],
      ["isolate", "al\u2066ice", /holds a bidirectional control character \(U\+2066\)/],
      ["NUL", "alice\u0000", /holds a NUL character/],
      ["C1 control", "alice\u0085", /holds a control character \(U\+0085\)/],
      ["3 MB", "a".repeat(3 * 1024 * 1024), /is 3145728 characters, the limit is 64$/],
    ];
    for (const [what, displayName, details] of bad) {
      const answer = await underAttack(
        b,
        what,
        () => statusOf(mallory.send("", `as ${what}`, { displayName })),
      );
      assertStatus(
        answer,
        status.INVALID_ARGUMENT,
        new RegExp(
          `^Cannot send message: the display name ${details.source}`,
        ),
        what,
      );
    }
    // The flood that grew a gateway by 420 MB: 40 messages with a 3 MB name, all refused.
    const flood = await underAttack(b, "40 × 3 MB names", () =>
      Promise.all(
        Array.from(
          { length: 40 },
          () => statusOf(mallory.send("", "x", { displayName: "n".repeat(3 * 1024 * 1024) })),
        ),
      ));
    assert.ok(flood.every((a) => a.code === status.INVALID_ARGUMENT), "every one refused");
    const fromMallory = published.chatting
      .filter((m) => m.userId === "mallory");
    assert.deepEqual(fromMallory.map((m) => [m.content, m.displayName]), [
      ["hi, it's alice", "mallory"],
    ]);
  });
});

Deno.test("stream names: megabyte and override names are INVALID_ARGUMENT, ListOnline keeps working for everybody", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b }) => {
    const hub = system.gateways[0]!.hub;
    // Five users with 1 MB stream names made ListOnline fail for every client (over 4 MB).
    const names = ["m1", "m2", "m3", "m4", "m5"];
    const clients = await Promise.all(names.map((n) => attacker(system, n, "on")));
    const answers = await underAttack(
      b,
      "1 MB stream names",
      () =>
        Promise.all(
          clients.map((c, i) =>
            openStream(c, names[i]!, "N".repeat(1024 * 1024), () => hub.countOf(names[i]!) > 0)
          ),
        ),
    );
    for (const answer of answers) {
      assertStatus(
        answer,
        status.INVALID_ARGUMENT,
        "Cannot open stream: the display name is 1048576 characters, the limit is 64",
      );
    }
    const override = await openStream(
      clients[0]!,
      "m1",
      "\u202eecila",
      () => hub.countOf("m1") > 0,
    );
    assertStatus(override, status.INVALID_ARGUMENT, /bidirectional control character \(U\+202E\)/);
    // With a token, a stream's name is the account's, whatever Connect says.
    const posing = await openStream(clients[1]!, "m2", "alice", () => hub.countOf("m2") > 0);
    assertStatus(posing, status.OK, "");
    let online = await b.carol.client.listOnline();
    await waitFor(
      async () => (online = await b.carol.client.listOnline()).some((u) => u.id === "m2"),
      5000,
      "m2 online",
    );
    assert.deepEqual(
      online.map((u) => [u.id, u.displayName]),
      [["bob", "bob"], ["carol", "carol"], ["m2", "m2"]],
      "ListOnline answers, with account names",
    );
    posing.cancel();
  });
});

Deno.test("AUTH=off: the Connect name is shown on the user's messages; names and user ids follow the rules, and nothing forges a log line", async () => {
  await withAttackSystem({}, async ({ system, b, lines }) => {
    const hub = system.gateways[0]!.hub;
    const client = await attacker(system, "mallory", "off");
    const named = await openStream(
      client,
      "mallory",
      "Mallory M.",
      () => hub.countOf("mallory") > 0,
    );
    assertStatus(named, status.OK, "");
    // The message's own display_name is not shown: the stream's name is.
    assertStatus(
      await statusOf(client.send("mallory", "hello from M", { displayName: "alice" })),
      status.OK,
      "",
    );
    await waitFor(() => b.carol.contents().includes("hello from M"));
    assert.equal(
      b.carol.received.find((m) => m.content === "hello from M")!.displayName,
      "Mallory M.",
    );
    named.cancel();

    const forged = "mallory\n2030-01-01T00:00:00.000Z INFO  Account created user=admin";
    const attacks: [string, () => Promise<{ code: number; details: string }>, RegExp][] = [
      [
        "newline in user id (send)",
        () => statusOf(client.send(forged, "x")),
        /^Cannot send message: the user id holds a control character \(U\+000A\)/,
      ],
      [
        "newline in user id (stream)",
        () => openStream(client, forged, "", () => false),
        /^Cannot open stream: the user id holds a control character \(U\+000A\)/,
      ],
      [
        "override in stream name",
        () => openStream(client, "mallory", "\u202eecila", () => false),
        /^Cannot open stream: the display name holds a bidirectional control character/,
      ],
      [
        "129-character user id",
        () => statusOf(client.send("u".repeat(129), "x")),
        /^Cannot send message: the user id is 129 characters, the limit is 128$/,
      ],
    ];
    for (const [what, attack, details] of attacks) {
      assertStatus(await underAttack(b, what, attack), status.INVALID_ARGUMENT, details, what);
    }
    for (const line of lines) {
      assert.doesNotMatch(line, /[\n\r\u2028\u2029\u202a-\u202e\u2066-\u2069]/, "one line each");
    }
    assert.ok(!lines.some((line) => line.startsWith("2030-")), "no forged line");
  });
});

Deno.test("usernames and room names compare without case: no twin account, no twin room", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b }) => {
    const alice = newClient(system.address());
    await alice.signIn("Alice", PASSWORD, "Alice A.");
    const mallory = await attacker(system, "mallory", "on");
    const twin = newClient(system.address());
    // A second "alice" is alice's account: her password is needed, no new account is made.
    const signIn = await underAttack(
      b,
      "ALICE sign-in",
      () => statusOf(twin.signIn("ALICE", "mallory's own password")),
    );
    assertStatus(signIn, status.UNAUTHENTICATED, "Cannot sign in: wrong password for ALICE");
    const same = await twin.signIn("alice", PASSWORD);
    assert.deepEqual(
      { id: same.user?.id, displayName: same.user?.displayName },
      { id: "Alice", displayName: "Alice A." },
      "her spelling",
    );
    // A client that names her as she typed it at sign-in acts as her account.
    const typed = await openStream(
      twin,
      "alice",
      "",
      () => system.gateways[0]!.hub.countOf("Alice") === 1,
    );
    assertStatus(typed, status.OK, "", "a stream as alice");
    typed.cancel();

    await b.bob.client.createRoom("Book-Club");
    for (
      const [what, room, details] of [
        [
          "BOOK-CLUB",
          "BOOK-CLUB",
          'Cannot create room: "Book-Club" already exists; join it instead',
        ],
        ["GENERAL", "GENERAL", 'Cannot create room: "GENERAL" is a reserved name'],
      ] as const
    ) {
      const answer = await underAttack(b, what, () => statusOf(mallory.createRoom(room)));
      assertStatus(answer, status.ALREADY_EXISTS, details, what);
    }
    // Any spelling reaches the one room, shown as its creator spelled it.
    const joined = await b.carol.client.joinRoom("book-club");
    assert.equal(joined.id, "Book-Club");
    await b.carol.client.send("", "in any case", { room: "BOOK-CLUB" });
    await waitFor(() => b.bob.contents().includes("in any case"));
    assert.equal(b.bob.received.find((m) => m.content === "in any case")!.room, "Book-Club");
    // Direct rooms use the account's spelling too.
    const dm = await mallory.openDirect("ALICE");
    assert.equal(dm.id, "dm:Alice:mallory");
    assert.deepEqual(dm.members, ["Alice", "mallory"]);
  });
});
