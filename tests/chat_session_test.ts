/**
 * The client core (client/core/chat_session.ts) as the terminal uses it (a transport per
 * attempt, a password) on the shared fake server and clock: the reconnect backoff, resume
 * positions, no gap and no repeat across a reconnect, the outbox's retry with the same message
 * id, signing in again, moving between endpoints, every replaced transport closed, calls going
 * to the attempt under way or, between attempts, refused in words, and errors surfaced with the
 * server's words.
 */

import assert from "node:assert/strict";
import { Reading } from "../client/core/reading.ts";
import { backoffDelay } from "../client/core/backoff.ts";
import { ChatSession } from "../client/core/chat_session.ts";
import { ChatError } from "../client/core/model.ts";
import type {
  ChatSessionOptions,
  ConnectionStatus,
  SignInEvent,
} from "../client/core/session_options.ts";
import { ann, FakeChatServer, FakeClock, inRoom, tick } from "./fake_chat_transport.ts";

function setup(options: Partial<ChatSessionOptions> = {}, endpoints = ["a"]) {
  const servers = new Map(endpoints.map((e) => [e, new FakeChatServer()]));
  const clock = new FakeClock();
  const statuses: ConnectionStatus[] = [];
  const shown: string[] = [];
  const signIns: SignInEvent[] = [];
  const notSent: string[] = [];
  const connected: string[] = [];
  const session = new ChatSession({
    user: ann,
    endpoints,
    connect: (endpoint) => {
      connected.push(endpoint);
      return servers.get(endpoint)!.transport();
    },
    password: "a long password",
    clock,
    backoff: { baseMs: 1000, maxMs: 8000, jitter: 0.2, stableAfterMs: 5000 },
    onStatus: (s) => statuses.push(s),
    onMessage: (m) => shown.push(m.content),
    onSignIn: (e) => signIns.push(e),
    onNotSent: (m, err) => notSent.push(`${m.content}: ${(err as Error).message}`),
    ...options,
  });
  const server = servers.get(endpoints[0]!)!;
  return { servers, server, clock, statuses, shown, signIns, notSent, connected, session };
}

Deno.test("backoff: doubles from the base to the cap; jitter only shortens; no overflow", () => {
  const options = { baseMs: 500, maxMs: 8000, jitter: 0.5 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 10].map((n) => backoffDelay(n, options, () => 0)),
    [500, 1000, 2000, 4000, 8000, 8000, 8000],
  );
  assert.equal(backoffDelay(3, options, () => 1), 1000, "at most half taken off");
  assert.equal(backoffDelay(1000, options, () => 0), 8000, "no overflow for large attempts");
});

Deno.test("reconnects with growing delays while the server is down, and resets once healthy", async () => {
  const { server, clock, statuses, session } = setup();
  session.start();
  await tick();
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    server.last.fail(new ChatError("UNAVAILABLE", "connection refused"));
    await tick();
    const status = statuses.at(-1)!;
    assert.equal(status.kind, "reconnecting");
    if (status.kind !== "reconnecting") return;
    assert.equal(status.reason, "connection refused", "the transport's words");
    assert.equal(status.wasConnected, false);
    delays.push(status.delayMs);
    clock.advance(status.delayMs);
    await tick();
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000]);
  server.last.open();
  assert.equal(statuses.at(-1)?.kind, "connected");
  clock.advance(5000);
  server.last.fail(new ChatError("UNAVAILABLE", "Stream closed: the server is shutting down"));
  await tick();
  const status = statuses.at(-1)!;
  assert.ok(status.kind === "reconnecting" && status.delayMs === 1000 && status.wasConnected);
  session.stop();
  assert.equal(clock.pending, 0, "no timer left behind");
  assert.deepEqual(statuses.at(-1), { kind: "stopped" });
});

