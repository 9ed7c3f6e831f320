/**
 * The Preact side of a `ChatSession` (client/core): its status, rooms, each room's messages and
 * unread count, who is online and who is typing, as state. The session does the work; this only shows it.
 */

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import { ChatSession } from "../client/core/chat_session.ts";
import type {
  ChatMessage,
  ChatTransport,
  ChatUser,
  MessageChange,
  ReactionEvent,
  RoomAction,
  RoomEvent,
  RoomInfo,
  SeenBy,
} from "../client/core/model.ts";
import { describeRoomAction, invitesMe } from "../client/core/invitations.ts";
import { directPeer, isDirect } from "../client/core/rooms.ts";
import type { RoomReading } from "../client/core/reading.ts";
import type { ConnectionStatus } from "../client/core/session_options.ts";
import type { BackoffOptions } from "../client/core/backoff.ts";
import { describeFailure, plainWords } from "./failures.ts";
import { notifyOfMention } from "./mention_notifications.tsx";
import { describeRoomEvent } from "../client/core/room_events.ts";

/** How many recent messages are loaded when a room is first shown. */
export const HISTORY_PAGE = 50;

/**
 * The page reconnects sooner than the terminal (someone is looking at it) and spreads its
 * tries more (a gateway restart brings back every open page at once).
 */
export const PAGE_BACKOFF: Omit<BackoffOptions, "stableAfterMs"> = {
  baseMs: 500,
  maxMs: 10_000,
  jitter: 0.5,
};

/** One row of a room's conversation: a message, or a quiet line (someone joined or left). */
export type Entry =
  | { readonly kind: "message"; readonly key: string; readonly message: ChatMessage }
  | { readonly kind: "note"; readonly key: string; readonly text: string; readonly at: Date };

/** Older rows of a room are dropped past this many, so that a long session stays light. */
export const MAX_ENTRIES = 1000;

/**
 * Where the top of a room's conversation stands: older messages can be loaded, are on their
 * way, could not be loaded (`error`), or the room's first message is shown.
 */
export type OlderState =
  | { readonly kind: "more" | "loading" | "start" }
  | { readonly kind: "failed"; readonly error: string };

/** The sequence number of the oldest message shown, if any. */
function firstSeq(entries: readonly Entry[]): number | undefined {
  for (const e of entries) if (e.kind === "message" && e.message.seq > 0) return e.message.seq;
  return undefined;
}

/**
 * Puts a page of older messages (oldest first) above `entries`, without those shown already.
 * Nothing is dropped past `MAX_ENTRIES` here: the reader asked for them.
 */
export function prependMessages(
  entries: readonly Entry[],
  messages: readonly ChatMessage[],
): Entry[] {
  const first = firstSeq(entries) ?? Infinity;
  const older = messages
    .filter((m) => m.seq > 0 && m.seq < first)
    .map((message): Entry => ({ kind: "message", key: messageKey(message), message }));
  return [...older, ...entries];
}

/** The entries with message `change.seq` as the change left it; the same array if not shown. */
export function applyChange(entries: readonly Entry[], change: MessageChange): readonly Entry[] {
  const at = entries.findIndex((e) => e.kind === "message" && e.message.seq === change.seq);
  if (at < 0) return entries;
  const entry = entries[at] as Entry & { kind: "message" };
  const message: ChatMessage = change.deleted
    ? { ...entry.message, content: "", mentions: [], editedAt: undefined, deleted: true }
    : { ...entry.message, content: change.content, mentions: change.mentions, editedAt: change.at };
  const next = entries.slice();
  next[at] = { ...entry, message };
  return next;
}

/** The entries with `event`'s reaction added to (or taken from) its message, if shown. */
export function applyReaction(entries: readonly Entry[], event: ReactionEvent): readonly Entry[] {
  const at = entries.findIndex((e) => e.kind === "message" && e.message.seq === event.seq);
  if (at < 0) return entries;
  const entry = entries[at] as Entry & { kind: "message" };
  const others = (users: readonly string[]) => users.filter((u) => u !== event.user.id);
  let reactions = entry.message.reactions.map((r) =>
    r.emoji === event.emoji
      ? {
        emoji: r.emoji,
        users: event.added ? [...others(r.users), event.user.id] : others(r.users),
      }
      : r
  );
  if (event.added && !reactions.some((r) => r.emoji === event.emoji)) {
    reactions = [...reactions, { emoji: event.emoji, users: [event.user.id] }];
  }
  const next = entries.slice();
  next[at] = {
    ...entry,
    message: { ...entry.message, reactions: reactions.filter((r) => r.users.length > 0) },
  };
  return next;
}

