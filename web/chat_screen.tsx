/**
 * The chat once signed in: a header with the connection status; a side panel
 * with the rooms, direct conversations and who is online (beside the chat at
 * desktop width, a sheet behind a button at phone width); and the current
 * room's conversation with its send box.
 */

import { useEffect, useRef, useState } from "preact/hooks";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import type { ChatTransport, ChatUser } from "../client/core/model.ts";
import type { ConnectionStatus } from "../client/core/session_options.ts";
import { plainWords } from "./failures.ts";
import { typingText } from "../client/core/typing.ts";
import { Composer } from "./composer.tsx";
import { describeStatus } from "./format.ts";
import { Avatar, LeaveIcon, Logo, MenuIcon } from "./icons.tsx";
import { MessageList } from "./message_list.tsx";
import { BlockedList } from "./blocking.tsx";
import { OnlineList } from "./online_list.tsx";
import { RoomList } from "./room_list.tsx";
import { RoomDirectory } from "./room_directory.tsx";
import { RoomTopic } from "./room_topic.tsx";
import { type MemberActions, RoomMembers } from "./room_members.tsx";
import { Invitations, RoomAccess } from "./invitations.tsx";
import { SearchPanel } from "./search_panel.tsx";
import { type RoomView, useChat } from "./use_chat.ts";
import { NotificationsToggle } from "./mention_notifications.tsx";

/** The longest room name the message box's placeholder shows whole (on one line at phone width). */
const PLACEHOLDER_TITLE_MAX = 20;

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

