/**
 * "alice is typing…" without a network: the gateway's coalescing (`TypingGate`), the bus record,
 * and the client core's side (who is typing with expiry, when this user's typing is told, the
 * words), through `ChatSession` with the fake server and clock.
 */

import assert from "node:assert/strict";
import { decodeDelivery, encodeDelivery, RecordError } from "../bus/kafka/records.ts";
import { ChatSession } from "../client/core/chat_session.ts";
import { ChatError, type ChatUser } from "../client/core/model.ts";
import {
  TYPING_IDLE_MS,
  TYPING_REFRESH_MS,
  TypingBoard,
  typingText,
  Typist,
} from "../client/core/typing.ts";
import { TypingGate } from "../server/typing_gate.ts";
import { ann, ben, FakeChatServer, FakeClock, inRoom, tick } from "./fake_chat_transport.ts";

const gate = (maxEntries?: number) =>
  new TypingGate({
    refreshMs: 2500,
    restartMs: 1000,
    expiresMs: 6000,
    ...(maxEntries ? { maxEntries } : {}),
  });

Deno.test("gate: a true goes on at most once per refresh while it stays true; a false only after a true", () => {
  const g = gate();
  assert.equal(
    g.pass("alice", "r", false, 0),
    false,
    "a false with no true before: nothing to end",
  );
  assert.equal(g.pass("alice", "r", true, 0), true);
  for (let t = 1; t < 2500; t += 100) assert.equal(g.pass("alice", "r", true, t), false);
  assert.equal(g.pass("alice", "r", true, 2500), true, "the refresh, before receivers expire it");
  assert.equal(g.pass("bob", "r", true, 2500), true, "another user counts on their own");
  assert.equal(g.pass("alice", "other", true, 2500), true, "another room counts on its own");
  assert.equal(g.pass("alice", "r", false, 2600), true, "the stop goes at once");
  assert.equal(g.pass("alice", "r", false, 2700), false, "and once");
  assert.equal(g.pass("alice", "r", true, 2800), false, "typing again within a second waits");
  assert.equal(g.pass("alice", "r", true, 3500), true, "then shows");
});

Deno.test("gate: a flood costs one entry and reaches the bus at most twice a second", () => {
  const g = gate();
  let passed = 0;
  // 100 000 calls in 5 s, typing and not in turn.
  for (let i = 0; i < 100_000; i++) {
    if (g.pass("mallory", "r", i % 2 === 0, i / 20)) passed++;
  }
  assert.equal(passed, 5 * 2, "one true and one false per second: the rest were coalesced");
  assert.equal(g.size, 1);
});

Deno.test("gate: expired entries go; the oldest goes past the bound", () => {
  const g = gate();
  g.pass("alice", "a", true, 0);
  g.pass("alice", "b", true, 10);
  assert.equal(g.size, 2);
  g.pass("bob", "c", true, 6005);
  assert.equal(g.size, 2, "alice's first true expired at the receivers, and here");
  assert.equal(g.pass("alice", "a", false, 6005), false, "an expired true needs no false");
  const small = gate(3);
  for (let i = 0; i < 10; i++) small.pass(`u${i}`, "r", true, i);
  assert.equal(small.size, 3);
});

Deno.test("gate: the end of a user's streams ends their typing in every room, once", () => {
  const g = gate();
  g.pass("alice", "a", true, 0);
  g.pass("alice", "b", true, 0);
  g.pass("bob", "a", true, 0);
  assert.deepEqual(g.end("alice", 100).sort(), ["a", "b"]);
  assert.deepEqual(g.end("alice", 100), []);
  assert.equal(g.pass("bob", "a", false, 100), true, "bob is still typing");
  assert.deepEqual(g.end("carol", 100), []);
});

Deno.test("a typing delivery round-trips through its record; a bad one is refused clearly", () => {
  const delivery = {
    type: "typing" as const,
    event: {
      room: "book-club",
      userId: "alice",
      displayName: "Alice",
      typing: true,
      expiresInMs: 6000,
    },
  };
  const text = encodeDelivery(delivery);
  assert.deepEqual(JSON.parse(text), {
    type: "typing",
    room: "book-club",
    user_id: "alice",
    display_name: "Alice",
    typing: true,
    expires_in_ms: 6000,
  });
  assert.deepEqual(decodeDelivery(text), delivery);
  assert.throws(
    () => decodeDelivery('{"type":"typing","room":"r","user_id":"","typing":true}'),
    (err) => err instanceof RecordError && /"user_id" is empty/.test(err.message),
  );
  assert.throws(
    () => decodeDelivery('{"type":"typing","room":"r","user_id":"a","typing":"yes"}'),
    /"typing" must be true or false/,
  );
  assert.throws(
    () =>
      decodeDelivery('{"type":"typing","room":"r","user_id":"a","typing":true,"expires_in_ms":-1}'),
    /"expires_in_ms" must be a whole number/,
  );
});

