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
 * - Sign-in: with a password, every connection signs in first unless it still
 *   holds a token (the first sign-in of a new name creates the account:
 *   "Created account <user>"). A reused token the stream refuses as
 *   UNAUTHENTICATED (expired, or the server's secret changed) is dropped and
 *   the client signs in again at once; a send or command refused that way
 *   signs in again and is retried once. A sign-in refused as UNAUTHENTICATED,
 *   INVALID_ARGUMENT or PERMISSION_DENIED (a wrong password) exits with code 2.
 *   SignIn UNIMPLEMENTED (an old classic server) means the classic anonymous
 *   stream; so does running without a password.
 * - Resume: the newest `seq` seen per room is remembered, and every stream
 *   passes it as `resume`, so what was missed prints once, in order. Before
 *   opening a stream the client asks ListRooms for the rooms it has no
 *   position in yet (the first connection, a room joined elsewhere) and starts
 *   them at their newest message. A message at or below the room's position is
 *   not printed again.
 * - Rooms: lines typed go to the current room (`/room`, "general" at first).
 *   Messages of a room other than "general" are shown with `#room`; so are
 *   those of "general" while another room is the current one. Our own room
 *   events are not shown (the command that caused them says what happened),
 *   except that somebody opened a direct conversation with us.
 */

import * as grpc from "@grpc/grpc-js";
import {
  ChatClient,
  type MessageStream,
  type SignedIn,
  type WireMessage,
  type WireRoom,
} from "./chat_client.ts";
import { DEFAULT_MAX_RESUME_ROOMS } from "../protocol/limits.ts";

export const DEFAULT_SERVER = "127.0.0.1:8081";

/** What the terminal client needs from a chat connection (`ChatClient` in production). */
export type ChatApi = Pick<
  ChatClient,
  | "stream"
  | "send"
  | "listOnline"
  | "waitForReady"
  | "close"
  | "token"
  | "signIn"
  | "createRoom"
  | "joinRoom"
  | "leaveRoom"
  | "listRooms"
  | "openDirect"
  | "history"
>;

/** The room everybody is in. */
export const GENERAL = "general";

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

/** The room a message or event belongs to: "" means "general". */
export function roomOf(room: string | undefined): string {
  return room?.trim() || GENERAL;
}

/**
 * `[15:04:05] alice: Hello World!`; continuation lines are indented under the text.
 * A room other than "general" is named (`[15:04:05] #book-club alice: ...`), and so is
 * "general" while `currentRoom` is another one.
 */
export function formatMessage(
  message: WireMessage,
  now: number = Date.now(),
  currentRoom: string = GENERAL,
): string {
  const ts = message.timestamp;
  const at = ts && (ts.seconds || ts.nanos)
    ? new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6))
    : new Date(now);
  const id = roomOf(message.room);
  const room = id === GENERAL && roomOf(currentRoom) === GENERAL ? "" : `#${sanitize(id)} `;
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

/** `* bob joined #book-club` / `* bob left #book-club`. */
export function formatRoomEvent(message: WireMessage): string {
  const event = message.roomEvent;
  const who = sanitize(formatUser(event?.user?.id || message.id, event?.user?.displayName));
  const room = sanitize(roomOf(event?.room));
  return event?.joined ? `* ${who} joined #${room}` : `* ${who} left #${room}`;
}

/** `general (everybody)`, `book-club (2 members)`, `dm:alice:bob (direct, 2 members)`. */
export function formatRoom(room: WireRoom, currentRoom?: string): string {
  const n = room.members.length;
  const who = room.id === GENERAL
    ? "everybody"
    : `${room.direct ? "direct, " : ""}${n} member${n === 1 ? "" : "s"}`;
  const current = currentRoom !== undefined && roomOf(currentRoom) === room.id ? ", current" : "";
  return `${sanitize(room.id)} (${who}${current})`;
}

export const HELP = [
  "Commands:",
  "  /rooms           list your rooms (/rooms all: every room)",
  "  /room <room>     write to <room> from now on (at first: general)",
  "  /create <room>   create a room",
  "  /join <room>     join a room",
  "  /leave <room>    leave a room",
  "  /dm <user>       direct messages with <user>; switches to them",
  "  /history [n]     the last n messages of the current room (default 20)",
  "  /who             list the users online",
  "  /help            show this list",
  "  /quit            leave (Ctrl-D and Ctrl-C also do)",
  "Any other line is sent to the current room; start it with // to send a line that begins with /.",
].join("\n");

