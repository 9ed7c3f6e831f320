/**
 * The chat service: what a client can do, whatever transport it came by. The native gRPC server
 * and the browser API both call it, through the method table in `rpc.ts`.
 *
 * `createChatService` puts it together from its parts, one concern each: who is calling
 * (`chat_callers.ts`), rooms and who of them is online (`chat_rooms.ts`), streams, sending and
 * history (`chat_messages.ts`), editing and deleting (`chat_edits.ts`), reactions
 * (`chat_reactions.ts`), search (`chat_search.ts`), who is typing (`chat_typing.ts`), room
 * topics (`chat_topics.ts`), who saw a message (`chat_seen.ts`), blocking users (`chat_blocks.ts`),
 * roles and moderation (`room_roles.ts`, `room_moderation.ts`), invite-only rooms and invitations
 * (`chat_invitations.ts`) and the room events that are kept (`room_events.ts`), with the field
 * checks they share in `chat_checks.ts` and the requests and answers in `chat_types.ts`.
 */

import type { Config } from "../core/config.ts";
import type { Logger } from "../core/logger.ts";
import type { ChatMessage, Presence, ReadMark } from "../core/types.ts";
import type { StoredRoomEvent } from "../store/store.ts";
import type { Bus } from "../bus/bus.ts";
import type { SeenBy, Store } from "../store/store.ts";
import type { Announcer } from "./announcer.ts";
import type { Auth, SignInResult } from "./auth.ts";
import { Blocks } from "./chat_blocks.ts";
import { Callers } from "./chat_callers.ts";
import { type DeleteRequest, type EditRequest, Edits } from "./chat_edits.ts";
import { Reactions, type ReactRequest } from "./chat_reactions.ts";
import { Messages } from "./chat_messages.ts";
import { Search, type SearchRequest } from "./chat_search.ts";
import { Seen } from "./chat_seen.ts";
import { Reads } from "./chat_reads.ts";
import { Rooms } from "./chat_rooms.ts";
import { Mentions } from "./mentions.ts";
import { Typing } from "./chat_typing.ts";
import { Topics } from "./chat_topics.ts";
import { RoomRoles } from "./room_roles.ts";
import { RoomEventLog } from "./room_events.ts";
import {
  type MemberRequest,
  Moderation,
  type MuteRequest,
  type RoleRequest,
} from "./room_moderation.ts";
import { Invitations, type InviteRequest } from "./chat_invitations.ts";
import type {
  Caller,
  HistoryRequest,
  OpenStreamRequest,
  RoomListing,
  RoomView,
  SendRequest,
  StreamHandle,
} from "./chat_types.ts";
import type { Hub, StreamSink } from "./hub.ts";
import type { RateLimiter } from "./rate_limiter.ts";

export interface ChatService {
  openStream(caller: Caller, request: OpenStreamRequest, sink: StreamSink): Promise<StreamHandle>;
  send(caller: Caller, request: SendRequest): Promise<ChatMessage>;
  online(caller: Caller, room: string): Promise<Presence[]>;
  signIn(
    username: string,
    password: string,
    displayName: string,
    caller?: Caller,
  ): Promise<SignInResult>;
  createRoom(caller: Caller, room: string): Promise<RoomView>;
  joinRoom(caller: Caller, room: string): Promise<RoomView>;
  leaveRoom(caller: Caller, room: string): Promise<void>;
  listRooms(caller: Caller, listing: RoomListing): Promise<RoomView[]>;
  openDirect(caller: Caller, otherUserId: string): Promise<RoomView>;
  history(
    caller: Caller,
    request: HistoryRequest,
  ): Promise<{ messages: ChatMessage[]; more: boolean; events: StoredRoomEvent[] }>;
  editMessage(caller: Caller, request: EditRequest): Promise<ChatMessage>;
  deleteMessage(caller: Caller, request: DeleteRequest): Promise<void>;
  /** Toggles the caller's reaction; resolves with whether it is now there. */
  react(caller: Caller, request: ReactRequest): Promise<boolean>;
  /** The caller's messages that hold the query's words, best first (`chat_search.ts`). */
  search(caller: Caller, request: SearchRequest): Promise<ChatMessage[]>;
  /** `caller` started or stopped typing in `room`: see `chat_typing.ts`. */
  setTyping(caller: Caller, room: string, typing: boolean): Promise<void>;
  /** Marks a room read up to `seq` for the caller (`chat_reads.ts`); returns what was accepted. */
  markRead(caller: Caller, room: string, seq: number): Promise<ReadMark>;
  /** Who read a message of a room the caller is in (`chat_seen.ts`). */
  seenBy(caller: Caller, room: string, seq: number): Promise<SeenBy>;
  /** The owner of a group room sets its topic (`chat_topics.ts`). */
  setTopic(caller: Caller, room: string, topic: string): Promise<RoomView>;
  /** The owner makes a member a moderator or a member again (`room_moderation.ts`). */
  setRole(caller: Caller, request: RoleRequest): Promise<RoomView>;
  /** An owner or moderator removes a member from a room. */
  removeMember(caller: Caller, request: MemberRequest): Promise<void>;
  /** An owner or moderator mutes a member for a while, or lifts the mute. */
  muteMember(caller: Caller, request: MuteRequest): Promise<void>;
  /** The owner of a group room makes it invite-only or open (`chat_invitations.ts`). */
  setRoomAccess(caller: Caller, room: string, inviteOnly: boolean): Promise<RoomView>;
  /** The owner of a group room invites a user to it (`chat_invitations.ts`). */
  invite(caller: Caller, request: InviteRequest): Promise<void>;
  /** Writes what waits to be written (read positions): for shutdown. */
  flush(): Promise<void>;
  /** The caller blocks or unblocks a user (`chat_blocks.ts`). */
  setBlocked(caller: Caller, userId: string, blocked: boolean): Promise<void>;
  /** The users the caller blocked, sorted. */
  listBlocked(caller: Caller): Promise<string[]>;
}