Deno.test("the words: one, two, several typers", () => {
  const u = (id: string, displayName = id): ChatUser => ({ id, displayName });
  assert.equal(typingText([]), "");
  assert.equal(typingText([u("alice")]), "alice is typing…");
  assert.equal(typingText([u("alice"), u("ben", "Ben B")]), "alice and Ben B are typing…");
  assert.equal(typingText([u("a"), u("b"), u("c")]), "several people are typing…");
});

Deno.test("board: a typer goes by itself when the expiry passes, unless refreshed", () => {
  const clock = new FakeClock();
  const changes: string[] = [];
  const board = new TypingBoard(clock, (room) => changes.push(room));
  const typing = (expiresInMs: number, user = ben) => ({
    room: "r",
    user,
    typing: true,
    expiresInMs,
  });
  board.seen(typing(6000));
  assert.deepEqual(board.typers("r"), [ben]);
  clock.advance(5000);
  board.seen(typing(6000));
  assert.deepEqual(changes, ["r"], "a refresh changes nothing shown");
  clock.advance(5000);
  assert.deepEqual(board.typers("r"), [ben], "the refresh moved the expiry");
  clock.advance(1000);
  assert.deepEqual(board.typers("r"), []);
  assert.deepEqual(changes, ["r", "r"]);
  board.seen(typing(999_999_999));
  clock.advance(30_000);
  assert.deepEqual(board.typers("r"), [], "a server cannot make it stay for ever");
  board.seen(typing(6000));
  board.seen({ ...typing(0), typing: false });
  assert.deepEqual(board.typers("r"), []);
  board.seen(typing(6000));
  board.clear();
  assert.equal(clock.pending, 0, "no timer left behind");
});

Deno.test("typist: tells typing once per refresh while keys come, and stopped on send, clear or idle", () => {
  const clock = new FakeClock();
  const told: string[] = [];
  const typist = new Typist(clock, (room, typing) => told.push(`${room} ${typing}`));
  typist.draft("r", "h");
  typist.draft("r", "he");
  clock.advance(TYPING_REFRESH_MS - 1);
  typist.draft("r", "hel");
  clock.advance(1);
  typist.draft("r", "hell");
  assert.deepEqual(told, ["r true", "r true"]);
  typist.draft("r", "");
  assert.deepEqual(told.at(-1), "r false", "the line was sent (or cleared)");
  typist.draft("r", "   ");
  assert.equal(told.length, 3, "blanks are not typing");
  typist.draft("r", "x");
  typist.draft("other", "y");
  assert.deepEqual(told.slice(3), ["r true", "r false", "other true"], "a room switch stops first");
  clock.advance(TYPING_IDLE_MS);
  assert.deepEqual(told.at(-1), "other false", "idle for a while: stopped");
  assert.equal(clock.pending, 0);
});

Deno.test("session: typers of each room come from the stream, not ourselves, and go when their message arrives", async () => {
  const server = new FakeChatServer();
  const clock = new FakeClock();
  const seen: string[] = [];
  const session = new ChatSession({
    user: ann,
    connect: () => server.transport(),
    password: "a long password",
    clock,
    onTyping: (room, users) => seen.push(`${room}: ${typingText(users)}`),
  });
  session.start();
  await tick();
  server.last.open();
  const typing = (user: ChatUser, on = true) => ({
    type: "typing" as const,
    event: { room: "book-club", user, typing: on, expiresInMs: 6000 },
  });
  server.last.emit(typing(ann));
  server.last.emit(typing(ben));
  assert.deepEqual(session.typers("book-club"), [ben]);
  server.last.emit({ type: "message", message: inRoom("book-club", 1) });
  assert.deepEqual(session.typers("book-club"), []);
  assert.deepEqual(seen, ["book-club: ben is typing…", "book-club: "]);

  session.typing("book-club", "hello");
  session.typing("book-club", "hello!");
  session.typing("book-club", "");
  await tick();
  assert.deepEqual(server.typings, [
    { room: "book-club", typing: true },
    { room: "book-club", typing: false },
  ]);
  session.stop();
  assert.equal(clock.pending, 0, "no timer left behind");
});

Deno.test("session: typing is not told while offline, nor again to a server without SetTyping", async () => {
  const server = new FakeChatServer();
  const clock = new FakeClock();
  const session = new ChatSession({
    user: ann,
    connect: () => server.transport(),
    password: "a long password",
    clock,
  });
  session.typing("general", "before the start");
  session.typing("general", "");
  session.start();
  await tick();
  server.last.open();
  await tick();
  assert.deepEqual(server.typings, []);
  server.callError = new ChatError("UNIMPLEMENTED", "Method not found: chat.Broadcast/SetTyping");
  session.typing("general", "a");
  await tick();
  server.callError = undefined;
  clock.advance(TYPING_REFRESH_MS);
  session.typing("general", "ab");
  session.typing("general", "");
  await tick();
  assert.deepEqual(server.typings, [], "a classic server is not asked again");
  session.stop();
});
