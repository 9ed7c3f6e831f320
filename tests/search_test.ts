/**
 * Search through real gRPC on a memory-mode system: only the caller's rooms are searched, edits
 * and deletions show, hostile requests are refused with the right status, and history can be read
 * around a found message.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { encodeRequest, OWN_CONNECTION, rawCall, tokenOf } from "./attack_support.ts";
import { status } from "@grpc/grpc-js";
import type { ChatClient } from "../client/chat_client.ts";
import { newClient, refused, startSystem, waitFor } from "./helpers.ts";

const PASSWORD = "correct horse battery";

async function signedIn(address: string, name: string): Promise<ChatClient> {
  const client = newClient(address);
  await client.signIn(name, PASSWORD);
  return client;
}

/** What `client` finds for `query`, as "room: content". */
async function found(client: ChatClient, query: string, room = ""): Promise<string[]> {
  return (await client.search(query, room)).map((m) => `${m.room}: ${m.content}`).sort();
}

Deno.test("search: a user finds words in their own rooms only, by new text, never deleted", async () => {
  // Searching again and again is the test, not a flood.
  const system = await startSystem({ config: { auth: "on", searchBurst: 100 } });
  const ann = await signedIn(system.address(), "ann");
  const ben = await signedIn(system.address(), "ben");
  try {
    await ann.createRoom("secret");
    await ann.send("", "the Zebra plan", { room: "secret" });
    await ben.send("", "a zebra crossing", { room: "" });
    await ben.send("", "nothing to see", { room: "" });
    // Sends are stored by the processor a moment later.
    let annSees: string[] = [];
    await waitFor(async () => (annSees = await found(ann, "ZEBRA")).length === 2, 5000, "stored");
    assert.deepEqual(annSees, ["general: a zebra crossing", "secret: the Zebra plan"]);
    assert.deepEqual(await found(ben, "zebra"), ["general: a zebra crossing"]);
    assert.deepEqual(await found(ann, "zebra", "secret"), ["secret: the Zebra plan"]);
    const [hit] = await ann.search("plan zebra");
    assert.equal(hit?.seq, 1n);
    assert.equal(hit?.id, "ann");

    await ann.editMessage("secret", 1, "the giraffe plan");
    assert.deepEqual(await found(ann, "zebra", "secret"), []);
    assert.deepEqual(await found(ann, "giraffe"), ["secret: the giraffe plan"]);
    await ann.deleteMessage("secret", 1);
    assert.deepEqual(await found(ann, "giraffe"), []);

    // Operators of search engines and SQL are plain text: their words are looked for.
    assert.deepEqual(await found(ben, '"zebra*'), ["general: a zebra crossing"]);
    assert.deepEqual(await found(ben, "NEAR(zebra crossing)"), []);
    assert.deepEqual(await found(ben, "zebra' OR '1'='1"), []);
  } finally {
    ann.close();
    ben.close();
    await system.stop();
  }
});

Deno.test("search: hostile requests are refused with what is wrong", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const ann = await signedIn(system.address(), "ann");
  const ben = await signedIn(system.address(), "ben");
  const anonymous = newClient(system.address());
  try {
    await ann.createRoom("secret");
    await assert.rejects(anonymous.search("zebra"), refused(status.UNAUTHENTICATED, /search/));
    await assert.rejects(ben.search(""), refused(status.INVALID_ARGUMENT, /query is empty/));
    await assert.rejects(ben.search("  \t "), refused(status.INVALID_ARGUMENT, /query is empty/));
    await assert.rejects(
      ben.search("é".repeat(201)),
      refused(status.INVALID_ARGUMENT, /query is 201 characters, the limit is 200/),
    );
    await assert.rejects(
      ben.search("\0\u200d"),
      refused(status.INVALID_ARGUMENT, /no letters or digits/),
    );
    await assert.rejects(
      ben.search('*"-( '),
      refused(status.INVALID_ARGUMENT, /no letters or digits/),
    );
    await assert.rejects(
      ben.search("zebra", "", 51),
      refused(status.INVALID_ARGUMENT, /limit is 51, the most is 50/),
    );
    await assert.rejects(
      ben.search("zebra", "secret"),
      refused(status.PERMISSION_DENIED, /ben is not a member of room "secret"/),
    );
    await assert.rejects(
      ben.search("zebra", "nowhere"),
      refused(status.NOT_FOUND, /room "nowhere" does not exist/),
    );
    await assert.rejects(
      ben.search("zebra", "x".repeat(5000)),
      refused(status.INVALID_ARGUMENT, /./),
    );

    // Searching has its own rate: a burst of 5, then 2 per second.
    const outcomes = [];
    for (let i = 0; i < 12; i++) {
      outcomes.push(await ann.search("zebra").then(() => "ok", (err) => err));
      if (outcomes.at(-1) !== "ok") break;
    }
    assert.ok(outcomes.length < 12, "the rate limit refuses some of 12 searches in a row");
    refused(status.RESOURCE_EXHAUSTED, /Cannot search: the rate limit is 2 searches per second/)(
      outcomes.at(-1),
    );
    // Another user has their own allowance; sending is not limited by searching.
    assert.deepEqual(await ben.search("zebra"), []);
    await ann.send("", "still fine", { room: "" });
  } finally {
    ann.close();
    ben.close();
    anonymous.close();
    await system.stop();
  }
});

Deno.test("history: around_seq gives a page centred on a message", async () => {
  const system = await startSystem({ config: { auth: "on", rateLimitBurst: 40 } });
  const ann = await signedIn(system.address(), "ann");
  try {
    await ann.createRoom("long");
    for (let i = 1; i <= 30; i++) await ann.send("", `line ${i}`, { room: "long" });
    await waitFor(async () => (await ann.history("long", 0, 1)).messages[0]?.seq === 30n, 5000);
    const seqs = async (around: number, limit: number) => {
      const page = await ann.historyAround("long", around, limit);
      return { seqs: page.messages.map((m) => Number(m.seq)), more: page.more };
    };
    assert.deepEqual(await seqs(10, 6), { seqs: [13, 12, 11, 10, 9, 8], more: true });
    assert.deepEqual(await seqs(2, 6), { seqs: [5, 4, 3, 2, 1], more: false });
    assert.deepEqual(await seqs(29, 6), { seqs: [30, 29, 28, 27, 26, 25], more: true });
    assert.equal((await seqs(15, 0)).seqs.length, 30, "the default limit (50) holds them all");
    await assert.rejects(
      ann.historyAround("long", 2n ** 60n, 6),
      refused(status.INVALID_ARGUMENT, /around_seq is \d+, the largest sequence number/),
    );
    // Both positions at once is no page at all: said, not one of them silently ignored.
    const raw = new grpc.Client(system.address(), grpc.credentials.createInsecure(), {
      ...OWN_CONNECTION,
    });
    try {
      const both = await rawCall(
        raw,
        "History",
        encodeRequest("History", { room: "long", beforeSeq: 20n, aroundSeq: 10n }),
        tokenOf(ann),
      );
      assert.equal(both.code, status.INVALID_ARGUMENT);
      assert.match(both.details, /before_seq and around_seq are both set/);
    } finally {
      raw.close();
    }
  } finally {
    ann.close();
    await system.stop();
  }
});
