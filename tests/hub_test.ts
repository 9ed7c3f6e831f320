import assert from "node:assert/strict";
import { ChatError } from "../core/errors.ts";
import { silentLogger } from "../core/logger.ts";
import type { ChatMessage } from "../core/types.ts";
import { Hub, type LocalStream, type StreamSink } from "../server/hub.ts";
import { fromBinary } from "@bufbuild/protobuf";
import { MessageSchema } from "../protocol/gen/chat_pb.ts";

const decodeStreamMessage = (frame: Uint8Array) => fromBinary(MessageSchema, frame);

function sink() {
  const frames: Uint8Array[] = [];
  let failed: ChatError | undefined;
  let held = 0;
  const s: StreamSink & {
    frames: Uint8Array[];
    failed(): ChatError | undefined;
    hold(n: number): void;
  } = {
    frames,
    write: (f) => {
      frames.push(f);
    },
    pending: () => held,
    fail: (e) => failed = e,
    failed: () => failed,
    hold: (n) => held = n,
  };
  return s;
}

const message = (seq: number, room = "general"): ChatMessage => ({
  id: `m${seq}`,
  userId: "alice",
  displayName: "Alice",
  content: `hello ${seq}`,
  timestamp: "2026-11-26T10:00:00.000Z",
  room,
  seq,
});

const stream = (
  id: string,
  s: StreamSink,
  presenceEvents = false,
  rooms = ["general", "other"],
  userId = id,
): LocalStream => ({
  streamId: id,
  userId,
  displayName: id,
  presenceEvents,
  sink: s,
  rooms: new Set(rooms),
  lastSeq: new Map(),
  backlog: undefined,
});

Deno.test("a message is encoded once and the same bytes go to every stream", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const a = sink();
  const b = sink();
  hub.add(stream("a", a));
  hub.add(stream("b", b));
  assert.equal(hub.deliver(message(1)), 2);
  assert.equal(a.frames[0], b.frames[0], "same buffer, not a copy");
  const decoded = decodeStreamMessage(a.frames[0]!);
  assert.equal(decoded.id, "alice");
  assert.equal(decoded.content, "hello 1");
  assert.equal(decoded.seq, 1n);
  assert.equal(decoded.displayName, "Alice");
});

Deno.test("a repeated delivery of the same room sequence is shown once", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const a = sink();
  hub.add(stream("a", a));
  hub.deliver(message(1));
  hub.deliver(message(2));
  assert.equal(hub.deliver(message(2)), 0);
  assert.equal(hub.deliver(message(1)), 0);
  assert.equal(hub.deliver(message(1, "other")), 1, "sequences are per room");
  assert.equal(a.frames.length, 3);
});

Deno.test("a stream too far behind is cut with RESOURCE_EXHAUSTED; the others keep receiving", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 3 });
  const slow = sink();
  const fast = sink();
  hub.add(stream("slow", slow));
  hub.add(stream("fast", fast));
  slow.hold(3);
  assert.equal(hub.deliver(message(1)), 1);
  assert.equal(slow.failed()?.code, "resource_exhausted");
  assert.match(slow.failed()!.message, /3 messages behind, the limit is 3/);
  assert.equal(fast.frames.length, 1);
});

Deno.test("presence events go only to streams that asked for them", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 3 });
  const wants = sink();
  const classic = sink();
  hub.add(stream("wants", wants, true));
  hub.add(stream("classic", classic, false));
  hub.presence({ userId: "bob", displayName: "Bob", online: true, servers: ["gw"], timestamp: "" });
  assert.equal(classic.frames.length, 0);
  const event = decodeStreamMessage(wants.frames[0]!);
  assert.equal(event.presence?.user?.id, "bob");
  assert.equal(event.presence?.user?.displayName, "Bob");
  assert.equal(event.presence?.online, true);
  assert.equal(event.content, "");
});

/** A sink whose client takes one queued frame every `everyMs` (never, when 0). */
function drainingSink(everyMs: number) {
  let queued = 0;
  let failed: ChatError | undefined;
  const timer = everyMs > 0
    ? setInterval(() => queued = Math.max(0, queued - 1), everyMs)
    : undefined;
  return {
    write: () => void queued++,
    pending: () => queued,
    fail: (e: ChatError) => failed = e,
    failed: () => failed,
    stop: () => clearInterval(timer),
  };
}

