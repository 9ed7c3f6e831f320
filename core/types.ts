/** The domain types shared by the gateway, the processor and the bus records. */

/** A chat message as the service sees it, whatever the wire. */
export interface ChatMessage {
  /** Unique message id (UUID unless the client chose one). */
  readonly id: string;
  /** The sender's user id. */
  readonly userId: string;
  readonly displayName: string;
  readonly content: string;
  /** RFC 3339. */
  readonly timestamp: string;
  readonly room: string;
  /**
   * Position in the room's log, from 1: increasing with the room's order, not dense (Kafka: the
   * offset + 1 in its partition, shared with other rooms). 0 until the log has it.
   */
  readonly seq: number;
  /** The members the content names as `@id`, as the gateway found them (server/mentions.ts). */
  readonly mentions?: readonly string[];
  /** RFC 3339: when the text was last edited; absent if never. */
  readonly editedAt?: string;
  /** Deleted: the content is empty and no store keeps the text. */
  readonly deleted?: boolean;
  /** Each emoji once, placed by its oldest reaction still there, with who reacted, in order. */
  readonly reactions?: readonly Reaction[];
}

export interface Reaction {
  readonly emoji: string;
  readonly users: readonly string[];
}

/** A member added or took back a reaction to a stored message. */
export interface ReactionEvent {
  readonly room: string;
  readonly seq: number;
  readonly emoji: string;
  readonly userId: string;
  readonly displayName: string;
  readonly added: boolean;
}

/** A stored message was edited (new content) or deleted. */
export interface MessageChange {
  readonly room: string;
  readonly seq: number;
  readonly deleted: boolean;
  /** The new text; empty for a deletion. */
  readonly content: string;
  /** The new text's mentions. */
  readonly mentions?: readonly string[];
  /** RFC 3339. */
  readonly at: string;
  /** Who changed it, and their name. */
  readonly byUserId: string;
  readonly byDisplayName: string;
}

/** A stream opened or closed on a gateway. */
export interface ConnectionEvent {
  readonly userId: string;
  readonly serverId: string;
  readonly connected: boolean;
  readonly timestamp: string;
  readonly displayName: string;
  /** Identifies one stream, so that repeated announcements are idempotent. */
  readonly streamId: string;
}

/** A gateway's sign of life. */
export interface Heartbeat {
  readonly serverId: string;
  readonly timestamp: string;
  readonly streams: number;
  /**
   * "processor": a processor's own heartbeat, which it reads back to know that Kafka carries
   * heartbeats at all before it calls a silent gateway dead. Absent on gateways' records.
   */
  readonly role?: "gateway" | "processor";
}

/** Whether a user is online, and where; the processor's registry is the source. */
export interface Presence {
  readonly userId: string;
  readonly displayName: string;
  readonly online: boolean;
  readonly servers: readonly string[];
  readonly timestamp: string;
}

/** A member joined or left a room. */
export interface RoomEvent {
  readonly room: string;
  readonly userId: string;
  readonly displayName: string;
  readonly joined: boolean;
  /** The member joined by creating the room. */
  readonly created?: boolean;
  /**
   * A moderation action done to `userId` (for "topic" and a change of access: the one who did
   * it; for "invited": the invitee); absent for joining and leaving, which `joined` tells.
   * "removed" comes with `joined: false`, the others with `joined: true` (the member stays),
   * except the invitation and access actions, which come as `room-action` deliveries with
   * `joined: false` and change no membership.
   */
  readonly action?: RoomAction;
  /** Who did it, and their name. */
  readonly actorId?: string;
  readonly actorName?: string;
  /** The new role ("moderator" | "member"), or the new topic ("" when taken away). */
  readonly detail?: string;
  /** RFC 3339: when a mute ends. */
  readonly until?: string;
  /** RFC 3339: when it happened (stored events always have it). */
  readonly at?: string;
}

/** What an owner or moderator did in a room (server/room_moderation.ts). */
export type RoomAction =
  | "removed"
  | "muted"
  | "unmuted"
  | "role"
  | "topic"
  | "invite-only"
  | "open"
  | "invited";

/** Every {@linkcode RoomAction}, for readers of records from elsewhere. */
export const ROOM_ACTIONS: readonly RoomAction[] = [
  "removed",
  "muted",
  "unmuted",
  "role",
  "topic",
  "invite-only",
  "open",
  "invited",
];

/**
 * A member started or stopped typing in a room. Ephemeral: it goes from the typer's gateway to
 * every gateway (never through a processor or the store) and is forgotten once shown.
 */
export interface TypingEvent {
  readonly room: string;
  readonly userId: string;
  readonly displayName: string;
  readonly typing: boolean;
  /** How long a receiver shows `typing: true` unless another one comes. */
  readonly expiresInMs: number;
}

/** A member read a room up to a message (its `seq`, included). */
export interface ReadMark {
  readonly room: string;
  readonly userId: string;
  readonly displayName: string;
  readonly seq: number;
}

/** A user blocked another (`blocked`), or unblocked them. */
export interface BlockChange {
  readonly userId: string;
  readonly blockedId: string;
  readonly blocked: boolean;
}

/**
 * What processors and gateways send to every gateway besides the messages, which gateways read
 * from the room logs themselves (`RoomLogs.follow`).
 */
export type Delivery =
  /** Gateways re-announce every open stream (a processor lost or rebuilt its registry). */
  | { readonly type: "resync"; readonly reason: string }
  /** The processor declared this gateway dead; if it is alive after all it re-announces. */
  | { readonly type: "gateway-dead"; readonly serverId: string }
  | { readonly type: "room-event"; readonly event: RoomEvent }
  /**
   * A member of a room did something to it (made it invite-only, invited someone): every
   * gateway tells the room's streams and those of whom it is about; no membership changes.
   */
  | { readonly type: "room-action"; readonly event: RoomEvent }
  /** A gateway changed a stored message: every gateway tells the room's streams. */
  | { readonly type: "message-change"; readonly change: MessageChange }
  /** A gateway stored a reaction (or took one back): every gateway tells the room's streams. */
  | { readonly type: "reaction"; readonly event: ReactionEvent }
  /** Sent by the typer's gateway itself, never by a processor. */
  | { readonly type: "typing"; readonly event: TypingEvent }
  /** The gateways tell the reader's streams and, in a direct room, the other member's. */
  | { readonly type: "read"; readonly read: ReadMark }
  /** The blocker's gateway tells every gateway, so that each leaves out what their streams hide. */
  | { readonly type: "block"; readonly block: BlockChange };
