/** The terminal client's logic: formatting, backoff, arguments, and the session with fakes and in-process. */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import type { MessageStream, WireMessage, WireUser } from "../client/chat_client.ts";
import {
  backoffDelay,
  type ChatApi,
  type Clock,
  DEFAULT_BACKOFF,
  DEFAULT_SERVER,
  formatDelay,
  formatMessage,
  formatPresence,
  formatTime,
  parseArguments,
  readLines,
  runTerminalClient,
  sanitize,
  shorten,
  type TerminalClientOptions,
} from "../client/terminal_client.ts";
import { isoToTimestamp } from "../server/proto.ts";
import { startSystem, waitFor } from "./helpers.ts";

// --- formatting ------------------------------------------------------------

/** A message whose timestamp is 15:04:05 local time. */
function message(fields: Partial<WireMessage> = {}): WireMessage {
  return {
    id: "alice",
    content: "Hello World!",
    timestamp: isoToTimestamp(new Date(2024, 0, 2, 15, 4, 5, 678).toISOString()),
    messageId: "m1",
    room: "general",
    seq: 1,
    displayName: "alice",
    presence: null,
    roomEvent: null,
    ...fields,
  };
}

Deno.test("a chat message prints as [hh:mm:ss] user: text in local time", () => {
  assert.equal(formatMessage(message()), "[15:04:05] alice: Hello World!");
  assert.equal(formatMessage(message({ displayName: "" })), "[15:04:05] alice: Hello World!");
  assert.equal(
    formatMessage(message({ displayName: "Alice Smith", content: "hi" })),
    "[15:04:05] Alice Smith (alice): hi",
  );
  assert.equal(formatTime(new Date(2024, 5, 6, 7, 8, 9)), "07:08:09");
});

Deno.test("a message without a timestamp shows the local clock; another room is named", () => {
  const now = new Date(2024, 0, 2, 9, 30, 0).getTime();
  assert.equal(formatMessage(message({ timestamp: null }), now), "[09:30:00] alice: Hello World!");
  assert.equal(formatMessage(message({ room: "" })), "[15:04:05] alice: Hello World!");
  assert.equal(
    formatMessage(message({ room: "random" })),
    "[15:04:05] #random alice: Hello World!",
  );
});

Deno.test("multi-line content is indented under the first line; control characters are shown", () => {
  assert.equal(
    formatMessage(message({ content: "one\ntwo\r\nthree" })),
    "[15:04:05] alice: one\n" +
      "                  two\n" +
      "                  three",
  );
  assert.equal(
    sanitize("red \x1b[31m bell \x07 del \x7f tab\tok"),
    "red ^[[31m bell ^G del ^? tab\tok",
  );
  assert.equal(
    formatMessage(message({ id: "ev\x1bil", displayName: "" })).slice(11),
    "ev^[il: Hello World!",
  );
});

Deno.test("presence events print as * user is online / went offline", () => {
  const event = (online: boolean, displayName = "bob") =>
    message({
      id: "bob",
      content: "",
      presence: { user: { id: "bob", displayName }, online },
    });
  assert.equal(formatPresence(event(true)), "* bob is online");
  assert.equal(formatPresence(event(false)), "* bob went offline");
  assert.equal(formatPresence(event(true, "Bob B")), "* Bob B (bob) is online");
});

