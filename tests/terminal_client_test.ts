/** The terminal client's logic: formatting, backoff, arguments, and the session with fakes and in-process. */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Message,
  MessageSchema,
  type Room,
  RoomSchema,
  type SeenByList,
  SeenByListSchema,
  type User,
  UserSchema,
} from "../protocol/gen/chat_pb.ts";
import type { MessageStream, SignedIn, StreamOptions } from "../client/chat_client.ts";
import { DEFAULT_SERVER, parseArguments } from "../client/arguments.ts";
import { HELP } from "../client/commands.ts";
import { backoffDelay } from "../client/core/backoff.ts";
import type { Clock } from "../client/core/clock.ts";
import type { ChatMessage } from "../client/core/model.ts";
import { toChatMessage } from "../client/core/wire.ts";
import {
  formatDelay,
  formatMessage,
  formatPresence,
  formatRoomEvent,
  formatTime,
  sanitize,
} from "../client/format.ts";
import { type NativeChat, shorten } from "../client/grpc_transport.ts";
import {
  runTerminalClient,
  TERMINAL_BACKOFF,
  type TerminalClientOptions,
} from "../client/terminal_client.ts";
import { readLines } from "../client/terminal_io.ts";
import { startSystem, waitFor } from "./helpers.ts";

// --- formatting ------------------------------------------------------------

type MessageFields =
  & Omit<Exclude<MessageInitShape<typeof MessageSchema>, Message>, "seq">
  & { seq?: number };

/** A message on the wire whose timestamp is 15:04:05 local time. */
function message(fields: MessageFields = {}): Message {
  return create(MessageSchema, {
    id: "alice",
    content: "Hello World!",
    timestamp: timestampFromDate(new Date(2024, 0, 2, 15, 4, 5, 678)),
    messageId: "m1",
    room: "general",
    displayName: "alice",
    ...fields,
    seq: BigInt(fields.seq ?? 1),
  });
}

/** The same message as the client shows it. */
function shown(fields: MessageFields = {}): ChatMessage {
  return toChatMessage(message(fields));
}

Deno.test("a chat message prints as [hh:mm:ss] user: text in local time", () => {
  assert.equal(formatMessage(shown()), "[15:04:05] alice: Hello World!");
  assert.equal(formatMessage(shown({ displayName: "" })), "[15:04:05] alice: Hello World!");
  assert.equal(
    formatMessage(shown({ displayName: "Alice Smith", content: "hi" })),
    "[15:04:05] Alice Smith (alice): hi",
  );
  assert.equal(formatTime(new Date(2024, 5, 6, 7, 8, 9)), "07:08:09");
});

Deno.test("a message without a timestamp shows the local clock; another room is named", () => {
  const now = new Date(2024, 0, 2, 9, 30, 0).getTime();
  assert.equal(
    formatMessage(shown({ timestamp: undefined }), now),
    "[09:30:00] alice: Hello World!",
  );
  assert.equal(formatMessage(shown({ room: "" })), "[15:04:05] alice: Hello World!");
  assert.equal(
    formatMessage(shown({ room: "random" })),
    "[15:04:05] #random alice: Hello World!",
  );
});

Deno.test("multi-line content is indented under the first line; control characters are shown", () => {
  assert.equal(
    formatMessage(shown({ content: "one\ntwo\r\nthree" })),
    "[15:04:05] alice: one\n" +
      "                  two\n" +
      "                  three",
  );
  assert.equal(
    sanitize("red \x1b[31m bell \x07 del \x7f tab\tok"),
    "red ^[[31m bell ^G del ^? tab\tok",
  );
  assert.equal(
    formatMessage(shown({ id: "ev\x1bil", displayName: "" })).slice(11),
    "ev^[il: Hello World!",
  );
});

Deno.test("a message that mentions me starts with » ; my own and others' mentions do not", () => {
  const toBen = shown({ content: "@ben look\nhere", mentions: ["ben", "cat"] });
  assert.equal(
    formatMessage(toBen, 0, "general", "ben"),
    "» [15:04:05] alice: @ben look\n" +
      "                    here",
  );
  assert.equal(
    formatMessage(toBen, 0, "general", "dan"),
    "[15:04:05] alice: @ben look\n" +
      "                  here",
  );
  assert.equal(
    formatMessage(shown({ content: "@alice", mentions: ["alice"] }), 0, "general", "alice"),
    "[15:04:05] alice: @alice",
  );
});

Deno.test("presence events print as * user is online / went offline", () => {
  const bob = (displayName = "bob") => ({ id: "bob", displayName });
  assert.equal(formatPresence(bob(), true), "* bob is online");
  assert.equal(formatPresence(bob(), false), "* bob went offline");
  assert.equal(formatPresence(bob("Bob B"), true), "* Bob B (bob) is online");
});

Deno.test("room events print as * user joined/left #room; general is named from another room", () => {
  const event = (joined: boolean) => ({
    room: "book-club",
    user: { id: "bob", displayName: "bob" },
    joined,
    at: undefined,
  });
  assert.equal(formatRoomEvent(event(true)), "* bob joined #book-club");
  assert.equal(formatRoomEvent(event(false)), "* bob left #book-club");
  assert.equal(formatRoomEvent({ ...event(true), created: true }), "* bob created #book-club");
  assert.equal(formatMessage(shown(), 0, "general"), "[15:04:05] alice: Hello World!");
  assert.equal(formatMessage(shown(), 0, "book-club"), "[15:04:05] #general alice: Hello World!");
  assert.equal(
    formatMessage(shown({ room: "book-club" }), 0, "book-club"),
    "[15:04:05] #book-club alice: Hello World!",
  );
  for (const command of ["/rooms", "/create", "/join", "/leave", "/dm", "/room", "/history"]) {
    assert.match(HELP, new RegExp(`^  ${command} `, "m"), `${command} in the help`);
  }
});

Deno.test("the backoff grows, is bounded, and its jitter only shortens it", () => {
  const none = () => 0;
  const full = () => 1;
  // After 1, 2, ... failures in a row.
  const delay = (failures: number, random: () => number) =>
    backoffDelay(failures, TERMINAL_BACKOFF, random);
  const schedule = Array.from({ length: 8 }, (_, i) => delay(i + 1, none));
  assert.deepEqual(schedule, [1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]);
  for (let i = 0; i < 40; i++) {
    const base = schedule[Math.min(i, 7)]!;
    const jittered = delay(i + 1, Math.random);
    assert.ok(jittered <= base && jittered >= base * 0.8, `${jittered} for attempt ${i}`);
    assert.ok(delay(i + 1, full) >= 800, "never spins");
  }
  assert.equal(delay(1000, none), 15000, "no overflow on long outages");
  assert.equal(formatDelay(1000), "1s");
  assert.equal(formatDelay(850), "0.9s");
  assert.equal(formatDelay(15000), "15s");
});

Deno.test("grpc-js connection errors are shortened to something a user can read", () => {
  assert.equal(
    shorten(
      "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ",
    ),
    "connection refused",
  );
  assert.equal(
    shorten("Stream closed: the server is shutting down; reconnect"),
    "Stream closed: the server is shutting down; reconnect",
  );
});

Deno.test("arguments: user, --server, --name, CHAT_SERVER and the default", () => {
  assert.deepEqual(parseArguments(["alice"]), { userId: "alice", servers: [DEFAULT_SERVER] });
  assert.deepEqual(parseArguments(["alice"], { CHAT_SERVER: "10.0.0.1:9000" }), {
    userId: "alice",
    servers: ["10.0.0.1:9000"],
  });
  assert.deepEqual(
    parseArguments(["alice", "--server", "h:1", "--name", "Alice Smith"], { CHAT_SERVER: "x:2" }),
    { userId: "alice", servers: ["h:1"], displayName: "Alice Smith" },
  );
  assert.deepEqual(parseArguments(["--server=h:1", "bob"]), { userId: "bob", servers: ["h:1"] });
  assert.deepEqual(parseArguments(["bob", "--password-file", "/tmp/pw"]), {
    userId: "bob",
    servers: [DEFAULT_SERVER],
    passwordFile: "/tmp/pw",
  });
  assert.deepEqual(parseArguments(["bob", "--server", " a:1, b:2 ,"]), {
    userId: "bob",
    servers: ["a:1", "b:2"],
  });
  assert.deepEqual(parseArguments(["bob"], { CHAT_SERVER: "a:1,b:2" }), {
    userId: "bob",
    servers: ["a:1", "b:2"],
  });
  assert.deepEqual(parseArguments(["-h"]), { help: true });
  assert.deepEqual(parseArguments([]), { error: "the user id is missing" });
  assert.deepEqual(parseArguments([" "]), { error: "the user id is empty" });
  assert.deepEqual(parseArguments(["a", "--server"]), { error: "--server needs a value" });
  assert.deepEqual(parseArguments(["a", "--bogus"]), { error: "unknown option --bogus" });
  assert.deepEqual(parseArguments(["a", "b"]), { error: 'unexpected argument "b"' });
});

