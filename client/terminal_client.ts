/**
 * The interactive terminal client, as a function of its inputs: lines typed,
 * a line writer, a clock and the server address. `client/main.ts` wires it to
 * stdin, stdout and signals; the tests drive it with fakes.
 *
 * Decisions:
 * - A connection counts as made once the channel is ready and the server has
 *   taken the stream: our user shows in ListOnline, or the stream delivers
 *   something, or (when the processor is slow) `confirmTimeoutMs` has passed
 *   with the stream still open. Only then "Connected to server as user: ..." is
 *   printed, so a rejected stream never prints it first.
 * - Lines typed while not connected are kept, in order, in a bounded queue
 *   (`maxQueued`, 100 by default) and sent after reconnecting; each carries a
 *   message id, so a send retried after a cut connection is not stored twice.
 *   When the queue is full the line is refused with a "! Not sent: ..." line.
 *   While connected, input waits for room in the queue instead (backpressure).
 * - A send the server refuses prints "! Not sent: <reason>" and is dropped; only
 *   a send that failed because the connection went down is kept for later.
 * - Lost connections are retried with exponential backoff and jitter
 *   (1 s, 2 s, 4 s, ... at most 15 s, each up to 20% shorter), reset after a
 *   successful connection. INVALID_ARGUMENT, UNAUTHENTICATED and
 *   PERMISSION_DENIED on the stream are not retried: exit code 2.
 * - End of input and `/quit` first let queued lines go out (at most
 *   `drainTimeoutMs`) and exit 0; an abort (Ctrl-C) exits 0 at once.
 * - Presence events about our own user are not shown; our own messages are
 *   (the server echoes them, which shows they were stored).
 */

import * as grpc from "@grpc/grpc-js";
import { ChatClient, type MessageStream, type WireMessage } from "./chat_client.ts";

export const DEFAULT_SERVER = "127.0.0.1:8081";

/** What the terminal client needs from a chat connection (`ChatClient` in production). */
export type ChatApi = Pick<
  ChatClient,
  "stream" | "send" | "listOnline" | "waitForReady" | "close"
>;

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts (never rejects; clears its timer). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
    }),
};

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** Each delay is shortened by up to this fraction, at random, so clients spread out. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialMs: 1000,
  maxMs: 15_000,
  factor: 2,
  jitter: 0.2,
};

/** The delay before reconnect attempt `attempt` (0 for the first retry); never above `maxMs`. */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const base = Math.min(options.maxMs, options.initialMs * options.factor ** Math.max(0, attempt));
  return Math.round(base * (1 - options.jitter * random()));
}

/** `1000` → `1s`, `1500` → `1.5s`. */
export function formatDelay(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** Local time as HH:MM:SS. */
export function formatTime(date: Date): string {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** `alice`, or `Alice Smith (alice)` when the display name says something the id does not. */
export function formatUser(id: string, displayName?: string): string {
  const name = displayName?.trim() ?? "";
  return name === "" || name === id ? id : `${name} (${id})`;
}

/** Makes text safe for a terminal: newlines normalised, other control characters shown as ^X. */
export function sanitize(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g,
    (c) => {
      const code = c.charCodeAt(0);
      if (code < 0x20) return `^${String.fromCharCode(code + 64)}`;
      if (code === 0x7f) return "^?";
      return "\uFFFD";
    },
  );
}

const DEFAULT_ROOMS = new Set(["", "general"]);

/** `[15:04:05] alice: Hello World!`; continuation lines are indented under the text. */
export function formatMessage(message: WireMessage, now: number = Date.now()): string {
  const ts = message.timestamp;
  const at = ts && (ts.seconds || ts.nanos)
    ? new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6))
    : new Date(now);
  const room = DEFAULT_ROOMS.has(message.room) ? "" : `#${sanitize(message.room)} `;
  const prefix = `[${formatTime(at)}] ${room}${
    sanitize(formatUser(message.id, message.displayName))
  }: `;
  const [first = "", ...rest] = sanitize(message.content).split("\n");
  const indent = " ".repeat(prefix.length);
  return [prefix + first, ...rest.map((line) => indent + line)].join("\n");
}

