/**
 * The chat service: what a client can do, whatever transport it came by.
 * The native gRPC handlers and the gRPC-Web bridge both call this, through
 * the method table in `rpc.ts`.
 */

import type { Config } from "../core/config.ts";
import { ChatError, describeError, invalidArgument, unavailable } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import {
  DEFAULT_ROOM,
  DIRECT_PREFIX,
  directRoomId,
  directRoomMembers,
  DISPLAY_NAME_MAX_LENGTH,
  MESSAGE_ID_MAX_LENGTH,
  nameKey,
  nameProblem,
  roomNameProblem,
  storableProblem,
  USER_ID_MAX_LENGTH,
} from "../protocol/names.ts";
import type { ChatMessage, Presence, RoomEvent } from "../core/types.ts";
import type { Bus } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import type { Announcer } from "./announcer.ts";
import type { Auth, Identity, SignInResult } from "./auth.ts";
import type { Hub, LocalStream, StreamSink } from "./hub.ts";
import { RateLimiter } from "./rate_limiter.ts";

export { directRoomId };

/** Who is calling, as the transport saw it. */
export interface Caller {
  /** The `authorization` metadata (`Bearer <token>`), if sent. */
  readonly authorization?: string;
  /** The client's network address (IP, no port), for per-address limits; undefined if unknown. */
  readonly address?: string;
  /** Aborted when the client cancels the call (or its deadline passes). */
  readonly signal?: AbortSignal;
}

export interface OpenStreamRequest {
  userId: string;
  /**
   * With AUTH=off and no token, the name shown for this user (on the stream and on the user's
   * messages); with a token, the account's name is shown and this is only checked.
   */
  displayName: string;
  presenceEvents: boolean;
  /**
   * The last sequence number the client saw, per room: replay what came after. At most
   * `maxResumeRooms` entries; one per room counts (the smallest), rooms the user is not in are
   * ignored.
   */
  resume: readonly { room: string; lastSeq: number }[];
}

/** A client's `google.protobuf.Timestamp`, as it came. */
export interface ClientTimestamp {
  seconds: number;
  nanos: number;
}

export interface SendRequest {
  userId: string;
  content: string;
  /** Checked, never shown: the name on a message is the account's, or the sender's stream's. */
  displayName?: string;
  /**
   * The client's clock, checked to be within `maxClockSkewMs` of the server's; the message is
   * stamped with the server's time.
   */
  timestamp?: ClientTimestamp | null;
  /** Makes a retried send idempotent; generated when absent. */
  messageId?: string;
  room?: string;
}

export interface RoomView {
  id: string;
  direct: boolean;
  members: string[];
  lastSeq: number;
}

export interface HistoryRequest {
  room: string;
  /** 0 means from the newest. */
  beforeSeq: number;
  /** 0 means the default. */
  limit: number;
}

export interface StreamHandle {
  readonly streamId: string;
  /** The client went away (or the stream failed); idempotent. */
  close(): void;
}

export interface ChatService {
  openStream(caller: Caller, request: OpenStreamRequest, sink: StreamSink): Promise<StreamHandle>;
  send(caller: Caller, request: SendRequest): Promise<ChatMessage>;
  online(caller: Caller, room: string): Promise<Presence[]>;
  signIn(
    username: string,
    password: string,
    displayName: string,
    caller?: Caller,
  ): Promise<SignInResult>;
  createRoom(caller: Caller, room: string): Promise<RoomView>;
  joinRoom(caller: Caller, room: string): Promise<RoomView>;
  leaveRoom(caller: Caller, room: string): Promise<void>;
  listRooms(caller: Caller, all: boolean): Promise<RoomView[]>;
  openDirect(caller: Caller, otherUserId: string): Promise<RoomView>;
  history(
    caller: Caller,
    request: HistoryRequest,
  ): Promise<{ messages: ChatMessage[]; more: boolean }>;
}

