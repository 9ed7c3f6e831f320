/**
 * What a chat client works with, in the client's own words: users, messages, rooms and stream
 * events as the terminal and the page show them, the `ChatError` every failed call becomes, and
 * the `ChatTransport` a `ChatSession` talks through (native gRPC in the terminal, gRPC-Web in the
 * page). Pure data and interfaces: no Deno, no gRPC, so that the page can bundle it.
 */

/** A user as a client shows it. */
export interface ChatUser {
  readonly id: string;
  readonly displayName: string;
}

/** A chat message as a client shows it. */
export interface ChatMessage {
  /** The client-chosen id it was sent with; a retried send carries the same one. */
  readonly messageId: string;
  /** The sender's user id. */
  readonly userId: string;
  readonly displayName: string;
  readonly content: string;
  /** When it was sent, by the server's clock; undefined if the server gave none. */
  readonly timestamp: Date | undefined;
  /** The room it belongs to (the default room when the server left it empty). */
  readonly room: string;
  /** Position in the room, from 1; 0 if the server gave none. */
  readonly seq: number;
  /** The members the server found named as `@id` in the content, as their ids are spelled. */
  readonly mentions: readonly string[];
  /** When the text was last edited; undefined if never. */
  readonly editedAt: Date | undefined;
  /** Deleted: the content is empty (a tombstone). */
  readonly deleted: boolean;
  /** Each emoji once, with the user ids who reacted with it. */
  readonly reactions: readonly { readonly emoji: string; readonly users: readonly string[] }[];
}

/** A member added (or took back) a reaction to message `seq` of `room`. */
export interface ReactionEvent {
  readonly room: string;
  readonly seq: number;
  readonly emoji: string;
  readonly user: ChatUser;
  readonly added: boolean;
}

/** A message was edited (new content) or deleted, by its sender or the room's owner. */
export interface MessageChange {
  readonly room: string;
  readonly seq: number;
  readonly deleted: boolean;
  readonly content: string;
  readonly mentions: readonly string[];
  readonly at: Date | undefined;
  readonly by: ChatUser;
}

/**
 * A member joined or left a room this user is in (or this user joined or left one), or an owner
 * or moderator acted on a member (`action`).
 */
export interface RoomEvent {
  readonly room: string;
  readonly user: ChatUser;
  readonly joined: boolean;
  /** The member joined by creating the room. */
  readonly created?: boolean;
  readonly at: Date | undefined;
  /** "removed", "muted", "unmuted", "role" or "topic"; none for joining and leaving. */
  readonly action?: string;
  /** Who did it. */
  readonly actor?: ChatUser;
  /** The new role, or the new topic. */
  readonly detail?: string;
  /** When a mute ends. */
  readonly until?: Date;
}

/** A room as ListRooms, CreateRoom, JoinRoom and OpenDirect describe it. */
export interface RoomInfo {
  readonly id: string;
  readonly direct: boolean;
  /** Member user ids (empty for the default room, which has everybody). */
  readonly members: readonly string[];
  /** The newest message's sequence number when asked (0 for an empty room). */
  readonly lastSeq: number;
  /** Who may delete any message of the room (its creator); none for general and direct rooms. */
  readonly owner?: string;
  /** This user's read position and the messages of others after it, when the server said. */
  readonly readSeq?: number;
  readonly unread?: number;
  /** Of the unread messages, the ones that mention this user. */
  readonly mentions?: number;
  /** What the room is about, set by its owner; none when empty. */
  readonly topic?: string;
  /** How many members it has, when the server said (0 for the default room: everybody). */
  readonly memberCount?: number;
  /** This user's role: "owner", "moderator" or "member"; none for general and direct rooms. */
  readonly role?: string;
  /** The room's moderators. */
  readonly moderators?: readonly string[];
  /** When this user's mute in the room ends; none when not muted. */
  readonly mutedUntil?: Date;
  /** Only members and invited users may join it. */
  readonly inviteOnly?: boolean;
  /** This user is invited to it and not in it yet (in the list of invitations). */
  readonly invited?: boolean;
}

/**
 * Someone did something to a room: made it invite-only or open ("invite-only", "open"), invited
 * `user` ("invited"), or an action this client does not know yet. `user` is whom it is about.
 */
export interface RoomAction {
  readonly room: string;
  readonly action: string;
  readonly user: ChatUser;
  readonly actor: ChatUser;
  readonly detail: string;
  readonly at: Date | undefined;
}

/** Where the stream should continue in one room: after `lastSeq`. */
export interface RoomPosition {
  readonly room: string;
  readonly lastSeq: number;
}

/** What arrives on the message stream. */
export type StreamEvent =
  | { readonly type: "message"; readonly message: ChatMessage }
  | { readonly type: "presence"; readonly user: ChatUser; readonly online: boolean }
  | { readonly type: "room"; readonly event: RoomEvent }
  | { readonly type: "room-action"; readonly event: RoomAction }
  | { readonly type: "change"; readonly change: MessageChange }
  | { readonly type: "reaction"; readonly event: ReactionEvent }
  | { readonly type: "typing"; readonly event: TypingEvent }
  /** `user` read `room` up to `seq`: this user on another device, or the other of a direct room. */
  | { readonly type: "read"; readonly room: string; readonly user: ChatUser; readonly seq: number };

/**
 * Another member of `room` started or stopped typing; a `typing` one holds for `expiresInMs`
 * unless another comes.
 */
export interface TypingEvent {
  readonly room: string;
  readonly user: ChatUser;
  readonly typing: boolean;
  readonly expiresInMs: number;
}

