/**
 * One user's chat session, without a screen: the core that the terminal client and the page are
 * thin views over. It keeps the message stream open (reconnecting with one backoff, moving on to
 * the next endpoint, signing in again when a kept token is refused), resumes each room after the
 * newest message seen so that what was missed arrives once and in order, keeps the online list,
 * this user's rooms and who is typing in them (./typing.ts), loads history, and sends: at once
 * (`send`, for a caller that keeps the text on failure) or through the outbox (`queue`, for
 * messages typed while offline).
 *
 * It talks to the server through a `ChatTransport` made per attempt, so tests drive it with a
 * fake and each client brings its own (native gRPC, gRPC-Web).
 */

import { DEFAULT_ROOM } from "../../protocol/names.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { BlockedUsers } from "./blocking.ts";
import {
  type ChatSessionOptions,
  type ConnectionStatus,
  DEFAULT_BACKOFF,
} from "./session_options.ts";
import { type Clock, systemClock } from "./clock.ts";
import {
  ChatError,
  type ChatMessage,
  type ChatTransport,
  type ChatUser,
  codeOf,
  type HistoryPage,
  type RoomAction,
  type RoomEvent,
  type RoomInfo,
  type RoomPosition,
  type SeenBy,
  type StreamEvent,
} from "./model.ts";
import { InvitationList, invitesMe } from "./invitations.ts";
import { Outbox, type QueueResult } from "./outbox.ts";
import { RoomPositions } from "./positions.ts";
import { Reading, ReadMarks, type RoomReading } from "./reading.ts";
import { Roster } from "./roster.ts";
import { TypingBoard, Typist } from "./typing.ts";

/** Status codes after which trying again with the same user cannot help. */
const PERMANENT_CODES = new Set([
  "INVALID_ARGUMENT",
  "PERMISSION_DENIED",
  "UNAUTHENTICATED",
  "UNIMPLEMENTED",
]);

