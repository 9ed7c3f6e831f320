/**
 * The page's session (client/core's ChatSession with web/use_chat.ts's options: one shared
 * transport, the page's backoff and words) on the shared fake server and clock: backoff, resume
 * after a reconnect, dedupe, history, rooms, a send while reconnecting, the end of a sign-in,
 * and the words the page shows.
 */

import assert from "node:assert/strict";
import { backoffDelay } from "../client/core/backoff.ts";
import { ChatSession } from "../client/core/chat_session.ts";
import {
  ChatError,
  type ChatMessage,
  type ChatUser,
  type RoomEvent,
  type RoomInfo,
} from "../client/core/model.ts";
import { directPeer, sortRooms } from "../client/core/rooms.ts";
import type { ConnectionStatus } from "../client/core/session_options.ts";
import { describeFailure, describeSendFailure, plainWords } from "../web/failures.ts";
import {
  type Entry,
  HISTORY_PAGE,
  insertMessage,
  PAGE_BACKOFF,
  prependMessages,
} from "../web/use_chat.ts";
import { dayLabel, sameDay } from "../web/format.ts";
import { checkSignIn } from "../web/join_screen.tsx";
import { endedMessage } from "../web/app.tsx";
import { ann, ben, FakeChatServer, FakeClock, inRoom, tick } from "./fake_chat_transport.ts";

/** A message outside any room's order (no seq), as a classic server sends it. */
function message(text: string): ChatMessage {
  return { ...inRoom("general", 0, text), messageId: crypto.randomUUID() };
}

function setup() {
  const server = new FakeChatServer();
  server.valid.add("token");
  // One transport for every attempt, as the page's.
  const api = server.transport("token", { shared: true });
  const clock = new FakeClock();
  const statuses: ConnectionStatus[] = [];
  const messages: ChatMessage[] = [];
  const sources: string[] = [];
  const roomEvents: RoomEvent[] = [];
  let online: readonly ChatUser[] = [];
  let rooms: readonly RoomInfo[] = [];
  const session = new ChatSession({
    user: ann,
    connect: () => api,
    token: api.token,
    clock,
    describe: describeFailure,
    backoff: { ...PAGE_BACKOFF, maxMs: 8000, stableAfterMs: 5000 },
    onStatus: (s) => statuses.push(s),
    onMessage: (m, source) => {
      messages.push(m);
      sources.push(source);
    },
    onRoomEvent: (e) => roomEvents.push(e),
    onOnline: (users) => (online = users),
    onRooms: (list) => (rooms = list),
  });
  return {
    server,
    clock,
    statuses,
    messages,
    sources,
    roomEvents,
    session,
    online: () => online.map((u) => u.id),
    rooms: () => rooms.map((r) => r.id),
    texts: () => messages.map((m) => m.content),
  };
}

/** Starts `session` and waits for its stream: ListRooms is asked first. */
async function started(session: ChatSession): Promise<void> {
  session.start();
  await tick();
}

/** Reconnects at once and waits for the new stream. */
async function retried(session: ChatSession): Promise<void> {
  session.retryNow();
  await tick();
}

Deno.test("backoff doubles from the base up to the cap, with jitter between half and all of it", () => {
  const options = { ...PAGE_BACKOFF, maxMs: 8000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 10].map((n) => backoffDelay(n, options, () => 0)),
    [500, 1000, 2000, 4000, 8000, 8000, 8000],
  );
  assert.equal(backoffDelay(3, options, () => 1), 1000);
  assert.equal(backoffDelay(1000, options, () => 0.5), 6000, "no overflow for large attempts");
});

Deno.test("connects, reports the status, passes messages on once each", async () => {
  const { server, statuses, messages, session } = setup();
  await started(session);
  assert.equal(statuses.at(-1)?.kind, "connecting");
  await tick();
  assert.equal(server.streams.length, 1);
  assert.deepEqual(server.last.user, ann);
  server.last.open();
  assert.equal(statuses.at(-1)?.kind, "connected");
  const m = message("hello");
  server.last.emit({ type: "message", message: m });
  server.last.emit({ type: "message", message: m });
  server.last.emit({ type: "message", message: message("again") });
  assert.deepEqual(messages.map((x) => x.content), ["hello", "again"], "a repeat is dropped");
  session.stop();
  assert.equal(server.last.aborted, true);
  assert.equal(statuses.at(-1)?.kind, "stopped");
  await tick();
});

