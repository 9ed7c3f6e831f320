/**
 * One room's conversation: messages grouped by sender under a line for each day, quiet lines
 * for who joined or left, scrolling that stays at the bottom unless the reader scrolled up, and
 * older messages loaded as the reader scrolls to the top, down to the room's first.
 */

import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { ChatMessage } from "../client/core/model.ts";
import { dayLabel, fullTime, sameDay, shortTime } from "./format.ts";
import { Avatar } from "./icons.tsx";
import { EditableText, type MessageActions, MessageActionsContext } from "./message_actions.tsx";
import { MessageText } from "./message_text.tsx";
import { ReactionBar } from "./reactions.tsx";
import type { Entry, OlderState } from "./use_chat.ts";

/** Within this distance of the bottom, the reader counts as "at the bottom". */
const BOTTOM_SLACK_PX = 48;
/** How long a found message (a search result shown in context) stays highlighted. */
const FOUND_HIGHLIGHT_MS = 2500;
/** Within this distance of the top, older messages are loaded before the reader gets there. */
const TOP_SLACK_PX = 400;
/** Messages of one sender closer together than this share one name line. */
const GROUP_GAP_MS = 5 * 60 * 1000;

function sameGroup(previous: Entry | undefined, message: ChatMessage): boolean {
  if (previous?.kind !== "message") return false;
  const before = previous.message;
  if (before.userId !== message.userId) return false;
  if (!before.timestamp || !message.timestamp) return true;
  return message.timestamp.getTime() - before.timestamp.getTime() < GROUP_GAP_MS;
}

function entryTime(entry: Entry): Date | undefined {
  return entry.kind === "message" ? entry.message.timestamp : entry.at;
}

/** The top of the conversation: older messages loading, failing, to load, or none. */
function HistoryEdge(
  { older, roomTitle, onLoadOlder }: {
    older: OlderState;
    roomTitle: string;
    onLoadOlder: () => void;
  },
) {
  switch (older.kind) {
    case "start":
      return <p class="history-edge history-start">This is the start of {roomTitle}.</p>;
    case "loading":
      return <p class="history-edge" role="status">Loading older messages…</p>;
    case "failed":
      return (
        <p class="history-edge" role="alert">
          Cannot load older messages: {older.error}{" "}
          <button type="button" class="small-button" onClick={onLoadOlder}>Try again</button>
        </p>
      );
    case "more":
      return (
        <p class="history-edge">
          <button type="button" class="small-button" onClick={onLoadOlder}>
            Load older messages
          </button>
        </p>
      );
  }
}

/** The entries with a day line before the first of each day, and whether each starts a group. */
function Rows(
  { entries, myId, now, seenSeq }: {
    entries: readonly Entry[];
    myId: string;
    now: Date;
    seenSeq: number;
  },
) {
  // "Seen" goes under my newest message once the other person read up to it.
  const lastMine = entries.findLast((e) => e.kind === "message" && e.message.userId === myId);
  const seenKey = lastMine?.kind === "message" && lastMine.message.seq > 0 &&
      lastMine.message.seq <= seenSeq
    ? lastMine.key
    : undefined;
  const rows = [];
  let day: Date | undefined;
  let previous: Entry | undefined;
  for (const entry of entries) {
    const at = entryTime(entry);
    if (at && (!day || !sameDay(day, at))) {
      day = at;
      previous = undefined;
      rows.push(
        <li key={`day ${entry.key}`} class="day">
          <time dateTime={at.toISOString()}>{dayLabel(at, now)}</time>
        </li>,
      );
    }
    rows.push(
      entry.kind === "note"
        ? (
          <li key={entry.key} class="note" data-key={entry.key}>
            <span>{entry.text}</span>
          </li>
        )
        : (
          <MessageItem
            key={entry.key}
            entryKey={entry.key}
            message={entry.message}
            myId={myId}
            grouped={sameGroup(previous, entry.message)}
          />
        ),
    );
    if (entry.key === seenKey) {
      rows.push(
        <li key="seen" class="seen">
          <span>Seen</span>
        </li>,
      );
    }
    previous = entry;
  }
  return <>{rows}</>;
}