/** A room as the side panel shows it. */
export interface RoomView extends RoomInfo {
  /** "general", a room's name, or the other person of a direct conversation. */
  readonly title: string;
  readonly unread: number;
  /** Of the unread messages, the ones that mention the reader. */
  readonly mentions: number;
  /** For a direct conversation: whether the other person is in the online list. */
  readonly online: boolean;
  /** For a direct conversation: the newest message the other person read ("seen"). */
  readonly seenSeq: number;
}

/** An invitation as the side panel shows it. */
export interface InvitationView {
  readonly room: RoomInfo;
  /** Who invited this user, when the page heard the invitation come. */
  readonly from?: string;
}

export interface ChatState {
  status: ConnectionStatus;
  online: readonly ChatUser[];
  rooms: readonly RoomView[];
  /** The room shown. */
  current: RoomView;
  /** The current room's rows, oldest first. */
  entries: readonly Entry[];
  /** Whether the current room's recent history is still on its way. */
  loadingHistory: boolean;
  /** Whether the current room's older messages can be loaded (see `loadOlder`). */
  older: OlderState;
  /** Loads the page of messages before the oldest shown in the current room. */
  loadOlder(): void;
  send(content: string): Promise<void>;
  /** Who else is typing in the current room, in the order they started. */
  typing: readonly ChatUser[];
  /** The text in the current room's send box is now `text` (tells the others this user types). */
  draft(text: string): void;
  selectRoom(room: string): void;
  createRoom(name: string): Promise<void>;
  joinRoom(name: string): Promise<void>;
  /** The directory: every public room whose name or topic holds `query` ("" for all). */
  browseRooms(query: string): Promise<readonly RoomInfo[]>;
  /** Sets the current room's topic (its owner and moderators only; "" takes it away). */
  setTopic(topic: string): Promise<void>;
  /** The current room's owner makes `userId` a "moderator" or a "member" again. */
  setRole(userId: string, role: "moderator" | "member"): Promise<void>;
  /** An owner or moderator removes `userId` from the current room. */
  removeMember(userId: string): Promise<void>;
  /** An owner or moderator mutes `userId` in the current room for `seconds` (0 lifts it). */
  muteMember(userId: string, seconds: number): Promise<void>;
  /** The rooms this user is invited to, newest first (join them with `joinRoom`). */
  invitations: readonly InvitationView[];
  /** Makes the current room invite-only or open (its owner and moderators). */
  setRoomAccess(inviteOnly: boolean): Promise<void>;
  /** Invites `userId` to the current room (its owner and moderators). */
  invite(userId: string): Promise<void>;
  /** Declines the invitation to `room`. */
  declineInvitation(room: string): Promise<void>;
  openDirect(userId: string): Promise<void>;
  leaveRoom(room: string): Promise<void>;
  /** Replaces the text of one's own message `seq` of the current room. */
  editMessage(seq: number, content: string): Promise<void>;
  /** Deletes message `seq` of the current room (one's own, or any in a room one owns). */
  deleteMessage(seq: number): Promise<void>;
  /** Toggles the reader's reaction `emoji` on message `seq` of the current room. */
  react(seq: number, emoji: string): Promise<void>;
  /** Who read message `seq` of the current room. */
  seenBy(seq: number): Promise<SeenBy>;
  retryNow(): void;
  /** The reader has the current room's newest message in view: mark it read. */
  seenNewest(): void;
  /** The messages of the reader's rooms with every word of `query`, best first. */
  search(query: string): Promise<ChatMessage[]>;
  /**
   * Opens `room` and shows its message `seq` among its neighbours: in the room's rows when they
   * hold it, else in a page read around it (`context`) until `leaveContext`.
   */
  showInContext(room: string, seq: number): Promise<void>;
  /** The message to bring into view and highlight, once per request (`token` tells them apart). */
  focus: { readonly seq: number; readonly token: number } | undefined;
  /** Whether the rows shown are a page around a found message rather than the newest ones. */
  inContext: boolean;
  /** Back from a found message's page to the room's newest messages. */
  leaveContext(): void;
  /** The users the reader blocked, sorted: their messages are not among `entries`. */
  blocked: readonly string[];
  /** Blocks `userId` (`blocked` true) or unblocks them. */
  block(userId: string, blocked: boolean): Promise<void>;
}