Deno.test("reconnects with growing delays while the server is down, then resets", async () => {
  const { server, clock, statuses, session } = setup();
  await started(session);
  server.last.fail(new ChatError("INTERNAL", "Failed to fetch"));
  await tick();
  let status = statuses.at(-1)!;
  assert.equal(status.kind, "reconnecting");
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 500);
  assert.equal(status.kind === "reconnecting" && status.reason, "The server is unavailable");

  clock.advance(499);
  await tick();
  assert.equal(server.streams.length, 1, "not before the delay");
  clock.advance(1);
  await tick();
  assert.equal(server.streams.length, 2);
  assert.deepEqual(statuses.at(-1), { kind: "connecting", attempt: 2, endpoint: "" });

  server.last.fail(new ChatError("INTERNAL", "Failed to fetch"));
  await tick();
  status = statuses.at(-1)!;
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 1000, "doubled");
  clock.advance(1000);
  await tick();
  server.last.fail(new ChatError("INTERNAL", "Failed to fetch"));
  await tick();
  status = statuses.at(-1)!;
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 2000);

  // Back up, and healthy for a while: the next failure starts from the base again.
  clock.advance(2000);
  await tick();
  server.last.open();
  assert.equal(statuses.at(-1)?.kind, "connected");
  clock.advance(6000);
  server.last.fail(new ChatError("UNAVAILABLE", "Stream closed: the server is shutting down"));
  await tick();
  status = statuses.at(-1)!;
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 500, "reset");
  assert.equal(
    status.kind === "reconnecting" && status.reason,
    "Stream closed: the server is shutting down",
  );
  session.stop();
  assert.equal(clock.pending, 0, "no timer left behind");
  await tick();
});

Deno.test("a stream the server ends normally is reopened too", async () => {
  const { server, clock, statuses, session } = setup();
  await started(session);
  server.last.open();
  server.last.end();
  await tick();
  assert.equal(statuses.at(-1)?.kind, "reconnecting");
  clock.advance(500);
  await tick();
  assert.equal(server.streams.length, 2);
  session.stop();
  await tick();
});

Deno.test("retryNow skips the wait", async () => {
  const { server, session } = setup();
  await started(session);
  server.last.fail(new ChatError("INTERNAL", "Failed to fetch"));
  await tick();
  await retried(session);
  assert.equal(server.streams.length, 2);
  await retried(session);
  assert.equal(server.streams.length, 2, "only while waiting");
  session.stop();
  await tick();
});

Deno.test("a refusal of the user stops for good with the server's words", async () => {
  const { server, clock, statuses, session } = setup();
  await started(session);
  server.last.fail(new ChatError("INVALID_ARGUMENT", "Cannot open stream: the user id is empty"));
  await tick();
  assert.deepEqual(statuses.at(-1), {
    kind: "stopped",
    error: "Cannot open stream: the user id is empty",
    code: "INVALID_ARGUMENT",
  });
  clock.advance(60_000);
  assert.equal(server.streams.length, 1, "no retry");
});

Deno.test("the online list: ListOnline, then presence events, including ones that race it", async () => {
  const { server, session, online } = setup();
  server.online = [ben, { id: "cat", displayName: "cat" }];
  let release!: () => void;
  server.onlineGate = new Promise((r) => (release = r));
  await started(session);
  server.last.open();
  assert.equal(server.onlineRequests, 1);
  // Cat leaves and dan arrives while the list is on its way: the list must not bring cat back.
  server.last.emit({ type: "presence", user: { id: "cat", displayName: "cat" }, online: false });
  server.last.emit({ type: "presence", user: { id: "dan", displayName: "dan" }, online: true });
  release();
  await tick();
  await tick();
  assert.deepEqual(online(), ["ann", "ben", "dan"], "sorted, with this user, without cat");
  server.last.emit({ type: "presence", user: ben, online: false });
  assert.deepEqual(online(), ["ann", "dan"]);
  server.last.emit({ type: "presence", user: ann, online: false });
  assert.deepEqual(online(), ["ann", "dan"], "this page's user stays while its stream is open");

  // Reconnecting asks for the list again.
  server.onlineGate = undefined;
  server.online = [ann, ben];
  server.last.fail(new ChatError("UNAVAILABLE", "gone"));
  await tick();
  await retried(session);
  server.last.open();
  await tick();
  assert.equal(server.onlineRequests, 2);
  assert.deepEqual(online(), ["ann", "ben"]);
  session.stop();
  await tick();
});

