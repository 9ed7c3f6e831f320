/**
 * Blocking on the page: a Block / Unblock button beside a person, and the side panel's list of
 * the people the reader blocked, each with Unblock. The session (client/core) asks the server;
 * the messages of a blocked person leave the conversation at once (`useChat`).
 */

import { useState } from "preact/hooks";
import { plainWords } from "./failures.ts";

/** "Block" for someone not blocked, "Unblock" for someone blocked; a refusal shows as a tooltip. */
export function BlockButton(
  { userId, name, blocked, onBlock }: {
    userId: string;
    name: string;
    blocked: boolean;
    onBlock: (userId: string, blocked: boolean) => Promise<void>;
  },
) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const verb = blocked ? "Unblock" : "Block";
  return (
    <button
      type="button"
      class="small-button block-button"
      data-blocked={blocked ? "true" : "false"}
      disabled={busy}
      aria-label={`${verb} ${name}`}
      title={error ??
        (blocked
          ? `Show ${name}'s messages again and let them message you`
          : `Hide ${name}'s messages and refuse their direct messages`)}
      onClick={() => {
        setBusy(true);
        setError(undefined);
        onBlock(userId, !blocked).catch((err) => setError(plainWords(err)))
          .finally(() => setBusy(false));
      }}
    >
      {verb}
    </button>
  );
}

/** The people the reader blocked, with Unblock; nothing while there are none. */
export function BlockedList(
  { users, onBlock }: {
    users: readonly string[];
    onBlock: (userId: string, blocked: boolean) => Promise<void>;
  },
) {
  if (users.length === 0) return null;
  return (
    <section class="panel-section blocked" aria-labelledby="blocked-title">
      <h2 id="blocked-title" class="section-title">
        Blocked <span class="count">{users.length}</span>
      </h2>
      <ul class="online-users blocked-users">
        {users.map((id) => (
          <li key={id} class="online-user" data-blocked-user={id}>
            <span class="online-name">{id}</span>
            <BlockButton userId={id} name={id} blocked onBlock={onBlock} />
          </li>
        ))}
      </ul>
    </section>
  );
}