Deno.test("resume: rooms start where ListRooms says; a reconnect leaves no gap and shows nothing twice", async () => {
  const { server, clock, shown, session } = setup();
  server.rooms.push({ id: "design", direct: false, members: ["ann"], lastSeq: 7 });
  session.start();
  await tick();
  assert.deepEqual(server.last.resume, [
    { room: "general", lastSeq: 0 },
    { room: "design", lastSeq: 7 },
  ], "the first stream already resumes: nothing sent before it opened is missed");
  server.last.open();
  server.last.emit({ type: "message", message: inRoom("design", 7, "before the session") });
  server.last.emit({ type: "message", message: inRoom("general", 1) });
  server.last.emit({ type: "message", message: inRoom("design", 8) });
  server.last.fail(new ChatError("UNAVAILABLE", "gone"));
  await tick();
  clock.advance(1000);
  await tick();
  assert.deepEqual(server.last.resume, [
    { room: "general", lastSeq: 1 },
    { room: "design", lastSeq: 8 },
  ]);
  server.last.open();
  // The replay overlaps what was shown; then what was missed, in order.
  for (const m of [inRoom("general", 1), inRoom("general", 2), inRoom("design", 8)]) {
    server.last.emit({ type: "message", message: m });
  }
  server.last.emit({ type: "message", message: inRoom("design", 9) });
  assert.deepEqual(shown, ["general 1", "design 8", "general 2", "design 9"]);
  session.stop();
});

Deno.test("resume: a send the service logged twice, under two positions, is shown once", async () => {
  const { server, clock, shown, session } = setup();
  session.start();
  await tick();
  server.last.open();
  const first = inRoom("general", 3, "retried");
  server.last.emit({ type: "message", message: first });
  // The retry came later than the gateways remember sends: logged again, with a newer position.
  server.last.emit({ type: "message", message: { ...first, seq: 9 } });
  server.last.emit({ type: "message", message: { ...inRoom("general", 10), userId: "carl" } });
  // Another sender's message with the same id is another message.
  server.last.emit({ type: "message", message: { ...first, seq: 11, userId: "carl" } });
  assert.deepEqual(shown, ["retried", "general 10", "retried"]);
  server.last.fail(new ChatError("UNAVAILABLE", "gone"));
  await tick();
  clock.advance(1000);
  await tick();
  assert.deepEqual(server.last.resume, [{ room: "general", lastSeq: 11 }]);
  session.stop();
});

Deno.test("outbox: lines queued offline go once connected, in order; a refusal is reported", async () => {
  const { server, session, notSent } = setup();
  session.start();
  await tick();
  assert.deepEqual(await session.queue("one"), { kind: "waiting", waiting: 1 });
  assert.deepEqual(await session.queue("two", "design"), { kind: "waiting", waiting: 2 });
  server.last.open();
  await tick();
  assert.deepEqual(server.sends.map((s) => [s.content, s.room]), [
    ["one", "general"],
    ["two", "design"],
  ]);
  assert.equal(await session.drain(1000), 0);
  // A refusal is dropped and reported, not retried.
  const limit = "Cannot send message: content is 70000 bytes, the limit is 65536";
  server.sendErrors = [new ChatError("INVALID_ARGUMENT", limit)];
  assert.deepEqual(await session.queue("x".repeat(70000)), { kind: "sending" });
  await tick();
  assert.deepEqual(notSent, [`${"x".repeat(70000)}: ${limit}`]);
  assert.equal(session.queued, 0);
  session.stop();
});

Deno.test("outbox: a send cut with the connection is retried after the reconnect with the same message id", async () => {
  let n = 0;
  const { server, clock, session } = setup({ maxQueued: 2, newMessageId: () => `id-${++n}` });
  session.start();
  await tick();
  server.last.open();
  // The connection goes down while the first send is on its way.
  server.sendHook = async () => {
    server.sendHook = undefined;
    server.last.fail(new ChatError("UNAVAILABLE", "Connection dropped"));
    await tick();
    throw new ChatError("UNAVAILABLE", "Connection dropped");
  };
  assert.deepEqual(await session.queue("hello"), { kind: "sending" });
  await tick(6);
  assert.equal(session.status.kind, "reconnecting");
  assert.equal(session.queued, 1, "kept");
  assert.deepEqual(await session.queue("two"), { kind: "waiting", waiting: 2 });
  assert.deepEqual(await session.queue("three"), { kind: "full", waiting: 2 });
  clock.advance(1000);
  await tick();
  server.last.open();
  await tick();
  assert.deepEqual(server.sends.map((s) => [s.content, s.messageId]), [
    ["hello", "id-1"],
    ["two", "id-2"],
  ], "the retry carries the first try's id, so the server stores it once");
  session.stop();
});

