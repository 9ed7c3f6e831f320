/**
 * "Seen by N" through real gRPC with sign-in, on two gateways of one memory bus: who read a
 * message of a group room, from read positions kept on the server; never its sender, never a
 * member who joined after it was sent; and every field of the request attacked.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { refused, signedInUser, startSystem, waitFor } from "./helpers.ts";

Deno.test("seen by: the members who read a message, on any gateway, without its sender or newcomers", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  try {
    const ann = await signedInUser(system, "ann", { gateway: 0 });
    const ben = await signedInUser(system, "ben", { gateway: 1 });
    const cat = await signedInUser(system, "cat", { gateway: 1 });
    await ann.client.createRoom("book-club");
    await ben.client.joinRoom("book-club");
    await cat.client.joinRoom("book-club");
    await new Promise((resolve) => setTimeout(resolve, 5));
    await ann.client.send("", "chapter one?", { room: "book-club" });
    await waitFor(() => ben.contents().includes("chapter one?"), 5000, "ben got it");

    const seenBy = async (seq = 1) => {
      const seen = await ann.client.seenBy("book-club", seq);
      return { users: seen.users, count: seen.count };
    };
    assert.deepEqual(await seenBy(), { users: [], count: 0 }, "nobody read it yet");
    await ben.client.markRead("book-club", 1);
    await ann.client.markRead("book-club", 1);
    await waitFor(async () => (await seenBy()).count === 1, 5000, "ben's read position");
    assert.deepEqual(await seenBy(), { users: ["ben"], count: 1 }, "ann's own read never counts");

    // A newcomer's position starts at the newest message: it says nothing of this one.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const dan = await signedInUser(system, "dan", { gateway: 0 });
    await dan.client.joinRoom("book-club");
    await cat.client.markRead("book-club", 1);
    await waitFor(async () => (await seenBy()).count === 2, 5000, "cat's read position");
    assert.deepEqual(await seenBy(), { users: ["ben", "cat"], count: 2 });
    // Anyone in the room may ask, on either gateway.
    assert.deepEqual((await dan.client.seenBy("book-club", 1)).users, ["ben", "cat"]);
  } finally {
    await system.stop();
  }
});

Deno.test("seen by: every field refused with a status and a reason", async () => {
  const system = await startSystem({
    config: { auth: "on", searchRatePerSecond: 1, searchBurst: 3 },
  });
  try {
    const ann = await signedInUser(system, "ann");
    const eve = await signedInUser(system, "eve");
    await ann.client.createRoom("private-plans");
    await ann.client.send("", "secret", { room: "private-plans" });
    await waitFor(async () => (await ann.client.listRooms()).some((r) => r.lastSeq === 1n));

    await assert.rejects(
      eve.client.seenBy("private-plans", 1),
      refused(status.PERMISSION_DENIED, /Cannot tell who saw the message: .*private-plans/),
      "not a member",
    );
    await assert.rejects(
      ann.client.seenBy("private-plans", 0),
      refused(status.INVALID_ARGUMENT, /seq is 0; messages are numbered from 1/),
    );
    await assert.rejects(
      ann.client.seenBy("private-plans", 2n ** 63n),
      refused(status.INVALID_ARGUMENT, /seq/),
    );
    await assert.rejects(
      ann.client.seenBy("private-plans", 7),
      refused(status.NOT_FOUND, /private-plans has no message 7/),
    );
    await assert.rejects(
      ann.client.seenBy("x".repeat(10_000), 1),
      refused(status.INVALID_ARGUMENT, /Cannot tell who saw the message/),
    );
    await assert.rejects(
      ann.client.seenBy("bad\u0000room", 1),
      refused(status.INVALID_ARGUMENT, /Cannot tell who saw the message/),
    );
    // Only a lookup that passed the checks counts (the one of message 7): two more spend the burst.
    for (let i = 0; i < 2; i++) await ann.client.seenBy("private-plans", 1).catch(() => {});
    await assert.rejects(
      ann.client.seenBy("private-plans", 1),
      refused(status.RESOURCE_EXHAUSTED, /rate limit is 1 lookups per second/),
    );
  } finally {
    await system.stop();
  }
});
