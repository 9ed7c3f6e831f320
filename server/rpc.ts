/**
 * The `chat.Broadcast` methods as the transports see them: each turns a wire
 * request into a chat-service call and the result back into a wire response.
 * The native gRPC server and the gRPC-Web bridge both dispatch through here.
 */

import type { Buffer } from "node:buffer";
import { describeError, invalidArgument } from "../core/errors.ts";
import type {
  Caller,
  ChatService,
  OpenStreamRequest,
  RoomView,
  SendRequest,
} from "./chat_service.ts";
import {
  isoToTimestamp,
  messageToWire,
  type MethodDefinition,
  type WireConnect,
  type WireMessage,
  type WireRoom,
} from "./proto.ts";

/**
 * Decodes a request's bytes for `method`, or throws INVALID_ARGUMENT naming the message type.
 * Decodes from a plain Uint8Array even when given a Buffer: protobufjs then decodes strictly (its
 * Buffer reader silently cuts a string that runs past the end of the message).
 */
export function readRequest(method: MethodDefinition, bytes: Uint8Array): object {
  const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return method.requestDeserialize(plain as Buffer);
  } catch (err) {
    const type = (method.requestType.type as { name?: string }).name ?? "request";
    throw invalidArgument(
      `Cannot read request: the message is not a valid chat.${type} (${describeError(err)})`,
    );
  }
}

/**
 * Converts a wire `Connect` into the service's request, or says what is wrong with it. The
 * resume list is passed on as decoded (its positions' `lastSeq` are numbers already), with no
 * work per entry: the service refuses a list longer than its limit first.
 */
export function parseConnect(request: WireConnect): OpenStreamRequest {
  if (!request.user) throw invalidArgument("Cannot open stream: the request has no user");
  return {
    userId: request.user.id,
    displayName: request.user.displayName,
    presenceEvents: request.presenceEvents,
    resume: request.resume ?? [],
  };
}

/**
 * Converts a wire `Message` into a send request. Nothing is checked here, before the caller is
 * known: the service checks the fields (the timestamp too) after authentication.
 */
export function parseMessage(request: WireMessage): SendRequest {
  return {
    userId: request.id,
    content: request.content,
    displayName: request.displayName,
    timestamp: request.timestamp,
    messageId: request.messageId,
    room: request.room,
  };
}

function roomToWire(room: RoomView): WireRoom {
  return { id: room.id, direct: room.direct, members: room.members, lastSeq: room.lastSeq };
}

// Requests as proto-loader decodes them (defaults filled in).
interface RoomRequest {
  room: string;
}

type Unary = (service: ChatService, caller: Caller, request: never) => Promise<object>;

/** The unary methods, by name; `CreateStream` is the one streaming method. */
export const UNARY_METHODS: Record<string, Unary> = {
  async BroadcastMessage(service, caller, request: WireMessage) {
    await service.send(caller, parseMessage(request));
    return {};
  },
  async ListOnline(service, caller, request: RoomRequest) {
    const online = await service.online(caller, request.room ?? "");
    return { users: online.map((p) => ({ id: p.userId, displayName: p.displayName })) };
  },
  async SignIn(
    service,
    caller,
    request: { username: string; password: string; displayName: string },
  ) {
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
      expiresAt: isoToTimestamp(result.expiresAt.toISOString()),
    };
  },
  async CreateRoom(service, caller, request: RoomRequest) {
    return roomToWire(await service.createRoom(caller, request.room));
  },
  async JoinRoom(service, caller, request: RoomRequest) {
    return roomToWire(await service.joinRoom(caller, request.room));
  },
  async LeaveRoom(service, caller, request: RoomRequest) {
    await service.leaveRoom(caller, request.room);
    return {};
  },
  async ListRooms(service, caller, request: { all: boolean }) {
    return { rooms: (await service.listRooms(caller, request.all)).map(roomToWire) };
  },
  async OpenDirect(service, caller, request: { userId: string }) {
    return roomToWire(await service.openDirect(caller, request.userId));
  },
  async History(
    service,
    caller,
    request: { room: string; beforeSeq: number; limit: number },
  ) {
    const page = await service.history(caller, {
      room: request.room,
      beforeSeq: Number(request.beforeSeq),
      limit: request.limit,
    });
    return { messages: page.messages.map(messageToWire), more: page.more };
  },
};

/** Calls a unary method by name with a decoded request; undefined when there is no such method. */
export function unaryMethod(
  name: string,
): ((service: ChatService, caller: Caller, request: object) => Promise<object>) | undefined {
  return Object.hasOwn(UNARY_METHODS, name)
    ? UNARY_METHODS[name] as (s: ChatService, c: Caller, r: object) => Promise<object>
    : undefined;
}
