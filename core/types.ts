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
  /** Position in the room, from 1; 0 until the processor has stored it. */
  readonly seq: number;
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
}

/** A member read a room up to a message (its `seq`, included). */
export interface ReadMark {
  readonly room: string;
  readonly userId: string;
  readonly displayName: string;
  readonly seq: number;
}

/** What the processor (and, for membership and read positions, the gateways) send to every gateway. */
export type Delivery =
  | { readonly type: "message"; readonly message: ChatMessage }
  /** Gateways re-announce every open stream (a processor lost or rebuilt its registry). */
  | { readonly type: "resync"; readonly reason: string }
  /** The processor declared this gateway dead; if it is alive after all it re-announces. */
  | { readonly type: "gateway-dead"; readonly serverId: string }
  | { readonly type: "room-event"; readonly event: RoomEvent }
  /** The gateways tell the reader's streams and, in a direct room, the other member's. */
  | { readonly type: "read"; readonly read: ReadMark };