Deno.test("readLines splits chunks into lines, whatever the chunk boundaries", async () => {
  const bytes = new TextEncoder().encode("héllo\r\nwor");
  const chunks = [
    bytes.slice(0, 2),
    bytes.slice(2, 9),
    bytes.slice(9),
    new TextEncoder().encode("ld\n\nlast"),
  ];
  const lines: string[] = [];
  for await (const line of readLines(ReadableStream.from(chunks))) lines.push(line);
  assert.deepEqual(lines, ["héllo", "world", "", "last"]);
});

// --- the session, with fakes ------------------------------------------------

/** Lines typed by a test; `end()` is Ctrl-D. */
class Keyboard implements AsyncIterable<string> {
  #lines: string[] = [];
  #ended = false;
  #wake: (() => void) | undefined;
  type(...lines: string[]): void {
    this.#lines.push(...lines);
    this.#wake?.();
  }
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<string> {
    while (true) {
      if (this.#lines.length > 0) yield this.#lines.shift()!;
      else if (this.#ended) return;
      else await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }
}

function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: undefined! });
}

const REFUSED =
  "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ";

const room = (id: string, members: string[] = [], lastSeq = 0): Room =>
  create(RoomSchema, { id, direct: id.startsWith("dm:"), members, lastSeq: BigInt(lastSeq) });

const user = (id: string): User => create(UserSchema, { id, displayName: id });

/**
 * One fake connection: `up` false means every call fails at once, like a refused connection.
 * Accounts: `signInError` refuses the sign-in; `created` says the sign-in made the account.
 */
class FakeChat implements NativeChat {
  onMessage: ((m: Message) => void) | undefined;
  onEnd: ((e?: ServiceError) => void) | undefined;
  cancelled = false;
  closed = false;
  token: string | undefined;
  readonly sent: string[] = [];
  /** Each send as `room|text` (room "" for general) with the token it carried. */
  readonly sends: { room: string; text: string; token: string | undefined }[] = [];
  sendError: ServiceError | undefined;
  streamError: ServiceError | undefined;
  signInError: ServiceError | undefined;
  created = false;
  readonly signIns: string[] = [];
  /** The token the stream was opened with, and its options. */
  streamToken: string | undefined;
  streamOptions: StreamOptions | undefined;
  /** What ListRooms answers (also used by the room commands). */
  rooms: Room[] = [room("general")];
  /** Room calls, as `CreateRoom book-club`. */
  readonly calls: string[] = [];
  callError: ServiceError | undefined;
  historyPage: { messages: Message[]; more: boolean; events: Message[] } = {
    messages: [],
    more: false,
    events: [],
  };
  online: User[] = [];
  #rejectReady: ((e: Error) => void) | undefined;

  constructor(readonly up: boolean, readonly tokenPrefix = "token") {}

  stream(
    userId: string,
    onMessage: (m: Message) => void,
    onEnd: (e?: ServiceError) => void,
    options?: StreamOptions,
  ): MessageStream {
    this.onMessage = onMessage;
    this.streamToken = this.token;
    this.streamOptions = options;
    let ended = false;
    this.onEnd = (e) => {
      if (!ended) (ended = true, onEnd(e));
    };
    if (!this.up) {
      queueMicrotask(() => this.onEnd!(grpcError(status.UNAVAILABLE, REFUSED)));
    } else if (this.streamError) {
      const error = this.streamError;
      queueMicrotask(() => this.onEnd!(error));
    } else {
      this.online.push(user(userId));
    }
    return {
      call: {} as MessageStream["call"],
      cancel: () => {
        this.cancelled = true;
        this.onEnd!(grpcError(status.CANCELLED, "Cancelled on client"));
      },
    };
  }
  send(_userId: string, content: string, options: { room?: string } = {}): Promise<void> {
    if (this.sendError) return Promise.reject(this.sendError);
    this.sent.push(content);
    this.sends.push({ room: options.room ?? "", text: content, token: this.token });
    return Promise.resolve();
  }
  signIn(username: string, password: string): Promise<SignedIn> {
    if (!this.up) return Promise.reject(grpcError(status.UNAVAILABLE, REFUSED));
    this.signIns.push(`${username}/${password}`);
    if (this.signInError) return Promise.reject(this.signInError);
    this.token = `${this.tokenPrefix}-${this.signIns.length}`;
    return Promise.resolve({
      token: this.token,
      user: user(username),
      created: this.created,
      expiresAt: undefined,
    });
  }
  #room<T>(call: string, answer: () => T): Promise<T> {
    if (!this.up) return Promise.reject(grpcError(status.UNAVAILABLE, REFUSED));
    this.calls.push(call);
    if (this.callError) return Promise.reject(this.callError);
    return Promise.resolve(answer());
  }
  createRoom(id: string): Promise<Room> {
    return this.#room(`CreateRoom ${id}`, () => room(id, ["alice"]));
  }
  joinRoom(id: string): Promise<Room> {
    return this.#room(`JoinRoom ${id}`, () => room(id, ["bob", "alice"], 7));
  }
  leaveRoom(id: string): Promise<void> {
    return this.#room(`LeaveRoom ${id}`, () => undefined);
  }
  listRooms(all = false, query = ""): Promise<Room[]> {
    return this.#room(`ListRooms ${all}${query ? ` ${query}` : ""}`, () => [...this.rooms]);
  }
  setTopic(id: string, topic: string): Promise<Room> {
    return this.#room(`SetTopic ${id} ${topic}`, () => ({ ...room(id, ["alice"]), topic }));
  }
  setRole(id: string, userId: string, role: string): Promise<Room> {
    return this.#room(`SetRole ${id} ${userId} ${role}`, () => room(id, ["alice", userId]));
  }
  removeMember(id: string, userId: string): Promise<void> {
    return this.#room(`RemoveMember ${id} ${userId}`, () => undefined);
  }
  muteMember(id: string, userId: string, seconds: number): Promise<void> {
    return this.#room(`MuteMember ${id} ${userId} ${seconds}`, () => undefined);
  }
  setRoomAccess(id: string, inviteOnly: boolean): Promise<Room> {
    return this.#room(
      `SetRoomAccess ${id} ${inviteOnly}`,
      () => ({ ...room(id, ["alice"]), inviteOnly }),
    );
  }
  invite(id: string, userId: string): Promise<void> {
    return this.#room(`Invite ${id} ${userId}`, () => undefined);
  }
  /** What ListRooms with invitations answers: asked on every connect, so not in `calls`. */
  invitations: Room[] = [];
  listInvitations(): Promise<Room[]> {
    if (!this.up) return Promise.reject(grpcError(status.UNAVAILABLE, REFUSED));
    return Promise.resolve([...this.invitations]);
  }
  openDirect(userId: string): Promise<Room> {
    return this.#room(`OpenDirect ${userId}`, () => room(`dm:alice:${userId}`, ["alice", userId]));
  }
  history(
    id: string,
    beforeSeq: number | bigint = 0,
    limit = 0,
  ): Promise<{ messages: Message[]; more: boolean; events: Message[] }> {
    return this.#room(`History ${id} ${beforeSeq} ${limit}`, () => this.historyPage);
  }
  historyAround(
    id: string,
    aroundSeq: number | bigint,
    limit = 0,
  ): Promise<{ messages: Message[]; more: boolean }> {
    return this.#room(`HistoryAround ${id} ${aroundSeq} ${limit}`, () => this.historyPage);
  }
  /** What Search answers. */
  found: Message[] = [];
  /** What SeenBy answers. */
  seen = { users: [] as string[], count: 0 };
  seenBy(id: string, seq: number | bigint): Promise<SeenByList> {
    return this.#room(`SeenBy ${id} ${seq}`, () => create(SeenByListSchema, this.seen));
  }
  search(query: string, id = ""): Promise<Message[]> {
    return this.#room(`Search ${query} in ${id || "all"}`, () => [...this.found]);
  }
  editMessage(id: string, seq: number | bigint, content: string): Promise<Message> {
    return this.#room(`EditMessage ${id} ${seq} ${content}`, () => message({ content }));
  }
  deleteMessage(id: string, seq: number | bigint): Promise<void> {
    return this.#room(`DeleteMessage ${id} ${seq}`, () => undefined);
  }
  react(id: string, seq: number | bigint, emoji: string): Promise<void> {
    return this.#room(`React ${id} ${seq} ${emoji}`, () => undefined);
  }
  listOnline(): Promise<User[]> {
    return Promise.resolve([...this.online]);
  }
  /** Who alice blocked, as ListBlocked answers (asked at each connection: not in `calls`). */
  blocked: string[] = [];
  block(userId: string, blocked = true): Promise<void> {
    return this.#room(`Block ${userId} ${blocked}`, () => {
      this.blocked = this.blocked.filter((id) => id !== userId.toLowerCase());
      if (blocked) this.blocked = [...this.blocked, userId.toLowerCase()].sort();
    });
  }
  listBlocked(): Promise<string[]> {
    return Promise.resolve([...this.blocked]);
  }
  /** Each SetTyping, as `room typing` (room "" for general). */
  readonly typings: string[] = [];
  setTyping(id: string, typing: boolean): Promise<void> {
    return this.#room(`SetTyping ${id}`, () => void this.typings.push(`${id} ${typing}`));
  }
  /** MarkRead calls, as "room seq", apart from `calls`: every message printed may make one. */
  readonly marks: string[] = [];
  markRead(id: string, seq: number | bigint): Promise<void> {
    this.marks.push(`${id} ${seq}`);
    return Promise.resolve();
  }
  waitForReady(): Promise<void> {
    if (this.up) return Promise.resolve();
    return new Promise((_, reject) => this.#rejectReady = reject);
  }
  close(): void {
    this.closed = true;
    this.#rejectReady?.(new Error("The channel has been closed"));
  }
  /** The server goes away under an open stream. */
  drop(details = "Stream closed: the server is shutting down; reconnect"): void {
    this.online = [];
    this.onEnd!(grpcError(status.UNAVAILABLE, details));
  }
}

