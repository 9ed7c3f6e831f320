/**
 * Invite-only rooms on the page: the invitations this user has, in the side panel, each with
 * Join and Decline ("ann invited you to #plans" when the invitation came while the page was
 * open); and for a room's owner, in the room header, an "Invite only" switch and "Invite…" (the
 * server refuses anyone else).
 */

import { useState } from "preact/hooks";
import { plainWords } from "./failures.ts";
import type { InvitationView } from "./use_chat.ts";

/** Runs `action`, keeping the button busy meanwhile and its failure in words. */
function useAction() {
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await action();
    } catch (err) {
      setError(plainWords(err));
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, run, clear: () => setError(undefined) };
}

function Invitation(
  { invitation, onJoin, onDecline }: {
    invitation: InvitationView;
    onJoin: () => Promise<void>;
    onDecline: () => Promise<void>;
  },
) {
  const { error, busy, run } = useAction();
  const { room, from } = invitation;
  return (
    <li class="invitation" data-room={room.id}>
      <p class="invitation-text">
        {from ? `${from} invited you to ` : "You are invited to "}
        <strong>#{room.id}</strong>
        {room.inviteOnly && <span class="invitation-note">invite only</span>}
      </p>
      {room.topic && <p class="directory-topic">{room.topic}</p>}
      <div class="invitation-buttons">
        <button type="button" class="small-button" disabled={busy} onClick={() => run(onJoin)}>
          Join<span class="sr-only">#{room.id}</span>
        </button>
        <button
          type="button"
          class="small-button"
          disabled={busy}
          onClick={() => run(onDecline)}
        >
          Decline<span class="sr-only">the invitation to #{room.id}</span>
        </button>
      </div>
      {error && <p class="room-error" role="alert">{error}</p>}
    </li>
  );
}

/** The side panel's invitations; nothing when there are none. */
export function Invitations(
  { invitations, onJoin, onDecline }: {
    invitations: readonly InvitationView[];
    onJoin: (room: string) => Promise<void>;
    onDecline: (room: string) => Promise<void>;
  },
) {
  if (invitations.length === 0) return null;
  return (
    <section class="panel-section" aria-labelledby="invitations-title">
      <h2 id="invitations-title" class="section-title">Invitations</h2>
      <ul class="room-list invitation-list">
        {invitations.map((invitation) => (
          <Invitation
            key={invitation.room.id}
            invitation={invitation}
            onJoin={() => onJoin(invitation.room.id)}
            onDecline={() => onDecline(invitation.room.id)}
          />
        ))}
      </ul>
    </section>
  );
}

/**
 * The room header's access controls: for everyone, whether the room is invite-only; for its
 * owner (`manager`), the switch and "Invite…".
 */
export function RoomAccess(
  { inviteOnly, manager, onSetAccess, onInvite }: {
    inviteOnly: boolean;
    manager: boolean;
    onSetAccess: (inviteOnly: boolean) => Promise<void>;
    onInvite: (userId: string) => Promise<void>;
  },
) {
  const access = useAction();
  const invite = useAction();
  const [inviting, setInviting] = useState(false);
  const [name, setName] = useState("");
  const [sent, setSent] = useState<string | undefined>(undefined);
  if (!manager) return inviteOnly ? <span class="room-detail">Invite only</span> : null;
  return (
    <div class="room-access">
      <label class="access-toggle">
        <input
          type="checkbox"
          checked={inviteOnly}
          disabled={access.busy}
          onChange={(event) => {
            const wanted = event.currentTarget.checked;
            void access.run(() => onSetAccess(wanted));
          }}
        />
        Invite only
      </label>
      {!inviting && (
        <button
          type="button"
          class="small-button"
          onClick={() => {
            setInviting(true);
            setSent(undefined);
          }}
        >
          Invite…
        </button>
      )}
      {inviting && (
        <form
          class="invite-form"
          aria-label="Invite someone"
          noValidate
          onSubmit={(event) => {
            event.preventDefault();
            const userId = name.trim();
            if (userId === "") return;
            void invite.run(async () => {
              await onInvite(userId);
              setSent(userId);
              setName("");
              setInviting(false);
            });
          }}
        >
          <label for="invite-input" class="sr-only">Username to invite</label>
          <input
            id="invite-input"
            type="text"
            placeholder="Username"
            autoCapitalize="none"
            autoComplete="off"
            spellcheck={false}
            value={name}
            aria-invalid={invite.error ? "true" : undefined}
            onInput={(event) => {
              setName(event.currentTarget.value);
              invite.clear();
            }}
          />
          <button type="submit" class="small-button" disabled={invite.busy}>Invite</button>
          <button type="button" class="small-button" onClick={() => setInviting(false)}>
            Cancel
          </button>
        </form>
      )}
      {sent && <p class="room-access-note" role="status">Invited {sent}</p>}
      {(access.error ?? invite.error) && (
        <p class="room-header-error" role="alert">{access.error ?? invite.error}</p>
      )}
    </div>
  );
}
