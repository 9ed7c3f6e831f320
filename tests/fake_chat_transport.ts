/**
 * A fake chat server and clock for driving `ChatSession` (client/core) without a network: the
 * terminal's session tests and the page's use them alike. Every transport the server makes
 * shares its state, as connections to one gateway do; a test drives each stream by hand and
 * advances time itself.
 */

import type { Clock } from "../client/core/clock.ts";
import {
  ChatError,
  type ChatMessage,
  type ChatTransport,
  type ChatUser,
  type HistoryPage,
  type RoomEvent,
  type RoomInfo,
  type RoomPosition,
  type SeenBy,
  type SignedIn,
  type StreamEvent,
} from "../client/core/model.ts";

/** A clock whose timers run only when the test advances it; no jitter. */
export class FakeClock implements Clock {
  time = 1_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now = () => this.time;
  random = () => 0;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, fn });
    return id;
  };
  clearTimeout = (id: number) => void this.#timers.delete(id);
  /** Moves time on by `ms`, running the timers that fall due, earliest first. */
  advance(ms: number): void {
    this.time += ms;
    for (const [id, t] of [...this.#timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= this.time) {
        this.#timers.delete(id);
        t.fn();
      }
    }
  }
  get pending(): number {
    return this.#timers.size;
  }
}

/** A stream the server took; the test opens it, sends events down it and ends it. */
export interface FakeStream {
  readonly user: ChatUser;
  readonly resume: readonly RoomPosition[];
  /** The token the stream was opened with. */
  readonly token: string | undefined;
  aborted: boolean;
  open(): void;
  emit(event: StreamEvent): void;
  end(): void;
  fail(error: unknown): void;
}

/** A transport the fake server made, and whether its session closed it. */
export interface FakeTransport extends ChatTransport {
  readonly closed: boolean;
}

/** What a call on a closed transport fails with, in grpc-js's words. */
const SHUT_DOWN = "Channel has been shut down";

/** One gateway: records what reached it; calls answer from its fields. */
export class FakeChatServer {
  readonly transports: FakeTransport[] = [];
  readonly streams: FakeStream[] = [];
  readonly sends: { content: string; messageId: string; room: string; token?: string }[] = [];
  rooms: RoomInfo[] = [{ id: "general", direct: false, members: [], lastSeq: 0 }];
  online: ChatUser[] = [];
  onlineRequests = 0;
  /** When set, ListOnline waits for this promise (to test events arriving meanwhile). */
  onlineGate: Promise<void> | undefined;
  readonly histories = new Map<string, ChatMessage[]>();
  readonly historyRequests: string[] = [];
  /** The query of each ListRooms with `all` (the directory), in order. */
  readonly directoryQueries: string[] = [];
  readonly reactions: { room: string; seq: number; emoji: string }[] = [];
  /** What SeenBy answers, by `room/seq`; nobody for any other message. */
  readonly seen = new Map<string, SeenBy>();
  /** Each SetTyping that reached the server, in order. */
  readonly typings: { room: string; typing: boolean }[] = [];
  /** Invite calls, as [room, user id]. */
  readonly invites: [string, string][] = [];
  /** What ListRooms with invitations answers. */
  invitations: RoomInfo[] = [];
  /** MarkRead calls, as [room, seq]. */
  readonly marks: [string, number][] = [];
  /** Who this user blocked, as the server keeps it. */
  blocked: string[] = [];
  /** SetRole, RemoveMember and MuteMember calls, as "SetRole room user role" and so on. */
  readonly moderation: string[] = [];
  /** The kept room events of each room, which every history page carries. */
  readonly roomEvents = new Map<string, RoomEvent[]>();
  /** Each send fails with the next of these, if any. */
  sendErrors: unknown[] = [];
  /** Runs inside the next send (once), before it is recorded. */
  sendHook: (() => Promise<void>) | undefined;
  /** When set, every unary call but send and sign-in fails with it. */
  callError: unknown;
  signInError: unknown;
  signIns = 0;
  /** Tokens the server accepts: the ones it gave out, and any a test adds. */
  readonly valid = new Set<string>();