Deno.test("a burst is paced for readers that keep draining; a stalled reader is cut, not waited for", async () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 20 });
  const fast = drainingSink(1);
  const stalled = drainingSink(0);
  hub.add(stream("fast", fast));
  hub.add(stream("stalled", stalled));
  const started = performance.now();
  try {
    // A backlog of 100 messages arrives at once, five times the queue limit.
    for (let seq = 1; seq <= 100; seq++) {
      hub.deliver(message(seq));
      await hub.settle();
    }
    assert.equal(fast.failed(), undefined, "the reader that drains is never cut");
    assert.equal(stalled.failed()?.code, "resource_exhausted", "the stalled reader is cut");
    assert.ok(
      performance.now() - started < 5000,
      "the stalled reader was waited for once, not per message",
    );
  } finally {
    fast.stop();
    stalled.stop();
  }
});

Deno.test("a message reaches only the streams of its room, and follows joins and leaves", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const inRoom = sink();
  const elsewhere = sink();
  const watcher = sink();
  hub.add(stream("in", inRoom, false, ["general", "x"]));
  hub.add(stream("out", elsewhere, false, ["general"]));
  hub.add(stream("watch", watcher, true, ["x"]));
  assert.equal(hub.deliver(message(1, "x")), 2);
  assert.equal(elsewhere.frames.length, 0);

  hub.roomEvent({ room: "x", userId: "out", displayName: "out", joined: true });
  assert.equal(hub.deliver(message(2, "x")), 3, "the joined stream receives the room");
  assert.equal(watcher.frames.length, 3, "the watcher got both messages and the join event");
  assert.equal(decodeStreamMessage(watcher.frames[1]!).roomEvent?.joined, true);

  hub.roomEvent({ room: "x", userId: "in", displayName: "in", joined: false });
  assert.equal(hub.deliver(message(3, "x")), 2, "the stream that left does not");
  assert.equal(inRoom.frames.length, 2);

  hub.remove("watch");
  assert.equal(hub.deliver(message(4, "x")), 1, "a removed stream is out of every room");
  hub.remove("out");
  assert.equal(hub.deliver(message(5, "x")), 0);
});

Deno.test("a leave of a room the stream was not in tells the room, not the stream", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const leaver = sink();
  const member = sink();
  hub.add(stream("leaver", leaver, true, ["general"]));
  hub.add(stream("member", member, true, ["y"]));
  hub.roomEvent({ room: "y", userId: "leaver", displayName: "leaver", joined: false });
  assert.equal(leaver.frames.length, 0, "not in the room: not told");
  assert.equal(member.frames.length, 1, "the room's watcher is told");
});

Deno.test("a user's every stream follows its joins", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const phone = sink();
  const laptop = sink();
  hub.add(stream("phone", phone, false, ["general"], "carol"));
  hub.add(stream("laptop", laptop, false, ["general"], "carol"));
  hub.roomEvent({ room: "z", userId: "carol", displayName: "Carol", joined: true });
  assert.equal(hub.deliver(message(1, "z")), 2);
});

Deno.test("a room action tells the room's watchers and whom it is about, and moves nobody", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const member = sink();
  const classic = sink();
  const invitee = sink();
  const outsider = sink();
  hub.add(stream("member", member, true, ["plans"]));
  hub.add(stream("classic", classic, false, ["plans"]));
  hub.add(stream("invitee", invitee, true, ["general"], "ben"));
  hub.add(stream("outsider", outsider, true, ["general"]));
  hub.roomAction({
    room: "plans",
    userId: "ben",
    displayName: "Ben",
    joined: false,
    action: "invited",
    actorId: "ann",
    actorName: "Ann",
    at: "2026-11-30T12:00:00.000Z",
  });
  assert.equal(member.frames.length, 1);
  assert.equal(invitee.frames.length, 1, "the invitee, not in the room yet");
  assert.equal(classic.frames.length + outsider.frames.length, 0);
  const told = decodeStreamMessage(invitee.frames[0]!);
  assert.equal(told.id, "ann", "from the actor");
  assert.deepEqual(
    [told.roomEvent?.action, told.roomEvent?.user?.id, told.roomEvent?.actor?.displayName],
    ["invited", "ben", "Ann"],
  );
  assert.equal(told.roomEvent?.at?.seconds, BigInt(Date.parse("2026-11-30T12:00:00Z") / 1000));
  assert.equal(hub.deliver(message(1, "plans")), 2, "the invitee does not receive the room");
});

