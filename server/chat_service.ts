/**
 * The chat service: what a client can do, whatever transport it came by.
 * The native gRPC handlers and the gRPC-Web bridge both call this, through
 * the method table in `rpc.ts`.
 */

import { type Config, DEFAULT_ROOM, TOPICS } from "../core/config.ts";
import { ChatError, describeError, invalidArgument, unavailable } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { encodeChatMessage, encodeDelivery } from "../core/records.ts";
import type { ChatMessage, Presence, RoomEvent } from "../core/types.ts";
import type { Bus } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import type { Announcer } from "./announcer.ts";
import type { Auth, Identity, SignInResult } from "./auth.ts";
import type { Hub, LocalStream, StreamSink } from "./hub.ts";
import type { RateLimiter } from "./rate_limiter.ts";

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
  displayName: string;
  presenceEvents: boolean;
  /** The last sequence number the client saw, per room: replay what came after. */
  resume: { room: string; lastSeq: number }[];
}

export interface SendRequest {
  userId: string;
  content: string;
  displayName?: string;
  /** RFC 3339; the server's clock when absent. */
  timestamp?: string;
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
  >;
  /** The current presence view (from the processor's registry). */
  online: () => Presence[];
}

const MAX_USER_ID = 128;
const MAX_MESSAGE_ID = 128;
const HISTORY_DEFAULT = 50;
const HISTORY_MAX = 200;
const REPLAY_PAGE = 500;
const ROOM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const DIRECT_PREFIX = "dm:";
const encoder = new TextEncoder();

const permissionDenied = (message: string) => new ChatError("permission_denied", message);
const notFound = (message: string) => new ChatError("not_found", message);

function checkUserId(action: string, userId: string): string {
  const id = userId.trim();
  if (id === "") throw invalidArgument(`${action}: the user id is empty`);
  if (id.length > MAX_USER_ID) {
    throw invalidArgument(
      `${action}: the user id is ${id.length} characters, the limit is ${MAX_USER_ID}`,
    );
  }
  return id;
}

/** The direct-message room of two users: the same id whoever opens it. */
export function directRoomId(a: string, b: string): string {
  return DIRECT_PREFIX + [a, b].sort().join(":");
}

