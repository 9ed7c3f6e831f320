/**
 * The page's session (client/core's ChatSession with the page's options) with a fake transport
 * and a fake clock: backoff, resume after a reconnect, dedupe, history, rooms, the end of a
 * sign-in, and the words the page shows.
 */

import assert from "node:assert/strict";
import { backoffDelay } from "../client/core/backoff.ts";
import { ChatSession } from "../client/core/chat_session.ts";
import type { Clock } from "../client/core/clock.ts";
import {
  ChatError,
  type ChatMessage,
  type ChatTransport,
  type ChatUser,
  type HistoryPage,
  type RoomEvent,
  type RoomInfo,
  type RoomPosition,
  type SignedIn,
  type StreamEvent,
} from "../client/core/model.ts";
import { directPeer, sortRooms } from "../client/core/rooms.ts";
import type { ConnectionStatus } from "../client/core/session_options.ts";
import { describeFailure, describeSendFailure, plainWords } from "../web/failures.ts";
import { type Entry, HISTORY_PAGE, insertMessage, PAGE_BACKOFF } from "../web/use_chat.ts";
import { checkSignIn } from "../web/join_screen.tsx";
import { endedMessage } from "../web/app.tsx";

/** A clock whose timers run only when the test advances it. */
class FakeClock implements Clock {
  time = 1_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now = () => this.time;
  random = () => 0;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, fn });
    return id;
  };
  clearTimeout = (id: number) => {
    this.#timers.delete(id);
  };
  /** Moves time on by `ms`, running the timers that fall due. */
  advance(ms: number): void {
    this.time += ms;
    for (const [id, t] of [...this.#timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= this.time) {
        this.#timers.delete(id);
        t.fn();
      }
    }
  }
  get pending(): number {
    return this.#timers.size;
  }
}

interface FakeStream {
  user: ChatUser;
  resume: readonly RoomPosition[];
  open(): void;
  emit(event: StreamEvent): void;
  end(): void;
  fail(error: unknown): void;
  aborted: boolean;
}

/** A fake server: records calls; each stream is driven by the test. */
class FakeApi implements ChatTransport {
  token: string | undefined = "token";
  streams: FakeStream[] = [];
  sent: { content: string; messageId: string; room: string }[] = [];
  online: ChatUser[] = [];
  rooms: RoomInfo[] = [{ id: "general", direct: false, members: [], lastSeq: 0 }];
  histories = new Map<string, ChatMessage[]>();
  historyRequests: string[] = [];
  sendError: unknown;
  /** When set, every unary call but send fails with it. */
  callError: unknown;
  onlineRequests = 0;
  /** When set, ListOnline waits for this promise (to test events arriving meanwhile). */
  onlineGate: Promise<void> | undefined;

  stream(
    request: { user: ChatUser; presenceEvents: boolean; resume: readonly RoomPosition[] },
    handlers: { onOpen(): void; onEvent(event: StreamEvent): void },
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const s: FakeStream = {
        user: request.user,
        resume: request.resume,
        aborted: false,
        open: () => handlers.onOpen(),
        emit: (e) => handlers.onEvent(e),
        end: () => resolve(),
        fail: (err) => reject(err),
      };
      signal.addEventListener("abort", () => {
        s.aborted = true;
        reject(new ChatError("CANCELLED", "aborted"));
      });
      this.streams.push(s);
    });
  }

  send(
    message: { user: ChatUser; content: string; messageId: string; room: string },
  ): Promise<void> {
    if (this.sendError) return Promise.reject(this.sendError);
    this.sent.push({ content: message.content, messageId: message.messageId, room: message.room });
    return Promise.resolve();
  }

  async listOnline(): Promise<ChatUser[]> {
    this.onlineRequests++;
    const users = [...this.online];
    if (this.onlineGate) await this.onlineGate;
    return users;
  }

  #unary<T>(result: () => T): Promise<T> {
    return this.callError ? Promise.reject(this.callError) : Promise.resolve(result());
  }

  signIn(): Promise<SignedIn> {
    return Promise.reject(new ChatError("UNIMPLEMENTED", "the page signs in before"));
  }

  close(): void {}

  listRooms(): Promise<RoomInfo[]> {
    return this.#unary(() => [...this.rooms]);
  }

  #room(id: string, direct = false): RoomInfo {
    const room = { id, direct, members: ["ann"], lastSeq: this.histories.get(id)?.length ?? 0 };
    this.rooms.push(room);
    return room;
  }

  createRoom(name: string): Promise<RoomInfo> {
    return this.#unary(() => this.#room(name));
  }

  joinRoom(name: string): Promise<RoomInfo> {
    return this.#unary(() => this.#room(name));
  }

  leaveRoom(name: string): Promise<void> {
    return this.#unary(() => {
      this.rooms = this.rooms.filter((r) => r.id !== name);
    });
  }

  openDirect(userId: string): Promise<RoomInfo> {
    return this.#unary(() => this.#room(`dm:${["ann", userId].sort().join(":")}`, true));
  }

  history(room: string, limit: number): Promise<HistoryPage> {
    this.historyRequests.push(room);
    return this.#unary(() => ({
      messages: (this.histories.get(room) ?? []).slice(-limit),
      more: false,
    }));
  }

  get last(): FakeStream {
    return this.streams.at(-1)!;
  }
}