let nextKey = 0;

function messageKey(m: ChatMessage): string {
  return m.seq > 0 ? `${m.room}#${m.seq}` : m.messageId || `m${nextKey++}`;
}

/** The time a row stands for: a message's timestamp, a note's. */
function timeOf(e: Entry): number | undefined {
  return e.kind === "note" ? e.at.getTime() : e.message.timestamp?.getTime();
}

/**
 * A room event as a quiet line ("ben left", "ann removed carl"), keyed by room, time and text, so
 * the same event live and again from history shows once.
 */
export function noteOf(event: RoomEvent, me: string): Entry & { kind: "note" } {
  const at = event.at ?? new Date();
  const text = describeRoomEvent(event, me);
  return { kind: "note", key: `e:${event.room}:${at.getTime()}:${text}`, text, at };
}

/**
 * Puts a note in its place by time: after every row not newer than it (a kept event loaded with
 * history goes among the messages of its time); once only.
 */
export function insertNote(entries: readonly Entry[], note: Entry & { kind: "note" }): Entry[] {
  if (entries.some((e) => e.key === note.key)) return entries.slice();
  const at = note.at.getTime();
  let i = entries.length;
  while (i > 0 && (timeOf(entries[i - 1]!) ?? -Infinity) > at) i--;
  const next = [...entries.slice(0, i), note, ...entries.slice(i)];
  return next.length > MAX_ENTRIES ? next.slice(next.length - MAX_ENTRIES) : next;
}

/** Puts a message in its place by sequence number (history comes after live messages). */
export function insertMessage(entries: readonly Entry[], message: ChatMessage): Entry[] {
  const entry: Entry = { kind: "message", key: messageKey(message), message };
  const next = entries.slice();
  let at = next.length;
  if (message.seq > 0) {
    for (let i = next.length - 1; i >= 0; i--) {
      const e = next[i]!;
      if (e.kind !== "message" || e.message.seq === 0) continue;
      if (e.message.seq === message.seq) return next; // already shown
      if (e.message.seq < message.seq) break;
      at = i;
    }
  }
  next.splice(at, 0, entry);
  return next.length > MAX_ENTRIES ? next.slice(next.length - MAX_ENTRIES) : next;
}

function roomTitle(room: RoomInfo, myId: string): string {
  return room.direct ? directPeer(room.id, myId) : room.id;
}

const general: RoomInfo = { id: DEFAULT_ROOM, direct: false, members: [], lastSeq: 0 };

/**
 * Opens a connection for `user` while the calling component is mounted.
 * `onEnded` is called when the server refuses the user or the sign-in ends
 * (`code` UNAUTHENTICATED). The room shown first is `initialRoom` once the server lists it
 * among the user's rooms (else general); `onRoomShown` hears of each room shown after that.
 */
