/**
 * The vocabulary of a `ChatSession`: the states of its connection, what a sign-in came to, and
 * the options and listeners a view gives it.
 */

import type { BackoffOptions } from "./backoff.ts";
import type { Clock } from "./clock.ts";
import type {
  ChatMessage,
  ChatTransport,
  ChatUser,
  MessageChange,
  ReactionEvent,
  RoomAction,
  RoomEvent,
  RoomInfo,
} from "./model.ts";
import type { Outgoing } from "./outbox.ts";
import type { RoomReading } from "./reading.ts";

export type ConnectionStatus =
  | { readonly kind: "connecting"; readonly attempt: number; readonly endpoint: string }
  | { readonly kind: "connected"; readonly since: number; readonly endpoint: string }
  | {
    readonly kind: "reconnecting";
    /** How many tries failed in a row so far. */
    readonly attempt: number;
    /** When the next try starts, in the clock's milliseconds, and how long that is from now. */
    readonly retryAt: number;
    readonly delayMs: number;
    /** Why the last try failed or the stream ended, for the screen. */
    readonly reason: string;
    /** Whether the connection that ended had been made (else it never came up). */
    readonly wasConnected: boolean;
    /** The endpoint that failed, and the one the next try uses. */
    readonly endpoint: string;
    readonly next: string;
  }
  /**
   * Stopped for good: the user left (no `error`), or the server refused the user; `code` is the
   * refusal's status (`UNAUTHENTICATED` when the sign-in ended or the password is wrong).
   */
  | { readonly kind: "stopped"; readonly error?: string; readonly code?: string };

/** What a sign-in attempt came to, for the screen. */
export type SignInEvent =
  | { readonly kind: "signed-in"; readonly user: ChatUser; readonly created: boolean }
  /** The server has no SignIn (a classic one): the anonymous stream. Said once. */
  | { readonly kind: "classic" };

/** The reconnect schedule unless told otherwise. */
export const DEFAULT_BACKOFF: BackoffOptions = {
  baseMs: 1000,
  maxMs: 15_000,
  jitter: 0.2,
  stableAfterMs: 5000,
};

export interface ChatSessionOptions {
  user: ChatUser;
  /** A transport to `endpoint`, made for each attempt and closed when it ends. */
  connect(endpoint: string): ChatTransport;
  /** Where to connect, in turn: a failed attempt moves on to the next. */
  endpoints?: readonly string[];
  /** A token already signed for (sent on every call). */
  token?: string;
  /**
   * Signs in with it whenever no token is held (the first sign-in of a name creates the
   * account), and again when the kept token is refused.
   */
  password?: string;
  backoff?: Partial<BackoffOptions>;
  clock?: Clock;
  newMessageId?: () => string;
  /** The words for a failure on the screen (the error's message by default). */
  describe?: (err: unknown) => string;
  /** How many messages the outbox holds. */
  maxQueued?: number;
  onStatus?: (status: ConnectionStatus) => void;
  onSignIn?: (event: SignInEvent) => void;
  /**
   * A message not passed on before: `history` when loaded from the room's history, `live` when
   * it came on the stream (also when replayed after a reconnect).
   */
  onMessage?: (message: ChatMessage, source: "live" | "history") => void;
  /** Every presence event, as it comes. */
  onPresence?: (user: ChatUser, online: boolean) => void;
  /**
   * A room event: `live` as it happens, `history` when kept by the server and loaded with the
   * room's history (joins, leaves and moderation from before).
   */
  onRoomEvent?: (event: RoomEvent, source: "live" | "history") => void;
  /** Someone did something to a room: changed its access, invited someone (this user too). */
  onRoomAction?: (event: RoomAction) => void;
  /** The rooms this user is invited to (newest invitation first), whenever that changes. */
  onInvitations?: (rooms: readonly RoomInfo[]) => void;
  /** A message of one of this user's rooms was edited or deleted. */
  onChange?: (change: MessageChange) => void;
  /** Someone added or took back a reaction in one of this user's rooms. */
  onReaction?: (event: ReactionEvent) => void;
  /** The online users, sorted by display name, whenever the list changes. */
  onOnline?: (users: readonly ChatUser[]) => void;
  /** This user's rooms (the default room, then rooms by name, then direct ones) on change. */
  onRooms?: (rooms: readonly RoomInfo[]) => void;
  /** Who else is typing in `room` (in the order they started), whenever that changes. */
  onTyping?: (room: string, users: readonly ChatUser[]) => void;
  /** Each room's reading state (read position, unread count, "seen") whenever one changes. */
  onReading?: (rooms: ReadonlyMap<string, RoomReading>) => void;
  /** A queued message the server refused: it is dropped. */
  onNotSent?: (message: Outgoing, err: unknown) => void;
  /** The users this user blocked (sorted), whenever the list the server gave changes. */
  onBlocked?: (users: readonly string[]) => void;
}