/** `* bob is online` / `* bob went offline`. */
export function formatPresence(message: WireMessage): string {
  const user = message.presence?.user;
  const who = sanitize(formatUser(user?.id || message.id, user?.displayName));
  return message.presence?.online ? `* ${who} is online` : `* ${who} went offline`;
}

export const HELP = [
  "Commands:",
  "  /who    list the users online",
  "  /help   show this list",
  "  /quit   leave (Ctrl-D and Ctrl-C also do)",
  "Any other line is sent as a message; start it with // to send a line that begins with /.",
].join("\n");

export interface CliOptions {
  userId: string;
  server: string;
  displayName?: string;
}

export const USAGE =
  'Usage: deno task client <user> [--server host:port] [--name "Display Name"]\n' +
  `  --server  the gateway's gRPC address (default: $CHAT_SERVER, else ${DEFAULT_SERVER})\n` +
  "  --name    the name shown to others (default: the user id)";

/** Parses the command line; `help` for -h/--help, `error` for a usage mistake. */
export function parseArguments(
  args: string[],
  env: Record<string, string | undefined> = {},
): CliOptions | { help: true } | { error: string } {
  let userId: string | undefined;
  let server: string | undefined;
  let displayName: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const next = args[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    try {
      if (flag === "-h" || flag === "--help") return { help: true };
      if (flag === "--server" || flag === "-s") server = value();
      else if (flag === "--name" || flag === "-n") displayName = value();
      else if (flag.startsWith("-") && flag !== "-") return { error: `unknown option ${flag}` };
      else if (userId === undefined) userId = arg;
      else return { error: `unexpected argument "${arg}"` };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }
  if (userId === undefined) return { error: "the user id is missing" };
  if (userId.trim() === "") return { error: "the user id is empty" };
  server = server?.trim() || env.CHAT_SERVER?.trim() || DEFAULT_SERVER;
  return { userId, server, ...(displayName !== undefined ? { displayName } : {}) };
}

/** Splits a byte stream into lines (without their line ends); stops reading when `signal` aborts. */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<string> {
  const reader = stream.getReader();
  const cancel = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    while (!signal?.aborted) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        yield buffered.slice(0, newline).replace(/\r$/, "");
        buffered = buffered.slice(newline + 1);
      }
    }
    buffered += decoder.decode();
    if (buffered !== "" && !signal?.aborted) yield buffered.replace(/\r$/, "");
  } finally {
    signal?.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}

const CHANNEL_OPTIONS: grpc.ClientOptions = {
  // A fresh channel per attempt, so grpc-js's own reconnect backoff never adds to ours.
  "grpc.use_local_subchannel_pool": 1,
  // Notice a server that vanished without closing the connection.
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
};

export function connectChat(address: string): ChatApi {
  return new ChatClient(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
}

export interface TerminalClientOptions {
  userId: string;
  displayName?: string;
  /** `host:port` of a gateway. */
  address: string;
  /** The lines typed; its end means Ctrl-D. */
  input: AsyncIterable<string>;
  /** Writes one line (or several, joined by `\n`) for the user. */
  output: (line: string) => void;
  clock?: Clock;
  /** Aborting it (Ctrl-C) ends the client at once. */
  signal?: AbortSignal;
  connect?: (address: string) => ChatApi;
  backoff?: BackoffOptions;
  random?: () => number;
  /** How many lines may wait for a connection. */
  maxQueued?: number;
  /** How long to wait for the channel to become ready before trying again. */
  connectTimeoutMs?: number;
  /** How long to wait for our user to show as online before calling the connection made. */
  confirmTimeoutMs?: number;
  /** How long end of input waits for queued lines to be sent. */
  drainTimeoutMs?: number;
  /** Print a one-time hint after the first connection (for a terminal). */
  interactive?: boolean;
}

/** gRPC codes that mean "this request will never work": not retried. */
const FATAL_CODES = new Set<number>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
]);

/** gRPC codes of a send that may have failed only because the connection went down. */
const RETRYABLE_CODES = new Set<number>([
  grpc.status.UNAVAILABLE,
  grpc.status.CANCELLED,
  grpc.status.DEADLINE_EXCEEDED,
]);