  /**
   * A new connection to this server, carrying `token`. A `shared` one, like the page's, serves
   * every attempt of a session and ignores `close`.
   */
  transport(token?: string, { shared = false } = {}): FakeTransport {
    let closed = false;
    /** Fails as a closed channel, or the server refusing the token, would. */
    const reach = (): void => {
      if (closed) throw new ChatError("UNAVAILABLE", SHUT_DOWN);
      if (transport.token !== undefined && !this.valid.has(transport.token)) {
        throw new ChatError("UNAUTHENTICATED", "Cannot do that: the token expired");
      }
    };
    /** A call other than send and sign-in: `reached` counts it, `callError` fails it. */
    const answer = <T>(result: () => T, reached?: () => void): Promise<T> => {
      try {
        reach();
        reached?.();
        if (this.callError) throw this.callError;
        return Promise.resolve(result());
      } catch (err) {
        return Promise.reject(err);
      }
    };
    const transport: FakeTransport = {
      token,
      get closed() {
        return closed;
      },
      stream: (request, handlers, signal) => {
        return new Promise((resolve, reject) => {
          const stream: FakeStream = {
            user: request.user,
            resume: request.resume,
            token: transport.token,
            aborted: false,
            open: () => handlers.onOpen(),
            emit: (e) => handlers.onEvent(e),
            end: () => resolve(),
            fail: reject,
          };
          signal.addEventListener("abort", () => {
            stream.aborted = true;
            reject(new ChatError("CANCELLED", "aborted"));
          });
          this.streams.push(stream);
        });
      },
      send: async (m) => {
        reach();
        const hook = this.sendHook;
        this.sendHook = undefined;
        await hook?.();
        const error = this.sendErrors.shift();
        if (error) throw error;
        const { content, messageId, room } = m;
        this.sends.push({ content, messageId, room, token: transport.token });
      },
      signIn: (username): Promise<SignedIn> => {
        if (this.signInError) return Promise.reject(this.signInError);
        const token = `t${++this.signIns}`;
        this.valid.add(token);
        const user = { id: username, displayName: username };
        return Promise.resolve({
          token,
          user,
          created: this.signIns === 1,
          expiresAt: undefined,
        });
      },
      listOnline: async () => {
        const users = await answer(() => [...this.online], () => this.onlineRequests++);
        if (this.onlineGate) await this.onlineGate;
        return users;
      },
      listRooms: (all, _signal, query = "") =>
        answer(() => [...this.rooms], () => all && this.directoryQueries.push(query)),
      setTopic: (name, topic) =>
        answer(() => {
          const room = { ...(this.rooms.find((r) => r.id === name) ?? this.#room(name)), topic };
          this.rooms = this.rooms.map((r) => r.id === name ? room : r);
          return room;
        }),
      setRole: (name, userId, role) =>
        answer(() => {
          const room = this.rooms.find((r) => r.id === name) ?? this.#room(name);
          const moderators = (room.moderators ?? []).filter((m) => m !== userId);
          return {
            ...room,
            moderators: role === "moderator" ? [...moderators, userId] : moderators,
          };
        }, () => this.moderation.push(`SetRole ${name} ${userId} ${role}`)),
      removeMember: (name, userId) =>
        answer(() => {}, () => this.moderation.push(`RemoveMember ${name} ${userId}`)),
      muteMember: (name, userId, seconds) =>
        answer(() => {}, () => this.moderation.push(`MuteMember ${name} ${userId} ${seconds}`)),
      setRoomAccess: (name, inviteOnly) =>
        answer(() => {
          const room = {
            ...(this.rooms.find((r) => r.id === name) ?? this.#room(name)),
            inviteOnly,
          };
          this.rooms = this.rooms.map((r) => r.id === name ? room : r);
          return room;
        }),
      invite: (room, userId) => answer(() => void this.invites.push([room, userId])),
      listInvitations: () => answer(() => [...this.invitations]),
      createRoom: (name) => answer(() => this.#room(name)),
      joinRoom: (name) => answer(() => this.#room(name)),
      leaveRoom: (name) =>
        answer(() => void (this.rooms = this.rooms.filter((r) => r.id !== name))),
      openDirect: (userId) =>
        answer(() => this.#room(`dm:${["ann", userId].sort().join(":")}`, true)),
      history: (room, limit, _signal, beforeSeq = 0, aroundSeq = 0): Promise<HistoryPage> => {
        const end = aroundSeq > 0 ? aroundSeq + Math.floor(limit / 2) + 1 : beforeSeq;
        const older = (this.histories.get(room) ?? [])
          .filter((m) => end === 0 || m.seq < end);
        const messages = older.slice(-limit);
        const more = older.length > messages.length;
        const events = this.roomEvents.get(room) ?? [];
        return answer(
          () => ({ messages, more, events }),
          () => this.historyRequests.push(room),
        );
      },
      editMessage: (room, seq, content) =>
        answer(() => {
          const log = this.histories.get(room) ?? [];
          const at = log.findIndex((m) => m.seq === seq);
          if (at < 0) throw new ChatError("NOT_FOUND", `${room} has no message ${seq}`);
          log[at] = { ...log[at]!, content, editedAt: new Date(0) };
          return log[at]!;
        }),
      react: (room, seq, emoji) => answer(() => void this.reactions.push({ room, seq, emoji })),
      // Every word, in any case, among the messages of every room (or of `room`), newest first.
      search: (query, room) =>
        answer(() => {
          const words = query.toLowerCase().split(/\s+/).filter(Boolean);
          const logs = room ? [this.histories.get(room) ?? []] : [...this.histories.values()];
          return logs.flat().filter((m) =>
            !m.deleted && words.every((w) => m.content.toLowerCase().split(/\W+/).includes(w))
          ).reverse();
        }),
      seenBy: (room, seq) =>
        answer(() => this.seen.get(`${room}/${seq}`) ?? { users: [], count: 0 }),
      deleteMessage: (room, seq) =>
        answer(() => {
          const log = this.histories.get(room) ?? [];
          const at = log.findIndex((m) => m.seq === seq);
          if (at >= 0) log[at] = { ...log[at]!, content: "", deleted: true };
        }),
      setTyping: (room, typing) => answer(() => void this.typings.push({ room, typing })),
      markRead: (room, seq) => answer(() => void this.marks.push([room, seq])),
      block: (userId, blocked) =>
        answer(() => {
          this.blocked = this.blocked.filter((id) => id !== userId);
          if (blocked) this.blocked = [...this.blocked, userId].sort();
        }),
      listBlocked: () => answer(() => [...this.blocked]),
      close: () => void (closed = !shared),
    };
    this.transports.push(transport);
    return transport;
  }

  /** The stream opened last. */
  get last(): FakeStream {
    return this.streams.at(-1)!;
  }

  #room(id: string, direct = false): RoomInfo {
    const room = { id, direct, members: ["ann"], lastSeq: this.histories.get(id)?.length ?? 0 };
    this.rooms.push(room);
    return room;
  }
}

export const ann: ChatUser = { id: "ann", displayName: "ann" };
export const ben: ChatUser = { id: "ben", displayName: "ben" };

/** Message number `seq` of `room`, from ben. */
export function inRoom(room: string, seq: number, content = `${room} ${seq}`): ChatMessage {
  return {
    messageId: `${room}-${seq}`,
    userId: ben.id,
    displayName: ben.displayName,
    content,
    timestamp: undefined,
    room,
    seq,
    mentions: [],
    editedAt: undefined,
    deleted: false,
    reactions: [],
  };
}

/** Lets `turns` rounds of pending callbacks run. */
export async function tick(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setTimeout(r, 0));
}