/**
 * A clock whose timers are recorded (as `sleeps`, but for the 50 ms polls) and take no real time
 * (a macrotask, so nothing starves); timers of `FOREVER` ms or more only end when cleared. No
 * jitter.
 */
class FakeClock implements Clock {
  static readonly FOREVER = 3_600_000;
  t = new Date(2024, 0, 2, 12, 0, 0).getTime();
  readonly sleeps: number[] = [];
  #timers = new Map<number, ReturnType<typeof setTimeout>>();
  #next = 1;
  now(): number {
    return this.t;
  }
  random(): number {
    return 0;
  }
  setTimeout(fn: () => void, ms: number): number {
    const id = this.#next++;
    if (ms < FakeClock.FOREVER) {
      if (ms !== 50) this.sleeps.push(ms);
      this.t += ms;
      this.#timers.set(
        id,
        setTimeout(() => {
          this.#timers.delete(id);
          fn();
        }, 0),
      );
    }
    return id;
  }
  clearTimeout(id: number): void {
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
  }
}

function session(
  connections: (attempt: number) => FakeChat,
  extra: Partial<TerminalClientOptions> = {},
) {
  const keyboard = new Keyboard();
  const out: string[] = [];
  const clock = new FakeClock();
  const made: FakeChat[] = [];
  const stop = new AbortController();
  const done = runTerminalClient({
    userId: "alice",
    password: "a long password",
    servers: ["127.0.0.1:1"],
    input: keyboard,
    output: (line) => out.push(line),
    clock,
    signal: stop.signal,
    // Leaving waits for queued lines as long as it takes, unless a test says otherwise.
    drainTimeoutMs: FakeClock.FOREVER,
    connect: () => {
      const chat = connections(made.length);
      made.push(chat);
      return chat;
    },
    ...extra,
  });
  const seen = (line: string | RegExp) =>
    waitFor(
      () => out.some((l) => typeof line === "string" ? l === line : line.test(l)),
      5000,
      `${line} in:\n${out.join("\n")}`,
    );
  return { keyboard, out, clock, made, stop, done, seen };
}

Deno.test("connects, shows messages and presence, sends lines, and leaves on end of input", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  chat.onMessage!(message({ id: "bob", displayName: "bob", content: "hi alice" }));
  chat.onMessage!(
    message({
      id: "bob",
      content: "",
      presence: { user: { id: "bob", displayName: "bob" }, online: false },
    }),
  );
  chat.onMessage!(
    message({
      content: "",
      presence: { user: { id: "alice", displayName: "alice" }, online: true },
    }),
  );
  s.keyboard.type("Hello World!", "   ", "/help", "/nope", "//slash", "/who");
  await s.seen(/^\* Online \(1\): alice$/);
  s.keyboard.end();
  assert.equal(await s.done, 0);
  assert.deepEqual(chat.sent, ["Hello World!", "/slash"]);
  assert.ok(chat.cancelled && chat.closed, "stream cancelled and channel closed");
  assert.deepEqual(s.out.filter((l) => !l.startsWith("Commands:")), [
    "Connected to server as user: alice",
    "[15:04:05] bob: hi alice",
    "* bob went offline",
    "! Unknown command /nope; /help lists the commands",
    "* Online (1): alice",
  ]);
  assert.equal(s.made.length, 1);
});

Deno.test("a refused send prints why and the client keeps going", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  chat.sendError = grpcError(
    status.INVALID_ARGUMENT,
    "Cannot send message: content is 70000 bytes, the limit is 65536",
  );
  s.keyboard.type("x".repeat(70000));
  await s.seen(
    "! Not sent to #general: Cannot send message: content is 70000 bytes, the limit is 65536\n" +
      `  Your line: ${"x".repeat(500)}… (70000 characters in all)`,
  );
  chat.sendError = undefined;
  s.keyboard.type("small");
  await waitFor(() => chat.sent.length === 1);
  s.keyboard.end();
  assert.equal(await s.done, 0);
  assert.deepEqual(chat.sent, ["small"]);
});

Deno.test("a lost connection is retried with growing delays; lines typed meanwhile go out after", async () => {
  // Attempt 0 connects, then 1-3 are refused, then 4 connects.
  const s = session((attempt) => new FakeChat(attempt === 0 || attempt === 4));
  await s.seen("Connected to server as user: alice");
  s.made[0]!.drop();
  await s.seen(
    "Disconnected: Stream closed: the server is shutting down; reconnect; reconnecting in 1s",
  );
  s.keyboard.type("while away 1", "while away 2");
  await waitFor(() => s.made.length === 5 && s.made[4]!.sent.length === 2, 5000, "resent");
  assert.deepEqual(s.made[4]!.sent, ["while away 1", "while away 2"]);
  assert.deepEqual(s.clock.sleeps, [1000, 2000, 4000, 8000]);
  assert.equal(s.out.filter((l) => l === "Connected to server as user: alice").length, 2);
  assert.ok(s.out.includes("Cannot connect to 127.0.0.1:1: connection refused; retrying in 2s"));
  // The next outage starts again from the shortest delay.
  s.made[4]!.drop("Connection dropped");
  await s.seen("Disconnected: Connection dropped; reconnecting in 1s");
  s.stop.abort();
  assert.equal(await s.done, 0);
  assert.ok(s.made.every((c) => c.closed), "every channel closed");
});

Deno.test("with several servers, a lost connection moves on to the next and resumes there", async () => {
  const addresses: string[] = [];
  const made: FakeChat[] = [];
  // a:1 serves first, then a:1 is gone; b:2 takes over.
  const s = session(() => new FakeChat(true), {
    servers: ["a:1", "b:2"],
    connect: (address) => {
      addresses.push(address);
      const chat = new FakeChat(address === "b:2" || addresses.length === 1);
      made.push(chat);
      return chat;
    },
  });
  await s.seen("Connected to server as user: alice");
  made[0]!.onMessage!(message({ id: "bob", content: "one", room: "general", seq: 7 }));
  made[0]!.drop("Connection dropped");
  await s.seen("Disconnected: Connection dropped; reconnecting to b:2 in 1s");
  await waitFor(() => s.out.filter((l) => l.startsWith("Connected")).length === 2, 5000, "again");
  assert.deepEqual(addresses, ["a:1", "b:2"]);
  assert.deepEqual(made[1]!.streamOptions?.resume, [{ room: "general", lastSeq: 7 }]);
  // b:2 fails too: back to a:1, which refuses, then b:2 again.
  made[1]!.drop("Connection dropped");
  await waitFor(() => addresses.length >= 4, 5000, "two more attempts");
  assert.deepEqual(addresses.slice(0, 4), ["a:1", "b:2", "a:1", "b:2"]);
  assert.ok(s.out.includes("Disconnected: Connection dropped; reconnecting to a:1 in 1s"));
  assert.ok(s.out.includes("Cannot connect to a:1: connection refused; retrying to b:2 in 2s"));
  s.stop.abort();
  assert.equal(await s.done, 0);
});

