/**
 * The gRPC wire: loads proto/chat.proto once and converts its messages to and
 * from domain types. Every transport (native gRPC, gRPC-Web) goes through here.
 */

import * as protoLoader from "@grpc/proto-loader";
import type { ChatMessage, Presence, RoomEvent } from "../core/types.ts";

const PROTO_DIR = new URL("../proto/", import.meta.url).pathname;

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export const packageDefinition = protoLoader.loadSync("chat.proto", LOADER_OPTIONS);

/** The standard health service, for reflection only: grpc-health-check serves it. */
export const healthPackageDefinition = protoLoader.loadSync(
  "grpc/health/v1/health.proto",
  LOADER_OPTIONS,
);

export const SERVICE_NAME = "chat.Broadcast";

export type MethodDefinition = protoLoader.MethodDefinition<object, object>;

/** The `chat.Broadcast` methods as loaded, keyed by method name. */
export const broadcastMethods = packageDefinition[SERVICE_NAME] as unknown as Record<
  string,
  MethodDefinition
>;

// Wire shapes as proto-loader gives them (camelCase, defaults filled in).
export interface WireTimestamp {
  seconds: number;
  nanos: number;
}
export interface WireUser {
  id: string;
  displayName: string;
}
export interface WirePresence {
  user: WireUser | null;
  online: boolean;
}
export interface WireRoomEvent {
  room: string;
  user: WireUser | null;
  joined: boolean;
}
export interface WireMessage {
  id: string;
  content: string;
  timestamp: WireTimestamp | null;
  messageId: string;
  room: string;
  seq: number;
  displayName: string;
  presence: WirePresence | null;
  roomEvent: WireRoomEvent | null;
}
export interface WireRoomPosition {
  room: string;
  lastSeq: number;
}
export interface WireConnect {
  user: WireUser | null;
  active: boolean;
  presenceEvents: boolean;
  resume: WireRoomPosition[];
}
export interface WireRoom {
  id: string;
  direct: boolean;
  members: string[];
  lastSeq: number;
}

export function timestampToIso(ts: WireTimestamp | null | undefined): string | undefined {
  if (!ts || (!ts.seconds && !ts.nanos)) return undefined;
  return new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6)).toISOString();
}

export function isoToTimestamp(iso: string): WireTimestamp {
  const ms = Date.parse(iso);
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1e6 };
}

export function messageToWire(m: ChatMessage): WireMessage {
  return {
    id: m.userId,
    content: m.content,
    timestamp: isoToTimestamp(m.timestamp),
    messageId: m.id,
    room: m.room,
    seq: m.seq,
    displayName: m.displayName,
    presence: null,
    roomEvent: null,
  };
}

function eventMessage(userId: string, displayName: string): WireMessage {
  return {
    id: userId,
    content: "",
    timestamp: isoToTimestamp(new Date().toISOString()),
    messageId: "",
    room: "",
    seq: 0,
    displayName,
    presence: null,
    roomEvent: null,
  };
}

export function roomEventToWire(e: RoomEvent): WireMessage {
  return {
    ...eventMessage(e.userId, e.displayName),
    room: e.room,
    roomEvent: {
      room: e.room,
      user: { id: e.userId, displayName: e.displayName },
      joined: e.joined,
    },
  };
}

export function presenceToWire(p: Presence): WireMessage {
  return {
    ...eventMessage(p.userId, p.displayName),
    timestamp: isoToTimestamp(p.timestamp || new Date().toISOString()),
    presence: { user: { id: p.userId, displayName: p.displayName }, online: p.online },
  };
}

const streamMethod = broadcastMethods.CreateStream!;

/** Encodes a stream message once; the same bytes then go to every stream. */
export function encodeStreamMessage(message: WireMessage): Uint8Array {
  return streamMethod.responseSerialize(message);
}

export function decodeStreamMessage(bytes: Uint8Array): WireMessage {
  return streamMethod.responseDeserialize(bytes as Buffer) as WireMessage;
}