Deno.test("typing goes to the room's streams that asked for events, not the typer's, and never cuts a stream", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const bob = sink();
  const behind = sink();
  const classic = sink();
  const elsewhere = sink();
  const alicesOther = sink();
  hub.add(stream("bob", bob, true, ["general", "book-club"]));
  hub.add(stream("behind", behind, true, ["book-club"]));
  hub.add(stream("classic", classic, false, ["book-club"]));
  hub.add(stream("elsewhere", elsewhere, true, ["general"]));
  hub.add(stream("alice-2", alicesOther, true, ["book-club"], "alice"));
  behind.hold(6);
  hub.typing({
    room: "book-club",
    userId: "alice",
    displayName: "Alice",
    typing: true,
    expiresInMs: 6000,
  });
  assert.equal(bob.frames.length, 1);
  const shown = decodeStreamMessage(bob.frames[0]!);
  assert.equal(shown.content, "");
  assert.deepEqual(
    [shown.typing?.room, shown.typing?.user?.id, shown.typing?.typing, shown.typing?.expiresInMs],
    ["book-club", "alice", true, 6000],
  );
  assert.equal(behind.frames.length, 0, "past half its queue: skipped");
  assert.equal(behind.failed(), undefined, "and not cut for it");
  assert.equal(classic.frames.length, 0);
  assert.equal(elsewhere.frames.length, 0);
  assert.equal(alicesOther.frames.length, 0);
});

Deno.test("a blocker's streams skip the blocked sender's messages, live and replayed; the others share one frame", async () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const ann = sink();
  const annPhone = sink();
  const cat = sink();
  hub.add(stream("ann-1", ann, false, ["general"], "ann"));
  const phone = stream("ann-2", annPhone, false, ["general"], "ann");
  phone.backlog = []; // replaying
  hub.add(phone);
  hub.add(stream("cat", cat, false, ["general"]));
  hub.block({ userId: "ann", blockedId: "alice", blocked: true });
  const from = (seq: number, userId: string) => ({ ...message(seq), userId });
  assert.equal(hub.deliver(from(1, "alice")), 1, "only cat's stream");
  assert.equal(hub.deliver(from(2, "bob")), 3);
  assert.equal(ann.frames.length, 1);
  assert.equal(ann.frames[0], cat.frames[1], "the same bytes as the others'");
  // A replay skips it too, and the skipped sequence number is no gap.
  assert.ok(await hub.replay(phone, [from(1, "alice"), from(2, "bob")]));
  hub.goLive(phone);
  assert.deepEqual(annPhone.frames.map((f) => decodeStreamMessage(f).seq), [2n]);
  hub.block({ userId: "ann", blockedId: "alice", blocked: false });
  hub.deliver(from(3, "alice"));
  assert.deepEqual(ann.frames.map((f) => decodeStreamMessage(f).seq), [2n, 3n]);
});

Deno.test("a block told while a stream of the blocker reads its list is not lost", () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const first = hub.openingBlocks("ann");
  const second = hub.openingBlocks("ann");
  // Told while both read: one read saw the first change, the other did not.
  hub.block({ userId: "ann", blockedId: "ben", blocked: true });
  hub.block({ userId: "ann", blockedId: "cat", blocked: false });
  hub.block({ userId: "bob", blockedId: "ben", blocked: true }); // someone else's
  assert.deepEqual([...first(["ben", "cat", "dan"])], ["ben", "dan"]);
  assert.deepEqual([...second(["cat"])], ["ben"]);
  // Done: later changes reach streams only, and a failed read still ends its watch.
  hub.block({ userId: "ann", blockedId: "eve", blocked: true });
  assert.deepEqual([...hub.openingBlocks("ann")()], []);
});

Deno.test("a replay that waits for a slow reader stops at a removal from the room", async () => {
  const hub = new Hub({ logger: silentLogger, queueLimit: 10 });
  const carl = sink();
  const stream0 = stream("carl-1", carl, true, ["club"], "carl");
  stream0.backlog = [];
  hub.add(stream0);
  carl.hold(6); // past half its queue: the replay waits before the next message
  const replaying = hub.replay(stream0, [message(1, "club"), message(2, "club")]);
  hub.roomEvent({
    room: "club",
    userId: "carl",
    displayName: "carl",
    joined: false,
    action: "removed",
  });
  carl.hold(0);
  assert.ok(await replaying, "the stream itself goes on");
  assert.deepEqual(
    carl.frames.map((f) => decodeStreamMessage(f)).filter((m) => m.content).map((m) => m.seq),
    [],
    "nothing of the room after the removal",
  );
});
