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
}

/** A member joined or left a room this user is in (or this user joined or left one). */
export interface RoomEvent {
  readonly room: string;
  readonly user: ChatUser;
  readonly joined: boolean;
  readonly at: Date | undefined;
}

/** A room as ListRooms, CreateRoom, JoinRoom and OpenDirect describe it. */
export interface RoomInfo {
  readonly id: string;
  readonly direct: boolean;
  /** Member user ids (empty for the default room, which has everybody). */
  readonly members: readonly string[];
  /** The newest message's sequence number when asked (0 for an empty room). */
  readonly lastSeq: number;
  /** This user's read position and the messages of others after it, when the server said. */
  readonly readSeq?: number;
  readonly unread?: number;
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
  /** `user` read `room` up to `seq`: this user on another device, or the other of a direct room. */
  | { readonly type: "read"; readonly room: string; readonly user: ChatUser; readonly seq: number };

/** A page of a room's history, oldest first; `more` when older messages exist. */
export interface HistoryPage {
  readonly messages: readonly ChatMessage[];
  readonly more: boolean;
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
  /** This user's rooms (the default room first), or with `all` every room. */
  listRooms(all: boolean, signal?: AbortSignal): Promise<RoomInfo[]>;
  createRoom(name: string): Promise<RoomInfo>;
  joinRoom(name: string): Promise<RoomInfo>;
  leaveRoom(name: string): Promise<void>;
  /** The direct conversation with `userId`, opened if new. */
  openDirect(userId: string): Promise<RoomInfo>;
  /** The newest `limit` messages of `room`, or with `beforeSeq` (> 0) those before it. */
  history(
    room: string,
    limit: number,
    signal?: AbortSignal,
    beforeSeq?: number,
  ): Promise<HistoryPage>;
  /** Marks `room` read up to `seq` for this user. */
  markRead(room: string, seq: number): Promise<void>;
  /**
   * The attempt that used the transport is over: free what it holds (a channel). A transport
   * that a session's attempts share (the page's) may ignore it.
   */
  close(): void;
}
