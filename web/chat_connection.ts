/**
 * The page's connection to the chat service, independent of Preact: opens the
 * message stream and keeps it open (reconnecting with backoff and resuming
 * where it left off, so that missed messages arrive once and in order), keeps
 * the list of who is online and of this user's rooms, loads history, sends.
 *
 * It talks to the server through `ChatApi`, so tests drive it with a fake.
 */

import { DEFAULT_MAX_RESUME_ROOMS } from "../protocol/limits.ts";

/** The room everybody is in. */
export const GENERAL = "general";
/** Direct conversations are rooms named `dm:<a>:<b>`. */
export const DIRECT_PREFIX = "dm:";
/** How many recent messages are loaded when a room is first shown. */
export const HISTORY_PAGE = 50;

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
  /** The room it belongs to ("general" when the server left it empty). */
  readonly room: string;
  /** Position in the room, from 1; 0 if the server gave none. */
  readonly seq: number;
}

/** A member joined or left a room this user is in (or this user joined or left one). */
export interface RoomEvent {
  readonly room: string;
  readonly user: ChatUser;
  readonly joined: boolean;
  readonly at: Date | undefined;
}

/** A room as ListRooms, CreateRoom, JoinRoom and OpenDirect describe it. */
export interface RoomInfo {
  readonly id: string;
  readonly direct: boolean;
  /** Member user ids (empty for "general", which has everybody). */
  readonly members: readonly string[];
  /** The newest message's sequence number when asked (0 for an empty room). */
  readonly lastSeq: number;
}

/** Where the stream should continue in one room: after `lastSeq`. */
export interface RoomPosition {
  readonly room: string;
  readonly lastSeq: number;
}

/** What arrives on the message stream. */
export type StreamEvent =
  | { readonly type: "message"; readonly message: ChatMessage }
  | { readonly type: "presence"; readonly user: ChatUser; readonly online: boolean }
  | { readonly type: "room"; readonly event: RoomEvent };

/** A signed-in user and the token to send with every call. */
export interface Session {
  readonly token: string;
  readonly user: ChatUser;
  /** When the token expires (ms since the epoch), if the server said. */
  readonly expiresAt?: number;
}

/** A failed call: a gRPC status name (`UNAVAILABLE`, `INVALID_ARGUMENT`, ...) and the server's text. */
export class ApiError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

/** The calls the page makes once signed in; `grpc_chat_api.ts` implements them over gRPC-Web. */
export interface ChatApi {
  /**
   * Opens the message stream, resuming after `resume`. Calls `onOpen` once the
   * server has accepted it, then `onEvent` for each event. Resolves when the
   * server ends the stream, rejects (preferably with an `ApiError`) when it
   * fails or `signal` aborts.
   */
  stream(
    request: { user: ChatUser; presenceEvents: boolean; resume: readonly RoomPosition[] },
    handlers: { onOpen(): void; onEvent(event: StreamEvent): void },
    signal: AbortSignal,
  ): Promise<void>;
  /** Sends a message; rejects with an `ApiError` the page can show. */
  send(
    message: { user: ChatUser; content: string; messageId: string; room: string },
  ): Promise<void>;
  /** Who is online now. */
  listOnline(signal?: AbortSignal): Promise<ChatUser[]>;
  /** The rooms this user is in ("general" first). */
  listRooms(signal?: AbortSignal): Promise<RoomInfo[]>;
  createRoom(name: string): Promise<RoomInfo>;
  joinRoom(name: string): Promise<RoomInfo>;
  leaveRoom(name: string): Promise<void>;
  /** The direct conversation with `userId`, opened if new. */
  openDirect(userId: string): Promise<RoomInfo>;
  /** The newest `limit` messages of `room`, oldest first. */
  history(room: string, limit: number, signal?: AbortSignal): Promise<ChatMessage[]>;
}