Deno.test("the backoff grows, is bounded, and its jitter only shortens it", () => {
  const none = () => 0;
  const full = () => 1;
  const schedule = Array.from({ length: 8 }, (_, i) => backoffDelay(i, DEFAULT_BACKOFF, none));
  assert.deepEqual(schedule, [1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]);
  for (let i = 0; i < 40; i++) {
    const base = schedule[Math.min(i, 7)]!;
    const jittered = backoffDelay(i, DEFAULT_BACKOFF, Math.random);
    assert.ok(jittered <= base && jittered >= base * 0.8, `${jittered} for attempt ${i}`);
    assert.ok(backoffDelay(i, DEFAULT_BACKOFF, full) >= 800, "never spins");
  }
  assert.equal(backoffDelay(1000, DEFAULT_BACKOFF, none), 15000, "no overflow on long outages");
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
  assert.deepEqual(parseArguments(["alice"]), { userId: "alice", server: DEFAULT_SERVER });
  assert.deepEqual(parseArguments(["alice"], { CHAT_SERVER: "10.0.0.1:9000" }), {
    userId: "alice",
    server: "10.0.0.1:9000",
  });
  assert.deepEqual(
    parseArguments(["alice", "--server", "h:1", "--name", "Alice Smith"], { CHAT_SERVER: "x:2" }),
    { userId: "alice", server: "h:1", displayName: "Alice Smith" },
  );
  assert.deepEqual(parseArguments(["--server=h:1", "bob"]), { userId: "bob", server: "h:1" });
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

/** One fake connection: `up` false means the stream fails at once, like a refused connection. */
class FakeChat implements ChatApi {
  onMessage: ((m: WireMessage) => void) | undefined;
  onEnd: ((e?: ServiceError) => void) | undefined;
  cancelled = false;
  closed = false;
  readonly sent: string[] = [];
  sendError: ServiceError | undefined;
  streamError: ServiceError | undefined;
  online: WireUser[] = [];
  #rejectReady: ((e: Error) => void) | undefined;

  constructor(readonly up: boolean) {}

  stream(
    userId: string,
    onMessage: (m: WireMessage) => void,
    onEnd: (e?: ServiceError) => void,
  ): MessageStream {
    this.onMessage = onMessage;
    let ended = false;
    this.onEnd = (e) => {
      if (!ended) (ended = true, onEnd(e));
    };
    if (!this.up) {
      queueMicrotask(() =>
        this.onEnd!(
          grpcError(
            status.UNAVAILABLE,
            "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ",
          ),
        )
      );
    } else if (this.streamError) {
      const error = this.streamError;
      queueMicrotask(() => this.onEnd!(error));
    } else {
      this.online.push({ id: userId, displayName: userId });
    }
    return {
      call: {} as MessageStream["call"],
      cancel: () => {
        this.cancelled = true;
        this.onEnd!(grpcError(status.CANCELLED, "Cancelled on client"));
      },
    };
  }
  send(_userId: string, content: string): Promise<void> {
    if (this.sendError) return Promise.reject(this.sendError);
    this.sent.push(content);
    return Promise.resolve();
  }
  listOnline(): Promise<WireUser[]> {
    return Promise.resolve([...this.online]);
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
 * A clock whose sleeps are recorded and take no real time (a macrotask, so nothing starves);
 * sleeps of `FOREVER` ms or more only end when aborted.
 */
class FakeClock implements Clock {
  static readonly FOREVER = 3_600_000;
  t = new Date(2024, 0, 2, 12, 0, 0).getTime();
  readonly sleeps: number[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (ms < FakeClock.FOREVER) {
      if (ms !== 50) this.sleeps.push(ms);
      this.t += ms;
      return new Promise((resolve) => setTimeout(resolve, 0));
    }
    return new Promise((resolve) => {
      if (signal?.aborted) resolve();
      signal?.addEventListener("abort", () => resolve(), { once: true });
    });
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
    address: "127.0.0.1:1",
    input: keyboard,
    output: (line) => out.push(line),
    clock,
    random: () => 0,
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
  await s.seen("! Not sent: Cannot send message: content is 70000 bytes, the limit is 65536");
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

// --- the session against an in-process system --------------------------------

Deno.test("against a real gateway: too-long messages are refused, others arrive, bad ids exit 2", async () => {
  const system = await startSystem();
  const keyboard = new Keyboard();
  const out: string[] = [];
  try {
    const done = runTerminalClient({
      userId: "alice",
      displayName: "Alice Smith",
      address: system.address(),
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
    assert.equal(
      out[1],
      "! Not sent: Cannot send message: content is 70000 bytes, the limit is 65536",
    );
    keyboard.end();
    assert.equal(await done, 0);

    const badOut: string[] = [];
    const code = await runTerminalClient({
      userId: "b".repeat(129),
      address: system.address(),
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