export interface ChatServiceOptions {
  bus: Bus;
  hub: Hub;
  store: Store;
  auth: Auth;
  limiter: RateLimiter;
  announcer: Announcer;
  logger: Logger;
  config: Pick<
    Config,
    | "serverId"
    | "maxMessageBytes"
    | "maxRoomNameLength"
    | "maxRoomsPerUser"
    | "maxStreamsPerUser"
    | "rateLimitPerSecond"
    | "rateLimitBurst"
    | "sendTimeoutMs"
    | "maxResumeRooms"
    | "maxDirectRoomsPerUser"
    | "directRoomsPerMinute"
    | "directRoomsBurst"
    | "maxClockSkewMs"
  >;
  /** The current presence view (from the processor's registry). */
  online: () => Presence[];
  /** One user's presence (from the processor's registry), if known; for AUTH=off names. */
  presenceOf?: (userId: string) => Presence | undefined;
  /** The server's clock, in milliseconds since the epoch (for tests). */
  now?: () => number;
}

const HISTORY_DEFAULT = 50;
const HISTORY_MAX = 200;
const REPLAY_PAGE = 500;
/** The longest direct room id: the prefix, two user ids and the ':' between them. */
const DIRECT_ROOM_MAX_LENGTH = DIRECT_PREFIX.length + 2 * USER_ID_MAX_LENGTH + 1;
/** The range a `google.protobuf.Timestamp` may hold: 0001-01-01 to 9999-12-31 (UTC). */
const TIMESTAMP_MIN_SECONDS = -62_135_596_800;
const TIMESTAMP_MAX_SECONDS = 253_402_300_799;
const encoder = new TextEncoder();

const permissionDenied = (message: string) => new ChatError("permission_denied", message);
const notFound = (message: string) => new ChatError("not_found", message);

/** Throws INVALID_ARGUMENT "`action`: `problem`" when there is a problem. */
function refuse(action: string, problem: string | undefined): void {
  if (problem !== undefined) throw invalidArgument(`${action}: ${problem}`);
}

function checkUserId(action: string, userId: string): string {
  const id = userId.trim();
  refuse(action, nameProblem("the user id", id, USER_ID_MAX_LENGTH));
  return id;
}

/** Yields to the event loop, so that a long task lets other calls (and health checks) run. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** `2.5`, for "retry in 2.5 s". */
const seconds = (ms: number) => (ms / 1000).toFixed(1);