Deno.test("sign-in: a kept token refused by the stream signs in again at once; a refused call once", async () => {
  const { server, clock, statuses, signIns, session } = setup();
  session.start();
  await tick();
  assert.deepEqual(signIns, [{ kind: "signed-in", user: ann, created: true }]);
  assert.equal(server.last.token, "t1");
  server.last.open();
  server.last.fail(new ChatError("UNAVAILABLE", "Connection dropped"));
  await tick();
  clock.advance(1000);
  await tick();
  assert.equal(server.last.token, "t1", "the token is kept");
  assert.equal(server.signIns, 1);
  // The kept token has expired meanwhile.
  server.valid.clear();
  server.last.fail(new ChatError("UNAUTHENTICATED", "Cannot open stream: the token expired"));
  await tick();
  assert.equal(statuses.filter((s) => s.kind === "reconnecting").length, 1, "no backoff");
  assert.equal(server.last.token, "t2");
  server.last.open();
  server.valid.clear();
  await session.send("hi");
  assert.deepEqual(server.sends.map((s) => [s.content, s.token]), [["hi", "t3"]]);
  session.stop();
});

Deno.test("errors: a refusal stops for good with the server's words; a wrong password too", async () => {
  {
    const { server, clock, statuses, session } = setup();
    session.start();
    await tick();
    server.last.fail(new ChatError("INVALID_ARGUMENT", "Cannot open stream: the user id is empty"));
    await tick();
    assert.deepEqual(statuses.at(-1), {
      kind: "stopped",
      error: "Cannot open stream: the user id is empty",
      code: "INVALID_ARGUMENT",
    });
    clock.advance(60_000);
    assert.equal(server.streams.length, 1, "no retry");
  }
  {
    const { server, statuses, session } = setup();
    server.signInError = new ChatError("UNAUTHENTICATED", "Cannot sign in: wrong password for ann");
    session.start();
    await tick();
    assert.deepEqual(statuses.at(-1), {
      kind: "stopped",
      error: "Cannot sign in: wrong password for ann",
      code: "UNAUTHENTICATED",
    });
    assert.equal(server.streams.length, 0);
    assert.deepEqual(server.transports.map((t) => t.closed), [true], "the transport is closed");
  }
  {
    const { server, signIns, session } = setup();
    server.signInError = new ChatError("UNIMPLEMENTED", "The server does not implement SignIn");
    session.start();
    await tick();
    assert.deepEqual(signIns, [{ kind: "classic" }]);
    assert.equal(server.last.token, undefined, "the classic anonymous stream");
    session.stop();
  }
});

Deno.test("endpoints: a failed attempt moves on to the next; the resume goes along", async () => {
  const { servers, clock, statuses, connected, session } = setup({}, ["a", "b"]);
  session.start();
  await tick();
  const a = servers.get("a")!;
  a.last.open();
  a.last.emit({ type: "message", message: inRoom("general", 3) });
  a.last.fail(new ChatError("UNAVAILABLE", "Connection dropped"));
  await tick();
  const status = statuses.at(-1)!;
  assert.ok(status.kind === "reconnecting" && status.endpoint === "a" && status.next === "b");
  clock.advance(1000);
  await tick();
  assert.deepEqual(connected, ["a", "b"]);
  assert.deepEqual(servers.get("b")!.last.resume, [{ room: "general", lastSeq: 3 }]);
  assert.equal(servers.get("b")!.last.token, "t1", "the token goes along too");
  session.stop();
});

Deno.test("transports: the one made for a call before start, and each attempt's, are closed once replaced", async () => {
  const { server, clock, session } = setup();
  await session.send("before start");
  assert.deepEqual(server.sends.map((s) => s.content), ["before start"]);
  session.start();
  await tick();
  assert.deepEqual(server.transports.map((t) => t.closed), [true, false], "no channel leaked");
  server.last.fail(new ChatError("UNAVAILABLE", "Connection dropped"));
  await tick();
  clock.advance(1000);
  await tick();
  assert.deepEqual(server.transports.map((t) => t.closed), [true, true, false]);
  session.stop();
  assert.deepEqual(server.transports.map((t) => t.closed), [true, true, true]);
});