function MessageItem(
  { message, entryKey, myId, grouped }: {
    message: ChatMessage;
    entryKey: string;
    myId: string;
    grouped: boolean;
  },
) {
  const mine = message.userId === myId;
  const user = { id: message.userId, displayName: message.displayName };
  const classes = ["msg", mine ? "mine" : "theirs", grouped ? "grouped" : "first"];
  if (!mine && message.mentions.includes(myId)) classes.push("mentions-me");
  return (
    <li
      class={classes.join(" ")}
      data-key={entryKey}
      data-user={message.userId}
      data-seq={message.seq || undefined}
    >
      {!mine && (grouped ? <span class="avatar-space" /> : <Avatar user={user} />)}
      <div class="msg-main">
        <div class={mine || grouped ? "msg-meta sr-only" : "msg-meta"}>
          <span class="msg-sender">{message.displayName}</span>
          {mine && <span class="sr-only">(you)</span>}
        </div>
        <div class="bubble">
          <EditableText
            message={message}
            text={<MessageText content={message.content} mentions={message.mentions} me={myId} />}
          />
          {message.editedAt && !message.deleted && (
            <span class="msg-edited" title={`Edited ${fullTime(message.editedAt)}`}>
              (edited)
            </span>
          )}
          {message.timestamp && (
            <time
              class="msg-time"
              dateTime={message.timestamp.toISOString()}
              title={fullTime(message.timestamp)}
            >
              {shortTime(message.timestamp)}
            </time>
          )}
        </div>
        <ReactionBar message={message} />
      </div>
    </li>
  );
}

