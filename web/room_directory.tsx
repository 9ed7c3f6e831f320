/**
 * "Browse rooms" in the side panel: every public room with its topic and member count, searched
 * by the server as one types (by name or topic), each with a button to join it (or to open it,
 * for a room this user is in already).
 */

import { useEffect, useState } from "preact/hooks";
import type { RoomInfo } from "../client/core/model.ts";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import { ROOM_SEARCH_MAX_LENGTH, roomSearchProblem } from "../protocol/directory.ts";
import { plainWords } from "./failures.ts";

/** The directory's answer to the search typed, or why there is none. */
type Listing =
  | { readonly kind: "loading" }
  | { readonly kind: "rooms"; readonly rooms: readonly RoomInfo[] }
  | { readonly kind: "failed"; readonly error: string };

function DirectoryEntry(
  { room, joined, onJoin, onOpen }: {
    room: RoomInfo;
    joined: boolean;
    onJoin: () => Promise<void>;
    onOpen: () => void;
  },
) {
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const members = room.id === DEFAULT_ROOM
    ? "Everyone"
    : `${room.memberCount ?? 0} ${room.memberCount === 1 ? "member" : "members"}`;
  const join = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await onJoin();
    } catch (err) {
      setError(plainWords(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <li class="directory-entry" data-room={room.id}>
      <div class="directory-text">
        <span class="directory-name">
          <span class="room-hash" aria-hidden="true">#</span>
          {room.id}
        </span>
        <span class="directory-members">{members}</span>
        {room.topic && <p class="directory-topic">{room.topic}</p>}
      </div>
      {joined
        ? (
          <button type="button" class="small-button" onClick={onOpen}>
            Open<span class="sr-only">#{room.id}</span>
          </button>
        )
        : (
          <button type="button" class="small-button" disabled={busy} onClick={() => void join()}>
            Join<span class="sr-only">#{room.id}</span>
          </button>
        )}
      {error && <p class="room-error" role="alert">{error}</p>}
    </li>
  );
}

export function RoomDirectory(
  { joined, onBrowse, onJoin, onOpen }: {
    /** Ids of the rooms this user is in. */
    joined: ReadonlySet<string>;
    /** The server's directory: rooms whose name or topic holds `query`. */
    onBrowse: (query: string) => Promise<readonly RoomInfo[]>;
    onJoin: (room: string) => Promise<void>;
    onOpen: (room: string) => void;
  },
) {
  const [open, setOpen] = useState(false);
  const [query, setQuery] = useState("");
  const [listing, setListing] = useState<Listing>({ kind: "loading" });
  const problem = roomSearchProblem(query.trim());

  useEffect(() => {
    if (!open || problem) return;
    // A newer search replaces this one: its answer must not overwrite the newer one's.
    const stop = new AbortController();
    setListing({ kind: "loading" });
    onBrowse(query.trim()).then(
      (rooms) => !stop.signal.aborted && setListing({ kind: "rooms", rooms }),
      (err) => !stop.signal.aborted && setListing({ kind: "failed", error: plainWords(err) }),
    );
    return () => stop.abort();
  }, [open, query, problem]);

  return (
    <div class="directory">
      <button
        type="button"
        class="small-button directory-toggle"
        aria-expanded={open ? "true" : "false"}
        aria-controls="room-directory"
        onClick={() => setOpen((was) => !was)}
      >
        Browse rooms
      </button>
      {open && (
        <div id="room-directory" class="directory-body" role="region" aria-label="Room directory">
          <label for="directory-search" class="sr-only">Search rooms</label>
          <input
            id="directory-search"
            type="search"
            placeholder="Search rooms by name or topic"
            maxLength={ROOM_SEARCH_MAX_LENGTH}
            autoComplete="off"
            spellcheck={false}
            value={query}
            aria-invalid={problem ? "true" : undefined}
            onInput={(event) =>
              setQuery(event.currentTarget.value)}
          />
          {problem
            ? <p class="room-error" role="alert">Cannot search: {problem}</p>
            : listing.kind === "failed"
            ? <p class="room-error" role="alert">{listing.error}</p>
            : listing.kind === "loading"
            ? <p class="panel-note">Looking…</p>
            : listing.rooms.length === 0
            ? <p class="panel-note">No room matches.</p>
            : (
              <ul class="directory-list" aria-busy="false">
                {listing.rooms.map((room) => (
                  <DirectoryEntry
                    key={room.id}
                    room={room}
                    joined={room.id === DEFAULT_ROOM || joined.has(room.id)}
                    onJoin={() => onJoin(room.id)}
                    onOpen={() =>
                      onOpen(room.id)}
                  />
                ))}
              </ul>
            )}
        </div>
      )}
    </div>
  );
}
