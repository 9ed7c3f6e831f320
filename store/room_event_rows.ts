/**
 * Room events as the SQL adapters keep them: one row per event in `room_events`, its kind
 * (created, joined, left, or a moderation action) in one column, and back.
 */

import { ACCESS_ACTIONS } from "../protocol/room_actions.ts";
import { ROOM_ACTIONS, type RoomAction } from "../core/types.ts";
import { refuseNul } from "./rows.ts";
import { roomEventKind, type StoredRoomEvent } from "./store.ts";

/** What a row of `room_events` holds, in column order. */
export const ROOM_EVENT_COLUMNS =
  "room_id, kind, user_id, display_name, actor_id, actor_name, detail, until, at";

export interface RoomEventRow {
  room_id: string;
  kind: string;
  user_id: string;
  display_name: string;
  actor_id: string;
  actor_name: string;
  detail: string | null;
  until: string | null;
  at: string;
}

/** The values of a row for `event`, in {@linkcode ROOM_EVENT_COLUMNS} order. */
export function roomEventValues(event: StoredRoomEvent): (string | null)[] {
  const values = {
    room: event.room,
    userId: event.userId,
    displayName: event.displayName,
    actorId: event.actorId ?? "",
    actorName: event.actorName ?? "",
    detail: event.detail ?? "",
    until: event.until ?? "",
    at: event.at,
  };
  refuseNul("store room event", values);
  return [
    event.room,
    roomEventKind(event),
    event.userId,
    event.displayName,
    values.actorId,
    values.actorName,
    event.detail ?? null,
    event.until ?? null,
    event.at,
  ];
}

export function toRoomEvent(row: RoomEventRow): StoredRoomEvent {
  const action = (ROOM_ACTIONS as readonly string[]).includes(row.kind)
    ? row.kind as RoomAction
    : undefined;
  return {
    room: row.room_id,
    userId: row.user_id,
    displayName: row.display_name,
    // Access events (an invitation, invite-only, open) change no membership.
    joined: row.kind !== "left" && row.kind !== "removed" && !ACCESS_ACTIONS.has(row.kind),
    ...(row.kind === "created" ? { created: true } : {}),
    ...(action ? { action } : {}),
    ...(row.actor_id ? { actorId: row.actor_id, actorName: row.actor_name || row.actor_id } : {}),
    ...(row.detail !== null ? { detail: row.detail } : {}),
    ...(row.until ? { until: row.until } : {}),
    at: row.at,
  };
}
