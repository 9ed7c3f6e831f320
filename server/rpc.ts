/**
 * The `chat.Broadcast` methods as the transports see them: each turns a generated request
 * message into a chat-service call and its result into the generated response. The native gRPC
 * server (server/grpc_server.ts) and the browser API (server/web_api.ts) both dispatch through
 * here, so checks, authentication and errors are written once.
 */

import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ChatError, invalidArgument } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { Broadcast, Connect, Message } from "../protocol/gen/chat_pb.ts";
import type { ChatService } from "./chat_service.ts";
import type { Caller, OpenStreamRequest, SendRequest } from "./chat_types.ts";
import { messageToWire, roomEventToWire, roomToWire, seqFromWire } from "./wire.ts";

type Methods = typeof Broadcast.method;
type UnaryName = {
  [K in keyof Methods]: Methods[K]["methodKind"] extends "unary" ? K : never;
}[keyof Methods];

type Unary<K extends UnaryName> = (
  service: ChatService,
  caller: Caller,
  request: MessageShape<Methods[K]["input"]>,
) => Promise<MessageInitShape<Methods[K]["output"]>>;

/**
 * Converts a `Connect` into the service's request, or says what is wrong with it. A resume list
 * longer than `maxResumeRooms` is refused before any of its entries is read, so a hostile list
 * costs no more than its decoding; each position is range-checked, the service does the rest.
 */
export function parseConnect(request: Connect, maxResumeRooms: number): OpenStreamRequest {
  const action = "Cannot open stream";
  if (!request.user) throw invalidArgument(`${action}: the request has no user`);
  if (request.resume.length > maxResumeRooms) {
    throw invalidArgument(
      `${action}: resume lists ${request.resume.length} rooms, the limit is ${maxResumeRooms}`,
    );
  }
  return {
    userId: request.user.id,
    displayName: request.user.displayName,
    presenceEvents: request.presenceEvents,
    resume: request.resume.map((p) => ({
      room: p.room,
      lastSeq: seqFromWire(action, `the resume position of room "${p.room}"`, p.lastSeq),
    })),
  };
}

/**
 * Converts a `Message` into a send request. Nothing is checked here, before the caller is known:
 * the service checks the fields (the timestamp too) after authentication. A timestamp's seconds
 * beyond a number's exact range stay beyond the years the service accepts.
 */
export function parseMessage(request: Message): SendRequest {
  const ts = request.timestamp;
  return {
    userId: request.id,
    content: request.content,
    displayName: request.displayName,
    timestamp: ts ? { seconds: Number(ts.seconds), nanos: ts.nanos } : null,
    messageId: request.messageId,
    room: request.room,
  };
}

