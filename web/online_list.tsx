/** Who is online now: from ListOnline, kept current by presence events; each can be messaged. */

import type { ChatUser } from "../client/core/model.ts";
import { BlockButton } from "./blocking.tsx";
import { Avatar, MessageIcon } from "./icons.tsx";

export function OnlineList(
  { users, myId, stale, onMessage, blocked, onBlock }: {
    users: readonly ChatUser[];
    myId: string;
    stale: boolean;
    /** Opens the direct conversation with a user. */
    onMessage: (user: ChatUser) => void;
    /** The ids the reader blocked, and how to block or unblock one (see blocking.tsx). */
    blocked?: ReadonlySet<string>;
    onBlock?: (userId: string, blocked: boolean) => Promise<void>;
  },
) {
  return (
    <section
      class={stale ? "panel-section online stale" : "panel-section online"}
      aria-labelledby="online-title"
    >
      <h2 id="online-title" class="section-title">
        Online now <span class="count">{users.length}</span>
      </h2>
      {stale && <p class="panel-note">Last known while reconnecting</p>}
      <ul class="online-users" aria-busy={stale ? "true" : undefined}>
        {users.map((u) => (
          <li key={u.id} class="online-user" data-user={u.id}>
            <span class="presence-avatar">
              <Avatar user={u} size="sm" />
              <span class="presence-dot" aria-hidden="true" />
            </span>
            <span class="online-name">{u.displayName}</span>
            {u.id === myId ? <span class="you-tag">you</span> : (
              <button
                type="button"
                class="icon-button dm-button"
                aria-label={`Message ${u.displayName}`}
                title={`Message ${u.displayName}`}
                onClick={() => onMessage(u)}
              >
                <MessageIcon />
              </button>
            )}
            {u.id !== myId && onBlock && (
              <BlockButton
                userId={u.id}
                name={u.displayName}
                blocked={blocked?.has(u.id) ?? false}
                onBlock={onBlock}
              />
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