Deno.test("a call between attempts fails at once saying so, not with the closed channel's error", async () => {
  const { server, session } = setup();
  session.start();
  await tick();
  server.last.open();
  server.last.fail(new ChatError("UNAVAILABLE", "Connection dropped"));
  await tick();
  assert.equal(session.status.kind, "reconnecting");
  assert.ok(server.transports.every((t) => t.closed), "the attempt's channel is gone");
  const made = server.transports.length;
  const reconnecting = (action: string) => ({
    name: "ChatError",
    code: "UNAVAILABLE",
    message: `Cannot ${action}: not connected; reconnecting`,
  });
  await assert.rejects(session.send("hi"), reconnecting("send message"));
  await assert.rejects(session.listRooms(), reconnecting("list rooms"));
  await assert.rejects(session.history("general", 20), reconnecting("read history"));
  await assert.rejects(session.joinRoom("design"), reconnecting("join room"));
  assert.equal(server.transports.length, made, "no channel made for the call");
  assert.deepEqual(server.sends, []);
  session.stop();
  await assert.rejects(session.listOnline(), {
    code: "UNAVAILABLE",
    message: "Cannot list who is online: not connected; the session has stopped",
  });
});

Deno.test("a call as an attempt starts goes to that attempt's transport, with the token kept", async () => {
  const asked: { rooms: Promise<unknown>; token: string | undefined }[] = [];
  const { server, clock, session } = setup({
    onStatus: (s) => {
      if (s.kind !== "connecting" || s.attempt !== 2) return;
      asked.push({ rooms: session.listRooms(), token: server.transports.at(-1)!.token });
    },
  });
  session.start();
  await tick();
  server.last.fail(new ChatError("UNAVAILABLE", "Connection dropped"));
  await tick();
  clock.advance(1000);
  await tick();
  assert.equal(asked.length, 1);
  assert.deepEqual(await asked[0]!.rooms, server.rooms);
  assert.equal(asked[0]!.token, "t1");
  session.stop();
});

Deno.test("reading: unread from ListRooms at once, live ones counted, marks sent once each and coalesced, other devices and 'seen' heard", async () => {
  const seen: string[] = [];
  const { server, session } = setup({
    onReading: (rooms) => seen.push(JSON.stringify([...rooms].map(([id, r]) => [id, r.unread]))),
  });
  server.rooms.push(
    { id: "design", direct: false, members: ["ann", "ben"], lastSeq: 7, readSeq: 4, unread: 3 },
    { id: "dm:ann:ben", direct: true, members: ["ann", "ben"], lastSeq: 2, readSeq: 2, unread: 0 },
  );
  session.start();
  await tick();
  assert.deepEqual(
    session.reading("design"),
    { readSeq: 4, unread: 3, mentions: 0, seenSeq: 0 },
    "at once",
  );
  server.last.open();
  server.last.emit({ type: "message", message: inRoom("design", 8) });
  server.last.emit({ type: "message", message: { ...inRoom("design", 9), userId: "ann" } });
  assert.equal(session.reading("design").unread, 4, "ben's counts, ann's own does not");

  // Marked on every message shown: one call at a time, the newest waiting behind it.
  session.markRead("design", 6);
  session.markRead("design", 8);
  session.markRead("design", 9);
  session.markRead("design", 5);
  assert.deepEqual(session.reading("design"), { readSeq: 9, unread: 0, mentions: 0, seenSeq: 0 });
  await tick();
  assert.deepEqual(server.marks, [["design", 6], ["design", 9]]);

  // Another device of ann's read further; ben saw ann's direct message.
  server.last.emit({ type: "message", message: inRoom("design", 10) });
  assert.equal(session.reading("design").unread, 1);
  server.last.emit({ type: "read", room: "design", user: ann, seq: 10 });
  assert.equal(session.reading("design").unread, 0);
  server.last.emit({
    type: "read",
    room: "dm:ann:ben",
    user: { id: "ben", displayName: "ben" },
    seq: 2,
  });
  assert.equal(session.reading("dm:ann:ben").seenSeq, 2);
  server.last.emit({
    type: "read",
    room: "design",
    user: { id: "ben", displayName: "ben" },
    seq: 10,
  });
  assert.equal(session.reading("design").seenSeq, 0, "'seen' only in direct rooms");
  // A message that mentions ann counts apart too, until she reads past it.
  server.last.emit({ type: "message", message: { ...inRoom("design", 11), mentions: ["ann"] } });
  server.last.emit({ type: "message", message: { ...inRoom("design", 12), mentions: ["cat"] } });
  assert.deepEqual(
    [session.reading("design").unread, session.reading("design").mentions],
    [2, 1],
  );
  session.markRead("design", 11);
  assert.deepEqual(
    [session.reading("design").unread, session.reading("design").mentions],
    [1, 0],
  );
  assert.ok(seen.length > 0, "the view heard of the changes");
  session.stop();
});

