/**
 * The checks of the fields a client sends, shared by every call of the chat service. Each takes
 * the action ("Cannot send message") and throws INVALID_ARGUMENT saying it and what is wrong, so
 * a refusal reads the same whichever call made it. Pure: no store, no clock of its own.
 */

import { ChatError, invalidArgument } from "../core/errors.ts";
import {
  DEFAULT_ROOM,
  DIRECT_PREFIX,
  DISPLAY_NAME_MAX_LENGTH,
  MESSAGE_ID_MAX_LENGTH,
  nameKey,
  nameProblem,
  roomNameProblem,
  storableProblem,
  USER_ID_MAX_LENGTH,
} from "../protocol/names.ts";
import type { ClientTimestamp } from "./chat_types.ts";
import { RateLimiter } from "./rate_limiter.ts";

/** The longest direct room id: the prefix, two user ids and the ':' between them. */
const DIRECT_ROOM_MAX_LENGTH = DIRECT_PREFIX.length + 2 * USER_ID_MAX_LENGTH + 1;
/** The range a `google.protobuf.Timestamp` may hold: 0001-01-01 to 9999-12-31 (UTC). */
const TIMESTAMP_MIN_SECONDS = -62_135_596_800;
const TIMESTAMP_MAX_SECONDS = 253_402_300_799;
const encoder = new TextEncoder();

export const permissionDenied = (message: string) => new ChatError("permission_denied", message);
export const notFound = (message: string) => new ChatError("not_found", message);

/** `2.5`, for "retry in 2.5 s". */
export const seconds = (ms: number) => (ms / 1000).toFixed(1);

/** Throws INVALID_ARGUMENT "`action`: `problem`" when there is a problem. */
export function refuse(action: string, problem: string | undefined): void {
  if (problem !== undefined) throw invalidArgument(`${action}: ${problem}`);
}

/** Checks a user id a request carries; returns it trimmed. */
export function checkUserId(action: string, userId: string): string {
  const id = userId.trim();
  refuse(action, nameProblem("the user id", id, USER_ID_MAX_LENGTH));
  return id;
}

/** Checks a display name a request carries (trimmed; "" when it has none). */
export function checkDisplayName(action: string, displayName: string | undefined): string {
  const name = (displayName ?? "").trim();
  if (name !== "") {
    refuse(action, nameProblem("the display name", name, DISPLAY_NAME_MAX_LENGTH));
  }
  return name;
}

/** Checks a room name a request carries (a group room's or a direct room's id); returns it trimmed. */
export function checkRoomName(action: string, room: string, maxRoomNameLength: number): string {
  const id = room.trim();
  refuse(
    action,
    id.startsWith(DIRECT_PREFIX)
      ? nameProblem("the room name", id, DIRECT_ROOM_MAX_LENGTH)
      : roomNameProblem(id, maxRoomNameLength),
  );
  return id;
}

/** Whether `name` is the default room, in any case. */
export const isDefaultRoom = (name: string) => nameKey(name) === DEFAULT_ROOM;

/** Checks a message's content: not blank, at most `maxBytes` in UTF-8, and storable. */
export function checkContent(action: string, content: string, maxBytes: number): void {
  const bytes = encoder.encode(content).length;
  if (bytes === 0 || content.trim() === "") {
    throw invalidArgument(`${action}: the content is empty`);
  }
  if (bytes > maxBytes) {
    throw invalidArgument(`${action}: content is ${bytes} bytes, the limit is ${maxBytes}`);
  }
  refuse(action, storableProblem("the content", content));
}

/** The message id a send carries, checked, or a new one when it has none. */
export function checkMessageId(action: string, messageId: string | undefined): string {
  const id = messageId?.trim() || crypto.randomUUID();
  refuse(action, nameProblem("the message id", id, MESSAGE_ID_MAX_LENGTH));
  return id;
}

/**
 * The server's time `at` for a message, as ISO text; the client's, if it sent one, must be a time
 * a Timestamp can hold and within `maxClockSkewMs` of it.
 */
export function stamp(
  action: string,
  timestamp: ClientTimestamp | null | undefined,
  at: number,
  maxClockSkewMs: number,
): string {
  if (!timestamp || (!timestamp.seconds && !timestamp.nanos)) return new Date(at).toISOString();
  const { seconds: s, nanos } = timestamp;
  if (
    !Number.isSafeInteger(s) || s < TIMESTAMP_MIN_SECONDS || s > TIMESTAMP_MAX_SECONDS ||
    !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999
  ) {
    throw invalidArgument(
      `${action}: the timestamp (seconds=${s}, nanos=${nanos}) is not a time (years 1 to 9999, nanos 0 to 999999999); leave it out and the server stamps the message`,
    );
  }
  const ms = s * 1000 + Math.floor(nanos / 1e6);
  const off = ms - at;
  if (Math.abs(off) > maxClockSkewMs) {
    throw invalidArgument(
      `${action}: the timestamp ${new Date(ms).toISOString()} is ${
        Math.round(Math.abs(off) / 1000)
      } s ${off > 0 ? "ahead of" : "behind"} the server's clock, the limit is ${
        Math.round(maxClockSkewMs / 1000)
      } s; set the clock right, or leave the timestamp out and the server stamps the message`,
    );
  }
  return new Date(at).toISOString();
}

/**
 * Takes one of `userId`'s calls from `limiter`, or refuses `action` with RESOURCE_EXHAUSTED saying
 * the rate and when to retry. Sends, edits, reactions and topic changes share the sending rate
 * (each is told to every member); searches have their own.
 */
export function takeOrRefuse(
  action: string,
  limiter: RateLimiter,
  userId: string,
  rate: { perSecond: number; burst: number; unit: string },
): void {
  const allowed = limiter.take(userId);
  if (allowed.ok) return;
  throw new ChatError(
    "resource_exhausted",
    `${action}: the rate limit is ${rate.perSecond} ${rate.unit} per second (bursts of ${rate.burst}); retry in ${
      seconds(allowed.retryAfterMs)
    } s`,
  );
}

/** The sending rate of `config`, for {@linkcode takeOrRefuse}. */
export function sendingRate(
  config: { rateLimitPerSecond: number; rateLimitBurst: number },
): { perSecond: number; burst: number; unit: string } {
  return { perSecond: config.rateLimitPerSecond, burst: config.rateLimitBurst, unit: "messages" };
}

/**
 * A per-user rate for calls that read far more than a send (searches, "seen by" lookups), each
 * kind with a budget of its own under search's settings.
 */
export class LookupRate {
  readonly #limiter: RateLimiter;
  readonly #rate: { perSecond: number; burst: number; unit: string };

  constructor(config: { searchRatePerSecond: number; searchBurst: number }, unit: string) {
    this.#limiter = new RateLimiter({
      ratePerSecond: config.searchRatePerSecond,
      burst: config.searchBurst,
    });
    this.#rate = { perSecond: config.searchRatePerSecond, burst: config.searchBurst, unit };
  }

  /** Takes one of `userId`'s lookups, or refuses `action` (see {@linkcode takeOrRefuse}). */
  take(action: string, userId: string): void {
    takeOrRefuse(action, this.#limiter, userId, this.#rate);
  }
}