const ann: ChatUser = { id: "ann", displayName: "ann" };
const ben: ChatUser = { id: "ben", displayName: "ben" };

function message(
  text: string,
  from = ben,
  messageId: string = crypto.randomUUID(),
  room = "general",
  seq = 0,
): ChatMessage {
  return {
    messageId,
    userId: from.id,
    displayName: from.displayName,
    content: text,
    timestamp: new Date(),
    room,
    seq,
  };
}

/** Message number `seq` of `room`. */
const inRoom = (room: string, seq: number, text = `${room} ${seq}`) =>
  message(text, ben, `${room}-${seq}`, room, seq);

function setup() {
  const api = new FakeApi();
  const clock = new FakeClock();
  const statuses: ConnectionStatus[] = [];
  const messages: ChatMessage[] = [];
  const sources: string[] = [];
  const roomEvents: RoomEvent[] = [];
  let online: readonly ChatUser[] = [];
  let rooms: readonly RoomInfo[] = [];
  const connection = new ChatSession({
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
    api,
    clock,
    statuses,
    messages,
    sources,
    roomEvents,
    connection,
    online: () => online.map((u) => u.id),
    rooms: () => rooms.map((r) => r.id),
    texts: () => messages.map((m) => m.content),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/** Starts `connection` and waits for its stream: ListRooms is asked first. */
async function started(connection: ChatSession): Promise<void> {
  connection.start();
  await tick();
}

/** Reconnects at once and waits for the new stream. */
async function retried(connection: ChatSession): Promise<void> {
  connection.retryNow();
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
  const { api, statuses, messages, connection } = setup();
  await started(connection);
  assert.equal(statuses.at(-1)?.kind, "connecting");
  await tick();
  assert.equal(api.streams.length, 1);
  assert.deepEqual(api.last.user, ann);
  api.last.open();
  assert.equal(statuses.at(-1)?.kind, "connected");
  const m = message("hello");
  api.last.emit({ type: "message", message: m });
  api.last.emit({ type: "message", message: m });
  api.last.emit({ type: "message", message: message("again") });
  assert.deepEqual(messages.map((x) => x.content), ["hello", "again"], "a repeat is dropped");
  connection.stop();
  assert.equal(api.last.aborted, true);
  assert.equal(statuses.at(-1)?.kind, "stopped");
  await tick();
});

Deno.test("reconnects with growing delays while the server is down, then resets", async () => {
  const { api, clock, statuses, connection } = setup();
  await started(connection);
  api.last.fail(new ChatError("INTERNAL", "Failed to fetch"));
  await tick();
  let status = statuses.at(-1)!;
  assert.equal(status.kind, "reconnecting");
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 500);
  assert.equal(status.kind === "reconnecting" && status.reason, "The server is unavailable");

  clock.advance(499);
  await tick();
  assert.equal(api.streams.length, 1, "not before the delay");
  clock.advance(1);
  await tick();
  assert.equal(api.streams.length, 2);
  assert.deepEqual(statuses.at(-1), { kind: "connecting", attempt: 2, endpoint: "" });

  api.last.fail(new ChatError("INTERNAL", "Failed to fetch"));
  await tick();
  status = statuses.at(-1)!;
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 1000, "doubled");
  clock.advance(1000);
  await tick();
  api.last.fail(new ChatError("INTERNAL", "Failed to fetch"));
  await tick();
  status = statuses.at(-1)!;
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 2000);

  // Back up, and healthy for a while: the next failure starts from the base again.
  clock.advance(2000);
  await tick();
  api.last.open();
  assert.equal(statuses.at(-1)?.kind, "connected");
  clock.advance(6000);
  api.last.fail(new ChatError("UNAVAILABLE", "Stream closed: the server is shutting down"));
  await tick();
  status = statuses.at(-1)!;
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 500, "reset");
  assert.equal(
    status.kind === "reconnecting" && status.reason,
    "Stream closed: the server is shutting down",
  );
  connection.stop();
  assert.equal(clock.pending, 0, "no timer left behind");
  await tick();
});

