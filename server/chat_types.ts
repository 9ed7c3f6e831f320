/**
 * The requests and answers of the chat service, as its transports hand them over and get them
 * back. They import nothing from the gateway, so the conversions in `wire.ts` and the service
 * (`chat_service.ts`) can both use them without an import cycle.
 */

/** Who is calling, as the transport saw it. */
export interface Caller {
  /** The `authorization` metadata (`Bearer <token>`), if sent. */
  readonly authorization?: string;
  /** The client's network address (IP, no port), for per-address limits; undefined if unknown. */
  readonly address?: string;
  /** Aborted when the client cancels the call (or its deadline passes). */
  readonly signal?: AbortSignal;
}

export interface OpenStreamRequest {
  userId: string;
  /**
   * With AUTH=off and no token, the name shown for this user (on the stream and on the user's
   * messages); with a token, the account's name is shown and this is only checked.
   */
  displayName: string;
  presenceEvents: boolean;
  /**
   * The last sequence number the client saw, per room: replay what came after. At most
   * `maxResumeRooms` entries; one per room counts (the smallest), rooms the user is not in are
   * ignored.
   */
  resume: readonly { room: string; lastSeq: number }[];
}

/** A client's `google.protobuf.Timestamp`, as it came. */
export interface ClientTimestamp {
  seconds: number;
  nanos: number;
}

export interface SendRequest {
  userId: string;
  content: string;
  /** Checked, never shown: the name on a message is the account's, or the sender's stream's. */
  displayName?: string;
  /**
   * The client's clock, checked to be within `maxClockSkewMs` of the server's; the message is
   * stamped with the server's time.
   */
  timestamp?: ClientTimestamp | null;
  /** Makes a retried send idempotent; generated when absent. */
  messageId?: string;
  room?: string;
}

export interface RoomView {
  id: string;
  direct: boolean;
  members: string[];
  lastSeq: number;
  /** Who may delete any message of the room: its creator; empty for general and direct rooms. */
  owner: string;
  /** The caller's read position (0: none, or not a member). */
  readSeq: number;
  /** Messages of others after `readSeq`, among the newest `UNREAD_COUNT_MAX`. */
  unread: number;
  /** Of those, the ones that mention the caller. */
  mentions: number;
  /** What the room is about, set by its owner; empty when none. */
  topic: string;
  /** How many members it has; 0 for the default room (everybody). */
  memberCount: number;
  /**
   * The caller's role ("owner" | "moderator" | "member"); "" for general and direct rooms, and in
   * the directory for rooms the caller is not in.
   */
  role: string;
  /** The room's moderators, sorted; none for general and direct rooms. */
  moderators: string[];
  /** RFC 3339: when the caller's mute in the room ends; absent when not muted. */
  mutedUntil?: string;
  /** Only members and invited users may join it. */
  inviteOnly: boolean;
  /** The caller is invited to it and not a member yet (in the listing of invitations). */
  invited: boolean;
}

/** What a listing of rooms asks for. */
export interface RoomListing {
  /** false: the caller's rooms; true: the directory of every room that is not direct. */
  all: boolean;
  /** With `all`: only rooms whose id or topic holds it, without regard to case; "" for all. */
  query: string;
  /** With `all` or `invitations`: at most this many rooms; 0 means the default. */
  limit: number;
  /** Instead, the rooms the caller is invited to (not together with `all`). */
  invitations?: boolean;
}

export interface HistoryRequest {
  room: string;
  /** 0 means from the newest. */
  beforeSeq: number;
  /** 0 means the default. */
  limit: number;
  /**
   * A page centred on this message instead (0: not used): up to half the limit after it, the
   * rest it and before it; `beforeSeq` is then ignored.
   */
  aroundSeq?: number;
}

export interface StreamHandle {
  readonly streamId: string;
  /** Whose stream it is. */
  readonly userId: string;
  /** The client went away (or the stream failed); idempotent. */
  close(): void;
}
