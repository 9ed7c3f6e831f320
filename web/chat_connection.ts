/**
 * The page's connection to the chat service, independent of Preact: opens the
 * message stream, keeps it open (reconnecting with backoff), keeps the list
 * of who is online (ListOnline, then live presence events) and sends.
 *
 * It talks to the server through `ChatApi`, so tests drive it with a fake.
 */

/** A user as the page shows it. */
export interface ChatUser {
  readonly id: string;
  readonly displayName: string;
}

/** A chat message as the page shows it. */
export interface ChatMessage {
  /** Unique message id; the page sets it when sending, so a reply can be matched. */
  readonly messageId: string;
  /** The sender's user id. */
  readonly userId: string;
  readonly displayName: string;
  readonly content: string;
  /** When it was sent, by the server's clock; undefined if the server gave none. */
  readonly timestamp: Date | undefined;
  readonly room: string;
  /** Position in the room, from 1; 0 if the server gave none. */
  readonly seq: number;
}

/** What arrives on the message stream. */
export type StreamEvent =
  | { readonly type: "message"; readonly message: ChatMessage }
  | { readonly type: "presence"; readonly user: ChatUser; readonly online: boolean };

/** A failed call: a gRPC status name (`UNAVAILABLE`, `INVALID_ARGUMENT`, ...) and the server's text. */
export class ApiError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

/** The calls the page makes; `grpc_chat_api.ts` implements them over gRPC-Web. */
export interface ChatApi {
  /**
   * Opens the message stream. Calls `onOpen` once the server has accepted it,
   * then `onEvent` for each event. Resolves when the server ends the stream,
   * rejects (preferably with an `ApiError`) when it fails or `signal` aborts.
   */
  stream(
    request: { user: ChatUser; presenceEvents: boolean },
    handlers: { onOpen(): void; onEvent(event: StreamEvent): void },
    signal: AbortSignal,
  ): Promise<void>;
  /** Sends a message; rejects with an `ApiError` the page can show. */
  send(message: {
    user: ChatUser;
    content: string;
    messageId: string;
  }): Promise<void>;
  /** Who is online now. */
  listOnline(signal?: AbortSignal): Promise<ChatUser[]>;
}

export type ConnectionStatus =
  | { readonly kind: "connecting"; readonly attempt: number }
  | { readonly kind: "connected"; readonly since: number }
  | {
    readonly kind: "reconnecting";
    /** How many tries failed in a row so far. */
    readonly attempt: number;
    /** When the next try starts, in the clock's milliseconds. */
    readonly retryAt: number;
    /** Why the last try failed or the stream ended, for the screen. */
    readonly reason: string;
  }
  /** Stopped for good: the user left, or the server refused the user (for example, a bad name). */
  | { readonly kind: "stopped"; readonly error?: string };

/** Exponential backoff with jitter: `base * 2^(attempt-1)`, capped at `max`, times 0.5..1. */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** A connection that stayed open this long counts as healthy: the next failure starts over. */
  stableAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 10_000, stableAfterMs: 5_000 };

/** The delay before try number `attempt` + 1, given `attempt` failures in a row. */
export function backoffDelay(
  attempt: number,
  options: Pick<BackoffOptions, "baseMs" | "maxMs">,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  return Math.round(ceiling * (0.5 + random() * 0.5));
}

/** Timers and randomness, replaceable in tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): number;
  clearTimeout(id: number): void;
  random(): number;
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as number,
  clearTimeout: (id) => clearTimeout(id),
  random: () => Math.random(),
};

/** Status codes after which trying again with the same user cannot help. */
const PERMANENT_CODES = new Set([
  "INVALID_ARGUMENT",
  "PERMISSION_DENIED",
  "UNAUTHENTICATED",
  "UNIMPLEMENTED",
]);

export interface ChatConnectionOptions {
  api: ChatApi;
  user: ChatUser;
  onStatus?: (status: ConnectionStatus) => void;
  onMessage?: (message: ChatMessage) => void;
  /** The online users, sorted by display name, whenever the list changes. */
  onOnline?: (users: readonly ChatUser[]) => void;
  backoff?: Partial<BackoffOptions>;
  clock?: Clock;
  newMessageId?: () => string;
}