function RoomHeader(
  { room, myId, onLeave, onSetTopic, actions, onSetAccess, onInvite }: {
    room: RoomView;
    myId: string;
    onLeave: () => Promise<void>;
    onSetTopic: (topic: string) => Promise<void>;
    actions: MemberActions;
    onSetAccess: (inviteOnly: boolean) => Promise<void>;
    onInvite: (userId: string) => Promise<void>;
  },
) {
  const [error, setError] = useState<string | undefined>(undefined);
  const detail = room.id === DEFAULT_ROOM
    ? "Everyone"
    : room.direct
    ? "Direct messages"
    : room.members.length === 1
    ? "1 member"
    : `${room.members.length} members`;
  return (
    <div class="room-header">
      <h2 id="room-title" class="room-title">
        {room.direct
          ? <Avatar user={{ id: room.title, displayName: room.title }} size="xs" />
          : <span class="room-hash" aria-hidden="true">#</span>}
        <span class="room-title-name">{room.title}</span>
      </h2>
      <span class="room-detail">{detail}</span>
      {!room.direct && room.id !== DEFAULT_ROOM && (
        <RoomTopic
          topic={room.topic ?? ""}
          editable={room.role === "owner" || room.role === "moderator"}
          onSave={onSetTopic}
        />
      )}
      {!room.direct && room.id !== DEFAULT_ROOM && (
        <>
          <RoomMembers room={room} myId={myId} actions={actions} />
          <RoomAccess
            inviteOnly={room.inviteOnly ?? false}
            manager={room.role === "owner" || room.role === "moderator"}
            onSetAccess={onSetAccess}
            onInvite={onInvite}
          />
        </>
      )}
      {room.id !== DEFAULT_ROOM && (
        <button
          type="button"
          class="small-button room-leave"
          // Leaving a direct conversation also blocks it: the other cannot write to it or open
          // it again until you do.
          title={room.direct
            ? "Leave: they cannot write to you here until you open it again"
            : undefined}
          onClick={() => onLeave().catch((err) => setError(plainWords(err)))}
        >
          {room.direct ? "Leave and block" : "Leave room"}
        </button>
      )}
      {error && <p class="room-header-error" role="alert">{error}</p>}
    </div>
  );
}

export function ChatScreen(
  { api, user, onSignOut, onEnded, initialRoom, onRoomShown }: {
    api: ChatTransport;
    user: ChatUser;
    onSignOut: () => void;
    /** The server refused this user, or the sign-in ended. */
    onEnded: (error: string, code: string | undefined) => void;
    /** The room to show first, if the user is still in it (the one they had open last). */
    initialRoom?: string;
    onRoomShown?: (room: string) => void;
  },
) {
  const chat = useChat(api, user, onEnded, { initialRoom, onRoomShown });
  const [panelOpen, setPanelOpen] = useState(false);
  const [dmError, setDmError] = useState<string | undefined>(undefined);
  const toggle = useRef<HTMLButtonElement>(null);
  const panel = useRef<HTMLElement>(null);
  const stale = chat.status.kind !== "connected";
  const unread = chat.rooms.reduce((sum, r) => sum + r.unread, 0);

  useEffect(() => {
    document.title = `${unread > 0 ? `(${unread}) ` : ""}Chat · ${user.displayName}`;
  }, [user.displayName, unread]);
  useEffect(() => () => {
    document.title = "Chat";
  }, []);

  useEffect(() => {
    if (!panelOpen) return;
    // Opened as a sheet (phone width): move focus into it.
    if (getComputedStyle(panel.current!).position === "absolute") panel.current?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== "Escape") return;
      setPanelOpen(false);
      toggle.current?.focus();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [panelOpen]);

  const select = (room: string) => {
    chat.selectRoom(room);
    setPanelOpen(false);
  };
  const after = (action: (name: string) => Promise<void>) => async (name: string) => {
    await action(name);
    setPanelOpen(false);
  };
  const message = async (other: ChatUser) => {
    setDmError(undefined);
    try {
      await chat.openDirect(other.id);
      setPanelOpen(false);
    } catch (err) {
      setDmError(plainWords(err));
    }
  };

  // Kept short: a placeholder cannot end in an ellipsis where the box cuts it.
  const title = chat.current.title.length > PLACEHOLDER_TITLE_MAX
    ? `${chat.current.title.slice(0, PLACEHOLDER_TITLE_MAX - 1)}…`
    : chat.current.title;
  const placeholder = chat.current.direct ? `Message ${title}` : `Message #${title}`;

  return (
    <div class="chat">
      <header class="topbar">
        <button
          ref={toggle}
          type="button"
          class="panel-toggle"
          aria-expanded={panelOpen ? "true" : "false"}
          aria-controls="side-panel"
          aria-label={unread > 0 ? `Rooms and people, ${unread} unread` : "Rooms and people"}
          onClick={() => setPanelOpen((open) => !open)}
        >
          <MenuIcon />
          {unread > 0 && <span class="toggle-dot" aria-hidden="true" />}
        </button>
        <div class="brand">
          <Logo />
          <h1 class="brand-name">Chat</h1>
        </div>
        <StatusPill status={chat.status} />
        <div class="topbar-actions">
          <span class="me" title={`Signed in as ${user.displayName}`}>
            <Avatar user={user} size="sm" />
            <span class="me-name">{user.displayName}</span>
          </span>
          <button type="button" class="leave-button" onClick={onSignOut} title="Sign out">
            <LeaveIcon />
            <span class="leave-label">Sign out</span>
          </button>
        </div>
      </header>
      <div class="chat-body">
        {panelOpen && (
          <div
            class="scrim"
            aria-hidden="true"
            onClick={() => setPanelOpen(false)}
          />
        )}
        <aside
          id="side-panel"
          ref={panel}
          tabIndex={-1}
          class={panelOpen ? "side-panel open" : "side-panel"}
          aria-label="Rooms and people"
        >
          <p class="panel-me">
            <Avatar user={user} size="sm" />
            <span class="panel-me-name">
              <span class="sr-only">Signed in as</span> {user.displayName}
            </span>
          </p>
          <NotificationsToggle />
          <SearchPanel
            myId={user.id}
            stale={stale}
            onSearch={chat.search}
            onOpen={async (room, seq) => {
              await chat.showInContext(room, seq);
              setPanelOpen(false);
            }}
          />
          <Invitations
            invitations={chat.invitations}
            onJoin={after(chat.joinRoom)}
            onDecline={chat.declineInvitation}
          />
          <RoomList
            rooms={chat.rooms}
            current={chat.current.id}
            stale={stale}
            onSelect={select}
            onJoin={after(chat.joinRoom)}
            onCreate={after(chat.createRoom)}
          />
          <RoomDirectory
            joined={new Set(chat.rooms.map((r) => r.id))}
            onBrowse={chat.browseRooms}
            onJoin={after(chat.joinRoom)}
            onOpen={select}
          />
          <OnlineList
            users={chat.online}
            myId={user.id}
            stale={stale}
            onMessage={message}
            blocked={new Set(chat.blocked)}
            onBlock={chat.block}
          />
          {dmError && <p class="panel-error" role="alert">{dmError}</p>}
          <BlockedList users={chat.blocked} onBlock={chat.block} />
        </aside>
        <main class="conversation" aria-labelledby="room-title">
          <RoomHeader
            key={chat.current.id}
            room={chat.current}
            myId={user.id}
            onLeave={() => chat.leaveRoom(chat.current.id)}
            onSetTopic={chat.setTopic}
            actions={chat}
            onSetAccess={chat.setRoomAccess}
            onInvite={chat.invite}
          />
          <div class="conversation-body">
            <ConnectionBanner status={chat.status} onRetry={chat.retryNow} />
            {chat.inContext && (
              <div class="context-bar" role="status">
                <span>Showing a found message and what was around it</span>
                <button type="button" class="small-button" onClick={chat.leaveContext}>
                  Back to the newest
                </button>
              </div>
            )}
            <MessageList
              key={chat.inContext ? `${chat.current.id} context` : chat.current.id}
              entries={chat.entries}
              myId={user.id}
              loading={chat.loadingHistory}
              older={chat.older}
              onLoadOlder={chat.loadOlder}
              actions={{
                myId: user.id,
                owner: chat.current.owner ?? "",
                moderates: chat.current.role === "owner" || chat.current.role === "moderator",
                edit: chat.editMessage,
                delete: chat.deleteMessage,
                react: chat.react,
                // Direct rooms say "Seen" by themselves; a group room tells on request.
                seenBy: chat.current.direct ? undefined : chat.seenBy,
              }}
              seenSeq={chat.current.seenSeq}
              // A found message's page is not the room's newest: reading it marks nothing.
              onSeenNewest={chat.inContext ? undefined : chat.seenNewest}
              focus={chat.focus}
              roomTitle={chat.current.direct ? chat.current.title : `#${chat.current.title}`}
            />
            <p class="typing" aria-live="polite">{typingText(chat.typing)}</p>
          </div>
          <Composer
            key={chat.current.id}
            onSend={chat.send}
            onDraft={chat.draft}
            placeholder={placeholder}
          />
        </main>
      </div>
    </div>
  );
}