Deno.test("reading: a mark made while offline goes once the connection is back", async () => {
  const { server, clock, session } = setup();
  server.rooms.push({
    id: "design",
    direct: false,
    members: ["ann"],
    lastSeq: 3,
    readSeq: 0,
    unread: 3,
  });
  session.start();
  await tick();
  server.last.open();
  server.last.fail(new ChatError("UNAVAILABLE", "gone"));
  await tick();
  session.markRead("design", 3);
  await tick();
  assert.deepEqual(server.marks, [], "not connected");
  assert.equal(session.reading("design").unread, 0, "read here at once");
  clock.advance(1000);
  await tick();
  assert.equal(session.reading("design").unread, 0, "the listing does not undo what is on its way");
  assert.deepEqual(server.marks, [["design", 3]]);
  session.stop();
});

Deno.test("reading: a room listing read before a live message was stored does not drop it from the count", () => {
  const reading = new Reading(() => "ann");
  const design = { id: "design", direct: false, members: [], lastSeq: 7, readSeq: 7, unread: 0 };
  reading.listed([design]);
  reading.message({ ...inRoom("design", 8), mentions: ["ann"] });
  assert.deepEqual([reading.get("design").unread, reading.get("design").mentions], [1, 1]);
  // The answer to a ListRooms asked before message 8 was stored arrives after the message.
  reading.listed([design]);
  assert.deepEqual([reading.get("design").unread, reading.get("design").mentions], [1, 1]);
  // A listing that counted it already does not count it twice.
  reading.listed([{ ...design, lastSeq: 8, unread: 1, mentions: 1 }]);
  assert.deepEqual([reading.get("design").unread, reading.get("design").mentions], [1, 1]);
});

Deno.test("directory: the search goes to the server; a topic set is in the rooms at once", async () => {
  const lists: (readonly { id: string; topic?: string }[])[] = [];
  const { server, session } = setup({ onRooms: (rooms) => lists.push(rooms) });
  session.start();
  await tick();
  server.last.open();
  await tick();
  await session.joinRoom("design");
  await session.listRooms(true, "Sci-fi");
  await session.listRooms(true);
  assert.deepEqual(server.directoryQueries, ["Sci-fi", ""]);
  const set = await session.setTopic("design", "Mock-ups first");
  assert.equal(set.topic, "Mock-ups first");
  assert.equal(lists.at(-1)!.find((r) => r.id === "design")?.topic, "Mock-ups first");
  session.stop();
});

Deno.test("blocking: the list is asked for at each connection and after each block, without case", async () => {
  const lists: string[][] = [];
  const { server, session } = setup({ onBlocked: (users) => lists.push([...users]) });
  server.blocked = ["cat"];
  session.start();
  await tick();
  server.last.open();
  await tick();
  assert.deepEqual(session.blocked, ["cat"]);
  assert.ok(session.isBlocked("CAT"));
  assert.deepEqual(await session.block("ben"), ["ben", "cat"]);
  assert.deepEqual(await session.block("cat", false), ["ben"]);
  assert.equal(session.isBlocked("cat"), false);
  await session.listBlocked(); // unchanged: not told again
  assert.deepEqual(lists, [["cat"], ["ben", "cat"], ["ben"]]);
  session.stop();
});