export interface CliOptions {
  userId: string;
  /** Gateways to use, in order: a lost connection moves on to the next one. */
  servers: string[];
  displayName?: string;
  /** A file whose first line is the password. */
  passwordFile?: string;
  /** Connect with TLS (`--tls`); `caFile` (`--ca`, `$CHAT_TLS_CA`): trust this CA, else the system's roots. */
  tls?: { caFile?: string };
}

export const USAGE =
  'Usage: deno task client <user> [--server host:port[,host:port...]] [--name "Display Name"] [--password-file <file>]\n' +
  `  --server         the gateway's gRPC address, or several separated by commas: a lost\n` +
  `                   connection moves on to the next (default: $CHAT_SERVER, else ${DEFAULT_SERVER})\n` +
  "  --name           the name shown to others (default: the user id)\n" +
  "  --password-file  read the password from the first line of <file>\n" +
  "  --tls            connect with TLS, checking the server's certificate against the system's roots\n" +
  "  --ca <file>      connect with TLS, trusting this CA or self-signed certificate (PEM;\n" +
  "                   default: $CHAT_TLS_CA)\n" +
  "The password comes from --password-file, else $CHAT_PASSWORD, else it is asked for on the\n" +
  "terminal (when stdin is not a terminal, its first line is the password). The first sign-in\n" +
  "of a new user name creates the account.";