export function useChat(
  api: ChatTransport,
  user: ChatUser,
  onEnded: (error: string, code: string | undefined) => void,
  { initialRoom, onRoomShown }: {
    initialRoom?: string;
    onRoomShown?: (room: string) => void;
  } = {},
): ChatState {
  const [status, setStatus] = useState<ConnectionStatus>({
    kind: "connecting",
    attempt: 1,
    endpoint: "",
  });
  const [online, setOnline] = useState<readonly ChatUser[]>([]);
  const [rooms, setRooms] = useState<readonly RoomInfo[]>([general]);
  const [current, setCurrent] = useState(DEFAULT_ROOM);
  const [byRoom, setByRoom] = useState<Readonly<Record<string, readonly Entry[]>>>({});
  const [typers, setTypers] = useState<Readonly<Record<string, readonly ChatUser[]>>>({});
  const [invitations, setInvitations] = useState<readonly RoomInfo[]>([]);
  /** Who invited this user to each room, as heard while the page was open. */
  const [inviters, setInviters] = useState<Readonly<Record<string, string>>>({});
  /** Each room's read position, unread count and "seen", kept by the session (and the server). */
  const [reading, setReading] = useState<ReadonlyMap<string, RoomReading>>(new Map());
  const [blocked, setBlocked] = useState<readonly string[]>([]);
  const [loading, setLoading] = useState<ReadonlySet<string>>(new Set());
  /** Per room, a load of older messages under way, or the one that failed last. */
  const [olderLoads, setOlderLoads] = useState<
    Readonly<Record<string, OlderState & { kind: "loading" | "failed" }>>
  >({});
  /**
   * Per room, the sequence number of its oldest message once History said there is nothing
   * before it (the first message's is 1, unless the server no longer keeps the oldest).
   */
  const [starts, setStarts] = useState<Readonly<Record<string, number>>>({});
  /** A page read around a found message, shown instead of its room's rows (see showInContext). */
  const [context, setContext] = useState<
    | { readonly room: string; readonly entries: readonly Entry[] }
    | undefined
  >(undefined);
  const [focus, setFocus] = useState<{ room: string; seq: number; token: number } | undefined>(
    undefined,
  );
  /** Rooms with a load of older messages under way, known before the next render. */
  const olderBusy = useRef(new Set<string>());
  const connection = useRef<ChatSession | undefined>(undefined);
  const currentRef = useRef(current);
  currentRef.current = current;
  const ended = useRef(onEnded);
  ended.current = onEnded;
  /** The room to return to, until the first list of rooms says whether the user is still in it. */
  const wanted = useRef(initialRoom);
  const shown = useRef(onRoomShown);
  shown.current = onRoomShown;

  useEffect(() => {
    let live = true;
    const addEntry = (room: string, update: (entries: readonly Entry[]) => readonly Entry[]) =>
      setByRoom((prev) => ({ ...prev, [room]: update(prev[room] ?? []) }));
    /** Changes to messages also reach a found message's page, which may show them. */
    const changeEntries = (
      room: string,
      update: (entries: readonly Entry[]) => readonly Entry[],
    ) => {
      addEntry(room, update);
      setContext((c) => c && c.room === room ? { ...c, entries: update(c.entries) } : c);
    };
    /** A quiet line in `room`'s conversation (someone joined, the room became invite-only). */
    const addNote = (room: string, text: string, at = new Date()) =>
      addEntry(room, (entries) => {
        const next = [...entries, { kind: "note" as const, key: `n${nextKey++}`, text, at }];
        return next.length > MAX_ENTRIES ? next.slice(next.length - MAX_ENTRIES) : next;
      });
    const conn = new ChatSession({
      user,
      connect: () => api,
      token: api.token,
      backoff: PAGE_BACKOFF,
      describe: describeFailure,
      onStatus: (s) => {
        if (!live) return;
        setStatus(s);
        if (s.kind === "stopped" && s.error) ended.current(s.error, s.code);
      },
      onMessage: (message, source) => {
        if (!live) return;
        addEntry(message.room, (entries) => insertMessage(entries, message));
        if (
          source === "live" && message.userId !== user.id && message.mentions.includes(user.id)
        ) notifyOfMention(message);
      },
      onReading: (state) => live && setReading(state),
      onBlocked: (users) => live && setBlocked(users),
      onRoomEvent: (event: RoomEvent) => {
        if (!live || isDirect(event.room) || event.room === DEFAULT_ROOM) return;
        const note = noteOf(event, user.id);
        addEntry(event.room, (entries) => insertNote(entries, note));
      },
      onRoomAction: (event: RoomAction) => {
        if (!live) return;
        if (invitesMe(event, user.id)) {
          setInviters((prev) => ({ ...prev, [event.room]: event.actor.displayName }));
          return;
        }
        const text = describeRoomAction(event, user.id, () => "the room");
        // A sentence starts with "You"; a name stays as its owner spells it.
        addNote(event.room, text.replace(/^you /, "You "), event.at);
      },
      onInvitations: (list) => live && setInvitations(list),
      onChange: (change) => {
        if (live) changeEntries(change.room, (entries) => applyChange(entries, change));
      },
      onReaction: (event) => {
        if (live) changeEntries(event.room, (entries) => applyReaction(entries, event));
      },
      onTyping: (room, users) => live && setTypers((prev) => ({ ...prev, [room]: users })),
      onOnline: (users) => live && setOnline(users),
      onRooms: (list) => {
        if (!live) return;
        setRooms(list);
        const back = wanted.current;
        wanted.current = undefined;
        if (back !== undefined && list.some((r) => r.id === back)) setCurrent(back);
        // The room shown was left (here or in another tab): back to general.
        else if (!list.some((r) => r.id === currentRef.current)) setCurrent(DEFAULT_ROOM);
      },
    });
    connection.current = conn;
    conn.start();
    // Offline: say so at once and stop waiting on a dead stream. Back online, or back from a
    // sleeping tab: reconnect (and resume) without waiting for the backoff.
    const retry = () => conn.retryNow();
    const offline = () => conn.interrupt("You are offline");
    const onVisible = () => document.visibilityState === "visible" && retry();
    globalThis.addEventListener("online", retry);
    globalThis.addEventListener("offline", offline);
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      live = false;
      globalThis.removeEventListener("online", retry);
      globalThis.removeEventListener("offline", offline);
      document.removeEventListener("visibilitychange", onVisible);
      conn.stop();
      connection.current = undefined;
    };
  }, [api, user.id, user.displayName]);

  // The room shown is the one to come back to, once the one to come back to from before is
  // settled. (It is read as its messages come into view: see `seenNewest`.)
  useEffect(() => {
    if (wanted.current === undefined) shown.current?.(current);
  }, [current]);

  // The room shown gets its recent history once connected (retried on the next connection).
  const connected = status.kind === "connected";
  useEffect(() => {
    const conn = connection.current;
    if (!connected || !conn) return;
    const room = current;
    setLoading((prev) => new Set(prev).add(room));
    const done = () =>
      setLoading((prev) => {
        const next = new Set(prev);
        next.delete(room);
        return next;
      });
    conn.loadHistory(room, HISTORY_PAGE).then(done, done);
  }, [connected, current]);

  return useMemo(() => {
    const here = new Set(online.map((u) => u.id));
    const views = rooms.map((r) => ({
      ...r,
      title: roomTitle(r, user.id),
      unread: reading.get(r.id)?.unread ?? r.unread ?? 0,
      mentions: reading.get(r.id)?.mentions ?? r.mentions ?? 0,
      online: r.direct && here.has(directPeer(r.id, user.id)),
      seenSeq: reading.get(r.id)?.seenSeq ?? 0,
    }));
    const shown = views.find((r) => r.id === current) ??
      { ...general, title: DEFAULT_ROOM, unread: 0, mentions: 0, online: false, seenSeq: 0 };
    const conn = () => {
      const c = connection.current;
      if (!c) throw new Error("Not connected");
      return c;
    };
    const select = (room: string) => {
      setContext(undefined);
      setFocus(undefined);
      setCurrent(room);
    };
    const inContext = context?.room === current;
    const entries = inContext ? context.entries : byRoom[current] ?? [];
    /** Changes the rows shown for `room`: the found message's page while it is shown. */
    const setRows = (room: string, update: (rows: readonly Entry[]) => readonly Entry[]) => {
      if (inContext) {
        setContext((c) => c && c.room === room ? { ...c, entries: update(c.entries) } : c);
      } else setByRoom((prev) => ({ ...prev, [room]: update(prev[room] ?? []) }));
    };
    const first = firstSeq(entries);
    const load = olderLoads[current];
    const older: OlderState = load?.kind === "loading"
      ? load
      : first === undefined || first <= 1 || starts[current] === first
      ? { kind: "start" }
      : load ?? { kind: "more" };
    const loadOlder = () => {
      const conn = connection.current;
      const room = current;
      if (!conn?.connected || first === undefined || older.kind === "start") return;
      if (olderBusy.current.has(room)) return;
      olderBusy.current.add(room);
      setOlderLoads((prev) => ({ ...prev, [room]: { kind: "loading" } }));
      conn.history(room, HISTORY_PAGE, first).then(
        (page) => {
          setRows(room, (rows) =>
            (page.events ?? []).reduce(
              (all, event) => insertNote(all, noteOf(event, user.id)),
              prependMessages(rows, page.messages),
            ));
          if (!page.more) {
            setStarts((prev) => ({ ...prev, [room]: page.messages[0]?.seq ?? first }));
          }
          setOlderLoads(({ [room]: _, ...rest }) => rest);
        },
        (err) =>
          setOlderLoads((prev) => ({
            ...prev,
            [room]: { kind: "failed", error: plainWords(err) },
          })),
      ).finally(() => olderBusy.current.delete(room));
    };
    // The server sends nothing more of theirs; what came before the block leaves the view too.
    const hidden = new Set(blocked);
    return {
      status,
      online,
      rooms: views,
      current: shown,
      entries: hidden.size === 0
        ? entries
        : entries.filter((e) => e.kind !== "message" || !hidden.has(e.message.userId)),
      loadingHistory: loading.has(current),
      older,
      loadOlder,
      send: async (content: string) => await conn().send(content, current),
      typing: typers[current] ?? [],
      draft: (text: string) => connection.current?.typing(current, text),
      selectRoom: select,
      createRoom: async (name: string) => select((await conn().createRoom(name)).id),
      joinRoom: async (name: string) => select((await conn().joinRoom(name)).id),
      browseRooms: async (query: string) => await conn().listRooms(true, query),
      setTopic: async (topic: string) => void await conn().setTopic(current, topic),
      setRole: async (userId: string, role: "moderator" | "member") =>
        void await conn().setRole(current, userId, role),
      removeMember: async (userId: string) => await conn().removeMember(current, userId),
      muteMember: async (userId: string, seconds: number) =>
        await conn().muteMember(current, userId, seconds),
      invitations: invitations.map((room) => ({ room, from: inviters[room.id] })),
      setRoomAccess: async (inviteOnly: boolean) =>
        void await conn().setRoomAccess(current, inviteOnly),
      invite: async (userId: string) => await conn().invite(current, userId),
      declineInvitation: async (room: string) => await conn().leaveRoom(room),
      openDirect: async (userId: string) => select((await conn().openDirect(userId)).id),
      leaveRoom: async (room: string) => await conn().leaveRoom(room),
      // The stream brings the change to every tab, this one included; applying the answer too
      // shows it at once.
      editMessage: async (seq: number, content: string) => {
        const edited = await conn().editMessage(current, seq, content);
        setRows(current, (rows) =>
          applyChange(rows, {
            room: current,
            seq,
            deleted: false,
            content: edited.content,
            mentions: edited.mentions,
            at: edited.editedAt,
            by: user,
          }));
      },
      // The stream brings the reaction back to every tab, this one included.
      react: async (seq: number, emoji: string) => await conn().react(current, seq, emoji),
      seenBy: async (seq: number) => await conn().seenBy(current, seq),
      deleteMessage: async (seq: number) => {
        await conn().deleteMessage(current, seq);
        setRows(current, (rows) =>
          applyChange(rows, {
            room: current,
            seq,
            deleted: true,
            content: "",
            mentions: [],
            at: undefined,
            by: user,
          }));
      },
      search: async (query: string) => await conn().search(query),
      showInContext: async (room: string, seq: number) => {
        const token = nextKey++;
        const shownAlready = (byRoom[room] ?? []).some((e) =>
          e.kind === "message" && e.message.seq === seq
        );
        if (shownAlready) {
          setContext(undefined);
        } else {
          const page = await conn().historyAround(room, seq, HISTORY_PAGE);
          const rows = page.messages.map((message): Entry => ({
            kind: "message",
            key: messageKey(message),
            message,
          }));
          setContext({ room, entries: rows });
        }
        setCurrent(room);
        setFocus({ room, seq, token });
      },
      focus: focus?.room === current ? { seq: focus.seq, token: focus.token } : undefined,
      inContext,
      leaveContext: () => {
        setContext(undefined);
        setFocus(undefined);
      },
      retryNow: () => connection.current?.retryNow(),
      seenNewest: () => {
        const newest = entries.findLast((e) => e.kind === "message" && e.message.seq > 0);
        if (newest?.kind === "message") connection.current?.markRead(current, newest.message.seq);
      },
      blocked,
      block: async (userId: string, block: boolean) => void await conn().block(userId, block),
    };
  }, [
    status,
    online,
    rooms,
    current,
    byRoom,
    reading,
    typers,
    invitations,
    inviters,
    loading,
    olderLoads,
    starts,
    context,
    focus,
    blocked,
    user.id,
  ]);
}
