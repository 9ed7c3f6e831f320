import assert from "node:assert/strict";
import { ChatError } from "../core/errors.ts";
import { silentLogger } from "../core/logger.ts";
import type { ChatMessage } from "../core/types.ts";
import { Hub, type LocalStream, type StreamSink } from "../server/hub.ts";
import { decodeStreamMessage } from "../server/proto.ts";

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

const stream = (id: string, s: StreamSink, presenceEvents = false): LocalStream => ({
  streamId: id,
  userId: id,
  displayName: id,
  presenceEvents,
  sink: s,
  rooms: new Set(["general", "other"]),
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
  assert.equal(decoded.seq, 1);
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
  assert.deepEqual(event.presence, { user: { id: "bob", displayName: "Bob" }, online: true });
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
