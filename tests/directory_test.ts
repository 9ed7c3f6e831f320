/**
 * The room directory and room topics through real gRPC (memory mode, AUTH=on): searching every
 * room by name or topic, member counts, the owner's topic, and the refusals of hostile fields.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import {
  connectUser,
  newClient,
  refused,
  startSystem,
  type System,
  type TestUser,
} from "./helpers.ts";

const PASSWORD = "correct horse battery";
/** Topic changes allowed at once before the rate limit refuses one. */
const BURST = 6;

async function signedIn(system: System, name: string): Promise<TestUser> {
  const client = newClient(system.address(0));
  await client.signIn(name, PASSWORD);
  return connectUser(system.address(0), name, { client });
}

Deno.test("directory: search by name or topic, member counts, owner-only topics", async () => {
  const system = await startSystem({
    gateways: 1,
    config: { auth: "on", rateLimitBurst: BURST, rateLimitPerSecond: 0.001 },
  });
  const ann = await signedIn(system, "ann");
  const ben = await signedIn(system, "ben");
  const cat = await signedIn(system, "cat");
  try {
    await ann.client.createRoom("Book-Club");
    await ann.client.createRoom("knitting");
    await ben.client.joinRoom("book-club");
    await cat.client.openDirect("ann");

    const set = await ann.client.setTopic("book-club", "  Sci-Fi novels, one a month 📚 ");
    assert.equal(set.id, "Book-Club");
    assert.equal(set.topic, "Sci-Fi novels, one a month 📚", "kept trimmed");
    assert.equal(set.memberCount, 2);

    const directory = await cat.client.listRooms(true);
    assert.deepEqual(
      directory.map((r) => [r.id, r.topic, r.memberCount, r.owner]),
      [["general", "", 0, ""], ["Book-Club", "Sci-Fi novels, one a month 📚", 2, "ann"], [
        "knitting",
        "",
        1,
        "ann",
      ]],
      "no direct room; general first",
    );
    const ids = async (query: string, limit = 0) =>
      (await cat.client.listRooms(true, query, limit)).map((r) => r.id);
    assert.deepEqual(await ids("BOOK"), ["Book-Club"], "by name, any case");
    assert.deepEqual(await ids("sci-fi"), ["Book-Club"], "by topic, any case");
    assert.deepEqual(await ids("  📚 "), ["Book-Club"], "trimmed");
    assert.deepEqual(await ids("neral"), ["general"]);
    assert.deepEqual(await ids("%"), [], "no wildcards");
    assert.deepEqual(await ids("", 2), ["general", "Book-Club"], "the limit holds");
    assert.deepEqual(
      (await cat.client.listRooms(false, "book")).map((r) => r.id),
      ["general", `dm:ann:cat`],
      "without all, the query does not filter the caller's rooms",
    );
    assert.equal(
      (await ben.client.listRooms()).find((r) => r.id === "Book-Club")?.topic,
      "Sci-Fi novels, one a month 📚",
      "members see it in their own list",
    );

    // Only the owner, only group rooms.
    await assert.rejects(
      ben.client.setTopic("book-club", "mine now"),
      refused(
        status.PERMISSION_DENIED,
        /^Cannot set topic: ben is a member of room "Book-Club"; only its owner \(ann\) and moderators may$/,
      ),
    );
    await assert.rejects(
      ann.client.setTopic("General", "x"),
      refused(
        status.FAILED_PRECONDITION,
        /^Cannot set topic: "General" is the default room; only group rooms have owners and moderators$/,
      ),
    );
    await assert.rejects(
      ann.client.setTopic("dm:ann:cat", "x"),
      refused(
        status.FAILED_PRECONDITION,
        /^Cannot set topic: "dm:ann:cat" is a direct room; only group rooms have owners and moderators$/,
      ),
    );
    await assert.rejects(
      ann.client.setTopic("no-such-room", "x"),
      refused(status.NOT_FOUND, /room "no-such-room" does not exist/),
    );

    // Hostile fields.
    const invalid = status.INVALID_ARGUMENT;
    await assert.rejects(
      ann.client.setTopic("book-club", "x".repeat(201)),
      refused(invalid, /Cannot set topic: the topic is 201 characters, the limit is 200/),
    );
    await assert.rejects(
      ann.client.setTopic("book-club", "two\nlines"),
      refused(invalid, /the topic holds a control character \(U\+000A\)/),
    );
    await assert.rejects(
      ann.client.setTopic("book-club", "evil \u202e txt"),
      refused(invalid, /bidirectional control character \(U\+202E\)/),
    );
    await assert.rejects(
      ann.client.setTopic("book-club", "nul \u0000"),
      refused(invalid, /NUL character/),
    );
    await assert.rejects(
      ann.client.setTopic("bad room!", "x"),
      refused(invalid, /Cannot set topic: the room name "bad room!" may only hold/),
    );
    await assert.rejects(
      cat.client.listRooms(true, "q".repeat(65)),
      refused(invalid, /Cannot list rooms: the search is 65 characters, the limit is 64/),
    );
    await assert.rejects(
      cat.client.listRooms(true, "a\tb"),
      refused(invalid, /the search holds a control character \(U\+0009\)/),
    );
    await assert.rejects(
      cat.client.listRooms(true, "", 201),
      refused(invalid, /Cannot list rooms: limit is 201, the most is 200/),
    );
    assert.equal(
      (await cat.client.listRooms(true)).find((r) => r.id === "Book-Club")?.topic,
      "Sci-Fi novels, one a month 📚",
      "refused changes changed nothing",
    );

    // An empty topic takes it away; changes count against the rate limit.
    assert.equal((await ann.client.setTopic("book-club", " ")).topic, "");
    assert.deepEqual(await ids("sci-fi"), []);
    let refusal: { code: number; details: string } | undefined;
    for (let i = 0; i < BURST && !refusal; i++) {
      await ann.client.setTopic("knitting", `round ${i}`).catch((err) => refusal = err);
    }
    assert.ok(refusal, `at most ${BURST} changes at once`);
    refused(status.RESOURCE_EXHAUSTED, /Cannot set topic: the rate limit is/)(refusal);
  } finally {
    for (const user of [ann, ben, cat]) user.close();
    await system.stop();
  }
});