Deno.test("a server that stays down is retried with bounded delays until Ctrl-C", async () => {
  const s = session(() => new FakeChat(false));
  await waitFor(() => s.clock.sleeps.length >= 8, 5000, "8 retries");
  s.stop.abort();
  assert.equal(await s.done, 0);
  assert.deepEqual(s.clock.sleeps.slice(0, 8), [
    1000,
    2000,
    4000,
    8000,
    15000,
    15000,
    15000,
    15000,
  ]);
  assert.ok(s.made.every((c) => c.closed));
});

Deno.test("lines typed while disconnected are bounded: the excess is refused with a reason", async () => {
  const s = session(() => new FakeChat(false), { maxQueued: 2, drainTimeoutMs: 100 });
  s.keyboard.type("one", "two", "three");
  await s.seen("! Not sent: not connected, and 2 messages are already waiting");
  s.keyboard.end();
  assert.equal(await s.done, 0);
  assert.ok(s.out.includes("* Not connected: will send once connected (2 waiting)"));
  assert.ok(s.out.includes("! Not sent: 2 messages still waiting to be sent"));
});

Deno.test("INVALID_ARGUMENT on the stream is not retried: exit code 2", async () => {
  const s = session(() => {
    const chat = new FakeChat(true);
    chat.streamError = grpcError(
      status.INVALID_ARGUMENT,
      "Cannot open stream: the user id is empty",
    );
    return chat;
  });
  assert.equal(await s.done, 2);
  assert.deepEqual(s.out, ["! Cannot open stream: the user id is empty"]);
  assert.equal(s.made.length, 1);
  assert.deepEqual(s.clock.sleeps, []);
});

Deno.test("/quit leaves with code 0 after queued lines went out", async () => {
  const s = session(() => new FakeChat(true));
  s.keyboard.type("early", "/quit", "never read");
  assert.equal(await s.done, 0);
  assert.deepEqual(s.made[0]!.sent, ["early"]);
});

Deno.test("sign-in: the first creates the account, the token is reused, a refused one signs in again", async () => {
  // Attempt 0 creates the account; 1 reuses the token; 2's stream refuses it; 3 signs in again.
  const s = session((attempt) => {
    const chat = new FakeChat(true, `t${attempt}`);
    chat.created = attempt === 0;
    if (attempt === 2) {
      chat.streamError = grpcError(
        status.UNAUTHENTICATED,
        "Cannot open stream: the token expired at 2024-01-01T00:00:00.000Z, sign in again",
      );
    }
    return chat;
  });
  await s.seen("Connected to server as user: alice");
  assert.deepEqual(s.out, ["Created account alice", "Connected to server as user: alice"]);
  assert.deepEqual(s.made[0]!.signIns, ["alice/a long password"]);
  assert.equal(s.made[0]!.streamToken, "t0-1");

  s.made[0]!.drop();
  await waitFor(() => s.out.filter((l) => l.startsWith("Connected")).length === 2);
  s.made[1]!.drop();
  await waitFor(() => s.made.length === 4 && s.made[3]!.streamToken !== undefined, 5000, "4th");
  assert.deepEqual(s.made[1]!.signIns, []);
  assert.equal(s.made[1]!.streamToken, "t0-1");
  assert.equal(s.made[2]!.streamToken, "t0-1");
  assert.deepEqual(s.made[3]!.signIns, ["alice/a long password"]);
  assert.equal(s.made[3]!.streamToken, "t3-1");
  await waitFor(() => s.out.filter((l) => l.startsWith("Connected")).length === 3);
  assert.deepEqual(s.clock.sleeps, [1000, 1000], "no backoff before signing in again");
  assert.equal(s.out.filter((l) => l === "Created account alice").length, 1);
  s.keyboard.type("hello");
  await waitFor(() => s.made[3]!.sends.length === 1);
  assert.equal(s.made[3]!.sends[0]!.token, "t3-1");
  s.keyboard.end();
  assert.equal(await s.done, 0);
});

Deno.test("a wrong password prints why and exits 2 without retrying", async () => {
  const s = session(() => {
    const chat = new FakeChat(true);
    chat.signInError = grpcError(
      status.UNAUTHENTICATED,
      "Cannot sign in: wrong password for alice",
    );
    return chat;
  });
  assert.equal(await s.done, 2);
  assert.deepEqual(s.out, ["! Cannot sign in: wrong password for alice"]);
  assert.equal(s.made.length, 1);
  assert.equal(s.made[0]!.onMessage, undefined, "no stream was opened");
  assert.ok(s.made[0]!.closed);
});

Deno.test("a classic server without SignIn: the anonymous stream, as before", async () => {
  const s = session(() => {
    const chat = new FakeChat(true);
    chat.signInError = grpcError(
      status.UNIMPLEMENTED,
      "The server does not implement the method SignIn",
    );
    return chat;
  });
  await s.seen("Connected to server as user: alice");
  assert.equal(s.made[0]!.streamToken, undefined);
  assert.deepEqual(s.made[0]!.calls, [], "no ListRooms without a token");
  assert.deepEqual(s.out, [
    "* The server has no sign-in; continuing as alice without it",
    "Connected to server as user: alice",
  ]);
  s.made[0]!.drop();
  await waitFor(() => s.out.filter((l) => l.startsWith("Connected")).length === 2);
  assert.equal(s.out.filter((l) => l.startsWith("* The server has no sign-in")).length, 1);
  s.keyboard.end();
  assert.equal(await s.done, 0);
});

Deno.test("a reconnect resumes from the last seq seen per room; nothing prints twice", async () => {
  const s = session((attempt) => {
    const chat = new FakeChat(true);
    // The first connection starts every room at its newest message.
    if (attempt === 0) chat.rooms = [room("general", [], 4), room("book-club", ["alice"], 9)];
    return chat;
  });
  await s.seen("Connected to server as user: alice");
  const first = s.made[0]!;
  assert.deepEqual(first.calls, ["ListRooms false"]);
  assert.deepEqual(first.streamOptions?.resume, [
    { room: "general", lastSeq: 4 },
    { room: "book-club", lastSeq: 9 },
  ]);
  const say = (chat: FakeChat, room: string, seq: number, content = `${room} ${seq}`) =>
    chat.onMessage!(
      message({ id: "bob", displayName: "bob", room, seq, content, messageId: `${room}-${seq}` }),
    );
  say(first, "general", 4, "old");
  say(first, "general", 5);
  say(first, "general", 6);
  say(first, "book-club", 10);
  say(first, "general", 6, "again");
  first.drop();
  await waitFor(() => s.made[1]?.streamOptions !== undefined, 5000, "reconnect");
  const second = s.made[1]!;
  assert.deepEqual(second.streamOptions?.resume, [
    { room: "general", lastSeq: 6 },
    { room: "book-club", lastSeq: 10 },
  ]);
  // The server replays what came after, perhaps overlapping what was already shown.
  say(second, "general", 6, "again");
  say(second, "general", 7);
  say(second, "book-club", 11);
  s.keyboard.end();
  assert.equal(await s.done, 0);
  assert.deepEqual(s.out.filter((l) => l.startsWith("[")), [
    "[15:04:05] bob: general 5",
    "[15:04:05] bob: general 6",
    "[15:04:05] #book-club bob: book-club 10",
    "[15:04:05] bob: general 7",
    "[15:04:05] #book-club bob: book-club 11",
  ]);
});