/** `a:1, b:2` → `["a:1", "b:2"]`; undefined when nothing is named. */
function serverList(value: string | undefined): string[] | undefined {
  const servers = (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return servers.length > 0 ? servers : undefined;
}

/** Parses the command line; `help` for -h/--help, `error` for a usage mistake. */
export function parseArguments(
  args: string[],
  env: Record<string, string | undefined> = {},
): CliOptions | { help: true } | { error: string } {
  let userId: string | undefined;
  let server: string | undefined;
  let displayName: string | undefined;
  let passwordFile: string | undefined;
  let tls = false;
  let caFile: string | undefined;
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
      else if (flag === "--password-file") passwordFile = value();
      else if (flag === "--tls" && inline !== undefined) return { error: "--tls takes no value" };
      else if (flag === "--tls") tls = true;
      else if (flag === "--ca") caFile = value();
      else if (flag.startsWith("-") && flag !== "-") return { error: `unknown option ${flag}` };
      else if (userId === undefined) userId = arg;
      else return { error: `unexpected argument "${arg}"` };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }
  if (userId === undefined) return { error: "the user id is missing" };
  if (userId.trim() === "") return { error: "the user id is empty" };
  const servers = serverList(server) ?? serverList(env.CHAT_SERVER) ?? [DEFAULT_SERVER];
  caFile = caFile?.trim() || env.CHAT_TLS_CA?.trim() || undefined;
  return {
    userId,
    servers,
    ...(displayName !== undefined ? { displayName } : {}),
    ...(passwordFile !== undefined ? { passwordFile } : {}),
    ...(tls || caFile !== undefined ? { tls: caFile !== undefined ? { caFile } : {} } : {}),
  };
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

/** A chat connection to `address`; plaintext unless `credentials` (see `tlsCredentials`) say otherwise. */
export function connectChat(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): ChatApi {
  return new ChatClient(address, credentials, CHANNEL_OPTIONS);
}

export interface TerminalClientOptions {
  userId: string;
  displayName?: string;
  /** Signs in with it (creating the account the first time); without it, the classic anonymous stream. */
  password?: string;
  /** `host:port` of the gateways, tried in turn: a lost connection moves on to the next one. */
  servers: readonly string[];
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
  /** The room it goes to; "" for "general", which classic servers understand too. */
  room: string;
}

type AttemptResult =
  | { kind: "stopped" }
  | { kind: "fatal"; reason: string }
  /** The kept token was refused: sign in again at once. */
  | { kind: "reauth" }
  | { kind: "lost"; reason: string; wasConnected: boolean };

const STOPPED = Symbol("stopped");

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** The outcome of `promise` as a value: never rejects. */
function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

const DIRECT_PREFIX = "dm:";
const HISTORY_DEFAULT = 20;
const HISTORY_MAX = 200;

/** The direct-message room of two users, as the server names it. */
function directRoomId(a: string, b: string): string {
  return DIRECT_PREFIX + [a, b].sort().join(":");
}

/** `#book-club` or `book-club` as typed → `book-club`. */
function roomArgument(text: string): string {
  return text.trim().replace(/^#/, "");
}

class TerminalClient {
  readonly #o: TerminalClientOptions;
  /** As the server sees it: trimmed. */
  /** As typed, then as the account spells it once signed in (usernames compare without case). */
  #userId: string;
  readonly #clock: Clock;
  readonly #write: (line: string) => void;
  readonly #maxQueued: number;
  readonly #stop = new AbortController();
  readonly #stopped: Promise<typeof STOPPED>;
  #exitCode = 0;
  #client: ChatApi | undefined;
  /** Which of `servers` the next attempt uses. */
  #serverIndex = 0;
  #connected = false;
  #hinted = false;
  #queue: Outgoing[] = [];
  #pumping = false;
  #waiters: (() => void)[] = [];
  /** The token of the last sign-in, reused by later connections until refused. */
  #token: string | undefined;
  #classicNoted = false;
  /** The newest sequence number seen (or started from) per room: resume from there. */
  readonly #positions = new Map<string, number>();
  /** Where typed lines go. */
  #room = GENERAL;
  /** Direct rooms we are opening ourselves: our joining them is not news. */
  readonly #openingDirect = new Set<string>();
  /** Rooms we are leaving ourselves: our leaving them is not news. */
  readonly #leaving = new Set<string>();

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
      if (result.kind === "reauth") continue;
      if (result.kind === "fatal") {
        this.#write(`! ${result.reason}`);
        this.#finish(2);
        break;
      }
      if (result.wasConnected) failures = 0;
      const delay = backoffDelay(failures++, this.#o.backoff, this.#o.random);
      const failed = this.#server;
      // Another gateway is likely up when this one is not: the next attempt goes there.
      this.#serverIndex = (this.#serverIndex + 1) % this.#o.servers.length;
      const next = this.#server === failed ? "" : ` to ${this.#server}`;
      this.#write(
        result.wasConnected
          ? `Disconnected: ${result.reason}; reconnecting${next} in ${formatDelay(delay)}`
          : `Cannot connect to ${failed}: ${result.reason}; retrying${next} in ${
            formatDelay(delay)
          }`,
      );
      await this.#clock.sleep(delay, this.#stop.signal);
    }
  }

  get #server(): string {
    return this.#o.servers[this.#serverIndex]!;
  }

  /** One connection, from opening the stream to its end. */
  async #attempt(): Promise<AttemptResult> {
    const client = (this.#o.connect ?? connectChat)(this.#server);
    const connectTimeoutMs = this.#o.connectTimeoutMs ?? 10_000;
    const ready = settle(client.waitForReady(connectTimeoutMs));
    const notReady = (error: unknown): AttemptResult => ({
      kind: "lost",
      reason: `no connection after ${formatDelay(connectTimeoutMs)} (${reasonOf(error)})`,
      wasConnected: false,
    });
    // Aborted when this attempt is over, so nothing it started outlives it.
    const over = new AbortController();
    const attemptSignal = AbortSignal.any([over.signal, this.#stop.signal]);
    let announced = false;
    let endStream!: (end: { error?: grpc.ServiceError }) => void;
    const streamEnded = new Promise<{ error?: grpc.ServiceError }>((resolve) =>
      endStream = resolve
    );
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
      const auth = await this.#authenticate(client, ready);
      if ("kind" in auth) return auth;
      if (client.token !== undefined) {
        const started = await this.#startPositions(client, ready);
        if (started !== undefined) return started;
      }
      const endedAs = (error: grpc.ServiceError | undefined, wasConnected: boolean) =>
        this.#ended(error, wasConnected, auth.fresh);
      stream = client.stream(
        this.#userId,
        (message) => {
          announce();
          if (announced) this.#show(message);
        },
        (error) => endStream({ error }),
        {
          displayName: this.#o.displayName,
          presenceEvents: true,
          // The server takes at most this many; others' history is there with /history.
          resume: [...this.#positions].slice(0, DEFAULT_MAX_RESUME_ROOMS)
            .map(([room, lastSeq]) => ({ room, lastSeq })),
        },
      );
      const up = await Promise.race([ready, streamEnded, this.#stopped]);
      if (up === STOPPED) return { kind: "stopped" };
      if ("ok" in up && !up.ok) return notReady(up.error);
      if (!("ok" in up)) return endedAs(up.error, false);
      if (!announced) {
        const confirmed = await Promise.race([
          this.#confirm(client, attemptSignal),
          streamEnded,
          this.#stopped,
        ]);
        if (confirmed === STOPPED) return { kind: "stopped" };
        if (confirmed !== true && !announced) return endedAs(confirmed.error, false);
        announce();
      }
      const end = await Promise.race([streamEnded, this.#stopped]);
      if (end === STOPPED) return { kind: "stopped" };
      return endedAs(end.error, true);
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

  /** `freshToken`: the stream used a token signed for just now (so refusing it is final). */
  #ended(
    error: grpc.ServiceError | undefined,
    wasConnected: boolean,
    freshToken: boolean,
  ): AttemptResult {
    if (this.#isStopped) return { kind: "stopped" };
    if (error === undefined) {
      return { kind: "lost", reason: "the server ended the stream", wasConnected };
    }
    if (
      error.code === grpc.status.UNAUTHENTICATED && !freshToken && this.#token !== undefined &&
      this.#o.password !== undefined
    ) {
      // Expired, or the server's secret changed: sign in again.
      this.#token = undefined;
      return { kind: "reauth" };
    }
    if (FATAL_CODES.has(error.code)) return { kind: "fatal", reason: reasonOf(error) };
    return { kind: "lost", reason: reasonOf(error), wasConnected };
  }

  /**
   * Signs in on `client`, or gives it the kept token. `fresh` says whether a sign-in happened
   * now; an AttemptResult means this attempt is over.
   */
  async #authenticate(
    client: ChatApi,
    ready: Promise<Settled<void>>,
  ): Promise<{ fresh: boolean } | AttemptResult> {
    if (this.#token !== undefined) {
      client.token = this.#token;
      return { fresh: false };
    }
    const password = this.#o.password;
    if (password === undefined) return { fresh: false };
    const never = new Promise<never>(() => {});
    const result = await Promise.race([
      settle(client.signIn(this.#userId, password, this.#o.displayName ?? "")),
      // The channel never came up: stop waiting for the answer.
      ready.then((r) => r.ok ? never : { timedOut: r.error }),
      this.#stopped,
    ]);
    if (result === STOPPED) return { kind: "stopped" };
    if ("timedOut" in result) {
      const connectTimeoutMs = this.#o.connectTimeoutMs ?? 10_000;
      return {
        kind: "lost",
        reason: `no connection after ${formatDelay(connectTimeoutMs)} (${
          reasonOf(result.timedOut)
        })`,
        wasConnected: false,
      };
    }
    if (result.ok) {
      this.#signedIn(client, result.value);
      return { fresh: true };
    }
    const code = codeOf(result.error);
    if (code === grpc.status.UNIMPLEMENTED) {
      // A classic server: no accounts, the stream names its user.
      if (!this.#classicNoted) {
        this.#classicNoted = true;
        this.#write(`* The server has no sign-in; continuing as ${this.#userId} without it`);
      }
      return { fresh: false };
    }
    if (code !== undefined && FATAL_CODES.has(code)) {
      return { kind: "fatal", reason: reasonOf(result.error) };
    }
    return { kind: "lost", reason: reasonOf(result.error), wasConnected: false };
  }

  #signedIn(client: ChatApi, signed: SignedIn): void {
    this.#token = signed.token;
    client.token = signed.token;
    if (signed.user?.id) this.#userId = signed.user.id;
    if (signed.created) this.#write(`Created account ${this.#userId}`);
  }

  /**
   * Rooms we have no position in yet start at their newest message, taken before the stream
   * opens so that nothing sent in between is missed. Failing here is not fatal (the stream
   * tells whether the server is usable), unless the channel never came up.
   */
  async #startPositions(
    client: ChatApi,
    ready: Promise<Settled<void>>,
  ): Promise<AttemptResult | undefined> {
    const never = new Promise<never>(() => {});
    const rooms = await Promise.race([
      settle(client.listRooms(false)),
      ready.then((r) => r.ok ? never : { timedOut: r.error }),
      this.#stopped,
    ]);
    if (rooms === STOPPED) return { kind: "stopped" };
    if ("timedOut" in rooms || !rooms.ok) return undefined;
    for (const room of rooms.value) this.#startAt(room);
    return undefined;
  }

  /** A room we are in: messages after its newest one are the ones to show. */
  #startAt(room: WireRoom): void {
    if (!this.#positions.has(room.id)) this.#positions.set(room.id, room.lastSeq);
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
    if (message.roomEvent) {
      this.#showRoomEvent(message);
      return;
    }
    const room = roomOf(message.room);
    if (message.seq > 0) {
      // Already shown (or from before we started): resume and live can overlap.
      if (message.seq <= (this.#positions.get(room) ?? 0)) return;
      this.#positions.set(room, message.seq);
    }
    this.#write(formatMessage(message, this.#clock.now(), this.#room));
  }

  #showRoomEvent(message: WireMessage): void {
    const event = message.roomEvent!;
    const room = roomOf(event.room);
    if ((event.user?.id || message.id) !== this.#userId) {
      this.#write(formatRoomEvent(message));
      return;
    }
    if (event.joined) {
      if (room.startsWith(DIRECT_PREFIX) && !this.#openingDirect.delete(room)) {
        const other = room.slice(DIRECT_PREFIX.length).split(":").find((id) =>
          id !== this.#userId
        ) ?? "";
        this.#write(
          `* ${sanitize(other)} opened a direct conversation with you; /dm ${
            sanitize(other)
          } to answer`,
        );
      }
      return;
    }
    // We left, here or on another device.
    this.#positions.delete(room);
    if (this.#leaving.delete(room)) return;
    if (this.#room === room) {
      this.#room = GENERAL;
      this.#write(`* You left #${sanitize(room)}; lines you type go to #${GENERAL}`);
    } else {
      this.#write(`* You left #${sanitize(room)}`);
    }
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
          await this.#authed(client, (c) =>
            c.send(this.#userId, item.text, {
              displayName: this.#o.displayName,
              messageId: item.messageId,
              room: item.room,
            }));
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
    this.#queue.push({
      text,
      messageId: crypto.randomUUID(),
      room: this.#room === GENERAL ? "" : this.#room,
    });
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
      const [command = "", ...rest] = trimmed.split(/\s+/);
      const argument = rest.join(" ");
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
        case "/rooms":
          await this.#rooms(argument);
          return;
        case "/create":
        case "/join":
          await this.#enter(command.toLowerCase() === "/create", roomArgument(argument));
          return;
        case "/leave":
          await this.#leave(roomArgument(argument));
          return;
        case "/dm":
          await this.#direct(argument.trim());
          return;
        case "/room":
          this.#switchRoom(roomArgument(argument));
          return;
        case "/history":
          await this.#history(argument);
          return;
        default:
          this.#write(`! Unknown command ${command}; /help lists the commands`);
          return;
      }
    }
    await this.#enqueue(trimmed.startsWith("//") ? text.replace("//", "/") : text);
  }

  /** Runs `call` on the current connection, signing in again (once) if the token was refused. */
  async #authed<T>(client: ChatApi, call: (client: ChatApi) => Promise<T>): Promise<T> {
    const token = client.token;
    try {
      return await call(client);
    } catch (err) {
      const password = this.#o.password;
      if (
        codeOf(err) !== grpc.status.UNAUTHENTICATED || token === undefined ||
        password === undefined
      ) {
        throw err;
      }
      // Unless another call already signed in again meanwhile.
      if (client.token === token) {
        this.#signedIn(
          client,
          await client.signIn(this.#userId, password, this.#o.displayName ?? ""),
        );
      }
      return await call(client);
    }
  }

  /**
   * A command's call: `! <what>: not connected` when offline, `! <server's message>` when
   * refused; undefined then, else the answer.
   */
  async #call<T>(
    what: string,
    call: (client: ChatApi) => Promise<T>,
  ): Promise<{ value: T } | undefined> {
    const client = this.#client;
    if (!client || !this.#connected) {
      this.#write(`! ${what}: not connected`);
      return undefined;
    }
    try {
      const result = await Promise.race([
        this.#authed(client, call).then((value) => ({ value })),
        this.#stopped,
      ]);
      return result === STOPPED ? undefined : result;
    } catch (err) {
      const reason = reasonOf(err);
      this.#write(`! ${reason.startsWith("Cannot ") ? reason : `${what}: ${reason}`}`);
      return undefined;
    }
  }

  async #rooms(argument: string): Promise<void> {
    const all = argument.trim().toLowerCase() === "all";
    if (!all && argument.trim() !== "") {
      this.#write("! Usage: /rooms, or /rooms all");
      return;
    }
    const answer = await this.#call("Cannot list rooms", (c) => c.listRooms(all));
    if (!answer) return;
    const rooms = answer.value;
    const mine = (room: WireRoom) =>
      all && room.id !== GENERAL && room.members.includes(this.#userId) ? " - joined" : "";
    this.#write(
      [
        `* ${all ? "All rooms" : "Your rooms"} (${rooms.length}):`,
        ...rooms.map((room) => `  ${formatRoom(room, this.#room)}${mine(room)}`),
      ].join("\n"),
    );
  }

  async #enter(create: boolean, room: string): Promise<void> {
    const command = create ? "/create" : "/join";
    if (room === "") {
      this.#write(`! Usage: ${command} <room>`);
      return;
    }
    const answer = await this.#call(
      create ? "Cannot create room" : "Cannot join room",
      (c) => create ? c.createRoom(room) : c.joinRoom(room),
    );
    if (!answer) return;
    const joined = answer.value;
    this.#startAt(joined);
    const id = sanitize(joined.id);
    const n = joined.members.length;
    const members = joined.id === GENERAL ? "everybody" : `${n} member${n === 1 ? "" : "s"}`;
    const hint = this.#room === joined.id ? "" : `; /room ${id} to write there`;
    this.#write(`* ${create ? "Created" : "Joined"} #${id} (${members})${hint}`);
  }

  async #leave(room: string): Promise<void> {
    if (room === "") {
      this.#write("! Usage: /leave <room>");
      return;
    }
    this.#leaving.add(room);
    const answer = await this.#call("Cannot leave room", (c) => c.leaveRoom(room));
    if (!answer) {
      this.#leaving.delete(room);
      return;
    }
    this.#positions.delete(room);
    if (this.#room === room) {
      this.#room = GENERAL;
      this.#write(`* Left #${sanitize(room)}; lines you type go to #${GENERAL}`);
    } else {
      this.#write(`* Left #${sanitize(room)}`);
    }
  }

  async #direct(userId: string): Promise<void> {
    if (userId === "") {
      this.#write("! Usage: /dm <user>");
      return;
    }
    const expected = directRoomId(this.#userId, userId);
    this.#openingDirect.add(expected);
    const answer = await this.#call("Cannot open direct messages", (c) => c.openDirect(userId));
    if (!answer) {
      this.#openingDirect.delete(expected);
      return;
    }
    this.#startAt(answer.value);
    this.#room = answer.value.id;
    this.#write(
      `* Direct messages with ${sanitize(userId)}: lines you type go to #${
        sanitize(answer.value.id)
      }`,
    );
  }

  #switchRoom(room: string): void {
    if (room !== "") this.#room = room;
    this.#write(`* Lines you type go to #${sanitize(this.#room)}`);
  }

  async #history(argument: string): Promise<void> {
    const text = argument.trim();
    const n = text === "" ? HISTORY_DEFAULT : /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(n >= 1 && n <= HISTORY_MAX)) {
      this.#write(`! Usage: /history [n], n from 1 to ${HISTORY_MAX} (default ${HISTORY_DEFAULT})`);
      return;
    }
    const room = this.#room;
    const answer = await this.#call("Cannot read history", (c) => c.history(room, 0, n));
    if (!answer) return;
    const { messages, more } = answer.value;
    if (messages.length === 0) {
      this.#write(`* No messages in #${sanitize(room)} yet`);
      return;
    }
    const k = messages.length;
    this.#write(
      `* The last ${k} message${k === 1 ? "" : "s"} of #${sanitize(room)}${
        more ? " (older ones exist)" : ""
      }:`,
    );
    // The server pages newest first; a reader wants the oldest first.
    for (const message of [...messages].reverse()) {
      this.#write(formatMessage(message, this.#clock.now(), room));
    }
  }

  async #who(): Promise<void> {
    const client = this.#client;
    if (!client || !this.#connected) {
      this.#write("! Cannot list users: not connected");
      return;
    }
    try {
      const users = await Promise.race([
        this.#authed(client, (c) => c.listOnline()),
        this.#stopped,
      ]);
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