export function createChatService(options: ChatServiceOptions): ChatService {
  const { bus, hub, store, auth, limiter, announcer, logger, config } = options;

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

  function checkRoomName(action: string, room: string): string {
    const id = room.trim();
    if (id === "") throw invalidArgument(`${action}: the room name is empty`);
    if (id.length > config.maxRoomNameLength) {
      throw invalidArgument(
        `${action}: the room name is ${id.length} characters, the limit is ${config.maxRoomNameLength}`,
      );
    }
    if (!id.startsWith(DIRECT_PREFIX) && !ROOM_NAME.test(id)) {
      throw invalidArgument(
        `${action}: the room name ${
          JSON.stringify(id)
        } may only hold letters, digits, '.', '_' and '-', and must start with a letter or digit`,
      );
    }
    return id;
  }

  /** Everybody is in the default room; other rooms need membership. */
  async function isMember(room: string, userId: string): Promise<boolean> {
    return room === DEFAULT_ROOM || await store.isMember(room, userId);
  }

  async function requireMember(action: string, room: string, userId: string): Promise<void> {
    if (await isMember(room, userId)) return;
    if (!(await store.getRoom(room))) throw notFound(`${action}: room "${room}" does not exist`);
    throw permissionDenied(`${action}: ${userId} is not a member of room "${room}"; join it first`);
  }

  async function view(room: string, direct = false): Promise<RoomView> {
    return {
      id: room,
      direct,
      members: room === DEFAULT_ROOM ? [] : await store.members(room),
      lastSeq: await store.lastSeq(room),
    };
  }

  async function checkRoomCount(action: string, userId: string): Promise<void> {
    const count = (await store.roomsOf(userId)).length;
    if (count >= config.maxRoomsPerUser) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: ${userId} is in ${count} rooms, the limit is ${config.maxRoomsPerUser}; leave one first`,
      );
    }
  }

  /** Tells every gateway (this one included) that a member joined or left. */
  async function announceRoomEvent(event: RoomEvent): Promise<void> {
    try {
      await bus.publish(
        TOPICS.deliveries.name,
        event.room,
        encodeDelivery({ type: "room-event", event }),
      );
    } catch (err) {
      // The membership is stored; streams elsewhere pick it up when they reconnect.
      logger.warn("Room event not published", { room: event.room, error: describeError(err) });
      hub.roomEvent(event);
    }
  }

  async function replayMissed(
    stream: LocalStream,
    resume: OpenStreamRequest["resume"],
  ): Promise<void> {
    for (const position of resume) {
      const room = position.room.trim() || DEFAULT_ROOM;
      if (!stream.rooms.has(room)) continue;
      let after = Math.max(position.lastSeq, stream.lastSeq.get(room) ?? 0);
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
      const displayName = request.displayName.trim() || me.displayName || me.userId;
      const rooms = new Set([DEFAULT_ROOM, ...(await store.roomsOf(me.userId)).map((r) => r.id)]);
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
        backlog: request.resume.length > 0 ? [] : undefined,
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
        replayMissed(stream, request.resume).then(
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
      const bytes = encoder.encode(request.content).length;
      if (bytes === 0 || request.content.trim() === "") {
        throw invalidArgument(`${action}: the content is empty`);
      }
      if (bytes > config.maxMessageBytes) {
        throw invalidArgument(
          `${action}: content is ${bytes} bytes, the limit is ${config.maxMessageBytes}`,
        );
      }
      const messageId = request.messageId?.trim() || crypto.randomUUID();
      if (messageId.length > MAX_MESSAGE_ID) {
        throw invalidArgument(
          `${action}: the message id is ${messageId.length} characters, the limit is ${MAX_MESSAGE_ID}`,
        );
      }
      const room = request.room?.trim() ? checkRoomName(action, request.room) : DEFAULT_ROOM;
      await requireMember(action, room, me.userId);
      const allowed = limiter.take(me.userId);
      if (!allowed.ok) {
        throw new ChatError(
          "resource_exhausted",
          `${action}: the rate limit is ${config.rateLimitPerSecond} messages per second (bursts of ${config.rateLimitBurst}); retry in ${
            (allowed.retryAfterMs / 1000).toFixed(1)
          } s`,
        );
      }
      const message: ChatMessage = {
        id: messageId,
        userId: me.userId,
        displayName: request.displayName?.trim() || me.displayName || me.userId,
        content: request.content,
        timestamp: request.timestamp ?? new Date().toISOString(),
        room,
        seq: 0,
      };
      if (!bus.ready()) {
        throw unavailable(`${action}: Kafka is unavailable; try again shortly`);
      }
      // Keyed by room: one room stays on one partition, so its order is the same for every reader.
      const publishing = bus.publish(
        TOPICS.chatting.name,
        message.room,
        encodeChatMessage(message),
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), config.sendTimeoutMs);
      });
      try {
        const at = await Promise.race([publishing, timedOut]);
        if (at === "timeout") {
          // The record may still reach Kafka: the processor keeps one copy per (sender, id).
          publishing.catch(() => {});
          throw unavailable(
            `${action}: Kafka is degraded and did not acknowledge it within ${config.sendTimeoutMs} ms; ` +
              `it may still be stored, and retrying with message_id ${messageId} is safe (delivered once)`,
          );
        }
        logger.info(
          `Message sent to Kafka - Topic: ${at.topic}, Partition: ${at.partition}, Offset: ${at.offset}`,
        );
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
      if (id === "" || id === DEFAULT_ROOM) return everybody;
      if (!me) throw invalidArgument(`${action}: name yourself to see who is in room "${id}"`);
      await requireMember(action, id, me.userId);
      const members = new Set(await store.members(id));
      return everybody.filter((p) => members.has(p.userId));
    },

    signIn(username, password, displayName, caller = {}) {
      return auth.signIn(username, password, displayName, caller);
    },

    async createRoom(caller, name) {
      const action = "Cannot create room";
      const me = await identify(caller, undefined, action);
      const room = checkRoomName(action, name);
      if (room === DEFAULT_ROOM || room.startsWith(DIRECT_PREFIX)) {
        throw new ChatError("already_exists", `${action}: "${room}" is a reserved name`);
      }
      await checkRoomCount(action, me.userId);
      const { created } = await store.createRoom({
        id: room,
        direct: false,
        createdBy: me.userId,
        createdAt: new Date().toISOString(),
      });
      if (!created) {
        throw new ChatError(
          "already_exists",
          `${action}: "${room}" already exists; join it instead`,
        );
      }
      await store.addMember(room, me.userId);
      await announceRoomEvent({
        room,
        userId: me.userId,
        displayName: me.displayName,
        joined: true,
      });
      logger.info("Room created", { room, by: me.userId });
      return view(room);
    },

    async joinRoom(caller, name) {
      const action = "Cannot join room";
      const me = await identify(caller, undefined, action);
      const room = checkRoomName(action, name);
      if (room === DEFAULT_ROOM) return view(room);
      const found = await store.getRoom(room);
      if (!found) throw notFound(`${action}: room "${room}" does not exist; create it first`);
      if (found.direct && !(await store.isMember(room, me.userId))) {
        throw permissionDenied(`${action}: "${room}" is a direct conversation of two other people`);
      }
      if (!(await store.isMember(room, me.userId))) {
        await checkRoomCount(action, me.userId);
        await store.addMember(room, me.userId);
        await announceRoomEvent({
          room,
          userId: me.userId,
          displayName: me.displayName,
          joined: true,
        });
      }
      return view(room, found.direct);
    },

    async leaveRoom(caller, name) {
      const action = "Cannot leave room";
      const me = await identify(caller, undefined, action);
      const room = checkRoomName(action, name);
      if (room === DEFAULT_ROOM) {
        throw new ChatError("failed_precondition", `${action}: everybody is in "${DEFAULT_ROOM}"`);
      }
      if (!(await store.removeMember(room, me.userId))) {
        await requireMember(action, room, me.userId);
      }
      await announceRoomEvent({
        room,
        userId: me.userId,
        displayName: me.displayName,
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

    async openDirect(caller, other) {
      const action = "Cannot open direct messages";
      const me = await identify(caller, undefined, action);
      const them = checkUserId(action, other);
      if (them === me.userId) throw invalidArgument(`${action}: that is yourself`);
      if (auth.mode === "on" && !(await store.getAccount(them))) {
        throw notFound(`${action}: there is no user "${them}"`);
      }
      if (them.includes(":")) throw invalidArgument(`${action}: a user id may not hold ":"`);
      const room = directRoomId(me.userId, them);
      await store.createRoom({
        id: room,
        direct: true,
        createdBy: me.userId,
        createdAt: new Date().toISOString(),
      });
      for (const [userId, displayName] of [[me.userId, me.displayName], [them, them]] as const) {
        if (await store.addMember(room, userId)) {
          await announceRoomEvent({ room, userId, displayName, joined: true });
        }
      }
      return view(room, true);
    },

    async history(caller, request) {
      const action = "Cannot read history";
      const me = await identify(caller, undefined, action);
      const room = request.room.trim() ? checkRoomName(action, request.room) : DEFAULT_ROOM;
      await requireMember(action, room, me.userId);
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