export function MessageList(
  {
    entries,
    myId,
    loading = false,
    roomTitle = "this room",
    older = { kind: "start" },
    onLoadOlder = () => {},
    actions,
    seenSeq = 0,
    onSeenNewest = () => {},
    focus,
  }: {
    entries: readonly Entry[];
    myId: string;
    /** What the reader may do to messages (edit, delete); none when absent. */
    actions?: MessageActions;
    /** The room's recent history is on its way. */
    loading?: boolean;
    roomTitle?: string;
    older?: OlderState;
    onLoadOlder?: () => void;
    /** In a direct room: the newest message the other person read. */
    seenSeq?: number;
    /** The reader has the newest message in view (to mark the room read). */
    onSeenNewest?: () => void;
    /** A message to bring into view and highlight (a search result), once per `token`. */
    focus?: { readonly seq: number; readonly token: number };
  },
) {
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const lastKey = useRef<string | undefined>(entries.at(-1)?.key);
  const [unseen, setUnseen] = useState(0);
  /** The row that was first, and how far down it was: kept in place when rows come above it. */
  const anchor = useRef<{ key: string; top: number } | undefined>(undefined);
  const loadOlder = useRef(() => {});
  loadOlder.current = () => older.kind === "more" && onLoadOlder();

  const scrollToBottom = useCallback(() => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
    atBottom.current = true;
    setUnseen(0);
  }, []);

  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK_PX;
    if (atBottom.current) setUnseen(0);
    if (el.scrollTop <= TOP_SLACK_PX) loadOlder.current();
  }, []);

  // Rows (or the loading line) came above the one that was first: a reader at the bottom stays
  // there; any other keeps that row where they saw it, instead of having what they read pushed
  // down. Done by hand, as not every browser anchors. Only while the list scrolls: a short list
  // sits at the bottom, and its rows move up as it grows.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const before = anchor.current;
    const row = (key: string) =>
      el.querySelector<HTMLElement>(`[data-key="${CSS.escape(key)}"]`) ?? undefined;
    const was = before && row(before.key);
    const scrolls = el.scrollHeight > el.clientHeight;
    if (atBottom.current) el.scrollTop = el.scrollHeight;
    else if (before && was && scrolls) el.scrollTop += was.offsetTop - before.top;
    const first = entries[0] && row(entries[0].key);
    anchor.current = first && { key: entries[0]!.key, top: first.offsetTop };
  });

  // Too few rows to scroll: there is no scrolling up to ask for older ones, so load them now.
  useEffect(() => {
    const el = scroller.current;
    if (el && !loading && el.scrollHeight <= el.clientHeight) loadOlder.current();
  }, [entries, loading, older.kind]);

  // Shown (or switched to): start at the newest message.
  useLayoutEffect(scrollToBottom, []);

  // New rows: follow them if the reader was at the bottom, else count them.
  useLayoutEffect(() => {
    const from = entries.findIndex((e) => e.key === lastKey.current);
    const added = entries.slice(from + 1);
    lastKey.current = entries.at(-1)?.key;
    const el = scroller.current;
    if (!el || added.length === 0) return;
    // Sending a message brings the reader back down to it.
    const sentByMe = added.some((e) => e.kind === "message" && e.message.userId === myId);
    if (atBottom.current || sentByMe) scrollToBottom();
    else setUnseen((n) => n + added.length);
  }, [entries]);

  // A found message: into the middle of the view, highlighted a moment, once its row is there.
  const focused = useRef<number | undefined>(undefined);
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el || !focus || focused.current === focus.token) return;
    const row = el.querySelector<HTMLElement>(`[data-seq="${focus.seq}"]`);
    if (!row) return;
    focused.current = focus.token;
    atBottom.current = false;
    row.scrollIntoView({ block: "center" });
    // An attribute Preact does not own, so that a render in between does not take it away.
    row.setAttribute("data-found", "");
    setTimeout(() => row.removeAttribute("data-found"), FOUND_HIGHLIGHT_MS);
  }, [focus?.token, entries]);

  // The newest message is in view: at the bottom, in a tab someone looks at.
  const seenNewest = useRef(onSeenNewest);
  seenNewest.current = onSeenNewest;
  useEffect(() => {
    const check = () => {
      if (atBottom.current && document.visibilityState === "visible") seenNewest.current();
    };
    check();
    document.addEventListener("visibilitychange", check);
    return () => document.removeEventListener("visibilitychange", check);
  }, [entries, unseen]);

  // The box changed size (window, phone keyboard, a taller composer): keep the bottom in view.
  useEffect(() => {
    const el = scroller.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() => {
      // Grown until all of it fits: the reader is at the bottom again, with no scroll to say so.
      if (el.scrollHeight <= el.clientHeight) atBottom.current = true;
      if (atBottom.current) el.scrollTop = el.scrollHeight;
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  return (
    <div class="messages-frame">
      <div
        ref={scroller}
        class="messages"
        role="log"
        aria-live="polite"
        aria-relevant="additions"
        aria-label={`Messages in ${roomTitle}`}
        tabIndex={0}
        onScroll={onScroll}
      >
        {entries.length === 0
          ? (
            <div class="empty">
              {loading ? <p class="empty-title">Loading recent messages…</p> : (
                <>
                  <p class="empty-title">No messages yet</p>
                  <p>This is the start of {roomTitle}. Say hello!</p>
                </>
              )}
            </div>
          )
          : (
            <>
              {loading
                ? <p class="history-edge" role="status">Loading recent messages…</p>
                : <HistoryEdge older={older} roomTitle={roomTitle} onLoadOlder={onLoadOlder} />}
              <ol class="message-items">
                <MessageActionsContext.Provider value={actions}>
                  <Rows entries={entries} myId={myId} now={new Date()} seenSeq={seenSeq} />
                </MessageActionsContext.Provider>
              </ol>
            </>
          )}
      </div>
      {unseen > 0 && (
        <button type="button" class="jump" onClick={scrollToBottom}>
          {unseen === 1 ? "1 new message" : `${unseen} new messages`} ↓
        </button>
      )}
    </div>
  );
}