Deno.test("room commands: create, join, switch, send there, list, history, leave, dm; errors go on", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  chat.rooms = [room("general"), room("book-club", ["alice", "bob"], 3)];
  s.keyboard.type("/create book-club", "/join #chess", "/room book-club", "to the club");
  await waitFor(() => chat.sends.length === 1, 5000, "send");
  assert.deepEqual(chat.sends[0], { room: "book-club", text: "to the club", token: "token-1" });
  assert.ok(s.out.includes("* Created #book-club (1 member); /room book-club to write there"));
  assert.ok(s.out.includes("* Joined #chess (2 members); /room chess to write there"));
  assert.ok(s.out.includes("* Lines you type go to #book-club"));

  // Messages: another room is named, and so is general while book-club is current.
  const say = (room: string, seq: number) =>
    chat.onMessage!(message({ id: "bob", displayName: "bob", room, seq, content: "hi" }));
  say("general", 1);
  say("book-club", 1);
  chat.onMessage!(message({
    id: "bob",
    content: "",
    roomEvent: { room: "book-club", user: { id: "bob", displayName: "bob" }, joined: false },
  }));
  chat.onMessage!(message({
    id: "alice",
    content: "",
    roomEvent: { room: "book-club", user: { id: "alice", displayName: "alice" }, joined: true },
  }));
  await s.seen("* bob left #book-club");
  assert.ok(s.out.includes("[15:04:05] #general bob: hi"));
  assert.ok(s.out.includes("[15:04:05] #book-club bob: hi"));
  assert.ok(!s.out.some((l) => l.includes("alice joined")), "our own joining is not news");

  s.keyboard.type("/rooms", "/rooms all");
  await s.seen(/^\* All rooms \(2\):/);
  const rooms = s.out.filter((l) => l.startsWith("* Your rooms") || l.startsWith("* All rooms"));
  assert.deepEqual(rooms, [
    "* Your rooms (2):\n  general (everybody)\n  book-club (2 members, current)",
    "* All rooms (2):\n  general (everybody)\n  book-club (2 members, current) - joined",
  ]);

  chat.historyPage = {
    messages: [3, 2, 1].map((seq) =>
      message({ room: "book-club", seq, content: `m${seq}`, id: "bob", displayName: "bob" })
    ),
    more: true,
    events: [],
  };
  s.keyboard.type("/history 3", "/history zero");
  await s.seen(/^! Usage: \/history \[n\]/);
  const at = s.out.indexOf("* The last 3 messages of #book-club (older ones exist):");
  assert.ok(at >= 0, s.out.join("\n"));
  assert.deepEqual(s.out.slice(at + 1, at + 4), [
    "[15:04:05] #book-club bob: m1",
    "[15:04:05] #book-club bob: m2",
    "[15:04:05] #book-club bob: m3",
  ]);

  s.keyboard.type("/leave book-club", "back in general");
  await waitFor(() => chat.sends.length === 2, 5000, "second send");
  assert.deepEqual(chat.sends[1], { room: "", text: "back in general", token: "token-1" });
  assert.ok(s.out.includes("* Left #book-club; lines you type go to #general"));

  s.keyboard.type("/dm bob", "psst");
  await waitFor(() => chat.sends.length === 3, 5000, "third send");
  assert.deepEqual(chat.sends[2]!.room, "dm:alice:bob");
  assert.ok(s.out.includes("* Direct messages with bob: lines you type go to @bob"));

  chat.callError = grpcError(
    status.ALREADY_EXISTS,
    'Cannot create room: "chess" already exists; join it instead',
  );
  s.keyboard.type("/create chess", "/join", "/rooms mine");
  await s.seen("! Usage: /rooms, or /rooms all [words]");
  assert.ok(s.out.includes('! Cannot create room: "chess" already exists; join it instead'));
  assert.ok(s.out.includes("! Usage: /join <room>"));
  assert.deepEqual(chat.calls, [
    "ListRooms false",
    "CreateRoom book-club",
    "JoinRoom chess",
    "ListRooms false",
    "ListRooms true",
    "History book-club 0 3",
    "LeaveRoom book-club",
    "OpenDirect bob",
    "CreateRoom chess",
  ]);
  s.keyboard.end();
  assert.equal(await s.done, 0);
});

Deno.test("directory commands: /rooms all <words> searches with topics and counts; /topic sets it", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  chat.rooms = [
    create(RoomSchema, {
      id: "book-club",
      members: ["bob", "cat", "dan"],
      memberCount: 3,
      topic: "Sci-fi\u001b[31m, one a month",
    }),
  ];
  s.keyboard.type("/rooms all sci  fi", "/rooms everything");
  await s.seen("! Usage: /rooms, or /rooms all [words]");
  assert.ok(
    s.out.includes(
      '* Rooms matching "sci fi" (1):\n  book-club (3 members): Sci-fi^[[31m, one a month',
    ),
    s.out.join("\n"),
  );

  s.keyboard.type("/join book-club", "/room book-club", "/topic", "/topic Hard sci-fi", "/topic -");
  await s.seen("* #book-club has no topic now");
  assert.ok(s.out.includes("! Usage: /topic <text>, or /topic - to take it away"));
  assert.ok(s.out.includes("* Topic of #book-club: Hard sci-fi"));
  chat.callError = grpcError(
    status.PERMISSION_DENIED,
    'Cannot set topic: alice is a member of room "book-club"; only its owner (bob) and moderators may',
  );
  s.keyboard.type("/topic mine");
  await s.seen(
    '! Cannot set topic: alice is a member of room "book-club"; only its owner (bob) and moderators may',
  );
  assert.deepEqual(chat.calls.filter((c) => !c.startsWith("ListRooms false")), [
    "ListRooms true sci fi",
    "JoinRoom book-club",
    "SetTopic book-club Hard sci-fi",
    "SetTopic book-club ",
    "SetTopic book-club mine",
  ]);
  s.keyboard.end();
  assert.equal(await s.done, 0);
});

Deno.test("/block, /unblock and /blocked: the server's list, usage and refusals", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  s.keyboard.type("/blocked", "/block", "/block two words", "/block @Bob", "/blocked");
  await s.seen("* Blocked (1): bob");
  assert.ok(s.out.includes("* You blocked nobody"), s.out.join("\n"));
  assert.ok(s.out.includes("! Usage: /block <user>"));
  assert.ok(
    s.out.includes("* Blocked Bob: you see nothing more from them, and they cannot message you"),
  );
  s.keyboard.type("/unblock bob", "/blocked");
  await s.seen("* Unblocked bob");
  await waitFor(
    () => s.out.filter((l) => l === "* You blocked nobody").length === 2,
    5000,
    "the empty list again",
  );
  chat.callError = grpcError(status.NOT_FOUND, 'Cannot block user: there is no user "zed"');
  s.keyboard.type("/block zed\u001b[31m");
  await s.seen('! Cannot block user: there is no user "zed"');
  assert.deepEqual(chat.calls.filter((c) => c.startsWith("Block")), [
    "Block Bob true",
    "Block bob false",
    "Block zed\u001b[31m true",
  ]);
  s.keyboard.end();
  assert.equal(await s.done, 0);
});