Deno.test("a stream the server ends normally is reopened too", async () => {
  const { api, clock, statuses, connection } = setup();
  await started(connection);
  api.last.open();
  api.last.end();
  await tick();
  assert.equal(statuses.at(-1)?.kind, "reconnecting");
  clock.advance(500);
  await tick();
  assert.equal(api.streams.length, 2);
  connection.stop();
  await tick();
});

Deno.test("retryNow skips the wait", async () => {
  const { api, connection } = setup();
  await started(connection);
  api.last.fail(new ChatError("INTERNAL", "Failed to fetch"));
  await tick();
  await retried(connection);
  assert.equal(api.streams.length, 2);
  await retried(connection);
  assert.equal(api.streams.length, 2, "only while waiting");
  connection.stop();
  await tick();
});

Deno.test("a refusal of the user stops for good with the server's words", async () => {
  const { api, clock, statuses, connection } = setup();
  await started(connection);
  api.last.fail(new ChatError("INVALID_ARGUMENT", "Cannot open stream: the user id is empty"));
  await tick();
  assert.deepEqual(statuses.at(-1), {
    kind: "stopped",
    error: "Cannot open stream: the user id is empty",
    code: "INVALID_ARGUMENT",
  });
  clock.advance(60_000);
  assert.equal(api.streams.length, 1, "no retry");
});

Deno.test("the online list: ListOnline, then presence events, including ones that race it", async () => {
  const { api, connection, online } = setup();
  api.online = [ben, { id: "cat", displayName: "cat" }];
  let release!: () => void;
  api.onlineGate = new Promise((r) => (release = r));
  await started(connection);
  api.last.open();
  assert.equal(api.onlineRequests, 1);
  // Cat leaves and dan arrives while the list is on its way: the list must not bring cat back.
  api.last.emit({ type: "presence", user: { id: "cat", displayName: "cat" }, online: false });
  api.last.emit({ type: "presence", user: { id: "dan", displayName: "dan" }, online: true });
  release();
  await tick();
  await tick();
  assert.deepEqual(online(), ["ann", "ben", "dan"], "sorted, with this user, without cat");
  api.last.emit({ type: "presence", user: ben, online: false });
  assert.deepEqual(online(), ["ann", "dan"]);
  api.last.emit({ type: "presence", user: ann, online: false });
  assert.deepEqual(online(), ["ann", "dan"], "this page's user stays while its stream is open");

  // Reconnecting asks for the list again.
  api.onlineGate = undefined;
  api.online = [ann, ben];
  api.last.fail(new ChatError("UNAVAILABLE", "gone"));
  await tick();
  await retried(connection);
  api.last.open();
  await tick();
  assert.equal(api.onlineRequests, 2);
  assert.deepEqual(online(), ["ann", "ben"]);
  connection.stop();
  await tick();
});