/** A page of a room's history, oldest first; `more` when older messages exist. */
/** Who read a message: some of them by id, and how many in all. */
export interface SeenBy {
  readonly users: string[];
  readonly count: number;
}

export interface HistoryPage {
  readonly messages: readonly ChatMessage[];
  readonly more: boolean;
  /** The room's kept events in the span of these messages, oldest first. */
  readonly events?: readonly RoomEvent[];
}

/** The answer to a sign-in. */
export interface SignedIn {
  readonly token: string;
  readonly user: ChatUser;
  /** The sign-in created the account. */
  readonly created: boolean;
  /** When the token expires (ms since the epoch), if the server said. */
  readonly expiresAt: number | undefined;
}

/**
 * A failed call: the gRPC status by name (`UNAVAILABLE`, `INVALID_ARGUMENT`, ...) and the
 * server's words, or the transport's when the call never reached a server.
 */
export class ChatError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = "ChatError";
  }
}

/** The status name of a failure, if it is a `ChatError`. */
export function codeOf(err: unknown): string | undefined {
  return err instanceof ChatError ? err.code : undefined;
}

/**
 * The calls of `chat.Broadcast` as a session makes them. Every call rejects with a `ChatError`;
 * every call of a signed-in transport carries `token` (`authorization: Bearer <token>`).
 */
export interface ChatTransport {
  token: string | undefined;
  /**
   * Opens the message stream, resuming after `resume`. Calls `onOpen` once the server has taken
   * it (before any event), then `onEvent` for each event. Resolves when the server ends the
   * stream, rejects when it fails; `signal` cancels it.
   */
  stream(
    request: { user: ChatUser; presenceEvents: boolean; resume: readonly RoomPosition[] },
    handlers: { onOpen(): void; onEvent(event: StreamEvent): void },
    signal: AbortSignal,
  ): Promise<void>;
  /** Resolves once the server has stored the message (it then arrives on the stream). */
  send(
    message: { user: ChatUser; content: string; messageId: string; room: string },
  ): Promise<void>;
  signIn(username: string, password: string, displayName: string): Promise<SignedIn>;
  listOnline(signal?: AbortSignal): Promise<ChatUser[]>;
  /**
   * This user's rooms (the default room first), or with `all` every room: with a `query`, those
   * whose name or topic holds it (the server's directory search).
   */
  listRooms(all: boolean, signal?: AbortSignal, query?: string): Promise<RoomInfo[]>;
  /** Sets the topic of `room` (its owner only; "" takes it away); resolves with the room. */
  setTopic(room: string, topic: string): Promise<RoomInfo>;
  /** Makes `room` invite-only or open (its owner only); resolves with the room. */
  setRoomAccess(room: string, inviteOnly: boolean): Promise<RoomInfo>;
  /** Invites `userId` to `room` (its owner only). */
  invite(room: string, userId: string): Promise<void>;
  /** The rooms this user is invited to, newest invitation first. */
  listInvitations(signal?: AbortSignal): Promise<RoomInfo[]>;
  createRoom(name: string): Promise<RoomInfo>;
  joinRoom(name: string): Promise<RoomInfo>;
  leaveRoom(name: string): Promise<void>;
  /** The direct conversation with `userId`, opened if new. */
  openDirect(userId: string): Promise<RoomInfo>;
  /**
   * The newest `limit` messages of `room`, or with `beforeSeq` (> 0) those before it, or with
   * `aroundSeq` (> 0) a page centred on that message.
   */
  history(
    room: string,
    limit: number,
    signal?: AbortSignal,
    beforeSeq?: number,
    aroundSeq?: number,
  ): Promise<HistoryPage>;
  /** The messages of this user's rooms (or of `room`, "" for all) with every word of `query`. */
  search(query: string, room: string): Promise<ChatMessage[]>;
  /** Who read message `seq` of `room` (at most 50 ids, and how many in all). */
  seenBy(room: string, seq: number): Promise<SeenBy>;
  /** Replaces the text of this user's message `seq` of `room`; resolves with it as stored. */
  editMessage(room: string, seq: number, content: string): Promise<ChatMessage>;
  /** Deletes message `seq` of `room` (this user's, or any in a room this user owns). */
  deleteMessage(room: string, seq: number): Promise<void>;
  /** Adds this user's `emoji` to message `seq` of `room`, or takes it back. */
  react(room: string, seq: number, emoji: string): Promise<void>;
  /** The owner of `room` makes `userId` a "moderator" or a "member" again; the room as now. */
  setRole(room: string, userId: string, role: string): Promise<RoomInfo>;
  /** An owner or moderator removes `userId` from `room`. */
  removeMember(room: string, userId: string): Promise<void>;
  /** An owner or moderator mutes `userId` in `room` for `seconds` (0 lifts the mute). */
  muteMember(room: string, userId: string, seconds: number): Promise<void>;
  /** Tells the other members of `room` that this user is typing there, or stopped. */
  setTyping(room: string, typing: boolean): Promise<void>;
  /** Marks `room` read up to `seq` for this user. */
  markRead(room: string, seq: number): Promise<void>;
  /** Blocks `userId` for this user (`blocked` true), or unblocks them. */
  block(userId: string, blocked: boolean): Promise<void>;
  /** The users this user blocked, sorted. */
  listBlocked(signal?: AbortSignal): Promise<string[]>;
  /**
   * The attempt that used the transport is over: free what it holds (a channel). A transport
   * that a session's attempts share (the page's) may ignore it.
   */
  close(): void;
}
