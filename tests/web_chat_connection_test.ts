/** The page's connection logic (web/chat_connection.ts) with a fake API and a fake clock. */

import assert from "node:assert/strict";
import {
  ApiError,
  backoffDelay,
  type ChatApi,
  ChatConnection,
  type ChatMessage,
  type ChatUser,
  type Clock,
  type ConnectionStatus,
  describeSendFailure,
  type StreamEvent,
} from "../web/chat_connection.ts";

/** A clock whose timers run only when the test advances it. */
class FakeClock implements Clock {
  time = 1_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now = () => this.time;
  random = () => 1;
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
  open(): void;
  emit(event: StreamEvent): void;
  end(): void;
  fail(error: unknown): void;
  aborted: boolean;
}

/** A fake server: records calls; each stream is driven by the test. */
class FakeApi implements ChatApi {
  streams: FakeStream[] = [];
  sent: { content: string; messageId: string }[] = [];
  online: ChatUser[] = [];
  sendError: unknown;
  onlineRequests = 0;
  /** When set, ListOnline waits for this promise (to test events arriving meanwhile). */
  onlineGate: Promise<void> | undefined;

  stream(
    request: { user: ChatUser; presenceEvents: boolean },
    handlers: { onOpen(): void; onEvent(event: StreamEvent): void },
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const s: FakeStream = {
        user: request.user,
        aborted: false,
        open: () => handlers.onOpen(),
        emit: (e) => handlers.onEvent(e),
        end: () => resolve(),
        fail: (err) => reject(err),
      };
      signal.addEventListener("abort", () => {
        s.aborted = true;
        reject(new ApiError("CANCELLED", "aborted"));
      });
      this.streams.push(s);
    });
  }

  send(message: { user: ChatUser; content: string; messageId: string }): Promise<void> {
    if (this.sendError) return Promise.reject(this.sendError);
    this.sent.push({ content: message.content, messageId: message.messageId });
    return Promise.resolve();
  }

  async listOnline(): Promise<ChatUser[]> {
    this.onlineRequests++;
    const users = [...this.online];
    if (this.onlineGate) await this.onlineGate;
    return users;
  }

  get last(): FakeStream {
    return this.streams.at(-1)!;
  }
}

const ann: ChatUser = { id: "ann", displayName: "ann" };
const ben: ChatUser = { id: "ben", displayName: "ben" };

function message(text: string, from = ben, messageId = crypto.randomUUID()): ChatMessage {
  return {
    messageId,
    userId: from.id,
    displayName: from.displayName,
    content: text,
    timestamp: new Date(),
    room: "general",
    seq: 0,
  };
}

function setup() {
  const api = new FakeApi();
  const clock = new FakeClock();
  const statuses: ConnectionStatus[] = [];
  const messages: ChatMessage[] = [];
  let online: readonly ChatUser[] = [];
  const connection = new ChatConnection({
    api,
    user: ann,
    clock,
    backoff: { baseMs: 500, maxMs: 8000, stableAfterMs: 5000 },
    onStatus: (s) => statuses.push(s),
    onMessage: (m) => messages.push(m),
    onOnline: (users) => (online = users),
  });
  return {
    api,
    clock,
    statuses,
    messages,
    connection,
    online: () => online.map((u) => u.id),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("backoff doubles from the base up to the cap, with jitter between half and all of it", () => {
  const options = { baseMs: 500, maxMs: 8000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 10].map((n) => backoffDelay(n, options, () => 1)),
    [500, 1000, 2000, 4000, 8000, 8000, 8000],
  );
  assert.equal(backoffDelay(3, options, () => 0), 1000);
  assert.equal(backoffDelay(1000, options, () => 0.5), 6000, "no overflow for large attempts");
});

Deno.test("connects, reports the status, passes messages on once each", async () => {
  const { api, statuses, messages, connection } = setup();
  connection.start();
  assert.equal(statuses.at(-1)?.kind, "connecting");
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
  connection.start();
  api.last.fail(new ApiError("INTERNAL", "Failed to fetch"));
  await tick();
  let status = statuses.at(-1)!;
  assert.equal(status.kind, "reconnecting");
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 500);
  assert.equal(status.kind === "reconnecting" && status.reason, "The server is unavailable");

  clock.advance(499);
  assert.equal(api.streams.length, 1, "not before the delay");
  clock.advance(1);
  assert.equal(api.streams.length, 2);
  assert.deepEqual(statuses.at(-1), { kind: "connecting", attempt: 2 });

  api.last.fail(new ApiError("INTERNAL", "Failed to fetch"));
  await tick();
  status = statuses.at(-1)!;
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 1000, "doubled");
  clock.advance(1000);
  api.last.fail(new ApiError("INTERNAL", "Failed to fetch"));
  await tick();
  status = statuses.at(-1)!;
  assert.equal(status.kind === "reconnecting" && status.retryAt - clock.now(), 2000);

  // Back up, and healthy for a while: the next failure starts from the base again.
  clock.advance(2000);
  api.last.open();
  assert.equal(statuses.at(-1)?.kind, "connected");
  clock.advance(6000);
  api.last.fail(new ApiError("UNAVAILABLE", "Stream closed: the server is shutting down"));
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
  connection.start();
  api.last.open();
  api.last.end();
  await tick();
  assert.equal(statuses.at(-1)?.kind, "reconnecting");
  clock.advance(500);
  assert.equal(api.streams.length, 2);
  connection.stop();
  await tick();
});

Deno.test("retryNow skips the wait", async () => {
  const { api, connection } = setup();
  connection.start();
  api.last.fail(new ApiError("INTERNAL", "Failed to fetch"));
  await tick();
  connection.retryNow();
  assert.equal(api.streams.length, 2);
  connection.retryNow();
  assert.equal(api.streams.length, 2, "only while waiting");
  connection.stop();
  await tick();
});

Deno.test("a refusal of the user stops for good with the server's words", async () => {
  const { api, clock, statuses, connection } = setup();
  connection.start();
  api.last.fail(new ApiError("INVALID_ARGUMENT", "Cannot open stream: the user id is empty"));
  await tick();
  assert.deepEqual(statuses.at(-1), {
    kind: "stopped",
    error: "Cannot open stream: the user id is empty",
  });
  clock.advance(60_000);
  assert.equal(api.streams.length, 1, "no retry");
});

Deno.test("the online list: ListOnline, then presence events, including ones that race it", async () => {
  const { api, connection, online } = setup();
  api.online = [ben, { id: "cat", displayName: "cat" }];
  let release!: () => void;
  api.onlineGate = new Promise((r) => (release = r));
  connection.start();
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
  api.last.fail(new ApiError("UNAVAILABLE", "gone"));
  await tick();
  connection.retryNow();
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

  api.sendError = new ApiError(
    "INVALID_ARGUMENT",
    "Cannot send message: content is 70000 bytes, the limit is 65536",
  );
  await assert.rejects(() => connection.send("x".repeat(70000)), ApiError);
  assert.equal(
    describeSendFailure(api.sendError),
    "Not sent: Cannot send message: content is 70000 bytes, the limit is 65536",
  );
  assert.match(
    describeSendFailure(new ApiError("INTERNAL", "Failed to fetch")),
    /^Not sent: the server is unavailable\. Your text is kept/,
  );
  assert.match(
    describeSendFailure(new ApiError("UNAVAILABLE", "Kafka is unavailable")),
    /server is unavailable \(Kafka is unavailable\)/,
  );
});
