/**
 * The chat once joined: a header with the connection status, the
 * conversation and its send box, and who is online (a side panel at desktop
 * width, a sheet behind a button at phone width).
 */

import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatApi, ChatUser, ConnectionStatus } from "./chat_connection.ts";
import { Composer } from "./composer.tsx";
import { describeStatus } from "./format.ts";
import { Avatar, LeaveIcon, Logo, PeopleIcon } from "./icons.tsx";
import { MessageList } from "./message_list.tsx";
import { OnlineList } from "./online_list.tsx";
import { useChat } from "./use_chat.ts";

/** `Date.now()`, refreshed every half second while `active` (for countdowns). */
function useNow(active: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const id = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(id);
  }, [active]);
  return now;
}

function StatusPill({ status }: { status: ConnectionStatus }) {
  const words = describeStatus(status, 0);
  return (
    <p class={`status status-${words.tone}`} role="status" data-status={status.kind}>
      <span class="status-dot" aria-hidden="true" />
      <span class="status-label">{words.label}</span>
    </p>
  );
}

function ConnectionBanner(
  { status, onRetry }: { status: ConnectionStatus; onRetry: () => void },
) {
  const now = useNow(status.kind === "reconnecting");
  const words = describeStatus(status, now);
  if (status.kind === "connected" || !words.banner) return null;
  return (
    <div class="banner" data-status={status.kind}>
      <span class="spinner" aria-hidden="true" />
      <div class="banner-text">
        <p class="banner-title">{words.banner}</p>
        {words.reason && <p class="banner-reason">{words.reason}</p>}
      </div>
      {status.kind === "reconnecting" && (
        <button type="button" class="banner-button" onClick={onRetry}>Retry now</button>
      )}
    </div>
  );
}

export function ChatScreen(
  { api, user, onLeave, onRefused }: {
    api: ChatApi;
    user: ChatUser;
    onLeave: () => void;
    onRefused: (error: string) => void;
  },
) {
  const chat = useChat(api, user, onRefused);
  const [peopleOpen, setPeopleOpen] = useState(false);
  const toggle = useRef<HTMLButtonElement>(null);
  const people = useRef<HTMLElement>(null);
  const stale = chat.status.kind !== "connected";

  useEffect(() => {
    document.title = `Chat · ${user.displayName}`;
    return () => {
      document.title = "Chat";
    };
  }, [user.displayName]);

  useEffect(() => {
    if (!peopleOpen) return;
    // Opened as a sheet (phone width): move focus into it.
    if (getComputedStyle(people.current!).position === "absolute") people.current?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== "Escape") return;
      setPeopleOpen(false);
      toggle.current?.focus();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [peopleOpen]);

  return (
    <div class="chat">
      <header class="topbar">
        <div class="brand">
          <Logo />
          <h1 class="brand-name">Chat</h1>
        </div>
        <StatusPill status={chat.status} />
        <div class="topbar-actions">
          <button
            ref={toggle}
            type="button"
            class="people-toggle"
            aria-expanded={peopleOpen ? "true" : "false"}
            aria-controls="people"
            aria-label={`Online now: ${chat.online.length}`}
            onClick={() => setPeopleOpen((open) => !open)}
          >
            <PeopleIcon />
            <span aria-hidden="true">{chat.online.length}</span>
          </button>
          <span class="me" title={`Signed in as ${user.displayName}`}>
            <Avatar user={user} size="sm" />
            <span class="me-name">{user.displayName}</span>
          </span>
          <button type="button" class="leave-button" onClick={onLeave} title="Leave the chat">
            <LeaveIcon />
            <span class="leave-label">Leave</span>
          </button>
        </div>
      </header>
      <div class="chat-body">
        <main class="conversation" aria-label="Conversation">
          <ConnectionBanner status={chat.status} onRetry={chat.retryNow} />
          <MessageList entries={chat.entries} myId={user.id} />
          <Composer onSend={chat.send} />
        </main>
        {peopleOpen && (
          <div
            class="scrim"
            aria-hidden="true"
            onClick={() => setPeopleOpen(false)}
          />
        )}
        <aside
          id="people"
          ref={people}
          tabIndex={-1}
          class={peopleOpen ? "people open" : "people"}
          aria-label="People"
        >
          <OnlineList users={chat.online} myId={user.id} stale={stale} />
        </aside>
      </div>
    </div>
  );
}