export class ChatSession {
  readonly #o: ChatSessionOptions;
  readonly #clock: Clock;
  readonly #backoff: BackoffOptions;
  readonly #endpoints: readonly string[];
  readonly #positions = new RoomPositions();
  readonly #outbox: Outbox;
  #user: ChatUser;
  #token: string | undefined;
  #classicNoted = false;
  #status: ConnectionStatus = { kind: "stopped" };
  #running = false;
  #stopped = false;
  #abort: AbortController | undefined;
  #transport: ChatTransport | undefined;
  /** Transports closed already (an attempt ends after the session stopped or the next began). */
  readonly #closed = new WeakSet<ChatTransport>();
  #timer: number | undefined;
  #failures = 0;
  #endpointIndex = 0;
  readonly #roster = new Roster(() => this.#user);
  readonly #invitations = new InvitationList();
  /** Rooms whose recent history has been loaded, or is being loaded. */
  #history = new Map<string, Promise<void>>();
  readonly #typers: TypingBoard;
  readonly #typist: Typist;
  /** The server has no SetTyping (a classic one, or older): typing is not told. */
  #typingUnsupported = false;
  readonly #reading = new Reading(() => this.#user.id);
  readonly #readMarks = new ReadMarks((room, seq) =>
    this.#call("mark read", (t) => t.markRead(room, seq))
  );
  readonly #blocked = new BlockedUsers();

  constructor(options: ChatSessionOptions) {
    this.#o = options;
    this.#user = options.user;
    this.#token = options.token;
    this.#clock = options.clock ?? systemClock;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#endpoints = options.endpoints?.length ? options.endpoints : [""];
    this.#outbox = new Outbox({
      connected: () => this.connected,
      stopped: () => this.#stopped,
      send: (m) => this.send(m.content, m.room, m.messageId),
      refused: (m, err) => this.#o.onNotSent?.(m, err),
    }, options.maxQueued ?? 100);
    this.#typers = new TypingBoard(
      this.#clock,
      (room) => this.#o.onTyping?.(room, this.#typers.typers(room)),
    );
    this.#typist = new Typist(this.#clock, (room, typing) => this.#tellTyping(room, typing));
  }

  /** The user, as the account spells it once signed in. */
  get user(): ChatUser {
    return this.#user;
  }

  get status(): ConnectionStatus {
    return this.#status;
  }

  get connected(): boolean {
    return this.#status.kind === "connected";
  }

  get online(): readonly ChatUser[] {
    return this.#roster.online;
  }

  get rooms(): readonly RoomInfo[] {
    return this.#roster.rooms;
  }

  /** The users this user blocked, as the server last listed them (at each connection). */
  get blocked(): readonly string[] {
    return this.#blocked.list;
  }

  /** Whether this user blocked `userId` (as last listed). */
  isBlocked(userId: string): boolean {
    return this.#blocked.has(userId);
  }

  /**
   * Blocks `userId` (`blocked` true) or unblocks them; resolves with the list as the server then
   * gives it (which spells each user as their account does).
   */
  async block(userId: string, blocked = true): Promise<readonly string[]> {
    await this.#call(blocked ? "block" : "unblock", (t) => t.block(userId, blocked));
    return await this.listBlocked();
  }

  /** The users this user blocked, asked of the server now. */
  async listBlocked(signal?: AbortSignal): Promise<readonly string[]> {
    const ids = await this.#call("list blocked users", (t) => t.listBlocked(signal));
    if (!signal?.aborted && this.#blocked.listed(ids)) this.#o.onBlocked?.(this.#blocked.list);
    return this.#blocked.list;
  }

  /** The rooms this user is invited to, newest invitation first, as last heard. */
  get invitations(): readonly RoomInfo[] {
    return this.#invitations.rooms;
  }

  /** This user's reading state in `room`: read position, unread count, and "seen". */
  reading(room: string): RoomReading {
    return this.#reading.get(room);
  }

  /**
   * Marks `room` read up to message `seq` (the newest shown): the unread count drops at once,
   * and the server hears of it (coalesced; again after a reconnect if it could not).
   */
  markRead(room: string, seq: number): void {
    if (!this.#reading.read(room, this.#user.id, seq)) return;
    this.#emitReading();
    // Without a token (a classic server, AUTH=off) the server cannot tell whose position it is.
    if (this.#token !== undefined) this.#readMarks.mark(room, seq);
  }

  /** Where a reconnect would resume, per room. */
  get positions(): RoomPosition[] {
    return this.#positions.resume;
  }

  /** How many messages wait in the outbox. */
  get queued(): number {
    return this.#outbox.size;
  }

  start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    this.#failures = 0;
    this.#open();
  }

  /** Closes the stream for good. */
  stop(): void {
    this.#halt({ kind: "stopped" });
  }

  /** While waiting to reconnect: try now instead. */
  retryNow(): void {
    if (!this.#running || this.#status.kind !== "reconnecting") return;
    this.#cancelTimer();
    this.#open();
  }

  /**
   * The network is gone (the device said so): drop the stream now instead of waiting for it to
   * time out, and wait to reconnect (`retryNow` when back).
   */
  interrupt(reason: string): void {
    const abort = this.#abort;
    if (!this.#running || !abort) return;
    const wasConnected = this.connected;
    this.#abort = undefined;
    abort.abort();
    this.#scheduleRetry(reason, wasConnected);
  }

  /**
   * Sends `content` to `room` now; resolves once the server has taken it (it then arrives on
   * the stream), rejects with a `ChatError` otherwise. A retry passes the first `messageId`.
   */
  send(content: string, room = DEFAULT_ROOM, messageId = this.#newMessageId()): Promise<void> {
    return this.#call(
      "send message",
      (t) => t.send({ user: this.#user, content, messageId, room }),
    );
  }

  /** Queues `content` for `room` in the outbox: sent in order once connected (see `Outbox`). */
  queue(content: string, room = DEFAULT_ROOM): Promise<QueueResult> {
    return this.#outbox.push({ content, room, messageId: this.#newMessageId() });
  }

  /** Waits at most `timeoutMs` for the outbox to empty; resolves to how many still wait. */
  drain(timeoutMs: number): Promise<number> {
    return this.#outbox.drain(this.#clock, timeoutMs);
  }

  /**
   * The text being typed for `room` is now `draft`: the other members see this user typing
   * while it is not empty (and stopped once sent, cleared, or left alone for a few seconds).
   * Best effort: a failure is not reported, and typing is not told while not connected.
   */
  typing(room: string, draft: string): void {
    this.#typist.draft(room, draft);
  }

  /** Who else is typing in `room` now, in the order they started. */
  typers(room: string): ChatUser[] {
    return this.#typers.typers(room);
  }

  /** Creates a room (this user joins it). */
  async createRoom(name: string): Promise<RoomInfo> {
    return this.#addRoom(await this.#call("create room", (t) => t.createRoom(name)));
  }

  /** Joins an existing room (which uses up an invitation to it). */
  async joinRoom(name: string): Promise<RoomInfo> {
    const room = this.#addRoom(await this.#call("join room", (t) => t.joinRoom(name)));
    if (this.#invitations.drop(room.id)) this.#emitInvitations();
    return room;
  }

  /** Opens the direct conversation with `userId`. */
  async openDirect(userId: string): Promise<RoomInfo> {
    return this.#addRoom(await this.#call("open direct messages", (t) => t.openDirect(userId)));
  }

  /** Leaves `room`, or declines the invitation to it when this user is only invited. */
  async leaveRoom(room: string): Promise<void> {
    await this.#call("leave room", (t) => t.leaveRoom(room));
    this.#dropRoom(room);
    if (this.#invitations.drop(room)) this.#emitInvitations();
  }

  /** Makes `room` invite-only or open (its owner only); the room as now listed. */
  async setRoomAccess(room: string, inviteOnly: boolean): Promise<RoomInfo> {
    const updated = await this.#call(
      "set the room's access",
      (t) => t.setRoomAccess(room, inviteOnly),
    );
    this.#roster.add(updated);
    this.#emitRooms();
    return updated;
  }

  /** Invites `userId` to `room` (its owner only). */
  invite(room: string, userId: string): Promise<void> {
    return this.#call("invite", (t) => t.invite(room, userId));
  }

  /** The rooms this user is invited to, asked of the server now (and kept: `invitations`). */
  async listInvitations(signal?: AbortSignal): Promise<readonly RoomInfo[]> {
    const rooms = await this.#call("list invitations", (t) => t.listInvitations(signal));
    if (signal?.aborted) return rooms;
    this.#invitations.listed(rooms);
    this.#emitInvitations();
    return rooms;
  }

  /**
   * The server's list of this user's rooms (with `all`, every room: with a `query`, those whose
   * name or topic holds it), as it is now.
   */
  listRooms(all = false, query = ""): Promise<RoomInfo[]> {
    return this.#call("list rooms", (t) => t.listRooms(all, undefined, query));
  }

  /** Sets the topic of `room` (its owner only; "" takes it away); the room as now listed. */
  async setTopic(room: string, topic: string): Promise<RoomInfo> {
    const updated = await this.#call("set the topic", (t) => t.setTopic(room, topic));
    this.#roster.add(updated);
    this.#emitRooms();
    return updated;
  }

  /** The owner of `room` makes `userId` a "moderator" or a "member" again; the room as now. */
  async setRole(room: string, userId: string, role: string): Promise<RoomInfo> {
    const updated = await this.#call("set the role", (t) => t.setRole(room, userId, role));
    this.#roster.add(updated);
    this.#emitRooms();
    return updated;
  }

  /** An owner or moderator removes `userId` from `room`. */
  removeMember(room: string, userId: string): Promise<void> {
    return this.#call("remove the member", (t) => t.removeMember(room, userId));
  }

  /** An owner or moderator mutes `userId` in `room` for `seconds` (0 lifts the mute). */
  muteMember(room: string, userId: string, seconds: number): Promise<void> {
    return this.#call(
      seconds === 0 ? "unmute the member" : "mute the member",
      (t) => t.muteMember(room, userId, seconds),
    );
  }

  /** Who the server lists online now. */
  listOnline(): Promise<ChatUser[]> {
    return this.#call("list who is online", (t) => t.listOnline());
  }

  /**
   * The newest `limit` messages of `room` (with `beforeSeq`, those before it: an older page), as
   * they are: nothing is passed on or dropped.
   */
  history(room: string, limit: number, beforeSeq = 0): Promise<HistoryPage> {
    return this.#call("read history", (t) => t.history(room, limit, undefined, beforeSeq));
  }

  /** A page of `room` centred on message `seq` (to show a found message in context). */
  historyAround(room: string, seq: number, limit: number): Promise<HistoryPage> {
    return this.#call("read history", (t) => t.history(room, limit, undefined, 0, seq));
  }

  /** This user's messages with every word of `query`, in `room` or ("") all their rooms. */
  search(query: string, room = ""): Promise<ChatMessage[]> {
    return this.#call("search", (t) => t.search(query, room));
  }

  /** Who read message `seq` of `room`: "seen by N" on request. */
  seenBy(room: string, seq: number): Promise<SeenBy> {
    return this.#call("tell who saw the message", (t) => t.seenBy(room, seq));
  }

  /** Replaces the text of this user's message `seq` of `room`. */
  editMessage(room: string, seq: number, content: string): Promise<ChatMessage> {
    return this.#call("edit the message", (t) => t.editMessage(room, seq, content));
  }

  /** Adds this user's `emoji` to message `seq` of `room`, or takes it back. */
  react(room: string, seq: number, emoji: string): Promise<void> {
    return this.#call("react", (t) => t.react(room, seq, emoji));
  }

  /** Deletes message `seq` of `room`. */
  deleteMessage(room: string, seq: number): Promise<void> {
    return this.#call("delete the message", (t) => t.deleteMessage(room, seq));
  }

  /**
   * Loads the newest `limit` messages of `room` once (again after a failure); they are passed on
   * as `history`, without repeats of what the stream brought.
   */
  loadHistory(room: string, limit: number): Promise<void> {
    const running = this.#history.get(room);
    if (running) return running;
    const loading = this.history(room, limit).then(
      (page) => {
        for (const m of page.messages) this.#accept(m, "history");
        for (const e of page.events ?? []) this.#o.onRoomEvent?.(e, "history");
      },
      (err) => {
        this.#history.delete(room);
        throw err;
      },
    );
    this.#history.set(room, loading);
    return loading;
  }

  // --- the connection ------------------------------------------------------

  get #endpoint(): string {
    return this.#endpoints[this.#endpointIndex]!;
  }

  /**
   * The transport a call to `action` goes to: the attempt's under way, or a first one before
   * `start` (which the first attempt closes). Between attempts, and once stopped, the last
   * attempt's transport is closed or closing: the call fails at once with UNAVAILABLE saying so,
   * not with that channel's error, and the caller keeps what it was sending (the outbox sends it
   * again once connected, the page keeps the text).
   */
  #current(action: string): ChatTransport {
    if (this.#abort) return this.#transport!;
    if (this.#running || this.#stopped) {
      const state = this.#stopped ? "the session has stopped" : "reconnecting";
      throw new ChatError("UNAVAILABLE", `Cannot ${action}: not connected; ${state}`);
    }
    if (!this.#transport) {
      this.#transport = this.#o.connect(this.#endpoint);
      this.#transport.token = this.#token;
    }
    return this.#transport;
  }

  #open(): void {
    const endpoint = this.#endpoint;
    const abort = new AbortController();
    this.#abort = abort;
    const signal = abort.signal;
    // The previous attempt is over (or the transport was made for calls before `start`).
    if (this.#transport) this.#close(this.#transport);
    const transport = this.#transport = this.#o.connect(endpoint);
    transport.token = this.#token;
    // Whoever hears of it may call at once: the attempt's transport is in place.
    this.#setStatus({ kind: "connecting", attempt: this.#failures + 1, endpoint });
    let openedAt: number | undefined;
    let fresh = false;
    const run = async () => {
      fresh = await this.#authenticate(transport);
      // Rooms without a position start at their newest message, asked before the stream opens
      // so that nothing sent in between is missed. Failing here is not fatal: the stream says
      // whether the server is usable.
      if (transport.token !== undefined && !signal.aborted) {
        await this.#refreshRooms(signal).catch(() => {});
      }
      if (signal.aborted) return;
      await transport.stream(
        { user: this.#user, presenceEvents: true, resume: this.positions },
        {
          onOpen: () => {
            if (signal.aborted || openedAt !== undefined) return;
            openedAt = this.#clock.now();
            this.#setStatus({ kind: "connected", since: openedAt, endpoint });
            void this.#refreshOnline(signal);
            // A server without blocking (or a classic one) leaves the list empty.
            this.listBlocked(signal).catch(() => {});
            // Invitations that came while away. A server without them (classic) has none.
            if (transport.token !== undefined) this.listInvitations(signal).catch(() => {});
          },
          onEvent: (event) => {
            if (!signal.aborted) this.#handle(event);
          },
        },
        signal,
      );
    };
    run().then(
      () => this.#ended(abort, openedAt, undefined, fresh),
      (err) => this.#ended(abort, openedAt, err, fresh),
    ).finally(() => this.#close(transport));
  }

  /** Signs in on `transport` unless a token is held; whether it signed in just now. */
  async #authenticate(transport: ChatTransport): Promise<boolean> {
    const password = this.#o.password;
    if (this.#token !== undefined || password === undefined) return false;
    try {
      await this.#signIn(transport, password);
      return true;
    } catch (err) {
      if (codeOf(err) !== "UNIMPLEMENTED") throw err;
      if (!this.#classicNoted) {
        this.#classicNoted = true;
        this.#o.onSignIn?.({ kind: "classic" });
      }
      return false;
    }
  }

  async #signIn(transport: ChatTransport, password: string): Promise<void> {
    const signed = await transport.signIn(this.#user.id, password, this.#o.user.displayName);
    this.#token = transport.token = signed.token;
    this.#user = { id: signed.user.id || this.#user.id, displayName: this.#user.displayName };
    this.#o.onSignIn?.({ kind: "signed-in", user: this.#user, created: signed.created });
  }

  #ended(abort: AbortController, openedAt: number | undefined, err: unknown, fresh: boolean) {
    if (abort.signal.aborted || !this.#running || this.#abort !== abort) return;
    this.#abort = undefined;
    const code = codeOf(err);
    if (
      code === "UNAUTHENTICATED" && !fresh && this.#token !== undefined &&
      this.#o.password !== undefined
    ) {
      // Expired, or the server's secret changed: sign in again at once.
      this.#token = undefined;
      this.#open();
      return;
    }
    if (code !== undefined && PERMANENT_CODES.has(code)) return this.#refuse(err);
    if (openedAt !== undefined && this.#clock.now() - openedAt >= this.#backoff.stableAfterMs) {
      this.#failures = 0;
    }
    const reason = err === undefined ? "the server ended the stream" : this.#describe(err);
    this.#scheduleRetry(reason, openedAt !== undefined);
  }

  #scheduleRetry(reason: string, wasConnected: boolean): void {
    this.#cancelTimer();
    this.#failures++;
    const delayMs = backoffDelay(this.#failures, this.#backoff, this.#clock.random);
    const endpoint = this.#endpoint;
    // Another endpoint is likely up when this one is not: the next attempt goes there.
    this.#endpointIndex = (this.#endpointIndex + 1) % this.#endpoints.length;
    this.#setStatus({
      kind: "reconnecting",
      attempt: this.#failures,
      retryAt: this.#clock.now() + delayMs,
      delayMs,
      reason,
      wasConnected,
      endpoint,
      next: this.#endpoint,
    });
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#running) this.#open();
    }, delayMs);
  }

  /** Stops for good: the server refused this user (or the sign-in ended). */
  #refuse(err: unknown): void {
    this.#halt({ kind: "stopped", error: this.#describe(err), code: codeOf(err) });
  }

  #halt(status: ConnectionStatus): void {
    if (this.#stopped) return;
    this.#typist.stop();
    this.#typers.clear();
    this.#running = false;
    this.#stopped = true;
    this.#cancelTimer();
    this.#abort?.abort();
    this.#abort = undefined;
    this.#setStatus(status);
    // The attempt under way ends a moment later; its channel goes now, with the session.
    if (this.#transport) this.#close(this.#transport);
  }

  #close(transport: ChatTransport): void {
    if (this.#closed.has(transport)) return;
    this.#closed.add(transport);
    transport.close();
  }

  /**
   * Runs a call on the current transport. A refused token signs in again (once) when the
   * password is known, else ends the session.
   */
  async #call<T>(action: string, run: (transport: ChatTransport) => Promise<T>): Promise<T> {
    const transport = this.#current(action);
    const token = transport.token;
    try {
      return await run(transport);
    } catch (err) {
      if (codeOf(err) !== "UNAUTHENTICATED" || token === undefined) throw err;
      const password = this.#o.password;
      if (password === undefined) {
        this.#refuse(err);
        throw err;
      }
      // Unless another call already signed in again meanwhile.
      if (transport.token === token) await this.#signIn(transport, password);
      return await run(transport);
    }
  }

  // --- what the stream brings ------------------------------------------------

  async #refreshOnline(signal: AbortSignal): Promise<void> {
    const during = this.#roster.askingOnline();
    const asked = this.#call("list who is online", (t) => t.listOnline(signal));
    const users = await asked.catch(() => undefined);
    // On failure the live events still keep the list roughly right; the next connection asks.
    if (signal.aborted) return;
    this.#roster.answeredOnline(during, users);
    this.#emitOnline();
  }

  async #refreshRooms(signal?: AbortSignal): Promise<void> {
    const rooms = await this.#call("list rooms", (t) => t.listRooms(false, signal));
    if (signal?.aborted) return;
    for (const room of rooms) this.#positions.startAt(room.id, room.lastSeq);
    this.#roster.listed(rooms);
    this.#reading.listed(rooms);
    this.#emitRooms();
    this.#emitReading();
    // Marks that could not be sent before: the server's answer came, so it is reachable.
    this.#readMarks.resend();
  }

  #addRoom(room: RoomInfo): RoomInfo {
    this.#roster.add(room);
    this.#positions.startAt(room.id, room.lastSeq);
    this.#reading.listed([room]);
    this.#emitRooms();
    this.#emitReading();
    return room;
  }

  #dropRoom(room: string): void {
    this.#positions.forget(room);
    this.#history.delete(room);
    this.#reading.forget(room);
    this.#readMarks.forget(room);
    if (this.#roster.drop(room)) this.#emitRooms();
  }

  #handle(event: StreamEvent): void {
    switch (event.type) {
      case "presence":
        this.#roster.presence(event.user, event.online);
        this.#o.onPresence?.(event.user, event.online);
        this.#emitOnline();
        return;
      case "room":
        this.#applyRoomEvent(event.event);
        this.#o.onRoomEvent?.(event.event, "live");
        return;
      case "room-action":
        this.#applyRoomAction(event.event);
        this.#o.onRoomAction?.(event.event);
        return;
      case "change":
        this.#o.onChange?.(event.change);
        return;
      case "reaction":
        this.#o.onReaction?.(event.event);
        return;
      case "typing":
        if (event.event.user.id !== this.#user.id) this.#typers.seen(event.event);
        return;
      case "message":
        this.#accept(event.message, "live");
        return;
      case "read":
        if (this.#reading.read(event.room, event.user.id, event.seq)) this.#emitReading();
    }
  }

  #tellTyping(room: string, typing: boolean): void {
    if (this.#typingUnsupported || !this.connected) return;
    this.#call("set typing", (t) => t.setTyping(room, typing)).catch((err) => {
      if (codeOf(err) === "UNIMPLEMENTED") this.#typingUnsupported = true;
    });
  }

  #applyRoomEvent(event: RoomEvent): void {
    switch (this.#roster.roomEvent(event)) {
      case "left":
        return this.#dropRoom(event.room);
      case "unknown":
        // Its position and members come with the next ListRooms, asked for now.
        this.#emitRooms();
        this.#refreshRooms().catch(() => {});
        return;
      case "changed":
        this.#emitRooms();
        return;
      case "refresh":
        this.#refreshRooms().catch(() => {});
    }
  }

  #applyRoomAction(event: RoomAction): void {
    if (event.action === "invite-only" || event.action === "open") {
      if (this.#roster.access(event.room, event.action === "invite-only")) this.#emitRooms();
    } else if (invitesMe(event, this.#user.id)) {
      // The list comes from the server, which has the room as the invitation sees it.
      this.listInvitations().catch(() => {});
    }
  }

  #accept(message: ChatMessage, source: "live" | "history"): void {
    if (!this.#positions.accept(message, source)) return;
    // What was being typed has arrived.
    if (source === "live") this.#typers.stopped(message.room, message.userId);
    if (source === "live" && this.#reading.message(message)) this.#emitReading();
    this.#o.onMessage?.(message, source);
  }

  #emitOnline(): void {
    this.#o.onOnline?.(this.online);
  }

  #emitRooms(): void {
    this.#o.onRooms?.(this.rooms);
  }

  #emitInvitations(): void {
    this.#o.onInvitations?.(this.invitations);
  }

  #emitReading(): void {
    this.#o.onReading?.(this.#reading.all());
  }

  #describe(err: unknown): string {
    if (this.#o.describe) return this.#o.describe(err);
    return err instanceof Error ? err.message : String(err);
  }

  #newMessageId(): string {
    return this.#o.newMessageId?.() ?? crypto.randomUUID();
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #setStatus(status: ConnectionStatus): void {
    this.#status = status;
    this.#o.onStatus?.(status);
    this.#outbox.wake();
  }
}