function reasonOf(err: unknown): string {
  const e = err as Partial<grpc.ServiceError> | undefined;
  if (e && typeof e.details === "string" && e.details !== "") return shorten(e.details);
  if (err instanceof Error) return shorten(err.message);
  return String(err);
}

/** grpc-js's "No connection established. Last error: Error: connect ECONNREFUSED ..." made readable. */
export function shorten(details: string): string {
  const last = /Last error: (?:Error: )?(.*?)(?:\.\s*Resolution note:.*)?$/s.exec(details)?.[1];
  const reason = last ?? details;
  if (/ECONNREFUSED/.test(reason)) return "connection refused";
  if (/ENOTFOUND|EAI_AGAIN/.test(reason)) return "host not found";
  if (/ETIMEDOUT/.test(reason)) return "connection timed out";
  if (/ECONNRESET/.test(reason)) return "connection reset";
  return reason.trim();
}

function codeOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

interface Outgoing {
  text: string;
  messageId: string;
}

type AttemptResult =
  | { kind: "stopped" }
  | { kind: "fatal"; reason: string }
  | { kind: "lost"; reason: string; wasConnected: boolean };

const STOPPED = Symbol("stopped");

class TerminalClient {
  readonly #o: TerminalClientOptions;
  /** As the server sees it: trimmed. */
  readonly #userId: string;
  readonly #clock: Clock;
  readonly #write: (line: string) => void;
  readonly #maxQueued: number;
  readonly #stop = new AbortController();
  readonly #stopped: Promise<typeof STOPPED>;
  #exitCode = 0;
  #client: ChatApi | undefined;
  #connected = false;
  #hinted = false;
  #queue: Outgoing[] = [];
  #pumping = false;
  #waiters: (() => void)[] = [];

