/** Who is online now: from ListOnline, kept current by presence events. */

import type { ChatUser } from "./chat_connection.ts";
import { Avatar } from "./icons.tsx";

export function OnlineList(
  { users, myId, stale }: { users: readonly ChatUser[]; myId: string; stale: boolean },
) {
  return (
    <section class={stale ? "online stale" : "online"} aria-labelledby="online-title">
      <h2 id="online-title" class="online-title">
        Online now <span class="count">{users.length}</span>
      </h2>
      {stale && <p class="online-note">Last known while reconnecting</p>}
      <ul class="online-users" aria-busy={stale ? "true" : undefined}>
        {users.map((u) => (
          <li key={u.id} class="online-user" data-user={u.id}>
            <span class="presence-avatar">
              <Avatar user={u} size="sm" />
              <span class="presence-dot" aria-hidden="true" />
            </span>
            <span class="online-name">{u.displayName}</span>
            {u.id === myId && <span class="you-tag">you</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}