Deno.test("send passes a fresh message id; failures read as sentences", async () => {
  const { server, session } = setup();
  await session.send("hi");
  await session.send("hi");
  assert.equal(server.sends.length, 2);
  assert.notEqual(server.sends[0]!.messageId, server.sends[1]!.messageId);
  assert.match(server.sends[0]!.messageId, /^[0-9a-f-]{36}$/);
  assert.equal(server.sends[0]!.room, "general", "general by default");
  await session.send("in a room", "design");
  assert.equal(server.sends.at(-1)!.room, "design", "sent to the room given");

  const tooLong = new ChatError(
    "INVALID_ARGUMENT",
    "Cannot send message: content is 70000 bytes, the limit is 65536",
  );
  server.sendErrors = [tooLong];
  await assert.rejects(() => session.send("x".repeat(70000)), ChatError);
  assert.equal(
    describeSendFailure(tooLong),
    "Not sent: Cannot send message: content is 70000 bytes, the limit is 65536",
  );
  assert.match(
    describeSendFailure(new ChatError("INTERNAL", "Failed to fetch")),
    /^Not sent: the server is unavailable\. Your text is kept/,
  );
  assert.match(
    describeSendFailure(new ChatError("UNAVAILABLE", "Kafka is unavailable")),
    /server is unavailable \(Kafka is unavailable\)/,
  );
});

Deno.test("a send while reconnecting fails at once; the page keeps the text and says why", async () => {
  const { server, session } = setup();
  await started(session);
  server.last.open();
  server.last.fail(new ChatError("UNAVAILABLE", "Stream closed: the server is shutting down"));
  await tick();
  const failure = await session.send("hi").then(() => undefined, (err: unknown) => err);
  assert.equal(
    describeSendFailure(failure),
    "Not sent: the server is unavailable (Cannot send message: not connected; reconnecting). " +
      "Your text is kept; send it again once reconnected.",
  );
  assert.equal(server.sends.length, 0);
  await retried(session);
  server.last.open();
  await session.send("hi");
  assert.deepEqual(server.sends.map((s) => s.content), ["hi"], "the shared transport still works");
  session.stop();
  await tick();
});

Deno.test("a reconnect resumes after the last seq seen per room; repeats are dropped", async () => {
  const { server, session, texts, sources } = setup();
  server.rooms.push({ id: "design", direct: false, members: ["ann", "ben"], lastSeq: 7 });
  await started(session);
  // ListRooms, asked before the stream, tells where each room stands: even the first stream
  // resumes from there, so nothing sent while it was opening is missed.
  assert.deepEqual(server.last.resume, [
    { room: "general", lastSeq: 0 },
    { room: "design", lastSeq: 7 },
  ]);
  server.last.open();
  await tick();
  assert.deepEqual(session.positions, [
    { room: "general", lastSeq: 0 },
    { room: "design", lastSeq: 7 },
  ]);
  server.last.emit({ type: "message", message: inRoom("general", 1) });
  server.last.emit({ type: "message", message: inRoom("general", 2) });
  server.last.emit({ type: "message", message: inRoom("design", 8) });
  server.last.fail(new ChatError("UNAVAILABLE", "Stream closed: the server is shutting down"));
  await tick();
  await retried(session);
  assert.deepEqual(server.last.resume, [
    { room: "general", lastSeq: 2 },
    { room: "design", lastSeq: 8 },
  ]);
  server.last.open();
  // The server replays what was missed; a repeat (same room and seq, another id) is dropped.
  server.last.emit({ type: "message", message: inRoom("general", 2, "general 2 again") });
  server.last.emit({ type: "message", message: inRoom("general", 3) });
  server.last.emit({ type: "message", message: inRoom("design", 8, "design 8 again") });
  server.last.emit({ type: "message", message: inRoom("design", 9) });
  // The same seq in another room is another message.
  server.last.emit({ type: "message", message: inRoom("lobby", 3) });
  assert.deepEqual(texts(), [
    "general 1",
    "general 2",
    "design 8",
    "general 3",
    "design 9",
    "lobby 3",
  ]);
  assert.ok(sources.every((s) => s === "live"));
  session.stop();
  await tick();
});

