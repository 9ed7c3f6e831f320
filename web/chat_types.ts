/**
 * The `chat` protobuf types and the `chat.Broadcast` client for browsers and
 * tests, written by hand with @protobuf-ts/runtime's reflection API instead of
 * generated: the same field numbers and types as proto/chat.proto (a test in
 * tests/grpc_web_test.ts checks both ways against the server's proto-loader
 * encoding). When the proto gains a field, add it here too.
 *
 * Use with `GrpcWebFetchTransport` from @protobuf-ts/grpcweb-transport:
 *
 *   const client = new BroadcastClient(new GrpcWebFetchTransport({ baseUrl: location.origin }));
 *   const stream = client.createStream(Connect.create({ user: { id: "ann" } }));
 *   for await (const m of stream.responses) if (!isKeepAlive(m)) show(m);
 *
 * 64-bit fields (Timestamp.seconds, Message.seq) are JavaScript numbers.
 */

import { LongType, MessageType, RepeatType, ScalarType } from "@protobuf-ts/runtime";
import {
  type RpcOptions,
  type RpcTransport,
  type ServerStreamingCall,
  ServiceType,
  stackIntercept,
  type UnaryCall,
} from "@protobuf-ts/runtime-rpc";

/** google.protobuf.Timestamp */
export interface Timestamp {
  seconds: number;
  nanos: number;
}
export const Timestamp = new MessageType<Timestamp>("google.protobuf.Timestamp", [
  { no: 1, name: "seconds", kind: "scalar", T: ScalarType.INT64, L: LongType.NUMBER },
  { no: 2, name: "nanos", kind: "scalar", T: ScalarType.INT32 },
]);

export function timestampToDate(ts: Timestamp): Date {
  return new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6));
}

export function dateToTimestamp(date: Date): Timestamp {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1e6 };
}

/** chat.User */
export interface User {
  id: string;
  displayName: string;
}
export const User = new MessageType<User>("chat.User", [
  { no: 1, name: "id", kind: "scalar", T: ScalarType.STRING },
  { no: 2, name: "display_name", kind: "scalar", T: ScalarType.STRING },
]);

/** chat.PresenceEvent */
export interface PresenceEvent {
  user?: User;
  online: boolean;
}
export const PresenceEvent = new MessageType<PresenceEvent>("chat.PresenceEvent", [
  { no: 1, name: "user", kind: "message", T: () => User },
  { no: 2, name: "online", kind: "scalar", T: ScalarType.BOOL },
]);

/** chat.Message: `id` is the sender's user id (the classic contract), `messageId` the message's. */
export interface Message {
  id: string;
  content: string;
  timestamp?: Timestamp;
  messageId: string;
  room: string;
  seq: number;
  displayName: string;
  presence?: PresenceEvent;
}
export const Message = new MessageType<Message>("chat.Message", [
  { no: 1, name: "id", kind: "scalar", T: ScalarType.STRING },
  { no: 2, name: "content", kind: "scalar", T: ScalarType.STRING },
  { no: 3, name: "timestamp", kind: "message", T: () => Timestamp },
  { no: 4, name: "message_id", kind: "scalar", T: ScalarType.STRING },
  { no: 5, name: "room", kind: "scalar", T: ScalarType.STRING },
  { no: 6, name: "seq", kind: "scalar", T: ScalarType.UINT64, L: LongType.NUMBER },
  { no: 7, name: "display_name", kind: "scalar", T: ScalarType.STRING },
  { no: 8, name: "presence", kind: "message", T: () => PresenceEvent },
]);

/**
 * Whether a streamed message is a keep-alive (an empty `chat.Message`), sent
 * only to a stream opened with the request header `x-chat-keepalive: 1`.
 */
export function isKeepAlive(m: Message): boolean {
  return m.id === "" && m.content === "" && m.messageId === "" && !m.presence && !m.timestamp;
}

/** chat.Connect */
export interface Connect {
  user?: User;
  active: boolean;
  presenceEvents: boolean;
}
export const Connect = new MessageType<Connect>("chat.Connect", [
  { no: 1, name: "user", kind: "message", T: () => User },
  { no: 2, name: "active", kind: "scalar", T: ScalarType.BOOL },
  { no: 3, name: "presence_events", kind: "scalar", T: ScalarType.BOOL },
]);

/** chat.Close */
export type Close = Record<never, never>;
export const Close = new MessageType<Close>("chat.Close", []);

/** chat.OnlineRequest */
export type OnlineRequest = Record<never, never>;
export const OnlineRequest = new MessageType<OnlineRequest>("chat.OnlineRequest", []);

/** chat.OnlineUsers */
export interface OnlineUsers {
  users: User[];
}
export const OnlineUsers = new MessageType<OnlineUsers>("chat.OnlineUsers", [
  { no: 1, name: "users", kind: "message", repeat: RepeatType.UNPACKED, T: () => User },
]);

/** chat.Broadcast */
export const Broadcast = new ServiceType("chat.Broadcast", [
  { name: "CreateStream", serverStreaming: true, options: {}, I: Connect, O: Message },
  { name: "BroadcastMessage", options: {}, I: Message, O: Close },
  { name: "ListOnline", options: {}, I: OnlineRequest, O: OnlineUsers },
]);

const [createStream, broadcastMessage, listOnline] = Broadcast.methods;

/** A `chat.Broadcast` client over any protobuf-ts transport (gRPC-Web in the browser). */
export class BroadcastClient {
  readonly #transport: RpcTransport;

  constructor(transport: RpcTransport) {
    this.#transport = transport;
  }

  createStream(input: Connect, options?: RpcOptions): ServerStreamingCall<Connect, Message> {
    const opt = this.#transport.mergeOptions(options);
    return stackIntercept("serverStreaming", this.#transport, createStream!, opt, input);
  }

  broadcastMessage(input: Message, options?: RpcOptions): UnaryCall<Message, Close> {
    const opt = this.#transport.mergeOptions(options);
    return stackIntercept("unary", this.#transport, broadcastMessage!, opt, input);
  }

  listOnline(
    input: OnlineRequest = {},
    options?: RpcOptions,
  ): UnaryCall<OnlineRequest, OnlineUsers> {
    const opt = this.#transport.mergeOptions(options);
    return stackIntercept("unary", this.#transport, listOnline!, opt, input);
  }
}