Deno.test("invitation commands: /private, /public, /invite, /invites; an invitation prints with how to join or decline", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  s.keyboard.type("/join plans", "/room plans", "/private", "/invite", "/invite @ben", "/public");
  await s.seen("* #plans is open: anyone may join");
  assert.ok(
    s.out.includes("* #plans is invite-only: only its members and those you /invite may join"),
  );
  assert.ok(s.out.includes("! Usage: /invite <user>"));
  assert.ok(s.out.includes("* Invited ben to #plans"));
  chat.callError = grpcError(
    status.PERMISSION_DENIED,
    'Cannot invite: alice is a member of room "plans"; only its owner (bob) and moderators may',
  );
  s.keyboard.type("/invite cat");
  await s.seen(
    '! Cannot invite: alice is a member of room "plans"; only its owner (bob) and moderators may',
  );
  chat.callError = undefined;

  // Ann invites alice to her room: it prints live, with the way in and out.
  chat.onMessage!(message({
    id: "ann",
    content: "",
    roomEvent: {
      room: "picnic",
      user: { id: "alice", displayName: "alice" },
      actor: { id: "ann", displayName: "Ann\u001b[2J" },
      action: "invited",
    },
  }));
  await s.seen(
    /^\* Ann\^\[\[2J \(ann\) invited you to #picnic: \/join picnic, or \/leave picnic to decline$/,
  );
  chat.onMessage!(message({
    id: "ann",
    content: "",
    roomEvent: {
      room: "plans",
      user: { id: "ann", displayName: "ann" },
      actor: { id: "ann", displayName: "ann" },
      action: "invite-only",
    },
  }));
  await s.seen("* ann made #plans invite-only");
  chat.invitations = [
    create(RoomSchema, {
      id: "picnic",
      owner: "ann",
      inviteOnly: true,
      memberCount: 2,
      invited: true,
    }),
  ];
  s.keyboard.type("/invites");
  await s.seen(
    "* Your invitations (1):\n  #picnic (from ann, invite-only, 2 members): /join picnic, or /leave picnic to decline",
  );
  s.keyboard.type("/leave picnic");
  await s.seen("* Declined the invitation to #picnic");
  chat.invitations = [];
  s.keyboard.type("/invites");
  await s.seen("* You have no invitations");
  assert.deepEqual(chat.calls.filter((c) => !c.startsWith("ListRooms false")), [
    "JoinRoom plans",
    "SetRoomAccess plans true",
    "Invite plans ben",
    "SetRoomAccess plans false",
    "Invite plans cat",
    "LeaveRoom picnic",
  ]);
  s.keyboard.end();
  assert.equal(await s.done, 0);
});

Deno.test("/search prints the found messages with their rooms; refusals and usage go on", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  chat.found = [
    message({ id: "bob", displayName: "bob", room: "book-club", seq: 4, content: "Zebra time" }),
    message({ id: "bob", displayName: "bob", room: "general", seq: 9, content: "a zebra" }),
    message({ id: "bob", displayName: "bob", room: "dm:alice:bob", seq: 2, content: "zebra?" }),
  ];
  s.keyboard.type("/search  zebra   time ");
  await s.seen('* 3 messages found for "zebra time", best first:');
  assert.deepEqual(s.out.filter((l) => l.startsWith("[")), [
    "[15:04:05] #book-club bob: Zebra time",
    "[15:04:05] #general bob: a zebra",
    "[15:04:05] @bob bob: zebra?",
  ]);
  chat.found = [];
  s.keyboard.type("/search giraffe", "/search");
  await s.seen("! Usage: /search <words>");
  assert.ok(s.out.includes('* Nothing found for "giraffe"'));
  chat.callError = grpcError(
    status.RESOURCE_EXHAUSTED,
    "Cannot search: the rate limit is 2 searches per second (bursts of 5); retry in 0.4 s",
  );
  s.keyboard.type("/search zebra");
  await s.seen(
    "! Cannot search: the rate limit is 2 searches per second (bursts of 5); retry in 0.4 s",
  );
  assert.deepEqual(chat.calls.filter((c) => c.startsWith("Search")), [
    "Search zebra time in all",
    "Search giraffe in all",
    "Search zebra in all",
  ]);
  s.keyboard.end();
  assert.equal(await s.done, 0);
});

Deno.test("somebody opening a direct conversation is shown; commands offline say so", async () => {
  const s = session((attempt) => new FakeChat(attempt === 0));
  await s.seen("Connected to server as user: alice");
  s.made[0]!.onMessage!(message({
    id: "bob",
    content: "",
    roomEvent: { room: "dm:alice:bob", user: { id: "alice", displayName: "alice" }, joined: true },
  }));
  await s.seen("* bob opened a direct conversation with you; /room @bob to answer");
  s.made[0]!.drop();
  await s.seen(/^Disconnected: /);
  s.keyboard.type("/create x", "/history");
  await s.seen("! Cannot read history: not connected");
  assert.ok(s.out.includes("! Cannot create room: not connected"));
  s.stop.abort();
  assert.equal(await s.done, 0);
});

/** A room event on the fake stream: `who` joined or left `room`. */
function roomEvent(chat: FakeChat, room: string, who: string, joined: boolean): void {
  chat.onMessage!(message({
    id: who,
    content: "",
    roomEvent: { room, user: { id: who, displayName: who }, joined },
  }));
}

Deno.test("/seen says who read my last message of the room", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  s.keyboard.type("/seen");
  await s.seen("! Cannot tell who saw it: you have no message in #general since you connected");
  chat.onMessage!(message({ id: "alice", content: "news", seq: 8 }));
  chat.onMessage!(message({ id: "bob", content: "ok", seq: 9 }));
  s.keyboard.type("/seen");
  await s.seen("* Nobody has seen your last message yet");
  chat.seen = { users: ["bob", "carol\u001b[2J"], count: 5 };
  s.keyboard.type("/seen");
  await s.seen("* Seen by 5: bob, carol^[[2J and 3 more");
  assert.deepEqual(chat.calls.filter((c) => c.startsWith("SeenBy")), [
    "SeenBy general 8",
    "SeenBy general 8",
  ]);
});

Deno.test("/edit and /delete change my last message of the room; others' changes print", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  s.keyboard.type("/edit too soon");
  await s.seen("! Cannot edit: you have no message in #general since you connected");
  chat.onMessage!(message({ id: "alice", content: "helo", seq: 4 }));
  chat.onMessage!(message({ id: "bob", content: "hi", seq: 5 }));
  s.keyboard.type("/edit", "/edit hello, fixed");
  await s.seen("! Cannot edit: type the new text after /edit");
  await s.seen("* Message edited");
  s.keyboard.type("/delete");
  await s.seen("* Message deleted");
  s.keyboard.type("/delete");
  await s.seen("! Cannot delete: you have no message in #general since you connected");
  assert.deepEqual(chat.calls.filter((c) => /Message /.test(c)), [
    "EditMessage general 4 hello, fixed",
    "DeleteMessage general 4",
  ]);
  const change = (deleted: boolean, content: string, room = "general") =>
    chat.onMessage!(message({
      id: "bob",
      content: "",
      room,
      change: {
        room,
        seq: 5n,
        deleted,
        content,
        by: { id: "bob", displayName: "bob" },
      },
    }));
  change(false, "hi\nall");
  await s.seen("* bob edited a message: hi all");
  change(true, "", "chess");
  await s.seen("* bob deleted a message in #chess");
  // History shows the latest text, "(edited)", or that it was deleted.
  assert.equal(
    formatMessage(shown({ content: "new", editedAt: timestampFromDate(new Date()) })),
    "[15:04:05] alice: new (edited)",
  );
  assert.equal(formatMessage(shown({ content: "", deleted: true })), "[15:04:05] alice: (deleted)");
  s.stop.abort();
  assert.equal(await s.done, 0);
});