/** The unary methods, by their generated local name; `createStream` is the one streaming method. */
const UNARY: { [K in UnaryName]: Unary<K> } = {
  async broadcastMessage(service, caller, request) {
    await service.send(caller, parseMessage(request));
    return {};
  },
  async listOnline(service, caller, request) {
    const online = await service.online(caller, request.room);
    return { users: online.map((p) => ({ id: p.userId, displayName: p.displayName })) };
  },
  async signIn(service, caller, request) {
    const result = await service.signIn(
      request.username,
      request.password,
      request.displayName,
      caller,
    );
    return {
      token: result.token,
      user: { id: result.identity.userId, displayName: result.identity.displayName },
      created: result.created,
      expiresAt: timestampFromDate(result.expiresAt),
    };
  },
  async createRoom(service, caller, request) {
    return roomToWire(await service.createRoom(caller, request.room));
  },
  async joinRoom(service, caller, request) {
    return roomToWire(await service.joinRoom(caller, request.room));
  },
  async leaveRoom(service, caller, request) {
    await service.leaveRoom(caller, request.room);
    return {};
  },
  async listRooms(service, caller, request) {
    const listing = {
      all: request.all,
      query: request.query,
      limit: request.limit,
      invitations: request.invitations,
    };
    return { rooms: (await service.listRooms(caller, listing)).map(roomToWire) };
  },
  async openDirect(service, caller, request) {
    return roomToWire(await service.openDirect(caller, request.userId));
  },
  async history(service, caller, request) {
    const page = await service.history(caller, {
      room: request.room,
      beforeSeq: seqFromWire("Cannot read history", "before_seq", request.beforeSeq),
      limit: request.limit,
      aroundSeq: seqFromWire("Cannot read history", "around_seq", request.aroundSeq),
    });
    return {
      messages: page.messages.map(messageToWire),
      more: page.more,
      events: page.events.map(roomEventToWire),
    };
  },
  async editMessage(service, caller, request) {
    return messageToWire(
      await service.editMessage(caller, {
        room: request.room,
        seq: seqFromWire("Cannot edit message", "seq", request.seq),
        content: request.content,
      }),
    );
  },
  async deleteMessage(service, caller, request) {
    await service.deleteMessage(caller, {
      room: request.room,
      seq: seqFromWire("Cannot delete message", "seq", request.seq),
    });
    return {};
  },
  async react(service, caller, request) {
    await service.react(caller, {
      room: request.room,
      seq: seqFromWire("Cannot react", "seq", request.seq),
      emoji: request.emoji,
    });
    return {};
  },
  async setTyping(service, caller, request) {
    await service.setTyping(caller, request.room, request.typing);
    return {};
  },
  async setTopic(service, caller, request) {
    return roomToWire(await service.setTopic(caller, request.room, request.topic));
  },
  async setRoomAccess(service, caller, request) {
    return roomToWire(await service.setRoomAccess(caller, request.room, request.inviteOnly));
  },
  async invite(service, caller, request) {
    await service.invite(caller, { room: request.room, userId: request.userId });
    return {};
  },
  async markRead(service, caller, request) {
    const seq = seqFromWire("Cannot mark read", "seq", request.seq);
    await service.markRead(caller, request.room, seq);
    return {};
  },
  async search(service, caller, request) {
    const found = await service.search(caller, {
      query: request.query,
      room: request.room,
      limit: request.limit,
    });
    return { messages: found.map(messageToWire) };
  },
  async seenBy(service, caller, request) {
    const seq = seqFromWire("Cannot tell who saw the message", "seq", request.seq);
    const seen = await service.seenBy(caller, request.room, seq);
    return { users: seen.userIds, count: seen.count };
  },
  async block(service, caller, request) {
    await service.setBlocked(caller, request.userId, request.blocked);
    return {};
  },
  async listBlocked(service, caller) {
    return { users: await service.listBlocked(caller) };
  },
  async setRole(service, caller, request) {
    return roomToWire(
      await service.setRole(caller, {
        room: request.room,
        userId: request.userId,
        role: request.role,
      }),
    );
  },
  async removeMember(service, caller, request) {
    await service.removeMember(caller, { room: request.room, userId: request.userId });
    return {};
  },
  async muteMember(service, caller, request) {
    await service.muteMember(caller, {
      room: request.room,
      userId: request.userId,
      seconds: request.seconds,
    });
    return {};
  },
};

/** Calls the unary `method` with its decoded request; the response is a message of its output type. */
export async function callUnary<I extends DescMessage, O extends DescMessage>(
  service: ChatService,
  caller: Caller,
  method: DescMethodUnary<I, O>,
  request: MessageShape<I>,
): Promise<MessageShape<O>> {
  const handler = UNARY[method.localName as UnaryName] as unknown as (
    service: ChatService,
    caller: Caller,
    request: MessageShape<I>,
  ) => Promise<MessageInitShape<O>>;
  return create(method.output, await handler(service, caller, request));
}

/** Who calls, from the `authorization` metadata or header (`Bearer <token>`). */
export function callerOf(
  authorization: string | null | undefined,
  address: string | undefined,
  signal: AbortSignal,
): Caller {
  return { ...(authorization ? { authorization } : {}), address, signal };
}

/**
 * Logs a failed call: a `ChatError` is the client's answer (debug), anything else the server's
 * fault (error), which the client sees only as INTERNAL.
 */
export function logFailure(logger: Logger, method: string, err: unknown): void {
  if (err instanceof ChatError) logger.debug("Call refused", { method, error: err.message });
  else logger.error(`${method} failed`, { error: String((err as Error)?.stack ?? err) });
}
