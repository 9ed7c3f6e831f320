/** Rooms, direct messages, membership and history, through real gRPC with sign-in (AUTH=on). */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { RoomSchema } from "../protocol/gen/chat_pb.ts";
import { status } from "@grpc/grpc-js";
import { refused, signedInUser, startSystem, waitFor } from "./helpers.ts";

Deno.test("rooms: create, join, send, list, leave; only members receive", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  const ann = await signedInUser(system, "ann", { gateway: 0 });
  const ben = await signedInUser(system, "ben", { gateway: 1 });
  const cat = await signedInUser(system, "cat", { gateway: 1 });
  try {
    const created = await ann.client.createRoom("book-club");
    assert.deepEqual(
      created,
      create(RoomSchema, {
        id: "book-club",
        direct: false,
        members: ["ann"],
        lastSeq: 0n,
        owner: "ann",
        memberCount: 1,
        role: "owner",
      }),
    );
    await ben.client.joinRoom("book-club");
    await waitFor(() => ann.received.some((m) => m.roomEvent?.user?.id === "ben"));
    await ann.client.send("", "first chapter", { room: "book-club" });
    await ben.client.send("", "loved it", { room: "book-club" });
    await waitFor(() => ben.contents().length === 2 && ann.contents().length === 2);
    assert.deepEqual(ben.received.filter((m) => m.content).map((m) => [m.room, m.seq, m.id]), [
      ["book-club", 1n, "ann"],
      ["book-club", 2n, "ben"],
    ]);
    await cat.client.send("", "hello general");
    await waitFor(() => ann.contents().length === 3);
    assert.deepEqual(cat.contents(), ["hello general"], "cat is not in book-club");

    const mine = await ben.client.listRooms();
    assert.deepEqual(mine.map((r) => r.id), ["general", "book-club"]);
    const all = await cat.client.listRooms(true);
    assert.ok(all.some((r) => r.id === "book-club" && r.members.join() === "ann,ben"));
    assert.deepEqual(
      (await ann.client.listOnline("book-club")).map((u) => u.id),
      ["ann", "ben"],
    );

    await ben.client.leaveRoom("book-club");
    await waitFor(() =>
      ann.received.some((m) => m.roomEvent?.user?.id === "ben" && !m.roomEvent.joined)
    );
    await ann.client.send("", "ben left", { room: "book-club" });
    await waitFor(() => ann.contents().includes("ben left"));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!ben.contents().includes("ben left"), "a member who left no longer receives");
  } finally {
    for (const u of [ann, ben, cat]) u.close();
    await system.stop();
  }
});

Deno.test("membership is enforced: no reading or writing a room you are not in", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const ann = await signedInUser(system, "ann");
  const eve = await signedInUser(system, "eve");
  try {
    await ann.client.createRoom("secret");
    await assert.rejects(
      eve.client.send("", "let me in", { room: "secret" }),
      refused(status.PERMISSION_DENIED, /eve is not a member of room "secret"; join it first/),
    );
    await assert.rejects(
      eve.client.history("secret"),
      refused(status.PERMISSION_DENIED, /Cannot read history: eve is not a member/),
    );
    await assert.rejects(
      eve.client.listOnline("secret"),
      refused(status.PERMISSION_DENIED, /not a member/),
    );
    await assert.rejects(
      eve.client.send("", "hi", { room: "nowhere" }),
      refused(status.NOT_FOUND, /room "nowhere" does not exist/),
    );
    await assert.rejects(
      ann.client.createRoom("secret"),
      refused(status.ALREADY_EXISTS, /already exists/),
    );
    await assert.rejects(
      ann.client.createRoom("no spaces please"),
      refused(status.INVALID_ARGUMENT, /may only hold letters, digits/),
    );
    await assert.rejects(
      ann.client.createRoom("x".repeat(65)),
      refused(status.INVALID_ARGUMENT, /the room name is 65 characters, the limit is 64/),
    );
    await assert.rejects(
      ann.client.leaveRoom("general"),
      refused(status.FAILED_PRECONDITION, /everybody/),
    );
  } finally {
    ann.close();
    eve.close();
    await system.stop();
  }
});

Deno.test("direct messages reach exactly the two people", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const ann = await signedInUser(system, "ann");
  const ben = await signedInUser(system, "ben");
  const cat = await signedInUser(system, "cat");
  try {
    const dm = await ann.client.openDirect("ben");
    assert.deepEqual(
      dm,
      create(RoomSchema, {
        id: "dm:ann:ben",
        direct: true,
        members: ["ann", "ben"],
        lastSeq: 0n,
        memberCount: 2,
      }),
    );
    assert.equal(
      (await ben.client.openDirect("ann")).id,
      "dm:ann:ben",
      "same room from both sides",
    );
    await waitFor(() => ben.received.some((m) => m.roomEvent?.room === "dm:ann:ben"));
    await ann.client.send("", "psst", { room: dm.id });
    await waitFor(() => ben.contents().includes("psst"));
    assert.ok(ann.contents().includes("psst"));
    assert.deepEqual(cat.contents(), []);
    await assert.rejects(cat.client.joinRoom(dm.id), refused(status.PERMISSION_DENIED, /direct/));
    await assert.rejects(
      ann.client.openDirect("nobody"),
      refused(status.NOT_FOUND, /no user "nobody"/),
    );
    assert.ok(
      !(await cat.client.listRooms(true)).some((r) => r.direct),
      "direct rooms are not listed",
    );
  } finally {
    for (const u of [ann, ben, cat]) u.close();
    await system.stop();
  }
});

Deno.test("history pages newest first with beforeSeq", async () => {
  const system = await startSystem({ config: { auth: "on", rateLimitBurst: 100 } });
  const ann = await signedInUser(system, "ann");
  try {
    await ann.client.createRoom("log");
    for (let i = 1; i <= 7; i++) await ann.client.send("", `m${i}`, { room: "log" });
    await waitFor(async () => (await system.store.lastSeq("log")) === 7);
    const first = await ann.client.history("log", 0, 3);
    assert.deepEqual(first.messages.map((m) => m.content), ["m7", "m6", "m5"]);
    assert.equal(first.more, true);
    const second = await ann.client.history("log", first.messages.at(-1)!.seq, 3);
    assert.deepEqual(second.messages.map((m) => m.content), ["m4", "m3", "m2"]);
    const last = await ann.client.history("log", second.messages.at(-1)!.seq, 3);
    assert.deepEqual(last.messages.map((m) => m.content), ["m1"]);
    assert.equal(last.more, false);
    await assert.rejects(
      ann.client.history("log", 0, 500),
      refused(status.INVALID_ARGUMENT, /the most is 200/),
    );
  } finally {
    ann.close();
    await system.stop();
  }
});