Deno.test("send passes a fresh message id; failures read as sentences", async () => {
  const { api, connection } = setup();
  await connection.send("hi");
  await connection.send("hi");
  assert.equal(api.sent.length, 2);
  assert.notEqual(api.sent[0]!.messageId, api.sent[1]!.messageId);
  assert.match(api.sent[0]!.messageId, /^[0-9a-f-]{36}$/);
  assert.equal(api.sent[0]!.room, "general", "general by default");
  await connection.send("in a room", "design");
  assert.equal(api.sent.at(-1)!.room, "design", "sent to the room given");

  api.sendError = new ChatError(
    "INVALID_ARGUMENT",
    "Cannot send message: content is 70000 bytes, the limit is 65536",
  );
  await assert.rejects(() => connection.send("x".repeat(70000)), ChatError);
  assert.equal(
    describeSendFailure(api.sendError),
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

Deno.test("a reconnect resumes after the last seq seen per room; repeats are dropped", async () => {
  const { api, connection, texts, sources } = setup();
  api.rooms.push({ id: "design", direct: false, members: ["ann", "ben"], lastSeq: 7 });
  await started(connection);
  // ListRooms, asked before the stream, tells where each room stands: even the first stream
  // resumes from there, so nothing sent while it was opening is missed.
  assert.deepEqual(api.last.resume, [
    { room: "general", lastSeq: 0 },
    { room: "design", lastSeq: 7 },
  ]);
  api.last.open();
  await tick();
  assert.deepEqual(connection.positions, [
    { room: "general", lastSeq: 0 },
    { room: "design", lastSeq: 7 },
  ]);
  api.last.emit({ type: "message", message: inRoom("general", 1) });
  api.last.emit({ type: "message", message: inRoom("general", 2) });
  api.last.emit({ type: "message", message: inRoom("design", 8) });
  api.last.fail(new ChatError("UNAVAILABLE", "Stream closed: the server is shutting down"));
  await tick();
  await retried(connection);
  assert.deepEqual(api.last.resume, [
    { room: "general", lastSeq: 2 },
    { room: "design", lastSeq: 8 },
  ]);
  api.last.open();
  // The server replays what was missed; a repeat (same room and seq, another id) is dropped.
  api.last.emit({ type: "message", message: inRoom("general", 2, "general 2 again") });
  api.last.emit({ type: "message", message: inRoom("general", 3) });
  api.last.emit({ type: "message", message: inRoom("design", 8, "design 8 again") });
  api.last.emit({ type: "message", message: inRoom("design", 9) });
  // The same seq in another room is another message.
  api.last.emit({ type: "message", message: inRoom("lobby", 3) });
  assert.deepEqual(texts(), [
    "general 1",
    "general 2",
    "design 8",
    "general 3",
    "design 9",
    "lobby 3",
  ]);
  assert.ok(sources.every((s) => s === "live"));
  connection.stop();
  await tick();
});

Deno.test("history loads once per room, merges with the stream without repeats", async () => {
  const { api, connection, messages, sources } = setup();
  api.histories.set("general", [1, 2, 3, 4].map((n) => inRoom("general", n)));
  await started(connection);
  api.last.open();
  api.last.emit({ type: "message", message: inRoom("general", 4) });
  await connection.loadHistory("general", HISTORY_PAGE);
  await connection.loadHistory("general", HISTORY_PAGE);
  assert.deepEqual(api.historyRequests, ["general"], "asked once");
  assert.deepEqual(messages.map((m) => m.seq), [4, 1, 2, 3], "4 came live, not again");
  assert.deepEqual(sources, ["live", "history", "history", "history"]);
  assert.deepEqual(connection.positions.find((p) => p.room === "general"), {
    room: "general",
    lastSeq: 4,
  });
  // A failed load is tried again next time.
  api.callError = new ChatError("UNAVAILABLE", "Kafka is unavailable");
  await assert.rejects(() => connection.loadHistory("design", HISTORY_PAGE));
  api.callError = undefined;
  await connection.loadHistory("design", HISTORY_PAGE);
  assert.deepEqual(api.historyRequests, ["general", "design", "design"]);
  connection.stop();
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

Deno.test("rooms: listed, created, joined, left; room events keep them current", async () => {
  const { api, connection, rooms, roomEvents } = setup();
  api.rooms.push(
    { id: "zebra", direct: false, members: ["ann"], lastSeq: 0 },
    { id: "dm:ann:ben", direct: true, members: ["ann", "ben"], lastSeq: 3 },
    { id: "apple", direct: false, members: ["ann"], lastSeq: 0 },
  );
  await started(connection);
  assert.deepEqual(
    rooms(),
    ["general", "apple", "zebra", "dm:ann:ben"],
    "listed before the stream",
  );
  api.last.open();
  await tick();
  assert.deepEqual(rooms(), ["general", "apple", "zebra", "dm:ann:ben"], "general, rooms, direct");
  const created = await connection.createRoom("book-club");
  assert.equal(created.id, "book-club");
  assert.deepEqual(rooms(), ["general", "apple", "book-club", "zebra", "dm:ann:ben"]);
  await connection.openDirect("cat");
  assert.deepEqual(rooms().at(-1), "dm:ann:cat");
  await connection.leaveRoom("zebra");
  assert.ok(!rooms().includes("zebra"));
  assert.ok(!connection.positions.some((p) => p.room === "zebra"), "no resume for a left room");

  // Someone opens a direct conversation with ann: she learns of it from the room event.
  const dan = { id: "dan", displayName: "Dan" };
  api.rooms.push({ id: "dm:ann:dan", direct: true, members: ["ann", "dan"], lastSeq: 0 });
  api.last.emit({
    type: "room",
    event: { room: "dm:ann:dan", user: ann, joined: true, at: undefined },
  });
  assert.ok(rooms().includes("dm:ann:dan"));
  // Another member joins a room ann is in: its member list grows.
  api.last.emit({ type: "room", event: { room: "apple", user: dan, joined: true, at: undefined } });
  assert.deepEqual(connection.rooms.find((r) => r.id === "apple")?.members, ["ann", "dan"]);
  // Ann left a room in another tab.
  api.last.emit({
    type: "room",
    event: { room: "apple", user: ann, joined: false, at: undefined },
  });
  assert.ok(!rooms().includes("apple"));
  assert.equal(roomEvents.length, 3, "every room event is passed on");
  connection.stop();
  await tick();
});

Deno.test("an ended sign-in stops the connection, from the stream or any call", async () => {
  {
    const { api, clock, statuses, connection } = setup();
    await started(connection);
    api.last.fail(
      new ChatError("UNAUTHENTICATED", "Cannot open stream: the token expired at 2024-01-01"),
    );
    await tick();
    assert.deepEqual(statuses.at(-1), {
      kind: "stopped",
      error: "Cannot open stream: the token expired at 2024-01-01",
      code: "UNAUTHENTICATED",
    });
    clock.advance(60_000);
    assert.equal(api.streams.length, 1, "no retry");
  }
  {
    const { api, statuses, connection } = setup();
    await started(connection);
    api.last.open();
    api.sendError = new ChatError("UNAUTHENTICATED", "Cannot send message: the token expired");
    await assert.rejects(() => connection.send("hi"), ChatError);
    assert.equal(statuses.at(-1)?.kind, "stopped");
    assert.equal(api.last.aborted, true, "the stream is closed too");
    await tick();
  }
  assert.equal(
    endedMessage("Cannot open stream: the token expired", "UNAUTHENTICATED"),
    "Your sign-in has ended; sign in again. (Cannot open stream: the token expired)",
  );
  assert.equal(endedMessage("nope", "PERMISSION_DENIED"), "Cannot join: nope");
});

Deno.test("offline: interrupt drops the stream at once and waits; back online resumes", async () => {
  const { api, statuses, connection } = setup();
  await started(connection);
  api.last.open();
  api.last.emit({ type: "message", message: inRoom("general", 5) });
  connection.interrupt("You are offline");
  assert.equal(api.last.aborted, true);
  const status = statuses.at(-1)!;
  assert.equal(status.kind, "reconnecting");
  assert.equal(status.kind === "reconnecting" && status.reason, "You are offline");
  await tick();
  assert.equal(statuses.at(-1)?.kind, "reconnecting", "the aborted stream changes nothing");
  await retried(connection);
  assert.equal(api.streams.length, 2);
  assert.deepEqual(api.last.resume, [{ room: "general", lastSeq: 5 }]);
  connection.stop();
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