/** Turns any failure into words for the screen. */
export function describeFailure(err: unknown): string {
  if (err instanceof ApiError) {
    if (isNetworkFailure(err)) return "The server is unavailable";
    return err.message || err.code;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Whether the call never reached a server (connection refused, network down). */
export function isNetworkFailure(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  if (err.code === "UNAVAILABLE" && /fetch|network/i.test(err.message)) return true;
  // fetch() itself failed: the transport reports it as INTERNAL or UNKNOWN with the browser's text.
  return (err.code === "INTERNAL" || err.code === "UNKNOWN") &&
    /failed to fetch|networkerror|network error|load failed|fetch failed|connection/i.test(
      err.message,
    );
}

/** The words to show when a send failed; the text itself is kept by the caller. */
export function describeSendFailure(err: unknown): string {
  if (err instanceof ApiError) {
    if (isNetworkFailure(err) || err.code === "UNAVAILABLE") {
      const detail = isNetworkFailure(err) ? "" : ` (${err.message})`;
      return `Not sent: the server is unavailable${detail}. Your text is kept; send it again once reconnected.`;
    }
    return `Not sent: ${err.message || err.code}`;
  }
  return `Not sent: ${describeFailure(err)}`;
}

/**
 * One user's connection. `start()` opens the stream and keeps it open until
 * `stop()`; status, messages and the online list are reported to the callbacks.
 */
export class ChatConnection {
  readonly user: ChatUser;
  readonly #api: ChatApi;
  readonly #clock: Clock;
  readonly #backoff: BackoffOptions;
  readonly #options: ChatConnectionOptions;
  #status: ConnectionStatus = { kind: "stopped" };
  #abort: AbortController | undefined;
  #timer: number | undefined;
  #failures = 0;
  #running = false;
  /** Online users by id. */
  #online = new Map<string, ChatUser>();
  /** Message ids already passed on, so that a repeat is not shown twice. */
  #seen = new Set<string>();
  #seenOrder: string[] = [];

  constructor(options: ChatConnectionOptions) {
    this.#options = options;
    this.#api = options.api;
    this.user = options.user;
    this.#clock = options.clock ?? realClock;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  }

  get status(): ConnectionStatus {
    return this.#status;
  }

  get online(): readonly ChatUser[] {
    return sortUsers([...this.#online.values()]);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#failures = 0;
    this.#open();
  }

  /** Closes the stream for good. */
  stop(): void {
    this.#running = false;
    this.#cancelTimer();
    this.#abort?.abort();
    this.#abort = undefined;
    this.#setStatus({ kind: "stopped" });
  }

  /** While waiting to reconnect: try now instead. */
  retryNow(): void {
    if (!this.#running || this.#status.kind !== "reconnecting") return;
    this.#cancelTimer();
    this.#open();
  }

  /**
   * Sends `content`; resolves once the server has taken it (the message itself
   * arrives on the stream). Rejects with an `ApiError` otherwise.
   */
  async send(content: string): Promise<void> {
    const messageId = this.#options.newMessageId?.() ?? crypto.randomUUID();
    await this.#api.send({ user: this.user, content, messageId });
  }

  #open(): void {
    const attempt = this.#failures + 1;
    this.#setStatus({ kind: "connecting", attempt });
    const abort = new AbortController();
    this.#abort = abort;
    let openedAt: number | undefined;
    this.#api.stream(
      { user: this.user, presenceEvents: true },
      {
        onOpen: () => {
          if (abort.signal.aborted) return;
          openedAt = this.#clock.now();
          this.#setStatus({ kind: "connected", since: openedAt });
          this.#refreshOnline(abort.signal);
        },
        onEvent: (event) => {
          if (abort.signal.aborted) return;
          this.#handle(event);
        },
      },
      abort.signal,
    ).then(
      () => this.#ended(abort, openedAt, "The server closed the connection"),
      (err) => this.#ended(abort, openedAt, err),
    );
  }

  #ended(abort: AbortController, openedAt: number | undefined, err: unknown): void {
    if (abort.signal.aborted || !this.#running || this.#abort !== abort) return;
    this.#abort = undefined;
    const reason = typeof err === "string" ? err : describeFailure(err);
    if (err instanceof ApiError && PERMANENT_CODES.has(err.code)) {
      this.#running = false;
      this.#setStatus({ kind: "stopped", error: reason });
      return;
    }
    if (openedAt !== undefined && this.#clock.now() - openedAt >= this.#backoff.stableAfterMs) {
      this.#failures = 0;
    }
    this.#failures++;
    const delay = backoffDelay(this.#failures, this.#backoff, this.#clock.random);
    const retryAt = this.#clock.now() + delay;
    this.#setStatus({ kind: "reconnecting", attempt: this.#failures, retryAt, reason });
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#running) this.#open();
    }, delay);
  }

  async #refreshOnline(signal: AbortSignal): Promise<void> {
    // Presence events that arrive while the list is on its way are newer than it: replay them after.
    const during: { user: ChatUser; online: boolean }[] = [];
    this.#pendingPresence = during;
    try {
      const users = await this.#api.listOnline(signal);
      if (signal.aborted) return;
      this.#online = new Map(users.map((u) => [u.id, u]));
      for (const e of during) this.#applyPresence(e.user, e.online);
      // The server's registry may not have seen this stream yet.
      this.#online.set(this.user.id, this.#online.get(this.user.id) ?? this.user);
      this.#emitOnline();
    } catch {
      // The live events still keep the list roughly right; the next connection refreshes it.
      if (!signal.aborted) {
        this.#online.set(this.user.id, this.user);
        this.#emitOnline();
      }
    } finally {
      if (this.#pendingPresence === during) this.#pendingPresence = undefined;
    }
  }

  #pendingPresence: { user: ChatUser; online: boolean }[] | undefined;

  #handle(event: StreamEvent): void {
    if (event.type === "presence") {
      this.#pendingPresence?.push({ user: event.user, online: event.online });
      this.#applyPresence(event.user, event.online);
      this.#emitOnline();
      return;
    }
    const { messageId } = event.message;
    if (messageId) {
      if (this.#seen.has(messageId)) return;
      this.#seen.add(messageId);
      this.#seenOrder.push(messageId);
      if (this.#seenOrder.length > 5000) this.#seen.delete(this.#seenOrder.shift()!);
    }
    this.#options.onMessage?.(event.message);
  }

  #applyPresence(user: ChatUser, online: boolean): void {
    if (online) this.#online.set(user.id, user);
    else if (user.id !== this.user.id) this.#online.delete(user.id);
    // This page's own user stays listed while its stream is open, even if another tab of it left.
  }

  #emitOnline(): void {
    this.#options.onOnline?.(this.online);
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #setStatus(status: ConnectionStatus): void {
    this.#status = status;
    this.#options.onStatus?.(status);
  }
}

export function sortUsers(users: ChatUser[]): ChatUser[] {
  return users.sort((a, b) =>
    a.displayName.localeCompare(b.displayName, undefined, { sensitivity: "base" }) ||
    a.id.localeCompare(b.id)
  );
}