export function createChatService(options: ChatServiceOptions): ChatService {
  const { bus, hub, store, auth, limiter, announcer, logger, config } = options;
  const now = options.now ?? Date.now;
  /** New direct rooms per initiator; none when `directRoomsPerMinute` is 0. */
  const directLimiter = config.directRoomsPerMinute > 0
    ? new RateLimiter({
      ratePerSecond: config.directRoomsPerMinute / 60,
      burst: Math.max(1, config.directRoomsBurst),
    })
    : undefined;

  /**
   * The caller's identity; in classic mode (AUTH=off) the id the request names.
   * `claimed` is undefined for requests that have no user field.
   */
  async function identify(
    caller: Caller,
    claimed: string | undefined,
    action: string,
  ): Promise<Identity> {
    const identity = await auth.identify(caller.authorization, (claimed ?? "").trim(), action);
    if (claimed === undefined && identity.userId === "") {
      // Classic mode, and the request has no user field: only a token says who this is.
      throw new ChatError(
        "unauthenticated",
        `${action}: sign in first and send the token as \`authorization: Bearer <token>\``,
      );
    }
    checkUserId(action, identity.userId);
    return identity;
  }

  /**
   * The name shown for `me`: with a token (AUTH=on, or a token in classic mode), the account's,
   * never one from the request; without, `given` (what the client's Connect said) or the user id.
   * An account name from before the name rules that breaks them shows as the user id.
   */
  function shownName(caller: Caller, me: Identity, given: string | undefined): string {
    if ((caller.authorization ?? "").trim() !== "") {
      return nameProblem("", me.displayName, DISPLAY_NAME_MAX_LENGTH) === undefined
        ? me.displayName
        : me.userId;
    }
    return given || me.userId;
  }

  /** The name shown for `me` now: see `shownName`; without a token, the name of its stream. */
  function nameOf(caller: Caller, me: Identity): string {
    return shownName(
      caller,
      me,
      hub.displayNameOf(me.userId) ?? options.presenceOf?.(me.userId)?.displayName,
    );
  }

  /** Checks a display name a request carries (trimmed; "" when it has none). */
  function checkDisplayName(action: string, displayName: string | undefined): string {
    const name = (displayName ?? "").trim();
    if (name !== "") {
      refuse(action, nameProblem("the display name", name, DISPLAY_NAME_MAX_LENGTH));
    }
    return name;
  }

  function checkRoomName(action: string, room: string): string {
    const id = room.trim();
    refuse(
      action,
      id.startsWith(DIRECT_PREFIX)
        ? nameProblem("the room name", id, DIRECT_ROOM_MAX_LENGTH)
        : roomNameProblem(id, config.maxRoomNameLength),
    );
    return id;
  }

  /** Whether `name` is the default room, in any case. */
  const isDefaultRoom = (name: string) => nameKey(name) === DEFAULT_ROOM;

  /**
   * The stored id of the room `name` (any case) that `userId` is a member of, or the error that
   * says why not. The default room is everybody's.
   */
  async function memberRoom(action: string, name: string, userId: string): Promise<string> {
    const id = checkRoomName(action, name);
    if (isDefaultRoom(id)) return DEFAULT_ROOM;
    // Memberships name rooms by their stored spelling: a member who typed it is done here.
    if (await store.isMember(id, userId)) return id;
    const room = await store.getRoom(id);
    if (!room) throw notFound(`${action}: room "${id}" does not exist`);
    if (room.id !== id && await store.isMember(room.id, userId)) return room.id;
    throw permissionDenied(
      `${action}: ${userId} is not a member of room "${room.id}"; join it first`,
    );
  }

  /**
   * A direct room takes messages only while both are in it: who left it blocked the other
   * (LeaveRoom on a direct room), until they open it again themselves.
   */
  async function requireBothInDirect(action: string, room: string, me: string): Promise<void> {
    const pair = directRoomMembers(room);
    if (!pair) return;
    const other = pair[0] === me ? pair[1] : pair[0];
    if (!(await store.isMember(room, other))) {
      throw permissionDenied(
        `${action}: ${other} left the direct conversation with ${me}; only ${other} can open it again`,
      );
    }
  }

  async function view(room: string, direct = false): Promise<RoomView> {
    return {
      id: room,
      direct,
      members: room === DEFAULT_ROOM ? [] : await store.members(room),
      lastSeq: await store.lastSeq(room),
    };
  }

  /**
   * Refuses one more group room past `maxRoomsPerUser`. Direct rooms do not count: others can
   * open those with anybody, and they have their own bound, for the one who opens them.
   */
  async function checkRoomCount(action: string, userId: string): Promise<void> {
    const count = (await store.roomsOf(userId)).filter((r) => !r.direct).length;
    if (count >= config.maxRoomsPerUser) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: ${userId} is in ${count} rooms, the limit is ${config.maxRoomsPerUser}; leave one first`,
      );
    }
  }

  /** Refuses a new direct room past `maxDirectRoomsPerUser` opened by `userId`, or too fast. */
  async function checkDirectAllowance(action: string, userId: string): Promise<void> {
    const mine = (await store.roomsOf(userId)).filter((r) => r.direct && r.createdBy === userId);
    if (mine.length >= config.maxDirectRoomsPerUser) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: ${userId} opened ${mine.length} direct conversations and is still in them, the limit is ${config.maxDirectRoomsPerUser}; leave one first`,
      );
    }
    const allowed = directLimiter?.take(userId) ?? { ok: true };
    if (!allowed.ok) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: the limit is ${config.directRoomsPerMinute} new direct conversations per minute (${
          Math.max(1, config.directRoomsBurst)
        } at once); retry in ${seconds(allowed.retryAfterMs)} s`,
      );
    }
  }

  /**
   * The server's time for a message; the client's, if it sent one, must be a time a Timestamp can
   * hold and within `maxClockSkewMs` of it.
   */
  function stamp(action: string, timestamp: ClientTimestamp | null | undefined): string {
    const at = now();
    if (!timestamp || (!timestamp.seconds && !timestamp.nanos)) return new Date(at).toISOString();
    const { seconds: s, nanos } = timestamp;
    if (
      !Number.isSafeInteger(s) || s < TIMESTAMP_MIN_SECONDS || s > TIMESTAMP_MAX_SECONDS ||
      !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999
    ) {
      throw invalidArgument(
        `${action}: the timestamp (seconds=${s}, nanos=${nanos}) is not a time (years 1 to 9999, nanos 0 to 999999999); leave it out and the server stamps the message`,
      );
    }
    const ms = s * 1000 + Math.floor(nanos / 1e6);
    const off = ms - at;
    if (Math.abs(off) > config.maxClockSkewMs) {
      throw invalidArgument(
        `${action}: the timestamp ${new Date(ms).toISOString()} is ${
          Math.round(Math.abs(off) / 1000)
        } s ${off > 0 ? "ahead of" : "behind"} the server's clock, the limit is ${
          Math.round(config.maxClockSkewMs / 1000)
        } s; set the clock right, or leave the timestamp out and the server stamps the message`,
      );
    }
    return new Date(at).toISOString();
  }

  /** Tells every gateway (this one included) that a member joined or left. */
  async function announceRoomEvent(event: RoomEvent): Promise<void> {
    try {
      await bus.deliver({ type: "room-event", event });
    } catch (err) {
      // The membership is stored; streams elsewhere pick it up when they reconnect.
      logger.warn("Room event not published", { room: event.room, error: describeError(err) });
      hub.roomEvent(event);
    }
  }

  /**
   * Where to resume, one position per room (the smallest given: no gap), only for rooms of
   * `rooms` (the user's): the rest are dropped before anything reads the store. Rooms match in
   * any case. The caller has capped `resume` at `maxResumeRooms`.
   */
  function resumePositions(
    resume: OpenStreamRequest["resume"],
    rooms: ReadonlySet<string>,
  ): Map<string, number> {
    const byKey = new Map<string, string>();
    for (const room of rooms) if (!byKey.has(nameKey(room))) byKey.set(nameKey(room), room);
    const positions = new Map<string, number>();
    for (const position of resume) {
      const name = position.room.trim() || DEFAULT_ROOM;
      const room = rooms.has(name) ? name : byKey.get(nameKey(name));
      if (room === undefined) continue;
      const lastSeq = Number.isFinite(position.lastSeq) ? Math.max(0, position.lastSeq) : 0;
      positions.set(room, Math.min(lastSeq, positions.get(room) ?? Infinity));
    }
    return positions;
  }

  /** Replays what the stream missed, room by room, letting other work run between rooms. */
  async function replayMissed(stream: LocalStream, positions: Map<string, number>): Promise<void> {
    for (const [room, lastSeq] of positions) {
      await yieldToEventLoop();
      if (!stream.rooms.has(room)) continue; // left meanwhile
      let after = Math.max(lastSeq, stream.lastSeq.get(room) ?? 0);
      stream.lastSeq.set(room, after);
      while (true) {
        const page = await store.since(room, after, REPLAY_PAGE);
        if (!(await hub.replay(stream, page))) return;
        if (page.length < REPLAY_PAGE) break;
        after = page.at(-1)!.seq;
      }
    }
  }

  return {
    async openStream(caller, request, sink) {
      const action = "Cannot open stream";
      const me = await identify(caller, request.userId, action);
      const displayName = shownName(caller, me, checkDisplayName(action, request.displayName));
      if (request.resume.length > config.maxResumeRooms) {
        throw invalidArgument(
          `${action}: resume lists ${request.resume.length} rooms, the limit is ${config.maxResumeRooms}`,
        );
      }
      const checkStreamCount = () => {
        const open = hub.countOf(me.userId);
        if (open >= config.maxStreamsPerUser) {
          throw new ChatError(
            "resource_exhausted",
            `${action}: ${me.userId} has ${open} streams open on this server, the limit is ${config.maxStreamsPerUser}`,
          );
        }
      };
      // Early, to refuse before reading the store; and again below.
      checkStreamCount();
      const rooms = new Set([DEFAULT_ROOM, ...(await store.roomsOf(me.userId)).map((r) => r.id)]);
      const positions = resumePositions(request.resume, rooms);
      // Streams opened at the same time all passed the first check while this one read the
      // store: count again with nothing awaited until `hub.add`, or the limit does not hold.
      checkStreamCount();
      const streamId = crypto.randomUUID();
      let closed = false;
      const announce = (connected: boolean) =>
        announcer.announce({
          userId: me.userId,
          serverId: config.serverId,
          connected,
          timestamp: new Date().toISOString(),
          displayName,
          streamId,
        });
      const handle: StreamHandle = {
        streamId,
        close() {
          if (closed) return;
          closed = true;
          hub.remove(streamId);
          announce(false);
          logger.info("Stream closed", { user: me.userId, stream: streamId });
        },
      };
      const stream: LocalStream = {
        streamId,
        userId: me.userId,
        displayName,
        presenceEvents: request.presenceEvents,
        rooms,
        lastSeq: new Map(),
        // Live messages wait while the missed ones are replayed: no gap, no duplicate.
        backlog: positions.size > 0 ? [] : undefined,
        sink: {
          write: (frame) => sink.write(frame),
          pending: () => sink.pending(),
          fail: (error) => {
            sink.fail(error);
            handle.close();
          },
        },
      };
      hub.add(stream);
      announce(true);
      logger.info("Stream opened", { user: me.userId, stream: streamId, server: config.serverId });
      if (stream.backlog) {
        replayMissed(stream, positions).then(
          () => hub.goLive(stream),
          (err) => {
            logger.warn("Replay failed", { user: me.userId, error: describeError(err) });
            stream.sink.fail(
              unavailable("Stream closed: missed messages could not be read; reconnect"),
            );
          },
        );
      }
      return handle;
    },

    async send(caller, request) {
      const action = "Cannot send message";
      const me = await identify(caller, request.userId ?? "", action);
      // Everything that could refuse this message later (the store, the processor) is checked
      // here, before the answer: OK means it will be delivered.
      const timestamp = stamp(action, request.timestamp);
      const bytes = encoder.encode(request.content).length;
      if (bytes === 0 || request.content.trim() === "") {
        throw invalidArgument(`${action}: the content is empty`);
      }
      if (bytes > config.maxMessageBytes) {
        throw invalidArgument(
          `${action}: content is ${bytes} bytes, the limit is ${config.maxMessageBytes}`,
        );
      }
      refuse(action, storableProblem("the content", request.content));
      const messageId = request.messageId?.trim() || crypto.randomUUID();
      refuse(action, nameProblem("the message id", messageId, MESSAGE_ID_MAX_LENGTH));
      checkDisplayName(action, request.displayName);
      const room = request.room?.trim()
        ? await memberRoom(action, request.room, me.userId)
        : DEFAULT_ROOM;
      await requireBothInDirect(action, room, me.userId);
      const allowed = limiter.take(me.userId);
      if (!allowed.ok) {
        throw new ChatError(
          "resource_exhausted",
          `${action}: the rate limit is ${config.rateLimitPerSecond} messages per second (bursts of ${config.rateLimitBurst}); retry in ${
            seconds(allowed.retryAfterMs)
          } s`,
        );
      }
      const message: ChatMessage = {
        id: messageId,
        userId: me.userId,
        // Never the request's: the account's name, or (AUTH=off) the one the sender's stream gave.
        displayName: nameOf(caller, me),
        content: request.content,
        timestamp,
        room,
        seq: 0,
      };
      if (!bus.ready()) {
        throw unavailable(`${action}: Kafka is unavailable; try again shortly`);
      }
      const appending = bus.append(message);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), config.sendTimeoutMs);
      });
      try {
        if (await Promise.race([appending, timedOut]) === "timeout") {
          // The message may still be stored: the processor keeps one copy per (sender, id).
          appending.catch(() => {});
          throw unavailable(
            `${action}: Kafka is degraded and did not acknowledge it within ${config.sendTimeoutMs} ms; ` +
              `it may still be stored, and retrying with message_id ${messageId} is safe (delivered once)`,
          );
        }
      } catch (err) {
        if (err instanceof ChatError) throw err;
        throw unavailable(`${action}: Kafka did not store it (${describeError(err)})`, err);
      } finally {
        clearTimeout(timer);
      }
      return message;
    },

    async online(caller, room) {
      const action = "Cannot list who is online";
      const me = await identify(caller, undefined, action).catch((err) => {
        // Classic clients ask without naming anybody: in classic mode that is allowed.
        if (auth.mode === "off" && err instanceof ChatError && err.code === "unauthenticated") {
          return undefined;
        }
        throw err;
      });
      const everybody = options.online();
      const id = room.trim();
      if (id === "" || isDefaultRoom(id)) return everybody;
      if (!me) throw invalidArgument(`${action}: name yourself to see who is in room "${id}"`);
      const members = new Set(await store.members(await memberRoom(action, id, me.userId)));
      return everybody.filter((p) => members.has(p.userId));
    },

    signIn(username, password, displayName, caller = {}) {
      return auth.signIn(username, password, displayName, caller);
    },

    async createRoom(caller, name) {
      const action = "Cannot create room";
      const me = await identify(caller, undefined, action);
      const room = checkRoomName(action, name);
      if (isDefaultRoom(room) || room.startsWith(DIRECT_PREFIX)) {
        throw new ChatError("already_exists", `${action}: "${room}" is a reserved name`);
      }
      await checkRoomCount(action, me.userId);
      const { room: stored, created } = await store.createRoom({
        id: room,
        direct: false,
        createdBy: me.userId,
        createdAt: new Date().toISOString(),
      });
      if (!created) {
        // Room names compare without case: "Book-Club" is taken by "book-club".
        throw new ChatError(
          "already_exists",
          `${action}: "${stored.id}" already exists; join it instead`,
        );
      }
      await store.addMember(room, me.userId);
      await announceRoomEvent({
        room,
        userId: me.userId,
        displayName: nameOf(caller, me),
        joined: true,
      });
      logger.info("Room created", { room, by: me.userId });
      return view(room);
    },

    async joinRoom(caller, name) {
      const action = "Cannot join room";
      const me = await identify(caller, undefined, action);
      const typed = checkRoomName(action, name);
      if (isDefaultRoom(typed)) return view(DEFAULT_ROOM);
      const found = await store.getRoom(typed);
      if (!found) throw notFound(`${action}: room "${typed}" does not exist; create it first`);
      const room = found.id;
      const member = await store.isMember(room, me.userId);
      if (found.direct && !member) {
        throw permissionDenied(
          directRoomMembers(room)?.includes(me.userId)
            ? `${action}: you left "${room}"; open it again with OpenDirect`
            : `${action}: "${room}" is a direct conversation of two other people`,
        );
      }
      if (!member) {
        await checkRoomCount(action, me.userId);
        await store.addMember(room, me.userId);
        await announceRoomEvent({
          room,
          userId: me.userId,
          displayName: nameOf(caller, me),
          joined: true,
        });
      }
      return view(room, found.direct);
    },

    /**
     * Leaving a direct room also blocks it: the other can send nothing more to it, nor add the
     * leaver back with OpenDirect, until the leaver opens it again.
     */
    async leaveRoom(caller, name) {
      const action = "Cannot leave room";
      const me = await identify(caller, undefined, action);
      const typed = checkRoomName(action, name);
      if (isDefaultRoom(typed)) {
        throw new ChatError("failed_precondition", `${action}: everybody is in "${DEFAULT_ROOM}"`);
      }
      let room = typed;
      if (!(await store.removeMember(room, me.userId))) {
        room = await memberRoom(action, typed, me.userId);
        await store.removeMember(room, me.userId);
      }
      await announceRoomEvent({
        room,
        userId: me.userId,
        displayName: nameOf(caller, me),
        joined: false,
      });
    },

    async listRooms(caller, all) {
      const me = await identify(caller, undefined, "Cannot list rooms");
      const rooms = all ? await store.listRooms(HISTORY_MAX) : await store.roomsOf(me.userId);
      return Promise.all([
        view(DEFAULT_ROOM),
        ...rooms.filter((r) => r.id !== DEFAULT_ROOM).map((r) => view(r.id, r.direct)),
      ]);
    },

    /**
     * Opens (or reopens) the direct room with `other`. A new room counts against the opener's
     * `maxDirectRoomsPerUser` and `directRoomsPerMinute`, never against the other's allowance.
     * When the other left it (which blocks), only the other can open it again.
     */
    async openDirect(caller, other) {
      const action = "Cannot open direct messages";
      const me = await identify(caller, undefined, action);
      const named = checkUserId(action, other);
      // Usernames compare without case: the room uses the account's own spelling.
      const account = await store.getAccount(named);
      if (auth.mode === "on" && !account) throw notFound(`${action}: there is no user "${named}"`);
      const them = account?.id ?? named;
      if (them === me.userId) throw invalidArgument(`${action}: that is yourself`);
      if (them.includes(":") || me.userId.includes(":")) {
        throw invalidArgument(`${action}: a user id may not hold ":"`);
      }
      const room = directRoomId(me.userId, them);
      if (!(await store.getRoom(room))) {
        await checkDirectAllowance(action, me.userId);
        // The members first, then the room: whoever finds the room finds both in it, so a
        // missing member always means one who left (and blocked), never one not added yet.
        const joined: RoomEvent[] = [];
        const members = [[me.userId, nameOf(caller, me)], [them, account?.displayName ?? them]];
        for (const [userId, displayName] of members as [string, string][]) {
          if (await store.addMember(room, userId)) {
            joined.push({ room, userId, displayName, joined: true });
          }
        }
        const { created } = await store.createRoom({
          id: room,
          direct: true,
          createdBy: me.userId,
          createdAt: new Date().toISOString(),
        });
        for (const event of joined) await announceRoomEvent(event);
        if (created) logger.info("Direct room opened", { room, by: me.userId });
        return view(room, true);
      }
      // It exists. Opening it lifts my own block (I left it), whatever the other did...
      const back = await store.addMember(room, me.userId);
      if (back) {
        await announceRoomEvent({
          room,
          userId: me.userId,
          displayName: nameOf(caller, me),
          joined: true,
        });
      }
      // ...but only the other can lift theirs: if both left, each opens it again for their side.
      if (!(await store.isMember(room, them))) {
        throw permissionDenied(
          `${action}: ${them} left the direct conversation with ${me.userId}; only ${them} can open it again${
            back ? ` (you are back in it for when ${them} does)` : ""
          }`,
        );
      }
      return view(room, true);
    },

    async history(caller, request) {
      const action = "Cannot read history";
      const me = await identify(caller, undefined, action);
      const room = request.room.trim()
        ? await memberRoom(action, request.room, me.userId)
        : DEFAULT_ROOM;
      if (request.limit > HISTORY_MAX) {
        throw invalidArgument(`${action}: limit is ${request.limit}, the most is ${HISTORY_MAX}`);
      }
      const limit = request.limit || HISTORY_DEFAULT;
      const page = await store.history({
        room,
        beforeSeq: request.beforeSeq > 0 ? request.beforeSeq : undefined,
        limit: limit + 1,
      });
      return { messages: page.slice(0, limit), more: page.length > limit };
    },
  };
}
