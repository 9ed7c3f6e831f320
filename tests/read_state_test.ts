/**
 * Reading state through real gRPC with sign-in, on two gateways of one memory bus: unread counts
 * in the room list, read positions kept on the server and told to the reader's other devices,
 * "seen" in direct rooms, and marks coalesced so that marking on every message floods nothing.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import type { Message } from "../protocol/gen/chat_pb.ts";
import { ReadCoalescer } from "../server/read_coalescer.ts";
import { silentLogger } from "../core/logger.ts";
import type { ReadMark } from "../core/types.ts";
import { connectUser, newClient, startSystem, type System, waitFor } from "./helpers.ts";
import { assertStatus, statusOf } from "./attack_support.ts";

const PASSWORD = "correct horse battery";

async function signedIn(system: System, name: string, gateway = 0) {
  const client = newClient(system.address(gateway));
  await client.signIn(name, PASSWORD);
  return client;
}

const reads = (received: Message[]) =>
  received.filter((m) => m.read).map((m) => [m.read!.room, m.read!.user?.id, m.read!.seq]);

Deno.test("read state: unread counts, a position synced to the reader's devices on another gateway", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  try {
    const ann = await signedIn(system, "ann", 0);
    const annElsewhere = connectUser(system.address(1), "ann", {
      client: await signedIn(system, "ann", 1),
      presenceEvents: true,
    });
    const ben = await signedIn(system, "ben", 1);
    await ann.createRoom("book-club");
    await ben.joinRoom("book-club");
    await waitFor(() => system.gateways[1]!.hub.countOf("ann") === 1);
    for (const text of ["one", "two", "three"]) await ben.send("", text, { room: "book-club" });
    await ann.send("", "mine", { room: "book-club" });
    await waitFor(() => annElsewhere.contents().length === 4, 5000, "four messages");

    const room = async (client = ann) =>
      (await client.listRooms()).find((r) => r.id === "book-club")!;
    assert.deepEqual(
      [(await room()).readSeq, (await room()).unread],
      [0n, 3],
      "ann's own not counted",
    );
    assert.deepEqual([(await room(ben)).readSeq, (await room(ben)).unread], [0n, 1]);

    await ann.markRead("book-club", 2);
    await waitFor(() => reads(annElsewhere.received).length === 1, 5000, "the read event");
    assert.deepEqual(reads(annElsewhere.received), [["book-club", "ann", 2n]]);
    const other = await room(annElsewhere.client);
    assert.deepEqual([other.readSeq, other.unread], [2n, 1], "the other gateway's listing");

    // Past the newest message: the newest. Back: nothing moves, nobody is told.
    await ann.markRead("BOOK-CLUB", 99);
    await waitFor(() => reads(annElsewhere.received).length === 2, 5000, "the second event");
    await ann.markRead("book-club", 1);
    const after = await room();
    assert.deepEqual([after.lastSeq, after.readSeq, after.unread], [4n, 4n, 0]);
    assert.deepEqual(reads(annElsewhere.received), [["book-club", "ann", 2n], [
      "book-club",
      "ann",
      4n,
    ]]);
    // The join answer carries the state too.
    assert.equal((await ben.joinRoom("book-club")).unread, 1);
    // A message that mentions ann counts apart, until she reads past it.
    await ben.send("", "@ann look", { room: "book-club" });
    await waitFor(() => annElsewhere.contents().length === 5, 5000, "the mention");
    const named = await room();
    assert.deepEqual([named.unread, named.mentions], [1, 1]);
    assert.equal((await room(ben)).mentions, 0, "ben's own mention of ann is not his");
    // Marks are coalesced: this one is written when the second since the last one ends.
    await ann.markRead("book-club", 5);
    await waitFor(async () => (await room()).mentions === 0, 5000, "the mention read");
    assert.equal((await room()).unread, 0);
  } finally {
    await system.stop();
  }
});

Deno.test("read state: in a direct room the other member sees it; nobody else does", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  try {
    const annClient = await signedIn(system, "ann", 0);
    const ann = connectUser(system.address(0), "ann", { client: annClient, presenceEvents: true });
    const ben = await signedIn(system, "ben", 1);
    const cat = connectUser(system.address(1), "cat", {
      client: await signedIn(system, "cat", 1),
      presenceEvents: true,
    });
    await annClient.createRoom("lobby");
    await cat.client.joinRoom("lobby");
    const dm = (await annClient.openDirect("ben")).id;
    await waitFor(() => system.gateways[1]!.hub.countOf("cat") === 1);
    await annClient.send("", "are you there?", { room: dm });
    await annClient.send("", "hello lobby", { room: "lobby" });
    await waitFor(() => ann.contents().length === 2);
    assert.equal((await ben.listRooms()).find((r) => r.id === dm)!.unread, 1);

    await ben.markRead(dm, 1);
    await waitFor(() => reads(ann.received).length === 1, 5000, "seen");
    assert.deepEqual(reads(ann.received), [[dm, "ben", 1n]]);
    // A stream opened later (a reload) hears at once how far ben read; one without events not.
    const again = connectUser(system.address(0), "ann", {
      client: annClient,
      presenceEvents: true,
    });
    const quiet = connectUser(system.address(0), "ann", { client: annClient });
    await waitFor(() => reads(again.received).length === 1, 5000, "seen after a reload");
    assert.deepEqual(reads(again.received), [[dm, "ben", 1n]]);
    await waitFor(() => system.gateways[0]!.hub.countOf("ann") === 3);
    // In a group room nobody but the reader hears of it.
    await cat.client.markRead("lobby", 1);
    await waitFor(() => reads(cat.received).length === 1, 5000, "cat's own device");
    await annClient.markRead("lobby", 1);
    await annClient.send("", "done", { room: dm });
    await waitFor(() => cat.contents().length === 1 && ann.contents().length === 3);
    assert.deepEqual(reads(ann.received), [[dm, "ben", 1n], ["lobby", "ann", 1n]]);
    assert.deepEqual(reads(cat.received), [["lobby", "cat", 1n]]);
    await waitFor(() => quiet.contents().length === 1);
    assert.deepEqual(reads(quiet.received), [], "only streams that asked for events");
  } finally {
    await system.stop();
  }
});

Deno.test("read state: refused marks say why", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  try {
    const ann = await signedIn(system, "ann");
    const ben = await signedIn(system, "ben");
    await ann.createRoom("secret");
    // Each call is made when its turn comes: a refusal made ahead would be an unhandled rejection
    // until the loop reached it.
    const cases = [
      [
        () => ben.markRead("secret", 1),
        status.PERMISSION_DENIED,
        /^Cannot mark read: ben is not a member of room "secret"; join it first$/,
      ],
      [
        () => ben.markRead("nowhere", 1),
        status.NOT_FOUND,
        /^Cannot mark read: room "nowhere" does not exist$/,
      ],
      [
        () => ann.markRead("secret", 0),
        status.INVALID_ARGUMENT,
        /^Cannot mark read: seq is 0; name the newest message read \(1 or more\)$/,
      ],
      [
        () => ann.markRead("secret", 2n ** 64n - 1n),
        status.INVALID_ARGUMENT,
        /^Cannot mark read: seq is 18446744073709551615, the largest sequence number is 9007199254740991$/,
      ],
      [() => ann.markRead("x".repeat(500), 1), status.INVALID_ARGUMENT, /^Cannot mark read: /],
      [
        () => newClient(system.address()).markRead("secret", 1),
        status.UNAUTHENTICATED,
        /^Cannot mark read: /,
      ],
    ] as const;
    for (const [call, code, details] of cases) assertStatus(await statusOf(call()), code, details);
    assert.deepEqual(await system.store.readStates("ben", ["secret"]), [
      { room: "secret", readSeq: 0, unread: 0, mentions: 0 },
    ]);
  } finally {
    await system.stop();
  }
});

Deno.test("read coalescer: one write now, then at most the newest per interval", async () => {
  const written: number[] = [];
  let release = () => {};
  const coalescer = new ReadCoalescer({
    intervalMs: 50,
    write: (mark) => {
      written.push(mark.seq);
      if (written.length === 2) release();
      return Promise.resolve();
    },
    logger: silentLogger,
  });
  const mark = (seq: number, room = "r"): ReadMark => ({
    room,
    userId: "ann",
    displayName: "Ann",
    seq,
  });
  const second = new Promise<void>((resolve) => release = resolve);
  for (let seq = 1; seq <= 100; seq++) await coalescer.mark(mark(seq));
  await coalescer.mark(mark(7)); // older: the newest waiting stays
  assert.deepEqual(written, [1], "the first at once, the rest wait");
  await second;
  assert.deepEqual(written, [1, 100]);
  await coalescer.mark(mark(1, "s"));
  await coalescer.mark(mark(2, "s"));
  await coalescer.flush();
  assert.deepEqual(written, [1, 100, 1, 2], "flush writes what waits");
  assert.equal(coalescer.size, 0);
});
