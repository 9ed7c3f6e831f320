/**
 * `chat.Broadcast`'s messages (protocol/gen) in a client's words (./model.ts), shared by the
 * native gRPC and the gRPC-Web transports, which carry the same protobuf-es types.
 */

import { ACCESS_ACTIONS } from "../../protocol/room_actions.ts";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Message, Room, User } from "../../protocol/gen/chat_pb.ts";
import { DEFAULT_ROOM } from "../../protocol/names.ts";
import type {
  ChatMessage,
  ChatUser,
  HistoryPage,
  RoomEvent,
  RoomInfo,
  StreamEvent,
} from "./model.ts";

/**
 * Whether a streamed message is a keep-alive (an empty `chat.Message`), which the gateway sends
 * on idle streams that asked for them.
 */
export function isKeepAlive(m: Message): boolean {
  return m.id === "" && m.content === "" && m.messageId === "" && !m.presence &&
    !m.roomEvent && !m.typing && !m.read && !m.timestamp;
}

export function toUser(u: User | undefined): ChatUser | undefined {
  return u?.id ? { id: u.id, displayName: u.displayName || u.id } : undefined;
}

export function toChatMessage(m: Message): ChatMessage {
  return {
    messageId: m.messageId,
    userId: m.id,
    displayName: m.displayName || m.id,
    content: m.content,
    timestamp: m.timestamp ? timestampDate(m.timestamp) : undefined,
    room: m.room || DEFAULT_ROOM,
    seq: Number(m.seq),
    mentions: m.mentions,
    editedAt: m.editedAt ? timestampDate(m.editedAt) : undefined,
    deleted: m.deleted,
    reactions: m.reactions.map((r) => ({ emoji: r.emoji, users: r.users })),
  };
}

export function toRoom(r: Room): RoomInfo {
  return {
    id: r.id,
    direct: r.direct,
    members: r.members,
    lastSeq: Number(r.lastSeq),
    owner: r.owner,
    readSeq: Number(r.readSeq),
    unread: r.unread,
    mentions: r.mentions,
    topic: r.topic,
    memberCount: r.memberCount,
    ...(r.role ? { role: r.role } : {}),
    moderators: r.moderators,
    ...(r.mutedUntil ? { mutedUntil: timestampDate(r.mutedUntil) } : {}),
    inviteOnly: r.inviteOnly,
    invited: r.invited,
  };
}

/** Who sent `m`, for an event that names no user of its own. */
function sender(m: Message): ChatUser | undefined {
  return m.id ? { id: m.id, displayName: m.displayName || m.id } : undefined;
}

/** What a streamed message means to a client; undefined for what it does not know. */
export function toStreamEvent(m: Message): StreamEvent | undefined {
  if (m.presence) {
    const user = toUser(m.presence.user) ?? sender(m);
    return user && { type: "presence", user, online: m.presence.online };
  }
  if (m.roomEvent && ACCESS_ACTIONS.has(m.roomEvent.action)) {
    const actor = toUser(m.roomEvent.actor) ?? sender(m);
    const user = toUser(m.roomEvent.user) ?? actor;
    const at = m.roomEvent.at ?? m.timestamp;
    return user && actor && {
      type: "room-action",
      event: {
        room: m.roomEvent.room || m.room || DEFAULT_ROOM,
        action: m.roomEvent.action,
        user,
        actor,
        detail: m.roomEvent.detail,
        at: at ? timestampDate(at) : undefined,
      },
    };
  }
  if (m.roomEvent) {
    const event = toRoomEvent(m);
    return event && { type: "room", event };
  }
  if (m.read) {
    const user = toUser(m.read.user) ?? sender(m);
    const room = m.read.room || m.room || DEFAULT_ROOM;
    return user && { type: "read", room, user, seq: Number(m.read.seq) };
  }
  if (m.typing) {
    const user = toUser(m.typing.user) ?? sender(m);
    return user && {
      type: "typing",
      event: {
        room: m.typing.room || m.room || DEFAULT_ROOM,
        user,
        typing: m.typing.typing,
        expiresInMs: m.typing.expiresInMs,
      },
    };
  }
  if (m.reaction) {
    const user = toUser(m.reaction.user) ?? sender(m);
    return user && {
      type: "reaction",
      event: {
        room: m.reaction.room || m.room || DEFAULT_ROOM,
        seq: Number(m.reaction.seq),
        emoji: m.reaction.emoji,
        user,
        added: m.reaction.added,
      },
    };
  }
  if (m.change) {
    const by = toUser(m.change.by) ?? sender(m);
    return by && {
      type: "change",
      change: {
        room: m.change.room || m.room || DEFAULT_ROOM,
        seq: Number(m.change.seq),
        deleted: m.change.deleted,
        content: m.change.content,
        mentions: m.change.mentions,
        at: m.change.at ? timestampDate(m.change.at) : undefined,
        by,
      },
    };
  }
  // A chat message always has content (the server refuses empty ones) unless it was deleted; an
  // empty message is an event this client does not know (a newer field).
  if (m.content === "" && !m.deleted) return undefined;
  return { type: "message", message: toChatMessage(m) };
}

/** A message with `roomEvent` set as the event; undefined when it names nobody. */
function toRoomEvent(m: Message): RoomEvent | undefined {
  const e = m.roomEvent;
  const user = toUser(e?.user) ?? sender(m);
  if (!e || !user) return undefined;
  const actor = toUser(e.actor);
  const at = e.at ?? m.timestamp;
  return {
    room: e.room || m.room || DEFAULT_ROOM,
    user,
    joined: e.joined,
    created: e.created,
    at: at ? timestampDate(at) : undefined,
    ...(e.action ? { action: e.action } : {}),
    ...(actor ? { actor } : {}),
    ...(e.detail || e.action === "topic" ? { detail: e.detail } : {}),
    ...(e.until ? { until: timestampDate(e.until) } : {}),
  };
}

/**
 * A History answer (newest first on the wire) as a page, oldest first, of chat messages, with
 * the room's kept events of its span (oldest first).
 */
export function toHistoryPage(
  page: { messages: readonly Message[]; more: boolean; events?: readonly Message[] },
): HistoryPage {
  const messages = page.messages.filter((m) => m.content !== "" || m.deleted).map(
    toChatMessage,
  );
  const events = (page.events ?? []).flatMap((m) => toRoomEvent(m) ?? []);
  return { messages: messages.reverse(), more: page.more, events };
}
