/**
 * A group room's members in its header ("Members"), each with their role, and for the room's
 * owner and moderators what they may do to each: make a moderator (or a member again, the owner
 * only), mute for a while or unmute, remove. The server checks every action again; a refusal
 * shows in its words. A muted reader sees until when.
 */

import { useState } from "preact/hooks";
import type { RoomInfo } from "../client/core/model.ts";
import { clockTime } from "../client/core/room_events.ts";
import { plainWords } from "./failures.ts";

/** The mutes offered, in seconds. */
const MUTE_CHOICES: readonly [string, number][] = [
  ["10 minutes", 600],
  ["1 hour", 3600],
  ["1 day", 86_400],
  ["1 week", 604_800],
];

export interface MemberActions {
  setRole(userId: string, role: "moderator" | "member"): Promise<void>;
  removeMember(userId: string): Promise<void>;
  muteMember(userId: string, seconds: number): Promise<void>;
}

export function RoomMembers(
  { room, myId, actions }: { room: RoomInfo; myId: string; actions: MemberActions },
) {
  const [error, setError] = useState<string | undefined>(undefined);
  const [mute, setMute] = useState(MUTE_CHOICES[0]![1]);
  const owner = room.owner ?? "";
  const moderators = new Set(room.moderators ?? []);
  const mine = room.role ?? "member";
  const roleOf = (id: string) =>
    id === owner ? "owner" : moderators.has(id) ? "moderator" : "member";
  /** Whether this reader may act on `id`: an owner on anyone else, a moderator on members. */
  const mayActOn = (id: string) =>
    id !== myId &&
    (mine === "owner" ? id !== owner : mine === "moderator" && roleOf(id) === "member");
  const act = (call: Promise<void>) => {
    setError(undefined);
    call.catch((err) => setError(plainWords(err)));
  };
  return (
    <>
      {room.mutedUntil && room.mutedUntil.getTime() > Date.now() && (
        <p class="room-muted" role="status">
          You are muted here until {clockTime(room.mutedUntil)}
        </p>
      )}
      <details class="room-members">
        <summary>Members</summary>
        {(mine === "owner" || mine === "moderator") && (
          <label class="mute-choice">
            Mute for{" "}
            <select
              value={mute}
              onChange={(event) => setMute(Number(event.currentTarget.value))}
            >
              {MUTE_CHOICES.map(([label, seconds]) => (
                <option key={seconds} value={seconds}>{label}</option>
              ))}
            </select>
          </label>
        )}
        <ul class="member-list" aria-label="Members">
          {room.members.map((id) => (
            <li key={id} class="member">
              <span class="member-name">{id === myId ? `${id} (you)` : id}</span>
              {roleOf(id) !== "member" && <span class="member-role">{roleOf(id)}</span>}
              {mayActOn(id) && (
                <span class="member-actions">
                  {mine === "owner" && (
                    <button
                      type="button"
                      class="small-button"
                      onClick={() =>
                        act(
                          actions.setRole(id, roleOf(id) === "moderator" ? "member" : "moderator"),
                        )}
                    >
                      {roleOf(id) === "moderator" ? "Make member" : "Make moderator"}
                    </button>
                  )}
                  <button
                    type="button"
                    class="small-button"
                    onClick={() => act(actions.muteMember(id, mute))}
                  >
                    Mute
                  </button>
                  <button
                    type="button"
                    class="small-button"
                    onClick={() => act(actions.muteMember(id, 0))}
                  >
                    Unmute
                  </button>
                  <button
                    type="button"
                    class="small-button"
                    onClick={() => act(actions.removeMember(id))}
                  >
                    Remove
                  </button>
                </span>
              )}
            </li>
          ))}
        </ul>
        {error && <p class="room-header-error" role="alert">{error}</p>}
      </details>
    </>
  );
}
