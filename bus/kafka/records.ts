/**
 * The JSON records on the bus, and their one conversion to and from domain types.
 *
 * The `chatting` and `user-connections` payloads are the original design's
 * contract: their field names never change; new fields are only added.
 */

import { MAX_MENTIONS } from "../../protocol/limits.ts";
import { DEFAULT_ROOM, USER_ID_MAX_LENGTH } from "../../protocol/names.ts";
import type {
  ChatMessage,
  ConnectionEvent,
  Delivery,
  Heartbeat,
  Presence,
  RoomAction,
  RoomEvent,
} from "../../core/types.ts";
import { ROOM_ACTIONS } from "../../core/types.ts";

export class RecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RecordError";
  }
}

type Json = Record<string, unknown>;

function parseObject(kind: string, text: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RecordError(`Cannot read ${kind} record: not JSON: ${text.slice(0, 80)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RecordError(`Cannot read ${kind} record: expected a JSON object`);
  }
  return value as Json;
}

function str(kind: string, obj: Json, field: string, fallback?: string): string {
  const v = obj[field];
  if (typeof v === "string") return v;
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  throw new RecordError(`Cannot read ${kind} record: "${field}" must be a string`);
}

function bool(kind: string, obj: Json, field: string): boolean {
  const v = obj[field];
  if (typeof v === "boolean") return v;
  throw new RecordError(`Cannot read ${kind} record: "${field}" must be true or false`);
}

/** An id: a string with something in it (an empty id would merge unrelated records). */
function nonEmpty(kind: string, obj: Json, field: string): string {
  const v = str(kind, obj, field);
  if (v.trim() === "") throw new RecordError(`Cannot read ${kind} record: "${field}" is empty`);
  return v;
}

/** An RFC 3339 time, as gateways write them. */
function time(kind: string, obj: Json, field: string): string {
  const v = str(kind, obj, field);
  if (!Number.isFinite(Date.parse(v))) {
    throw new RecordError(
      `Cannot read ${kind} record: "${field}" is not a time: ${v.slice(0, 40)}`,
    );
  }
  return v;
}

/** A message's place in its room, from 1. */
function position(kind: string, obj: Json, field: string): number {
  const v = num(kind, obj, field, 0);
  if (v < 1) throw new RecordError(`Cannot read ${kind} record: "${field}" must be at least 1`);
  return v;
}

function num(kind: string, obj: Json, field: string, fallback: number): number {
  const v = obj[field];
  if (v === undefined || v === null) return fallback;
  // Counts and sequence numbers: 1.5 or 1e300 can only come from a broken producer.
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  throw new RecordError(`Cannot read ${kind} record: "${field}" must be a whole number`);
}

/**
 * `chatting`: {"id","content","timestamp","user_id"} plus the additive "room", "display_name",
 * "seq" and "mentions" (the ids the gateway found, only when there are some).
 */
export function encodeChatMessage(m: ChatMessage): string {
  return JSON.stringify({
    id: m.id,
    content: m.content,
    timestamp: m.timestamp,
    user_id: m.userId,
    room: m.room,
    display_name: m.displayName,
    ...(m.seq > 0 ? { seq: m.seq } : {}),
    ...(m.mentions?.length ? { mentions: m.mentions } : {}),
  });
}

export function decodeChatMessage(text: string): ChatMessage {
  const o = parseObject("chat message", text);
  const k = "chat message";
  const userId = nonEmpty(k, o, "user_id");
  return {
    id: nonEmpty(k, o, "id"),
    content: str(k, o, "content"),
    timestamp: str(k, o, "timestamp"),
    userId,
    room: str(k, o, "room", DEFAULT_ROOM) || DEFAULT_ROOM,
    displayName: str(k, o, "display_name", userId),
    seq: num(k, o, "seq", 0),
    ...mentionsOf(k, o),
  };
}

/** The optional "mentions": at most MAX_MENTIONS user ids, as a gateway writes them. */
function mentionsOf(kind: string, o: Json): { mentions?: string[] } {
  const v = o.mentions;
  if (v === undefined || v === null) return {};
  if (
    !Array.isArray(v) || v.length > MAX_MENTIONS ||
    !v.every((id) => typeof id === "string" && id !== "" && id.length <= USER_ID_MAX_LENGTH)
  ) {
    throw new RecordError(
      `Cannot read ${kind} record: "mentions" must be at most ${MAX_MENTIONS} user ids`,
    );
  }
  return v.length > 0 ? { mentions: v as string[] } : {};
}

/** `user-connections`: {"user_id","server_id","connected","timestamp"} plus "display_name", "stream_id". */
export function encodeConnectionEvent(e: ConnectionEvent): string {
  return JSON.stringify({
    user_id: e.userId,
    server_id: e.serverId,
    connected: e.connected,
    timestamp: e.timestamp,
    display_name: e.displayName,
    stream_id: e.streamId,
  });
}

export function decodeConnectionEvent(text: string): ConnectionEvent {
  const o = parseObject("connection", text);
  const k = "connection";
  const userId = nonEmpty(k, o, "user_id");
  const serverId = nonEmpty(k, o, "server_id");
  return {
    userId,
    serverId,
    connected: bool(k, o, "connected"),
    timestamp: str(k, o, "timestamp"),
    displayName: str(k, o, "display_name", userId),
    // Events from producers that predate stream ids count one stream per user and gateway.
    streamId: str(k, o, "stream_id", `${serverId}/${userId}`),
  };
}

export function encodeHeartbeat(h: Heartbeat): string {
  return JSON.stringify({
    server_id: h.serverId,
    timestamp: h.timestamp,
    streams: h.streams,
    ...(h.role === "processor" ? { role: "processor" } : {}),
  });
}

export function decodeHeartbeat(text: string): Heartbeat {
  const o = parseObject("heartbeat", text);
  return {
    serverId: nonEmpty("heartbeat", o, "server_id"),
    timestamp: str("heartbeat", o, "timestamp"),
    streams: num("heartbeat", o, "streams", 0),
    ...(o.role === "processor" ? { role: "processor" as const } : {}),
  };
}

export function encodePresence(p: Presence): string {
  return JSON.stringify({
    user_id: p.userId,
    display_name: p.displayName,
    online: p.online,
    servers: p.servers,
    timestamp: p.timestamp,
  });
}

export function decodePresence(text: string): Presence {
  const o = parseObject("presence", text);
  const servers = o.servers;
  if (!Array.isArray(servers) || !servers.every((s) => typeof s === "string")) {
    throw new RecordError(`Cannot read presence record: "servers" must be a list of strings`);
  }
  const userId = str("presence", o, "user_id");
  return {
    userId,
    displayName: str("presence", o, "display_name", userId),
    online: bool("presence", o, "online"),
    servers,
    timestamp: str("presence", o, "timestamp"),
  };
}

export function encodeDelivery(d: Delivery): string {
  switch (d.type) {
    case "resync":
      return JSON.stringify({ type: "resync", reason: d.reason });
    case "gateway-dead":
      return JSON.stringify({ type: "gateway-dead", server_id: d.serverId });
    case "room-event":
      return JSON.stringify({
        type: "room-event",
        room: d.event.room,
        user_id: d.event.userId,
        display_name: d.event.displayName,
        joined: d.event.joined,
        ...(d.event.created ? { created: true } : {}),
        ...(d.event.action ? { action: d.event.action } : {}),
        ...(d.event.actorId ? { actor_id: d.event.actorId } : {}),
        ...(d.event.actorName ? { actor_display_name: d.event.actorName } : {}),
        ...(d.event.detail !== undefined ? { detail: d.event.detail } : {}),
        ...(d.event.until ? { until: d.event.until } : {}),
        ...(d.event.at ? { at: d.event.at } : {}),
      });
    case "room-action":
      return JSON.stringify({
        type: "room-action",
        room: d.event.room,
        user_id: d.event.userId,
        display_name: d.event.displayName,
        action: d.event.action,
        actor_id: d.event.actorId,
        actor_name: d.event.actorName,
        ...(d.event.detail ? { detail: d.event.detail } : {}),
        at: d.event.at,
      });
    case "message-change":
      return JSON.stringify({
        type: "message-change",
        room: d.change.room,
        seq: d.change.seq,
        deleted: d.change.deleted,
        content: d.change.content,
        ...(d.change.mentions?.length ? { mentions: d.change.mentions } : {}),
        at: d.change.at,
        by_user_id: d.change.byUserId,
        by_display_name: d.change.byDisplayName,
      });
    case "reaction":
      return JSON.stringify({
        type: "reaction",
        room: d.event.room,
        seq: d.event.seq,
        emoji: d.event.emoji,
        user_id: d.event.userId,
        display_name: d.event.displayName,
        added: d.event.added,
      });
    case "typing":
      return JSON.stringify({
        type: "typing",
        room: d.event.room,
        user_id: d.event.userId,
        display_name: d.event.displayName,
        typing: d.event.typing,
        expires_in_ms: d.event.expiresInMs,
      });
    case "read":
      return JSON.stringify({
        type: "read",
        room: d.read.room,
        user_id: d.read.userId,
        display_name: d.read.displayName,
        seq: d.read.seq,
      });
    case "block":
      return JSON.stringify({
        type: "block",
        user_id: d.block.userId,
        blocked_id: d.block.blockedId,
        blocked: d.block.blocked,
      });
  }
}

export function decodeDelivery(text: string): Delivery {
  const o = parseObject("delivery", text);
  const type = str("delivery", o, "type");
  switch (type) {
    case "resync":
      return { type, reason: str("delivery", o, "reason", "") };
    case "gateway-dead":
      return { type, serverId: str("delivery", o, "server_id") };
    case "room-event": {
      const userId = str("delivery", o, "user_id");
      return {
        type,
        event: {
          room: str("delivery", o, "room"),
          userId,
          displayName: str("delivery", o, "display_name", userId),
          joined: bool("delivery", o, "joined"),
          ...(o.created === true ? { created: true } : {}),
          ...roomActionOf(o),
          ...(o.at !== undefined && o.at !== null ? { at: time("delivery", o, "at") } : {}),
        },
      };
    }
    case "room-action": {
      const k = "delivery";
      const userId = nonEmpty(k, o, "user_id");
      const actorId = nonEmpty(k, o, "actor_id");
      const detail = str(k, o, "detail", "");
      return {
        type,
        event: {
          room: nonEmpty(k, o, "room"),
          userId,
          displayName: str(k, o, "display_name", userId),
          joined: false,
          action: knownAction(nonEmpty(k, o, "action")),
          actorId,
          actorName: str(k, o, "actor_name", actorId),
          ...(detail ? { detail } : {}),
          at: time(k, o, "at"),
        },
      };
    }
    case "message-change": {
      const k = "delivery";
      const byUserId = nonEmpty(k, o, "by_user_id");
      return {
        type,
        change: {
          room: nonEmpty(k, o, "room"),
          seq: position(k, o, "seq"),
          deleted: bool(k, o, "deleted"),
          content: str(k, o, "content"),
          ...mentionsOf(k, o),
          at: time(k, o, "at"),
          byUserId,
          byDisplayName: str(k, o, "by_display_name", byUserId),
        },
      };
    }
    case "reaction": {
      const userId = nonEmpty("delivery", o, "user_id");
      return {
        type,
        event: {
          room: nonEmpty("delivery", o, "room"),
          seq: position("delivery", o, "seq"),
          emoji: nonEmpty("delivery", o, "emoji"),
          userId,
          displayName: str("delivery", o, "display_name", userId),
          added: bool("delivery", o, "added"),
        },
      };
    }
    case "typing": {
      const userId = nonEmpty("delivery", o, "user_id");
      return {
        type,
        event: {
          room: str("delivery", o, "room"),
          userId,
          displayName: str("delivery", o, "display_name", userId),
          typing: bool("delivery", o, "typing"),
          expiresInMs: num("delivery", o, "expires_in_ms", 0),
        },
      };
    }
    case "read": {
      const userId = nonEmpty("delivery", o, "user_id");
      return {
        type,
        read: {
          room: nonEmpty("delivery", o, "room"),
          userId,
          displayName: str("delivery", o, "display_name", userId),
          seq: num("delivery", o, "seq", 0),
        },
      };
    }
    case "block":
      return {
        type,
        block: {
          userId: nonEmpty("delivery", o, "user_id"),
          blockedId: nonEmpty("delivery", o, "blocked_id"),
          blocked: bool("delivery", o, "blocked"),
        },
      };
    default:
      throw new RecordError(`Cannot read delivery record: unknown type "${type}"`);
  }
}

/**
 * The additive fields of a room event that tells a moderation action: an action this build does
 * not know, or a field of the wrong type, is refused rather than shown as a join or leave.
 */
/** `action` as one of {@linkcode ROOM_ACTIONS}; a record with another is unreadable. */
function knownAction(action: string): RoomAction {
  if (!(ROOM_ACTIONS as readonly string[]).includes(action)) {
    throw new RecordError(
      `Cannot read delivery record: unknown room action "${action.slice(0, 40)}"`,
    );
  }
  return action as RoomAction;
}

function roomActionOf(o: Json): Partial<RoomEvent> {
  const k = "delivery";
  if (o.action === undefined || o.action === null || o.action === "") return {};
  const action = knownAction(str(k, o, "action"));
  const actorId = str(k, o, "actor_id", "");
  return {
    action,
    ...(actorId ? { actorId, actorName: str(k, o, "actor_display_name", actorId) } : {}),
    ...(o.detail !== undefined && o.detail !== null ? { detail: str(k, o, "detail") } : {}),
    ...(o.until !== undefined && o.until !== null ? { until: time(k, o, "until") } : {}),
  };
}

/**
 * `chat-dead-letters`: a record a consumer could never read, with why. The value is a JSON
 * envelope, so that it travels on any bus and reads with any Kafka tool:
 * {"topic","partition","offset","key"} of the original, "reason" (the error), "consumer" (who
 * gave up on it), "timestamp" (when, RFC 3339) and "value_base64", the original value's bytes
 * exactly (`kcat -t chat-dead-letters -C -e | jq -r .value_base64 | base64 -d`).
 */
export interface DeadLetter {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string;
  readonly reason: string;
  readonly consumer: string;
  readonly timestamp: string;
  readonly value: Uint8Array;
}

export function encodeDeadLetter(d: DeadLetter): string {
  return JSON.stringify({
    topic: d.topic,
    partition: d.partition,
    offset: d.offset,
    key: d.key,
    reason: d.reason,
    consumer: d.consumer,
    timestamp: d.timestamp,
    value_base64: d.value.toBase64(),
  });
}

export function decodeDeadLetter(text: string): DeadLetter {
  const k = "dead letter";
  const o = parseObject(k, text);
  let value: Uint8Array;
  try {
    value = Uint8Array.fromBase64(str(k, o, "value_base64"));
  } catch (err) {
    if (err instanceof RecordError) throw err;
    throw new RecordError(`Cannot read ${k} record: "value_base64" is not base64`);
  }
  return {
    topic: str(k, o, "topic"),
    partition: num(k, o, "partition", 0),
    offset: str(k, o, "offset"),
    key: str(k, o, "key"),
    reason: str(k, o, "reason"),
    consumer: str(k, o, "consumer"),
    timestamp: str(k, o, "timestamp"),
    value,
  };
}
