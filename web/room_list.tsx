/**
 * The rooms in the side panel: "general", this user's rooms and direct
 * conversations, each with its unread count; and a field to join or create a
 * room by name.
 */

import { useState } from "preact/hooks";
import { plainWords } from "./failures.ts";
import { Avatar } from "./icons.tsx";
import type { RoomView } from "./use_chat.ts";

function RoomButton(
  { room, current, stale, onSelect }: {
    room: RoomView;
    current: boolean;
    /** The online list is the last known one (reconnecting). */
    stale: boolean;
    onSelect: () => void;
  },
) {
  return (
    <li>
      <button
        type="button"
        class={room.unread > 0 ? "room-item has-unread" : "room-item"}
        aria-current={current ? "true" : undefined}
        data-room={room.id}
        data-online={room.direct ? String(room.online) : undefined}
        onClick={onSelect}
      >
        {room.direct
          ? (
            <span class={stale ? "presence-avatar stale" : "presence-avatar"}>
              <Avatar user={{ id: room.title, displayName: room.title }} size="xs" />
              {room.online && <span class="presence-dot" aria-hidden="true" />}
            </span>
          )
          : <span class="room-hash" aria-hidden="true">#</span>}
        <span class="room-name">{room.title}</span>
        {room.online && <span class="sr-only">, online</span>}
        {room.mentions > 0 && (
          <>
            <span class="mention-badge" aria-hidden="true">@{room.mentions > 9 ? "9+" : ""}</span>
            <span class="sr-only">
              , {room.mentions} {room.mentions === 1 ? "mention" : "mentions"}
            </span>
          </>
        )}
        {room.unread > 0 && (
          <>
            <span class="unread" aria-hidden="true">{room.unread > 99 ? "99+" : room.unread}</span>
            <span class="sr-only">, {room.unread} unread</span>
          </>
        )}
      </button>
    </li>
  );
}

function JoinRoomForm(
  { onJoin, onCreate }: {
    onJoin: (name: string) => Promise<void>;
    onCreate: (name: string) => Promise<void>;
  },
) {
  const [name, setName] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  async function run(action: (name: string) => Promise<void>) {
    const trimmed = name.trim();
    if (trimmed === "") {
      setError("Enter a room name.");
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await action(trimmed);
      setName("");
    } catch (err) {
      setError(plainWords(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form
      class="room-form"
      aria-label="Join or create a room"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        void run(onJoin);
      }}
    >
      <label for="room-input" class="sr-only">Room name</label>
      <input
        id="room-input"
        type="text"
        placeholder="Room name"
        autoCapitalize="none"
        autoComplete="off"
        spellcheck={false}
        value={name}
        aria-invalid={error ? "true" : undefined}
        aria-describedby={error ? "room-error" : undefined}
        onInput={(event) => {
          setName(event.currentTarget.value);
          setError(undefined);
        }}
      />
      <div class="room-form-buttons">
        <button type="submit" class="small-button" disabled={busy}>Join</button>
        <button
          type="button"
          class="small-button"
          disabled={busy}
          onClick={() => void run(onCreate)}
        >
          Create
        </button>
      </div>
      {error && <p id="room-error" class="room-error" role="alert">{error}</p>}
    </form>
  );
}

export function RoomList(
  { rooms, current, stale = false, onSelect, onJoin, onCreate }: {
    rooms: readonly RoomView[];
    current: string;
    stale?: boolean;
    onSelect: (room: string) => void;
    onJoin: (name: string) => Promise<void>;
    onCreate: (name: string) => Promise<void>;
  },
) {
  const groups = rooms.filter((r) => !r.direct);
  const direct = rooms.filter((r) => r.direct);
  return (
    <>
      <section class="panel-section" aria-labelledby="rooms-title">
        <h2 id="rooms-title" class="section-title">Rooms</h2>
        <ul class="room-list">
          {groups.map((r) => (
            <RoomButton
              key={r.id}
              room={r}
              current={r.id === current}
              stale={stale}
              onSelect={() => onSelect(r.id)}
            />
          ))}
        </ul>
        <JoinRoomForm onJoin={onJoin} onCreate={onCreate} />
      </section>
      <section class="panel-section" aria-labelledby="direct-title">
        <h2 id="direct-title" class="section-title">Direct messages</h2>
        {direct.length === 0
          ? <p class="panel-note">Message someone from the list of who is online.</p>
          : (
            <ul class="room-list">
              {direct.map((r) => (
                <RoomButton
                  key={r.id}
                  room={r}
                  current={r.id === current}
                  stale={stale}
                  onSelect={() => onSelect(r.id)}
                />
              ))}
            </ul>
          )}
      </section>
    </>
  );
}
