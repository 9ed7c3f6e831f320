/**
 * Messages in the chat service: opening a stream (and replaying, per room, what the client missed
 * before it goes live), sending a message to its room's log, and reading a room's history.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { Config } from "../core/config.ts";
import { ChatError, describeError, invalidArgument, unavailable } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ChatMessage } from "../core/types.ts";
import { DEFAULT_ROOM, nameKey } from "../protocol/names.ts";
import type { Bus } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import type { Announcer } from "./announcer.ts";
import type { Callers } from "./chat_callers.ts";
import {
  checkContent,
  checkDisplayName,
  checkMessageId,
  sendingRate,
  stamp,
  takeOrRefuse,
} from "./chat_checks.ts";
import type { Rooms } from "./chat_rooms.ts";
import type {
  Caller,
  HistoryRequest,
  OpenStreamRequest,
  SendRequest,
  StreamHandle,
} from "./chat_types.ts";
import type { Hub, LocalStream, StreamSink } from "./hub.ts";
import type { Mentions } from "./mentions.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import type { RoomEventLog } from "./room_events.ts";
import type { RoomRoles } from "./room_roles.ts";
import type { StoredRoomEvent } from "../store/store.ts";

export interface MessagesOptions {
  bus: Pick<Bus, "append" | "ready" | "stored">;
  hub: Hub;
  store: Store;
  limiter: RateLimiter;
  announcer: Announcer;
  callers: Callers;
  rooms: Rooms;
  mentions: Mentions;
  roles: RoomRoles;
  events: RoomEventLog;
  logger: Logger;
  config: Pick<
    Config,
    | "serverId"
    | "maxMessageBytes"
    | "maxStreamsPerUser"
    | "rateLimitPerSecond"
    | "rateLimitBurst"
    | "sendTimeoutMs"
    | "maxResumeRooms"
    | "maxClockSkewMs"
  >;
  /** The server's clock, in milliseconds since the epoch. */
  now: () => number;
}

const HISTORY_DEFAULT = 50;
const HISTORY_MAX = 200;
const REPLAY_PAGE = 500;

export class Messages {
  readonly #options: MessagesOptions;

  constructor(options: MessagesOptions) {
    this.#options = options;
  }

  async openStream(
    caller: Caller,
    request: OpenStreamRequest,
    sink: StreamSink,
  ): Promise<StreamHandle> {
    const { hub, store, announcer, callers, logger, config } = this.#options;
    const action = "Cannot open stream";
    const me = await callers.identify(caller, request.userId, action);
    const displayName = callers.shownName(
      caller,
      me,
      checkDisplayName(action, request.displayName),
    );
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
    // With every block told while reading: nothing is awaited from there until `hub.add`.
    const blocks = hub.openingBlocks(me.userId);
    const [mine, blocked] = await Promise.all([
      store.roomsOf(me.userId),
      store.blockedBy(me.userId),
    ]).then(([mine, read]) => [mine, blocks(read)] as const, (err) => {
      blocks();
      throw err;
    });
    const rooms = new Set([DEFAULT_ROOM, ...mine.map((r) => r.id)]);
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
      userId: me.userId,
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
      // Changed live from here on by the hub (chat_blocks.ts delivers every block).
      ...(blocked.size > 0 ? { blocked } : {}),
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
      this.#replayMissed(stream, positions).then(
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
  }

  async send(caller: Caller, request: SendRequest): Promise<ChatMessage> {
    const { bus, limiter, callers, rooms, config, now } = this.#options;
    const action = "Cannot send message";
    const me = await callers.identify(caller, request.userId ?? "", action);
    // Everything that could refuse this message later (the store, the processor) is checked
    // here, before the answer: OK means it will be delivered.
    const timestamp = stamp(action, request.timestamp, now(), config.maxClockSkewMs);
    checkContent(action, request.content, config.maxMessageBytes);
    const messageId = checkMessageId(action, request.messageId);
    checkDisplayName(action, request.displayName);
    const room = request.room?.trim()
      ? await rooms.memberRoom(action, request.room, me.userId)
      : DEFAULT_ROOM;
    await rooms.requireBothInDirect(action, room, me.userId);
    await this.#options.roles.refuseMuted(action, room, me.userId);
    takeOrRefuse(action, limiter, me.userId, sendingRate(config));
    const mentions = await this.#options.mentions.find(room, request.content);
    const message: ChatMessage = {
      id: messageId,
      userId: me.userId,
      // Never the request's: the account's name, or (AUTH=off) the one the sender's stream gave.
      displayName: callers.nameOf(caller, me),
      content: request.content,
      timestamp,
      room,
      seq: 0,
      ...(mentions.length > 0 ? { mentions } : {}),
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
  }

  async history(
    caller: Caller,
    request: HistoryRequest,
  ): Promise<{ messages: ChatMessage[]; more: boolean; events: StoredRoomEvent[] }> {
    const { store, callers, rooms, events } = this.#options;
    const action = "Cannot read history";
    const me = await callers.identify(caller, undefined, action);
    const room = request.room.trim()
      ? await rooms.memberRoom(action, request.room, me.userId)
      : DEFAULT_ROOM;
    if (request.limit > HISTORY_MAX) {
      throw invalidArgument(`${action}: limit is ${request.limit}, the most is ${HISTORY_MAX}`);
    }
    if ((request.aroundSeq ?? 0) > 0 && request.beforeSeq > 0) {
      throw invalidArgument(
        `${action}: before_seq and around_seq are both set; a page is either before a message or around it`,
      );
    }
    const limit = request.limit || HISTORY_DEFAULT;
    const around = request.aroundSeq ?? 0;
    let beforeSeq = request.beforeSeq > 0 ? request.beforeSeq : undefined;
    // The newest page must hold what this gateway's streams were shown: a session that loads it
    // and then goes live would otherwise never see a message shown before the processors stored
    // it. Older pages and pages around a shown message are behind that already.
    if (beforeSeq === undefined && around === 0) await this.#options.bus.stored(room);
    if (around > 0) {
      // Around a message: the page ends half a limit of messages after it (newer ones are read
      // by scrolling). Positions have gaps: where that is, the store says.
      const newer = await store.since(room, around, Math.floor(limit / 2));
      beforeSeq = Math.min((newer.at(-1)?.seq ?? around) + 1, Number.MAX_SAFE_INTEGER);
    }
    const page = await store.history({ room, beforeSeq, limit: limit + 1, reader: me.userId });
    const messages = page.slice(0, limit);
    const more = page.length > limit;
    return { messages, more, events: await events.forPage(room, messages, more, beforeSeq) };
  }

  /** Replays what the stream missed, room by room, letting other work run between rooms. */
  async #replayMissed(stream: LocalStream, positions: Map<string, number>): Promise<void> {
    const { hub, store, bus } = this.#options;
    for (const [room, lastSeq] of positions) {
      // Yields to the event loop, so that a long replay lets other calls (and health checks) run.
      await sleep(0);
      if (!stream.rooms.has(room)) continue; // left meanwhile
      // What this gateway showed before the stream was added is read from the store, after it
      // comes live (the stream's backlog): the store must hold all of the first part.
      await bus.stored(room);
      let after = Math.max(lastSeq, stream.lastSeq.get(room) ?? 0);
      stream.lastSeq.set(room, after);
      while (true) {
        const page = await store.since(room, after, REPLAY_PAGE);
        if (!(await hub.replay(stream, page))) return;
        if (page.length < REPLAY_PAGE || !stream.rooms.has(room)) break;
        after = page.at(-1)!.seq;
      }
    }
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
