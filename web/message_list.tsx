/**
 * One room's conversation: messages grouped by sender, quiet lines for who
 * joined or left, and scrolling that stays at the bottom unless the reader
 * scrolled up.
 */

import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { ChatMessage } from "../client/core/model.ts";
import { fullTime, shortTime } from "./format.ts";
import { Avatar } from "./icons.tsx";
import type { Entry } from "./use_chat.ts";

/** Within this distance of the bottom, the reader counts as "at the bottom". */
const BOTTOM_SLACK_PX = 48;
/** Messages of one sender closer together than this share one name line. */
const GROUP_GAP_MS = 5 * 60 * 1000;

function sameGroup(previous: Entry | undefined, message: ChatMessage): boolean {
  if (previous?.kind !== "message") return false;
  const before = previous.message;
  if (before.userId !== message.userId) return false;
  if (!before.timestamp || !message.timestamp) return true;
  return message.timestamp.getTime() - before.timestamp.getTime() < GROUP_GAP_MS;
}

function MessageItem(
  { message, mine, grouped }: { message: ChatMessage; mine: boolean; grouped: boolean },
) {
  const user = { id: message.userId, displayName: message.displayName };
  const classes = ["msg", mine ? "mine" : "theirs", grouped ? "grouped" : "first"].join(" ");
  return (
    <li class={classes} data-user={message.userId} data-seq={message.seq || undefined}>
      {!mine && (grouped ? <span class="avatar-space" /> : <Avatar user={user} />)}
      <div class="msg-main">
        <div class={mine || grouped ? "msg-meta sr-only" : "msg-meta"}>
          <span class="msg-sender">{message.displayName}</span>
          {mine && <span class="sr-only">(you)</span>}
        </div>
        <div class="bubble">
          <p class="msg-text">{message.content}</p>
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
      </div>
    </li>
  );
}

export function MessageList(
  { entries, myId, loading = false, roomTitle = "this room" }: {
    entries: readonly Entry[];
    myId: string;
    /** The room's recent history is on its way. */
    loading?: boolean;
    roomTitle?: string;
  },
) {
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const lastKey = useRef<string | undefined>(entries.at(-1)?.key);
  const [unseen, setUnseen] = useState(0);

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
  }, []);

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

  // The box changed size (window, phone keyboard, a taller composer): keep the bottom in view.
  useEffect(() => {
    const el = scroller.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() => {
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
            <ol class="message-items">
              {entries.map((entry, i) =>
                entry.kind === "note"
                  ? (
                    <li key={entry.key} class="note">
                      <span>{entry.text}</span>
                    </li>
                  )
                  : (
                    <MessageItem
                      key={entry.key}
                      message={entry.message}
                      mine={entry.message.userId === myId}
                      grouped={sameGroup(entries[i - 1], entry.message)}
                    />
                  )
              )}
            </ol>
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