/** Signing in, and the API for a signed-in session. */
export interface ChatBackend {
  /** Signs in, creating the account when the name is free; rejects with an `ApiError`. */
  signIn(username: string, password: string): Promise<Session>;
  /** The calls made with `token` (sent as `authorization: Bearer <token>`). */
  api(token: string): ChatApi;
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
  /**
   * Stopped for good: the user left, or the server refused the user; `code` is
   * the refusal's status (`UNAUTHENTICATED` when the sign-in ended).
   */
  | { readonly kind: "stopped"; readonly error?: string; readonly code?: string };

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

/** How many (room, seq) keys are remembered to drop repeats. */
const SEEN_LIMIT = 5000;

export interface ChatConnectionOptions {
  api: ChatApi;
  user: ChatUser;
  onStatus?: (status: ConnectionStatus) => void;
  /**
   * A message not passed on before: `history` when loaded from the room's
   * history, `live` when it came on the stream (also when replayed after a reconnect).
   */
  onMessage?: (message: ChatMessage, source: "live" | "history") => void;
  onRoomEvent?: (event: RoomEvent) => void;
  /** The online users, sorted by display name, whenever the list changes. */
  onOnline?: (users: readonly ChatUser[]) => void;
  /** This user's rooms ("general", then rooms by name, then direct ones), whenever they change. */
  onRooms?: (rooms: readonly RoomInfo[]) => void;
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

/** The server's words without the "Cannot …:" start, as a sentence: "Wrong password for ann". */
export function plainWords(err: unknown): string {
  if (isNetworkFailure(err)) return "The server is unavailable; try again in a moment.";
  const text = describeFailure(err).replace(/^Cannot [^:]{1,40}:\s*/, "");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function isDirect(room: string): boolean {
  return room.startsWith(DIRECT_PREFIX);
}

/** The other person of a direct room `dm:<a>:<b>` (or the room id if it is not one). */
export function directPeer(room: string, myId: string): string {
  if (!isDirect(room)) return room;
  const [a = "", b = ""] = room.slice(DIRECT_PREFIX.length).split(":");
  return a === myId ? b : a;
}

/** "general" first, then rooms by name, then direct conversations by the other person. */
export function sortRooms(rooms: RoomInfo[], myId: string): RoomInfo[] {
  const rank = (r: RoomInfo) => (r.id === GENERAL ? 0 : r.direct ? 2 : 1);
  const name = (r: RoomInfo) => (r.direct ? directPeer(r.id, myId) : r.id);
  return rooms.sort((a, b) =>
    rank(a) - rank(b) || name(a).localeCompare(name(b), undefined, { sensitivity: "base" })
  );
}

/**
 * One user's connection. `start()` opens the stream and keeps it open until
 * `stop()`; status, messages, rooms and the online list go to the callbacks.
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
  /** This user's rooms by id. */
  #rooms = new Map<string, RoomInfo>([[GENERAL, generalRoom()]]);
  /** The newest sequence number known per room: where a reconnect resumes. */
  #lastSeq = new Map<string, number>();
  /** (room, seq) keys (or message ids) already passed on, so that a repeat is not shown twice. */
  #seen = new Set<string>();
  #seenOrder: string[] = [];
  /** Rooms whose recent history has been loaded, or is being loaded. */
  #history = new Map<string, Promise<void>>();

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

  get rooms(): readonly RoomInfo[] {
    return sortRooms([...this.#rooms.values()], this.user.id);
  }

  /** Where a reconnect would resume, per room (as many rooms as the server takes). */
  get positions(): RoomPosition[] {
    return [...this.#lastSeq].slice(0, DEFAULT_MAX_RESUME_ROOMS)
      .map(([room, lastSeq]) => ({ room, lastSeq }));
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
   * The network is gone (the browser said so): drop the stream now instead of
   * waiting for it to time out, and wait to reconnect (`retryNow` when back).
   */
  interrupt(reason: string): void {
    const abort = this.#abort;
    if (!this.#running || !abort) return;
    this.#abort = undefined;
    abort.abort();
    this.#scheduleRetry(reason);
  }

  /**
   * Sends `content` to `room`; resolves once the server has taken it (the
   * message itself arrives on the stream). Rejects with an `ApiError` otherwise.
   */
  send(content: string, room = GENERAL): Promise<void> {
    const messageId = this.#options.newMessageId?.() ?? crypto.randomUUID();
    return this.#guard(this.#api.send({ user: this.user, content, messageId, room }));
  }

  /** Creates a room (this user joins it). */
  async createRoom(name: string): Promise<RoomInfo> {
    return this.#addRoom(await this.#guard(this.#api.createRoom(name)));
  }

  /** Joins an existing room. */
  async joinRoom(name: string): Promise<RoomInfo> {
    return this.#addRoom(await this.#guard(this.#api.joinRoom(name)));
  }

  /** Opens the direct conversation with `userId`. */
  async openDirect(userId: string): Promise<RoomInfo> {
    return this.#addRoom(await this.#guard(this.#api.openDirect(userId)));
  }

  async leaveRoom(room: string): Promise<void> {
    await this.#guard(this.#api.leaveRoom(room));
    this.#dropRoom(room);
  }

  /**
   * Loads the newest messages of `room` once (again after a failure); they are
   * passed on as `history`, without repeats of what the stream brought.
   */
  loadHistory(room: string): Promise<void> {
    const running = this.#history.get(room);
    if (running) return running;
    const loading = this.#guard(this.#api.history(room, HISTORY_PAGE)).then(
      (messages) => {
        for (const m of messages) this.#accept(m, "history");
      },
      (err) => {
        this.#history.delete(room);
        throw err;
      },
    );
    this.#history.set(room, loading);
    return loading;
  }

  #open(): void {
    const attempt = this.#failures + 1;
    this.#setStatus({ kind: "connecting", attempt });
    const abort = new AbortController();
    this.#abort = abort;
    let openedAt: number | undefined;
    this.#api.stream(
      { user: this.user, presenceEvents: true, resume: this.positions },
      {
        onOpen: () => {
          if (abort.signal.aborted) return;
          openedAt = this.#clock.now();
          this.#setStatus({ kind: "connected", since: openedAt });
          this.#refreshOnline(abort.signal);
          this.#refreshRooms(abort.signal);
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
      this.#refuse(err);
      return;
    }
    if (openedAt !== undefined && this.#clock.now() - openedAt >= this.#backoff.stableAfterMs) {
      this.#failures = 0;
    }
    this.#scheduleRetry(reason);
  }

  #scheduleRetry(reason: string): void {
    this.#cancelTimer();
    this.#failures++;
    const delay = backoffDelay(this.#failures, this.#backoff, this.#clock.random);
    const retryAt = this.#clock.now() + delay;
    this.#setStatus({ kind: "reconnecting", attempt: this.#failures, retryAt, reason });
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#running) this.#open();
    }, delay);
  }

  /** Stops for good: the server refused this user (or the sign-in ended). */
  #refuse(err: ApiError): void {
    if (!this.#running) return;
    this.#running = false;
    this.#cancelTimer();
    this.#abort?.abort();
    this.#abort = undefined;
    this.#setStatus({ kind: "stopped", error: describeFailure(err), code: err.code });
  }

  /** Passes a call's result on; an UNAUTHENTICATED failure also ends the session. */
  async #guard<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (err) {
      if (err instanceof ApiError && err.code === "UNAUTHENTICATED") this.#refuse(err);
      throw err;
    }
  }

  async #refreshOnline(signal: AbortSignal): Promise<void> {
    // Presence events that arrive while the list is on its way are newer than it: replay them after.
    const during: { user: ChatUser; online: boolean }[] = [];
    this.#pendingPresence = during;
    try {
      const users = await this.#guard(this.#api.listOnline(signal));
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

  async #refreshRooms(signal?: AbortSignal): Promise<void> {
    try {
      const rooms = await this.#guard(this.#api.listRooms(signal));
      if (signal?.aborted) return;
      const next = new Map<string, RoomInfo>([[GENERAL, generalRoom()]]);
      for (const room of rooms) {
        next.set(room.id, room);
        this.#baseline(room);
      }
      // Rooms joined while the list was on its way stay.
      for (const [id, room] of this.#rooms) {
        if (!next.has(id) && this.#joinedLately.has(id)) {
          next.set(id, room);
        }
      }
      this.#joinedLately.clear();
      this.#rooms = next;
      this.#emitRooms();
    } catch {
      // Keep the rooms known so far; the next connection asks again.
    }
  }

  /** Rooms added since the last ListRooms was sent. */
  #joinedLately = new Set<string>();

  /** A room learned of: a reconnect resumes there from what it held then, at the latest. */
  #baseline(room: RoomInfo): void {
    if (!this.#lastSeq.has(room.id)) this.#lastSeq.set(room.id, room.lastSeq);
  }

  #addRoom(room: RoomInfo, baseline = true): RoomInfo {
    this.#rooms.set(room.id, room);
    this.#joinedLately.add(room.id);
    if (baseline) this.#baseline(room);
    this.#emitRooms();
    return room;
  }