Deno.test("history loads once per room, merges with the stream without repeats", async () => {
  const { server, session, messages, sources } = setup();
  server.histories.set("general", [1, 2, 3, 4].map((n) => inRoom("general", n)));
  await started(session);
  server.last.open();
  server.last.emit({ type: "message", message: inRoom("general", 4) });
  await session.loadHistory("general", HISTORY_PAGE);
  await session.loadHistory("general", HISTORY_PAGE);
  assert.deepEqual(server.historyRequests, ["general"], "asked once");
  assert.deepEqual(messages.map((m) => m.seq), [4, 1, 2, 3], "4 came live, not again");
  assert.deepEqual(sources, ["live", "history", "history", "history"]);
  assert.deepEqual(session.positions.find((p) => p.room === "general"), {
    room: "general",
    lastSeq: 4,
  });
  // A failed load is tried again next time.
  server.callError = new ChatError("UNAVAILABLE", "Kafka is unavailable");
  await assert.rejects(() => session.loadHistory("design", HISTORY_PAGE));
  server.callError = undefined;
  await session.loadHistory("design", HISTORY_PAGE);
  assert.deepEqual(server.historyRequests, ["general", "design", "design"]);
  session.stop();
  await tick();
});

Deno.test("insertMessage keeps a room in seq order, whatever the arrival order", () => {
  let entries: Entry[] = [];
  for (const seq of [5, 6, 2, 3, 4, 6, 1]) entries = insertMessage(entries, inRoom("general", seq));
  entries = insertMessage(entries, message("no seq"));
  assert.deepEqual(
    entries.map((e) => e.kind === "message" ? e.message.content : e.text),
    ["general 1", "general 2", "general 3", "general 4", "general 5", "general 6", "no seq"],
  );
});

Deno.test("prependMessages puts an older page above, without what is shown already", () => {
  let entries: Entry[] = [];
  for (const seq of [4, 5, 6]) entries = insertMessage(entries, inRoom("general", seq));
  entries = prependMessages(entries, [1, 2, 3, 4].map((seq) => inRoom("general", seq)));
  assert.deepEqual(
    entries.map((e) => e.kind === "message" ? e.message.seq : 0),
    [1, 2, 3, 4, 5, 6],
  );
});

Deno.test("an older page comes from History's before_seq, with whether there is more", async () => {
  const { server, session } = setup();
  server.histories.set("general", [1, 2, 3, 4, 5].map((n) => inRoom("general", n)));
  await started(session);
  server.last.open();
  await tick();
  const older = await session.history("general", 2, 4);
  assert.deepEqual(older.messages.map((m) => m.seq), [2, 3]);
  assert.equal(older.more, true);
  const first = await session.history("general", 2, 2);
  assert.deepEqual(first.messages.map((m) => m.seq), [1]);
  assert.equal(first.more, false);
  session.stop();
  await tick();
});

Deno.test("day lines say Today, Yesterday, or the date (with the year when not this year's)", () => {
  const now = new Date(2026, 10, 30, 9, 0);
  assert.equal(dayLabel(new Date(2026, 10, 30, 0, 1), now), "Today");
  assert.equal(dayLabel(new Date(2026, 10, 29, 23, 59), now), "Yesterday");
  assert.match(dayLabel(new Date(2026, 10, 27, 12, 0), now), /27/);
  assert.doesNotMatch(dayLabel(new Date(2026, 10, 27, 12, 0), now), /2026/);
  assert.match(dayLabel(new Date(2025, 11, 31, 12, 0), now), /2025/);
  assert.equal(sameDay(new Date(2026, 10, 30, 0, 0), new Date(2026, 10, 30, 23, 59)), true);
});

Deno.test("rooms: listed, created, joined, left; room events keep them current", async () => {
  const { server, session, rooms, roomEvents } = setup();
  server.rooms.push(
    { id: "zebra", direct: false, members: ["ann"], lastSeq: 0 },
    { id: "dm:ann:ben", direct: true, members: ["ann", "ben"], lastSeq: 3 },
    { id: "apple", direct: false, members: ["ann"], lastSeq: 0 },
  );
  await started(session);
  assert.deepEqual(
    rooms(),
    ["general", "apple", "zebra", "dm:ann:ben"],
    "listed before the stream",
  );
  server.last.open();
  await tick();
  assert.deepEqual(rooms(), ["general", "apple", "zebra", "dm:ann:ben"], "general, rooms, direct");
  const created = await session.createRoom("book-club");
  assert.equal(created.id, "book-club");
  assert.deepEqual(rooms(), ["general", "apple", "book-club", "zebra", "dm:ann:ben"]);
  await session.openDirect("cat");
  assert.deepEqual(rooms().at(-1), "dm:ann:cat");
  await session.leaveRoom("zebra");
  assert.ok(!rooms().includes("zebra"));
  assert.ok(!session.positions.some((p) => p.room === "zebra"), "no resume for a left room");

  // Someone opens a direct conversation with ann: she learns of it from the room event.
  const dan = { id: "dan", displayName: "Dan" };
  server.rooms.push({ id: "dm:ann:dan", direct: true, members: ["ann", "dan"], lastSeq: 0 });
  server.last.emit({
    type: "room",
    event: { room: "dm:ann:dan", user: ann, joined: true, at: undefined },
  });
  assert.ok(rooms().includes("dm:ann:dan"));
  // Another member joins a room ann is in: its member list grows.
  server.last.emit({
    type: "room",
    event: { room: "apple", user: dan, joined: true, at: undefined },
  });
  assert.deepEqual(session.rooms.find((r) => r.id === "apple")?.members, ["ann", "dan"]);
  // Ann left a room in another tab.
  server.last.emit({
    type: "room",
    event: { room: "apple", user: ann, joined: false, at: undefined },
  });
  assert.ok(!rooms().includes("apple"));
  assert.equal(roomEvents.length, 3, "every room event is passed on");
  session.stop();
  await tick();
});