export interface ChatServiceOptions {
  bus: Bus;
  hub: Hub;
  store: Store;
  auth: Auth;
  limiter: RateLimiter;
  announcer: Announcer;
  logger: Logger;
  config: Pick<
    Config,
    | "serverId"
    | "maxMessageBytes"
    | "maxRoomNameLength"
    | "maxRoomsPerUser"
    | "maxStreamsPerUser"
    | "rateLimitPerSecond"
    | "rateLimitBurst"
    | "searchRatePerSecond"
    | "searchBurst"
    | "sendTimeoutMs"
    | "maxResumeRooms"
    | "maxDirectRoomsPerUser"
    | "directRoomsPerMinute"
    | "directRoomsBurst"
    | "maxClockSkewMs"
  >;
  /** The current presence view (from the processor's registry). */
  online: () => Presence[];
  /** One user's presence (from the processor's registry), if known; for AUTH=off names. */
  presenceOf?: (userId: string) => Presence | undefined;
  /** The server's clock, in milliseconds since the epoch (for tests). */
  now?: () => number;
  /** The shortest time between two writes of one user's read position in one room. */
  readWriteIntervalMs?: number;
}

export function createChatService(options: ChatServiceOptions): ChatService {
  const { auth } = options;
  const now = options.now ?? Date.now;
  const callers = new Callers(options);
  const roles = new RoomRoles({ ...options, now });
  const events = new RoomEventLog({ ...options, now });
  const rooms = new Rooms({ ...options, callers, roles, events });
  const mentions = new Mentions(options);
  const messages = new Messages({
    ...options,
    callers,
    rooms,
    mentions,
    roles,
    events,
    now: options.now ?? Date.now,
  });
  const edits = new Edits({
    ...options,
    callers,
    rooms,
    mentions,
    roles,
    now: options.now ?? Date.now,
  });
  const reactions = new Reactions({ ...options, callers, rooms, roles });
  const typing = new Typing({ ...options, callers, rooms, roles, now: options.now ?? Date.now });
  const reads = new Reads({ ...options, callers, rooms });
  const topics = new Topics({ ...options, callers, rooms, roles, events });
  const moderation = new Moderation({ ...options, callers, rooms, roles, events, now });
  const search = new Search({ ...options, callers, rooms });
  const seen = new Seen({ ...options, callers, rooms });
  const blocks = new Blocks({ ...options, callers });
  const invitations = new Invitations({
    ...options,
    callers,
    rooms,
    roles,
    now: options.now ?? Date.now,
  });
  return {
    openStream: async (caller, request, sink) => {
      const handle = typing.watch(await messages.openStream(caller, request, sink));
      void reads.catchUp(handle.streamId);
      return handle;
    },
    editMessage: (caller, request) => edits.edit(caller, request),
    deleteMessage: (caller, request) => edits.delete(caller, request),
    react: (caller, request) => reactions.toggle(caller, request),
    send: (caller, request) => messages.send(caller, request),
    history: (caller, request) => messages.history(caller, request),
    online: (caller, room) => rooms.online(caller, room),
    signIn: (username, password, displayName, caller = {}) =>
      auth.signIn(username, password, displayName, caller),
    createRoom: (caller, room) => rooms.createRoom(caller, room),
    joinRoom: (caller, room) => rooms.joinRoom(caller, room),
    leaveRoom: (caller, room) => rooms.leaveRoom(caller, room),
    listRooms: (caller, listing) =>
      listing.invitations ? invitations.list(caller, listing) : rooms.listRooms(caller, listing),
    openDirect: (caller, other) => rooms.openDirect(caller, other),
    setTyping: (caller, room, isTyping) => typing.setTyping(caller, room, isTyping),
    markRead: (caller, room, seq) => reads.markRead(caller, room, seq),
    setTopic: (caller, room, topic) => topics.setTopic(caller, room, topic),
    setRoomAccess: (caller, room, inviteOnly) => invitations.setAccess(caller, room, inviteOnly),
    invite: (caller, request) => invitations.invite(caller, request),
    search: (caller, request) => search.search(caller, request),
    seenBy: (caller, room, seq) => seen.seenBy(caller, room, seq),
    setRole: (caller, request) => moderation.setRole(caller, request),
    removeMember: (caller, request) => moderation.remove(caller, request),
    muteMember: (caller, request) => moderation.mute(caller, request),
    flush: () => reads.flush(),
    setBlocked: (caller, userId, blocked) => blocks.setBlocked(caller, userId, blocked),
    listBlocked: (caller) => blocks.listBlocked(caller),
  };
}