Deno.test("moderation commands reach the server; moderation events print, live and in /history", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  chat.rooms = [room("general"), { ...room("club", ["alice", "bob", "carl"], 3), role: "owner" }];
  s.keyboard.type("/join club", "/room club", "/rooms");
  await s.seen("* Lines you type go to #club");
  await s.seen(/^\* Your rooms/);
  assert.ok(
    s.out.some((l) => l.includes("club (3 members, current, you are its owner)")),
    s.out.join("\n"),
  );
  s.keyboard.type(
    "/mod bob",
    "/unmod bob",
    "/mute carl 15",
    "/unmute carl",
    "/remove carl",
    "/mute carl",
    "/mute carl 0",
    "/mute carl 10081",
    "/unmute carl 5",
    "/remove",
  );
  await s.seen("! Usage: /remove <user>");
  assert.deepEqual(chat.calls.filter((c) => /Role|Member /.test(c)), [
    "SetRole club bob moderator",
    "SetRole club bob member",
    "MuteMember club carl 900",
    "MuteMember club carl 0",
    "RemoveMember club carl",
  ]);
  for (
    const line of [
      "* bob is a moderator of #club now",
      "* bob is a member of #club now",
      "* carl is muted in #club for 15 minutes",
      "* carl may speak in #club again",
      "* carl was removed from #club",
      "! Usage: /unmute <user>",
    ]
  ) assert.ok(s.out.includes(line), `${line}\n${s.out.join("\n")}`);
  assert.equal(
    s.out.filter((l) => l.startsWith("! Usage: /mute <user> <minutes>")).length,
    3,
  );

  const ann = { id: "ann", displayName: "Ann" };
  // The day of the terminal's clock: a mute ending that day shows its time only.
  const until = new Date(2024, 0, 2, 14, 5);
  /** A room event on the wire; its fields as the generated RoomEvent takes them. */
  const event = (fields: Record<string, unknown>) =>
    message({
      id: "",
      content: "",
      room: "club",
      roomEvent: { room: "club", joined: true, actor: ann, ...fields } as never,
    });
  chat.onMessage!(
    event({ user: { id: "bob", displayName: "Bob" }, action: "role", detail: "moderator" }),
  );
  chat.onMessage!(event({
    user: { id: "carl", displayName: "Carl" },
    action: "muted",
    until: timestampFromDate(until),
  }));
  chat.onMessage!(
    event({ user: { id: "carl", displayName: "Carl" }, action: "removed", joined: false }),
  );
  chat.onMessage!(event({ user: ann, action: "topic", detail: "Evil\u001b[2J" }));
  await s.seen(/^\* Ann set the topic to/);
  for (
    const line of [
      "* Ann made Bob a moderator in #club",
      "* Ann muted Carl until 14:05 in #club",
      "* Ann removed Carl in #club",
    ]
  ) assert.ok(s.out.includes(line), `${line}\n${s.out.join("\n")}`);
  assert.ok(!s.out.some((l) => l.includes("\u001b")), "control characters are not printed raw");

  // Removed ourselves: lines go back to general.
  chat.onMessage!(
    event({ user: { id: "alice", displayName: "alice" }, action: "removed", joined: false }),
  );
  await s.seen("* Ann removed you in #club");
  await s.seen("* Lines you type go to #general");

  // History merges the kept events among the messages by time.
  chat.historyPage = {
    messages: [
      message({ room: "general", seq: 2, content: "later" }),
      message({
        room: "general",
        seq: 1,
        content: "first",
        timestamp: timestampFromDate(new Date(2024, 0, 2, 15, 0)),
      }),
    ],
    more: false,
    events: [
      event({
        user: { id: "ben", displayName: "ben" },
        joined: false,
        actor: undefined,
        at: timestampFromDate(new Date(2024, 0, 2, 15, 1)),
      }),
    ],
  };
  s.keyboard.type("/history 2");
  await s.seen(/^\* The last 2 messages of #general/);
  await s.seen("[15:04:05] alice: later");
  const at = s.out.findIndex((l) => l.startsWith("* The last 2 messages of #general"));
  assert.deepEqual(s.out.slice(at + 1, at + 4), [
    "[15:00:00] alice: first",
    "* ben left",
    "[15:04:05] alice: later",
  ]);
  s.stop.abort();
  assert.equal(await s.done, 0);
});

Deno.test("/react toggles a reaction on the room's last message; others' reactions print", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  s.keyboard.type("/react 👍");
  await s.seen("! Cannot react: no message in #general since you connected");
  chat.onMessage!(message({ id: "bob", content: "ship it?", seq: 8 }));
  s.keyboard.type("/react", "/react 🎉");
  await s.seen("! Usage: /react <emoji>, for example /react 👍 ❤️ 😂 🎉 😮 😢");
  await s.seen("* Reaction 🎉 toggled on the last message");
  assert.deepEqual(chat.calls.filter((c) => c.startsWith("React ")), ["React general 8 🎉"]);
  const reaction = (added: boolean, room = "general") =>
    chat.onMessage!(message({
      id: "bob",
      content: "",
      room,
      reaction: { room, seq: 8n, emoji: "👍", user: { id: "bob", displayName: "bob" }, added },
    }));
  reaction(false);
  reaction(true, "chess");
  await s.seen("* bob reacted 👍 in #chess");
  assert.ok(!s.out.some((l) => /bob reacted 👍$/.test(l)), "taking one back is not news");
  // History lists a message's reactions after its text.
  assert.equal(
    formatMessage(shown({
      content: "ship it?",
      reactions: [{ emoji: "👍", users: ["bob", "cat"] }, { emoji: "🎉", users: ["alice"] }],
    })),
    "[15:04:05] alice: ship it?  [👍 2 · 🎉 1]",
  );
  s.stop.abort();
  assert.equal(await s.done, 0);
});

Deno.test("/room switches only to a room of ours; the next line is never lost", async () => {
  const s = session((attempt) => {
    const chat = new FakeChat(attempt === 0);
    chat.rooms = [room("general"), room("Book-Club", ["alice", "bob"], 3)];
    return chat;
  });
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  s.keyboard.type("/room nowhere", "still to general", "/room @bob", "/room #BOOK-club", "to club");
  await waitFor(() => chat.sends.length === 2, 5000, "two sends");
  assert.deepEqual(chat.sends.map((m) => `${m.room}|${m.text}`), [
    "|still to general",
    "Book-Club|to club",
  ]);
  assert.deepEqual(s.out.slice(1), [
    "! You are not in #nowhere: /join nowhere (or /create nowhere) first; lines you type still go to #general",
    "! You have no direct messages with bob: /dm bob first; lines you type still go to #general",
    "* Lines you type go to #Book-Club",
  ]);

  // The room goes away under a line on its way (removed, or left on another device).
  chat.sendError = grpcError(
    status.PERMISSION_DENIED,
    'Cannot send message: alice is not a member of room "Book-Club"; join it first',
  );
  s.keyboard.type("the line\nto keep");
  await s.seen(
    '! Not sent to #Book-Club: Cannot send message: alice is not a member of room "Book-Club"; join it first\n' +
      "  Your line: the line\n" +
      "             to keep",
  );
  chat.sendError = undefined;
  roomEvent(chat, "Book-Club", "alice", false);
  await s.seen("* You left #Book-Club; lines you type go to #general");
  s.keyboard.type("/room book-club");
  await s.seen(/^! You are not in #book-club: /);

  // Before the first connection the rooms are not known: say so rather than guess.
  chat.drop();
  await s.seen(/^Disconnected: /);
  s.keyboard.type("/room chess");
  await s.seen(
    "! Cannot write to #chess: not connected, and it is not one of your rooms known so far; /room chess again once connected; lines you type still go to #general",
  );
  s.stop.abort();
  assert.equal(await s.done, 0);
});

Deno.test("direct rooms show as @user; opening one is not news to the opener", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  s.keyboard.type("/dm bob");
  await s.seen("* Direct messages with bob: lines you type go to @bob");
  // What the server announces for a new direct room: the opener, then the other.
  roomEvent(chat, "dm:alice:bob", "alice", true);
  roomEvent(chat, "dm:alice:bob", "bob", true);
  chat.onMessage!(
    message({ id: "bob", displayName: "bob", room: "dm:alice:bob", seq: 1, content: "hi alice" }),
  );
  chat.onMessage!(
    message({ id: "carol", displayName: "carol", room: "general", seq: 1, content: "hi all" }),
  );
  await s.seen("[15:04:05] #general carol: hi all");
  s.keyboard.type("/room general", "/room @BOB", "psst", "/rooms");
  await s.seen(/^\* Your rooms/);
  assert.deepEqual(chat.sends.map((m) => `${m.room}|${m.text}`), ["dm:alice:bob|psst"]);
  chat.rooms = [room("general"), room("dm:alice:bob", ["alice", "bob"], 1)];
  s.keyboard.type("/rooms");
  await s.seen("* Your rooms (2):\n  general (everybody)\n  @bob (direct messages, current)");

  // The other side: carol opens one with alice, who hears only of her own joining.
  roomEvent(chat, "dm:alice:carol", "alice", true);
  roomEvent(chat, "dm:alice:bob", "bob", false);
  roomEvent(chat, "dm:alice:bob", "bob", true);
  await s.seen("* bob opened your direct conversation again; /room @bob to answer");
  s.keyboard.type("/leave @bob");
  await s.seen("* Left @bob; lines you type go to #general");
  roomEvent(chat, "dm:alice:bob", "alice", false);
  s.keyboard.end();
  assert.equal(await s.done, 0);
  assert.deepEqual(s.out.slice(1).filter((l) => !l.startsWith("* Your rooms")), [
    "* Direct messages with bob: lines you type go to @bob",
    "[15:04:05] @bob bob: hi alice",
    "[15:04:05] #general carol: hi all",
    "* Lines you type go to #general",
    "* Lines you type go to @bob",
    "* carol opened a direct conversation with you; /room @carol to answer",
    "* bob left your direct conversation: nothing more can be sent to @bob until bob opens it again",
    "* bob opened your direct conversation again; /room @bob to answer",
    "* Left @bob; lines you type go to #general",
  ]);
  assert.ok(!s.out.some((l) => l.includes("joined") || l.includes("dm:")), s.out.join("\n"));
});

