/**
 * The boundary between the chat's domain types and the generated `chat.*` messages
 * (protocol/gen/chat_pb.ts): what the transports decode from clients and encode for them.
 * Decoding is strict and treats every byte as hostile; uint64 fields, `bigint` in the generated
 * types, become numbers here with a range check, so the service never sees a lossy number.
 */

import { ACCESS_ACTIONS } from "../protocol/room_actions.ts";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describeError, invalidArgument } from "../core/errors.ts";
import type {
  ChatMessage,
  MessageChange,
  Presence,
  ReactionEvent,
  ReadMark,
  RoomEvent,
  TypingEvent,
} from "../core/types.ts";
import { type Message, MessageSchema, type Room, RoomSchema } from "../protocol/gen/chat_pb.ts";
import type { RoomView } from "./chat_types.ts";

/**
 * Decodes a request of type `schema`, or throws INVALID_ARGUMENT naming the type. Unknown fields
 * are dropped, not kept: nothing a client adds travels further.
 */
export function decodeRequest<Desc extends DescMessage>(
  schema: Desc,
  bytes: Uint8Array,
): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes, { readUnknownFields: false });
  } catch (err) {
    throw invalidArgument(
      `Cannot read request: the message is not a valid ${schema.typeName} (${describeError(err)})`,
    );
  }
}

/**
 * A client's uint64 sequence number as a number, or INVALID_ARGUMENT from `action` when it is
 * beyond what a number holds exactly (no room gets that far).
 */
export function seqFromWire(action: string, field: string, value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalidArgument(
      `${action}: ${field} is ${value}, the largest sequence number is ${Number.MAX_SAFE_INTEGER}`,
    );
  }
  return Number(value);
}

/**
 * `iso` as a Timestamp; none for text that is no date (a record from elsewhere), which would make
 * the encoder throw and hold up every stream of the room.
 */
function timestampOf(iso: string) {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? timestampFromMs(ms) : undefined;
}

export function messageToWire(m: ChatMessage): Message {
  return create(MessageSchema, {
    id: m.userId,
    content: m.content,
    timestamp: timestampOf(m.timestamp),
    messageId: m.id,
    room: m.room,
    seq: BigInt(m.seq),
    displayName: m.displayName,
    mentions: m.mentions ? [...m.mentions] : [],
    ...(m.editedAt ? { editedAt: timestampOf(m.editedAt) } : {}),
    deleted: m.deleted ?? false,
    reactions: (m.reactions ?? []).map((r) => ({ emoji: r.emoji, users: [...r.users] })),
  });
}

/**
 * An event on a stream: no content, from `who` in `room`, stamped now unless `at` says when, with
 * `event` its one set field (`reaction`, `change`, `roomEvent`, `typing` or `read`).
 */
function eventToWire(
  who: { userId: string; displayName: string },
  room: string,
  event: Omit<MessageInitShape<typeof MessageSchema>, "$typeName">,
  at?: string,
): Message {
  return create(MessageSchema, {
    id: who.userId,
    displayName: who.displayName,
    timestamp: at === undefined ? timestampFromMs(Date.now()) : timestampOf(at),
    room,
    ...event,
  });
}

const userOf = (who: { userId: string; displayName: string }) => ({
  id: who.userId,
  displayName: who.displayName,
});

export function reactionToWire(e: ReactionEvent): Message {
  return eventToWire(e, e.room, {
    reaction: { room: e.room, seq: BigInt(e.seq), emoji: e.emoji, user: userOf(e), added: e.added },
  });
}

export function changeToWire(c: MessageChange): Message {
  const by = { userId: c.byUserId, displayName: c.byDisplayName };
  return eventToWire(by, c.room, {
    change: {
      room: c.room,
      seq: BigInt(c.seq),
      deleted: c.deleted,
      content: c.content,
      at: timestampOf(c.at),
      by: userOf(by),
      mentions: c.mentions ? [...c.mentions] : [],
    },
  }, c.at);
}

export function roomEventToWire(e: RoomEvent): Message {
  if (e.action && ACCESS_ACTIONS.has(e.action)) {
    // An invitation or a change of access is from its actor, at the time it happened.
    const actor = { userId: e.actorId ?? e.userId, displayName: e.actorName ?? e.displayName };
    return eventToWire(actor, e.room, {
      roomEvent: {
        room: e.room,
        user: userOf(e),
        joined: false,
        action: e.action,
        actor: userOf(actor),
        detail: e.detail ?? "",
        ...(e.at ? { at: timestampOf(e.at) } : {}),
      },
    }, e.at);
  }
  return eventToWire(e, e.room, {
    roomEvent: {
      room: e.room,
      user: userOf(e),
      joined: e.joined,
      created: e.created ?? false,
      action: e.action ?? "",
      ...(e.actorId ? { actor: { id: e.actorId, displayName: e.actorName ?? e.actorId } } : {}),
      detail: e.detail ?? "",
      ...(e.until ? { until: timestampOf(e.until) } : {}),
      ...(e.at ? { at: timestampOf(e.at) } : {}),
    },
  }, e.at);
}

export function typingToWire(e: TypingEvent): Message {
  return eventToWire(e, e.room, {
    typing: { room: e.room, user: userOf(e), typing: e.typing, expiresInMs: e.expiresInMs },
  });
}

export function readToWire(r: ReadMark): Message {
  return eventToWire(r, r.room, { read: { room: r.room, user: userOf(r), seq: BigInt(r.seq) } });
}

export function presenceToWire(p: Presence): Message {
  const user = { id: p.userId, displayName: p.displayName };
  return create(MessageSchema, {
    id: p.userId,
    displayName: p.displayName,
    timestamp: p.timestamp ? timestampOf(p.timestamp) : timestampFromMs(Date.now()),
    presence: { user, online: p.online },
  });
}

export function roomToWire(room: RoomView): Room {
  return create(RoomSchema, {
    id: room.id,
    direct: room.direct,
    members: room.members,
    lastSeq: BigInt(room.lastSeq),
    owner: room.owner,
    readSeq: BigInt(room.readSeq),
    unread: room.unread,
    mentions: room.mentions,
    topic: room.topic,
    memberCount: room.memberCount,
    role: room.role,
    moderators: room.moderators,
    ...(room.mutedUntil ? { mutedUntil: timestampOf(room.mutedUntil) } : {}),
    inviteOnly: room.inviteOnly,
    invited: room.invited,
  });
}

/** Encodes a stream message once; the same bytes then go to every stream. */
export function encodeStreamMessage(message: Message): Uint8Array {
  return toBinary(MessageSchema, message);
}