  constructor(options: TerminalClientOptions) {
    this.#o = options;
    this.#userId = options.userId.trim();
    this.#clock = options.clock ?? systemClock;
    this.#write = options.output;
    this.#maxQueued = options.maxQueued ?? 100;
    this.#stopped = new Promise((resolve) =>
      this.#stop.signal.addEventListener("abort", () => resolve(STOPPED), { once: true })
    );
  }

  async run(): Promise<number> {
    const external = this.#o.signal;
    const onAbort = () => this.#finish(0);
    if (external?.aborted) return 0;
    external?.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.all([this.#connectionLoop(), this.#inputLoop()]);
    } finally {
      external?.removeEventListener("abort", onAbort);
    }
    return this.#exitCode;
  }

  get #isStopped(): boolean {
    return this.#stop.signal.aborted;
  }

  #finish(code: number): void {
    if (this.#isStopped) return;
    this.#exitCode = code;
    this.#stop.abort();
    this.#notify();
  }

  #notify(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves at the next change of connection, queue or stop state. */
  #changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  // --- connection ---------------------------------------------------------

  async #connectionLoop(): Promise<void> {
    let failures = 0;
    while (!this.#isStopped) {
      const result = await this.#attempt();
      if (result.kind === "stopped") break;
      if (result.kind === "fatal") {
        this.#write(`! ${result.reason}`);
        this.#finish(2);
        break;
      }
      if (result.wasConnected) failures = 0;
      const delay = backoffDelay(failures++, this.#o.backoff, this.#o.random);
      this.#write(
        result.wasConnected
          ? `Disconnected: ${result.reason}; reconnecting in ${formatDelay(delay)}`
          : `Cannot connect to ${this.#o.address}: ${result.reason}; retrying in ${
            formatDelay(delay)
          }`,
      );
      await this.#clock.sleep(delay, this.#stop.signal);
    }
  }

  /** One connection, from opening the stream to its end. */
  async #attempt(): Promise<AttemptResult> {
    const client = (this.#o.connect ?? connectChat)(this.#o.address);
    // Aborted when this attempt is over, so nothing it started outlives it.
    const over = new AbortController();
    const attemptSignal = AbortSignal.any([over.signal, this.#stop.signal]);
    let announced = false;
    let endStream!: (end: { error?: grpc.ServiceError }) => void;
    const ended = new Promise<{ error?: grpc.ServiceError }>((resolve) => endStream = resolve);
    const announce = () => {
      if (announced || this.#isStopped) return;
      announced = true;
      this.#client = client;
      this.#connected = true;
      this.#write(`Connected to server as user: ${this.#userId}`);
      if (this.#o.interactive && !this.#hinted) {
        this.#hinted = true;
        this.#write("Type a message and press Enter; /help lists the commands.");
      }
      this.#notify();
      void this.#pump();
    };
    let stream: MessageStream | undefined;
    try {
      stream = client.stream(
        this.#userId,
        (message) => {
          announce();
          if (announced) this.#show(message);
        },
        (error) => endStream({ error }),
        { displayName: this.#o.displayName, presenceEvents: true },
      );
      const ready = await Promise.race([
        client.waitForReady(this.#o.connectTimeoutMs ?? 10_000).then(
          () => ({ ok: true as const }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
        ended,
        this.#stopped,
      ]);
      if (ready === STOPPED) return { kind: "stopped" };
      if ("ok" in ready && !ready.ok) {
        return {
          kind: "lost",
          reason: `no connection after ${formatDelay(this.#o.connectTimeoutMs ?? 10_000)} (${
            reasonOf(ready.error)
          })`,
          wasConnected: false,
        };
      }
      if (!("ok" in ready)) return this.#ended(ready.error, false);
      if (!announced) {
        const confirmed = await Promise.race([
          this.#confirm(client, attemptSignal),
          ended,
          this.#stopped,
        ]);
        if (confirmed === STOPPED) return { kind: "stopped" };
        if (confirmed !== true && !announced) return this.#ended(confirmed.error, false);
        announce();
      }
      const end = await Promise.race([ended, this.#stopped]);
      if (end === STOPPED) return { kind: "stopped" };
      return this.#ended(end.error, true);
    } finally {
      over.abort();
      if (this.#client === client) this.#client = undefined;
      if (this.#connected) {
        this.#connected = false;
        this.#notify();
      }
      stream?.cancel();
      client.close();
    }
  }

  #ended(error: grpc.ServiceError | undefined, wasConnected: boolean): AttemptResult {
    if (this.#isStopped) return { kind: "stopped" };
    if (error === undefined) {
      return { kind: "lost", reason: "the server ended the stream", wasConnected };
    }
    if (FATAL_CODES.has(error.code)) return { kind: "fatal", reason: reasonOf(error) };
    return { kind: "lost", reason: reasonOf(error), wasConnected };
  }

  /** Resolves true once our user is listed online, or after `confirmTimeoutMs` anyway. */
  async #confirm(client: ChatApi, signal: AbortSignal): Promise<true> {
    const deadline = this.#clock.now() + (this.#o.confirmTimeoutMs ?? 2000);
    while (!signal.aborted && this.#clock.now() < deadline) {
      try {
        const users = await client.listOnline();
        if (users.some((u) => u.id === this.#userId)) return true;
      } catch {
        // Not answering yet; the stream's own end decides whether this attempt failed.
      }
      await this.#clock.sleep(50, signal);
    }
    return true;
  }

  #show(message: WireMessage): void {
    if (message.presence) {
      const id = message.presence.user?.id || message.id;
      if (id !== this.#userId) this.#write(formatPresence(message));
      return;
    }
    this.#write(formatMessage(message, this.#clock.now()));
  }

  // --- sending ------------------------------------------------------------

  /** Sends queued lines in order while connected; one pump at a time. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#connected && !this.#isStopped && this.#queue.length > 0) {
        const item = this.#queue[0]!;
        const client = this.#client!;
        try {
          await client.send(this.#userId, item.text, {
            displayName: this.#o.displayName,
            messageId: item.messageId,
          });
        } catch (err) {
          if (this.#isStopped) break;
          // The connection went down under the send: keep the line for the next connection.
          if (!this.#connected && RETRYABLE_CODES.has(codeOf(err) ?? -1)) break;
          this.#write(`! Not sent: ${reasonOf(err)}`);
        }
        this.#queue.shift();
        this.#notify();
      }
    } finally {
      this.#pumping = false;
      this.#notify();
    }
  }

  async #enqueue(text: string): Promise<void> {
    while (this.#connected && !this.#isStopped && this.#queue.length >= this.#maxQueued) {
      await this.#changed();
    }
    if (this.#isStopped) return;
    if (this.#queue.length >= this.#maxQueued) {
      this.#write(
        `! Not sent: not connected, and ${this.#queue.length} messages are already waiting`,
      );
      return;
    }
    this.#queue.push({ text, messageId: crypto.randomUUID() });
    if (this.#connected) {
      void this.#pump();
    } else {
      this.#write(`* Not connected: will send once connected (${this.#queue.length} waiting)`);
    }
  }

  /** Lets queued lines go out before leaving (connecting if need be), for at most `drainTimeoutMs`. */
  async #drain(): Promise<void> {
    if (this.#queue.length === 0 && !this.#pumping) return;
    const limitMs = this.#o.drainTimeoutMs ?? 5000;
    if (!this.#connected) {
      const n = this.#queue.length;
      this.#write(
        `* Waiting up to ${formatDelay(limitMs)} to send ${n} message${n === 1 ? "" : "s"}`,
      );
    }
    const timeout = new AbortController();
    const timer = this.#clock.sleep(limitMs, AbortSignal.any([timeout.signal, this.#stop.signal]));
    let timedOut = false;
    void timer.then(() => {
      timedOut = true;
      this.#notify();
    });
    try {
      while (!this.#isStopped && !timedOut && (this.#queue.length > 0 || this.#pumping)) {
        await this.#changed();
      }
    } finally {
      timeout.abort();
    }
    if (this.#queue.length > 0 && !this.#isStopped) {
      const n = this.#queue.length;
      this.#write(`! Not sent: ${n} message${n === 1 ? "" : "s"} still waiting to be sent`);
    }
  }

  // --- input --------------------------------------------------------------

  async #inputLoop(): Promise<void> {
    const lines = this.#o.input[Symbol.asyncIterator]();
    let finished = false;
    try {
      while (!this.#isStopped) {
        const next = await Promise.race([lines.next(), this.#stopped]);
        if (next === STOPPED) break;
        if (next.done) {
          finished = true;
          break;
        }
        if (await this.#handle(next.value) === "quit") break;
      }
    } finally {
      // A pending read cannot be awaited out: let the iterator close on its own.
      if (!finished) lines.return?.().catch(() => {});
    }
    if (!this.#isStopped) {
      await this.#drain();
      this.#finish(0);
    }
  }

  async #handle(line: string): Promise<"quit" | void> {
    const text = line.replace(/\r$/, "");
    const trimmed = text.trim();
    if (trimmed === "") return;
    if (trimmed.startsWith("/") && !trimmed.startsWith("//")) {
      const [command = ""] = trimmed.split(/\s+/);
      switch (command.toLowerCase()) {
        case "/quit":
        case "/exit":
          return "quit";
        case "/help":
          this.#write(HELP);
          return;
        case "/who":
          await this.#who();
          return;
        default:
          this.#write(`! Unknown command ${command}; /help lists the commands`);
          return;
      }
    }
    await this.#enqueue(trimmed.startsWith("//") ? text.replace("//", "/") : text);
  }

  async #who(): Promise<void> {
    const client = this.#client;
    if (!client || !this.#connected) {
      this.#write("! Cannot list users: not connected");
      return;
    }
    try {
      const users = await Promise.race([client.listOnline(), this.#stopped]);
      if (users === STOPPED) return;
      const names = users.map((u) => sanitize(formatUser(u.id, u.displayName)));
      this.#write(`* Online (${users.length}): ${names.join(", ") || "nobody"}`);
    } catch (err) {
      this.#write(`! Cannot list users: ${reasonOf(err)}`);
    }
  }
}

/**
 * Runs the client until end of input, `/quit`, an abort, or a stream error that
 * retrying cannot fix; resolves to the exit code (0, or 2 for a rejected stream).
 * Everything it opened (stream, channel, timers) is closed when it resolves.
 */
export function runTerminalClient(options: TerminalClientOptions): Promise<number> {
  return new TerminalClient(options).run();
}