Deno.test("the prompt follows where typed lines go: #room, @user for direct messages", async () => {
  const prompts: string[] = [];
  const s = session(() => new FakeChat(true), { prompt: (p) => prompts.push(p) });
  await s.seen("Connected to server as user: alice");
  s.keyboard.type(
    "/create book-club",
    "/room book-club",
    "/room nowhere",
    "/dm bob",
    "/leave @bob",
  );
  await s.seen("* Left @bob; lines you type go to #general");
  s.keyboard.end();
  assert.equal(await s.done, 0);
  assert.deepEqual(prompts, ["#general> ", "#book-club> ", "@bob> ", "#general> "]);
});

Deno.test("who else is typing shows in the prompt and goes by itself; keys typed tell the others", async () => {
  const prompts: string[] = [];
  let draft: ((typed: string) => void) | undefined;
  const s = session(() => new FakeChat(true), {
    prompt: (p) => prompts.push(p),
    watchDraft: (listener) => draft = listener,
  });
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  const typing = (id: string, displayName: string) =>
    message({
      id,
      content: "",
      typing: { room: "general", user: { id, displayName }, typing: true, expiresInMs: 6000 },
    });
  chat.onMessage!(typing("alice", "alice"));
  chat.onMessage!(typing("bob", "b\x1bob"));
  // This test's clock runs every timer at once: the expiry comes right after.
  await waitFor(() => prompts.length >= 3, 5000, `the prompt to change: ${prompts}`);
  assert.deepEqual(prompts, ["#general> ", "#general (b^[ob is typing…)> ", "#general> "]);
  draft!("/wh");
  draft!("h");
  // And the idle timer too: "stopped" follows.
  await waitFor(() => chat.typings.length === 2, 5000, `typing told: ${chat.typings}`);
  assert.deepEqual(chat.typings, [" true", " false"], 'general is "" on the wire');
  s.keyboard.end();
  assert.equal(await s.done, 0);
  assert.ok(!s.out.some((l) => /typing/.test(l)), "nothing printed: the prompt says it");
});

Deno.test("a send refused for an expired token signs in again and is sent once", async () => {
  const s = session(() => new FakeChat(true));
  await s.seen("Connected to server as user: alice");
  const chat = s.made[0]!;
  chat.sendError = grpcError(
    status.UNAUTHENTICATED,
    "Cannot send message: the token expired at 2024-01-01T00:00:00.000Z, sign in again",
  );
  const realSignIn = chat.signIn.bind(chat);
  chat.signIn = (username, password) => {
    chat.sendError = undefined;
    return realSignIn(username, password);
  };
  s.keyboard.type("after expiry");
  await waitFor(() => chat.sends.length === 1, 5000, "send");
  assert.deepEqual(chat.sends, [{ room: "", text: "after expiry", token: "token-2" }]);
  assert.equal(chat.signIns.length, 2);
  s.keyboard.end();
  assert.equal(await s.done, 0);
  assert.ok(!s.out.some((l) => l.startsWith("!")), s.out.join("\n"));
});

// --- the session against an in-process system --------------------------------

Deno.test("against a real gateway: too-long messages are refused, others arrive, bad ids exit 2", async () => {
  const system = await startSystem();
  const keyboard = new Keyboard();
  const out: string[] = [];
  try {
    const done = runTerminalClient({
      userId: "alice",
      displayName: "Alice Smith",
      servers: [system.address()],
      input: keyboard,
      output: (line) => out.push(line),
    });
    await waitFor(() => out.includes("Connected to server as user: alice"), 5000, "connected");
    keyboard.type("x".repeat(70000), "Hello World!");
    await waitFor(
      () => out.some((l) => /^\[\d\d:\d\d:\d\d\] Alice Smith \(alice\): Hello World!$/.test(l)),
      5000,
      `echo in ${out.join("\n")}`,
    );
    assert.match(
      out[1]!,
      /^! Not sent to #general: Cannot send message: content is 70000 bytes, the limit is 65536\n {2}Your line: x{500}… \(70000 characters in all\)$/,
    );
    keyboard.end();
    assert.equal(await done, 0);

    const badOut: string[] = [];
    const code = await runTerminalClient({
      userId: "b".repeat(129),
      servers: [system.address()],
      input: new Keyboard(),
      output: (line) => badOut.push(line),
    });
    assert.equal(code, 2);
    assert.deepEqual(badOut, [
      "! Cannot open stream: the user id is 129 characters, the limit is 128",
    ]);
  } finally {
    await system.stop();
  }
});

Deno.test("against a real gateway with sign-in: account created, room line arrives, wrong password exits 2", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const keyboard = new Keyboard();
  const out: string[] = [];
  try {
    const done = runTerminalClient({
      userId: "alice",
      password: "a long password",
      servers: [system.address()],
      input: keyboard,
      output: (line) => out.push(line),
    });
    await waitFor(() => out.includes("Connected to server as user: alice"), 5000, "connected");
    assert.deepEqual(out, ["Created account alice", "Connected to server as user: alice"]);
    keyboard.type("/create book-club", "/room book-club", "in the club");
    await waitFor(
      () => out.some((l) => /^\[\d\d:\d\d:\d\d\] #book-club alice: in the club$/.test(l)),
      5000,
      `room line in ${out.join("\n")}`,
    );
    keyboard.type("/history");
    await waitFor(() => out.includes("* The last 1 message of #book-club:"), 5000, "history");
    keyboard.end();
    assert.equal(await done, 0);
    assert.ok(!out.some((l) => l.startsWith("!")), out.join("\n"));

    const badOut: string[] = [];
    const code = await runTerminalClient({
      userId: "alice",
      password: "not the password",
      servers: [system.address()],
      input: new Keyboard(),
      output: (line) => badOut.push(line),
    });
    assert.equal(code, 2);
    assert.deepEqual(badOut, ["! Cannot sign in: wrong password for alice"]);

    // Usernames compare without case: ALICE signs in to alice's account and is shown as alice.
    const upper: string[] = [];
    const again = new Keyboard();
    const upperDone = runTerminalClient({
      userId: "ALICE",
      password: "a long password",
      servers: [system.address()],
      input: again,
      output: (line) => upper.push(line),
    });
    await waitFor(() => upper.includes("Connected to server as user: alice"), 5000, upper.join());
    again.type("hello in caps");
    await waitFor(
      () => upper.some((l) => /^\[\d\d:\d\d:\d\d\] alice: hello in caps$/.test(l)),
      5000,
      `own line in ${upper.join("\n")}`,
    );
    again.end();
    assert.equal(await upperDone, 0);
    assert.ok(!upper.some((l) => l.startsWith("!")), upper.join("\n"));
  } finally {
    await system.stop();
  }
});

Deno.test("against a real gateway with sign-in: bob's terminal shows alice typing in its prompt until her line arrives", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const terminal = (userId: string) => {
    const keyboard = new Keyboard();
    const out: string[] = [];
    const prompts: string[] = [];
    let draft: ((typed: string) => void) | undefined;
    const done = runTerminalClient({
      userId,
      password: "a long password",
      servers: [system.address()],
      input: keyboard,
      output: (line) => out.push(line),
      prompt: (p) => prompts.push(p),
      watchDraft: (listener) => draft = listener,
    });
    return { keyboard, out, prompts, done, draft: (typed: string) => draft!(typed) };
  };
  const alice = terminal("alice");
  const bob = terminal("bob");
  try {
    for (const [t, name] of [[alice, "alice"], [bob, "bob"]] as const) {
      await waitFor(() => t.out.includes(`Connected to server as user: ${name}`));
    }
    alice.draft("hello b");
    await waitFor(
      () => bob.prompts.at(-1) === "#general (alice is typing…)> ",
      5000,
      `bob's prompt: ${bob.prompts.at(-1)}`,
    );
    alice.draft("hello bob");
    alice.keyboard.type("hello bob");
    alice.draft("");
    await waitFor(() => bob.out.some((l) => / alice: hello bob$/.test(l)), 5000, "the message");
    await waitFor(() => bob.prompts.at(-1) === "#general> ", 5000, "the prompt back");
    assert.deepEqual(alice.prompts, ["#general> "], "alice is not told of herself");
    assert.ok(!bob.out.some((l) => /typing/.test(l)), "nothing printed: the prompt says it");
    alice.keyboard.end();
    bob.keyboard.end();
    assert.equal(await alice.done, 0);
    assert.equal(await bob.done, 0);
  } finally {
    await system.stop();
  }
});