Deno.test("an ended sign-in stops the session, from the stream or any call", async () => {
  {
    const { server, clock, statuses, session } = setup();
    await started(session);
    server.last.fail(
      new ChatError("UNAUTHENTICATED", "Cannot open stream: the token expired at 2024-01-01"),
    );
    await tick();
    assert.deepEqual(statuses.at(-1), {
      kind: "stopped",
      error: "Cannot open stream: the token expired at 2024-01-01",
      code: "UNAUTHENTICATED",
    });
    clock.advance(60_000);
    assert.equal(server.streams.length, 1, "no retry");
  }
  {
    const { server, statuses, session } = setup();
    await started(session);
    server.last.open();
    server.valid.clear();
    await assert.rejects(() => session.send("hi"), ChatError);
    assert.equal(statuses.at(-1)?.kind, "stopped");
    assert.equal(server.last.aborted, true, "the stream is closed too");
    await tick();
  }
  assert.equal(
    endedMessage("Cannot open stream: the token expired", "UNAUTHENTICATED"),
    "Your sign-in has ended; sign in again. (Cannot open stream: the token expired)",
  );
  assert.equal(endedMessage("nope", "PERMISSION_DENIED"), "Cannot join: nope");
});

Deno.test("offline: interrupt drops the stream at once and waits; back online resumes", async () => {
  const { server, statuses, session } = setup();
  await started(session);
  server.last.open();
  server.last.emit({ type: "message", message: inRoom("general", 5) });
  session.interrupt("You are offline");
  assert.equal(server.last.aborted, true);
  const status = statuses.at(-1)!;
  assert.equal(status.kind, "reconnecting");
  assert.equal(status.kind === "reconnecting" && status.reason, "You are offline");
  await tick();
  assert.equal(statuses.at(-1)?.kind, "reconnecting", "the aborted stream changes nothing");
  await retried(session);
  assert.equal(server.streams.length, 2);
  assert.deepEqual(server.last.resume, [{ room: "general", lastSeq: 5 }]);
  session.stop();
  await tick();
});

Deno.test("words for the screen: sign-in refusals, direct rooms, sorting, local checks", () => {
  assert.equal(
    plainWords(new ChatError("UNAUTHENTICATED", "Cannot sign in: wrong password for ann")),
    "Wrong password for ann",
  );
  assert.equal(
    plainWords(new ChatError("INTERNAL", "Failed to fetch")),
    "The server is unavailable; try again in a moment.",
  );
  assert.equal(directPeer("dm:ann:ben", "ann"), "ben");
  assert.equal(directPeer("dm:ann:ben", "ben"), "ann");
  assert.deepEqual(
    sortRooms([
      { id: "dm:ann:cat", direct: true, members: [], lastSeq: 0 },
      { id: "Zoo", direct: false, members: [], lastSeq: 0 },
      { id: "dm:ann:bob", direct: true, members: [], lastSeq: 0 },
      { id: "art", direct: false, members: [], lastSeq: 0 },
      { id: "general", direct: false, members: [], lastSeq: 0 },
    ], "ann").map((r) => r.id),
    ["general", "art", "Zoo", "dm:ann:bob", "dm:ann:cat"],
  );
  assert.equal(checkSignIn("", "x")?.text, "Enter a name to join.");
  assert.equal(checkSignIn("ann smith", "x")?.field, "name");
  assert.equal(
    checkSignIn("a".repeat(33), "x")?.text,
    "That name is 33 characters; 32 is the most.",
  );
  assert.equal(checkSignIn("ann", "")?.field, "password");
  assert.equal(checkSignIn("ann", "whatever"), undefined, "the server checks the rest");
});