Deno.test("moderation: calls reach the server; kept events come with history, a role change lists the rooms again", async () => {
  const events: [string, string][] = [];
  const lists: (readonly { id: string; moderators?: readonly string[] }[])[] = [];
  const { server, session } = setup({
    onRoomEvent: (event, source) =>
      events.push([
        source,
        `${event.action ?? (event.joined ? "joined" : "left")} ${event.user.id}`,
      ]),
    onRooms: (rooms) => lists.push(rooms),
  });
  session.start();
  await tick();
  server.last.open();
  await tick();
  await session.joinRoom("design");
  const made = await session.setRole("design", "ben", "moderator");
  assert.deepEqual(made.moderators, ["ben"]);
  assert.deepEqual(lists.at(-1)!.find((r) => r.id === "design")?.moderators, ["ben"]);
  await session.muteMember("design", "carl", 600);
  await session.muteMember("design", "carl", 0);
  await session.removeMember("design", "carl");
  assert.deepEqual(server.moderation, [
    "SetRole design ben moderator",
    "MuteMember design carl 600",
    "MuteMember design carl 0",
    "RemoveMember design carl",
  ]);

  const ben = { id: "ben", displayName: "Ben" };
  server.roomEvents.set("design", [{ room: "design", user: ben, joined: false, at: new Date(1) }]);
  await session.loadHistory("design", 20);
  const listed = lists.length;
  server.last.emit({
    type: "room",
    event: {
      room: "design",
      user: ben,
      joined: true,
      action: "role",
      detail: "member",
      at: undefined,
    },
  });
  for (let i = 0; i < 10 && lists.length === listed; i++) await tick();
  assert.ok(lists.length > listed, "the rooms are listed again");
  assert.deepEqual(events, [["history", "left ben"], ["live", "role ben"]]);
  session.stop();
});

Deno.test("invitations: asked on connect, again when one comes live, dropped on join and decline", async () => {
  const lists: string[][] = [];
  const actions: string[] = [];
  const { server, session } = setup({
    onInvitations: (rooms) => lists.push(rooms.map((r) => r.id)),
    onRoomAction: (event) => actions.push(`${event.actor.id} ${event.action} ${event.room}`),
  });
  server.invitations = [{
    id: "plans",
    direct: false,
    members: ["ann"],
    lastSeq: 0,
    invited: true,
  }];
  session.start();
  await tick();
  server.last.open();
  await tick();
  assert.deepEqual(session.invitations.map((r) => r.id), ["plans"], "asked on connect");
  server.invitations = [
    { id: "picnic", direct: false, members: ["bob"], lastSeq: 0, invited: true },
    ...server.invitations,
  ];
  const ben = { id: "ben", displayName: "Ben" };
  server.last.emit({
    type: "room-action",
    event: { room: "picnic", action: "invited", user: ben, actor: ben, detail: "", at: undefined },
  });
  const me = session.user;
  server.last.emit({
    type: "room-action",
    event: { room: "picnic", action: "invited", user: me, actor: ben, detail: "", at: undefined },
  });
  await tick();
  assert.deepEqual(actions, ["ben invited picnic", "ben invited picnic"]);
  assert.deepEqual(session.invitations.map((r) => r.id), ["picnic", "plans"], "asked again");
  await session.joinRoom("picnic");
  assert.deepEqual(session.invitations.map((r) => r.id), ["plans"], "used up");
  await session.leaveRoom("plans");
  assert.deepEqual(lists.at(-1), [], "declined");
  // A change of access of one of my rooms shows in my rooms; nobody left.
  server.last.emit({
    type: "room-action",
    event: {
      room: "picnic",
      action: "invite-only",
      user: ben,
      actor: ben,
      detail: "",
      at: undefined,
    },
  });
  assert.equal(session.rooms.find((r) => r.id === "picnic")?.inviteOnly, true);
  session.stop();
});
