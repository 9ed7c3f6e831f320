/**
 * The stored message a call names (`room`, `seq`), for the calls that change one: editing,
 * deleting and reacting (and, without the rate, for asking who saw it). Each of them is told to every member, so each counts against the
 * sender's rate like a send.
 */

import type { Config } from "../core/config.ts";
import { ChatError, invalidArgument } from "../core/errors.ts";
import type { ChatMessage } from "../core/types.ts";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import type { Store } from "../store/store.ts";
import type { RoomLogs } from "../bus/bus.ts";
import { sendingRate, takeOrRefuse } from "./chat_checks.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { RateLimiter } from "./rate_limiter.ts";

export interface TargetOptions {
  store: Pick<Store, "message">;
  bus: Pick<RoomLogs, "stored">;
  limiter: RateLimiter;
  rooms: Rooms;
  config: Pick<Config, "rateLimitPerSecond" | "rateLimitBurst">;
}

/**
 * Message `seq` of `room` (empty: the default room), which `userId` must be a member of; refuses
 * `action` with INVALID_ARGUMENT for a bad `seq`, the room's refusals, RESOURCE_EXHAUSTED past
 * the rate, NOT_FOUND when there is no such message.
 */
export async function targetMessage(
  options: TargetOptions,
  action: string,
  userId: string,
  request: { room: string; seq: number },
): Promise<ChatMessage> {
  const { limiter, rooms, config } = options;
  if (!Number.isSafeInteger(request.seq) || request.seq < 1) {
    throw invalidArgument(`${action}: seq is ${request.seq}; messages are numbered from 1`);
  }
  const room = request.room.trim()
    ? await rooms.memberRoom(action, request.room, userId)
    : DEFAULT_ROOM;
  takeOrRefuse(action, limiter, userId, sendingRate(config));
  const message = await storedMessage(options, room, request.seq);
  if (!message) {
    throw new ChatError("not_found", `${action}: ${room} has no message ${request.seq}`);
  }
  return message;
}

/**
 * Message `seq` of `room` as stored. Gateways show a message before the processors store it: one
 * the store does not have yet may be on its way, so the store is asked again once it caught up
 * with what this gateway showed.
 */
export async function storedMessage(
  options: { store: Pick<Store, "message">; bus: Pick<RoomLogs, "stored"> },
  room: string,
  seq: number,
): Promise<ChatMessage | undefined> {
  const { store, bus } = options;
  const message = await store.message(room, seq);
  if (message) return message;
  await bus.stored(room);
  return await store.message(room, seq);
}