  #dropRoom(room: string): void {
    if (room === GENERAL || !this.#rooms.delete(room)) return;
    this.#lastSeq.delete(room);
    this.#history.delete(room);
    this.#emitRooms();
  }

  #handle(event: StreamEvent): void {
    switch (event.type) {
      case "presence":
        this.#pendingPresence?.push({ user: event.user, online: event.online });
        this.#applyPresence(event.user, event.online);
        this.#emitOnline();
        return;
      case "room":
        this.#applyRoomEvent(event.event);
        this.#options.onRoomEvent?.(event.event);
        return;
      case "message":
        this.#accept(event.message, "live");
    }
  }

  #applyRoomEvent(event: RoomEvent): void {
    const known = this.#rooms.get(event.room);
    if (event.user.id === this.user.id) {
      // Joined or left here, in another tab, or someone opened a direct conversation with us.
      if (!event.joined) return this.#dropRoom(event.room);
      if (!known) {
        // Its position and members come with the next ListRooms, asked for now.
        this.#addRoom(
          { id: event.room, direct: isDirect(event.room), members: [this.user.id], lastSeq: 0 },
          false,
        );
        this.#refreshRooms();
      }
      return;
    }
    if (!known) return;
    const members = known.members.filter((id) => id !== event.user.id);
    if (event.joined) members.push(event.user.id);
    this.#rooms.set(event.room, { ...known, members });
    this.#emitRooms();
  }

  #accept(message: ChatMessage, source: "live" | "history"): void {
    const key = message.seq > 0
      ? `${message.room}\u0000${message.seq}`
      : message.messageId && `id\u0000${message.messageId}`;
    if (key) {
      if (this.#seen.has(key)) return;
      this.#seen.add(key);
      this.#seenOrder.push(key);
      if (this.#seenOrder.length > SEEN_LIMIT) this.#seen.delete(this.#seenOrder.shift()!);
    }
    if (message.seq > (this.#lastSeq.get(message.room) ?? 0)) {
      this.#lastSeq.set(message.room, message.seq);
    }
    this.#options.onMessage?.(message, source);
  }

  #applyPresence(user: ChatUser, online: boolean): void {
    if (online) this.#online.set(user.id, user);
    else if (user.id !== this.user.id) this.#online.delete(user.id);
    // This page's own user stays listed while its stream is open, even if another tab of it left.
  }

  #emitOnline(): void {
    this.#options.onOnline?.(this.online);
  }

  #emitRooms(): void {
    this.#options.onRooms?.(this.rooms);
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

function generalRoom(): RoomInfo {
  return { id: GENERAL, direct: false, members: [], lastSeq: 0 };
}

export function sortUsers(users: ChatUser[]): ChatUser[] {
  return users.sort((a, b) =>
    a.displayName.localeCompare(b.displayName, undefined, { sensitivity: "base" }) ||
    a.id.localeCompare(b.id)
  );
}
