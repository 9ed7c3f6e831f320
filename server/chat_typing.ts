/**
 * "alice is typing…" in the chat service: SetTyping checks who calls and where, coalesces the
 * signals (`TypingGate`) and sends what passes to every gateway as a `typing` delivery, straight
 * over the bus's fanout: never through a processor, never stored. A user whose last stream on this
 * gateway closes stops typing everywhere; a typer that vanished with its gateway expires at the
 * receivers by itself (`expiresInMs`).
 */

import { ChatError, describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { TypingEvent } from "../core/types.ts";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import type { Fanout } from "../bus/bus.ts";
import type { Callers } from "./chat_callers.ts";
import { seconds } from "./chat_checks.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller, StreamHandle } from "./chat_types.ts";
import type { Hub } from "./hub.ts";
import { RateLimiter } from "./rate_limiter.ts";
import { TypingGate } from "./typing_gate.ts";
import type { RoomRoles } from "./room_roles.ts";

/**
 * How long a receiver shows a `true`: clients repeat it every 2 s while typing
 * (client/core/typing.ts), so two repeats may be lost before it goes.
 */
const TYPING_EXPIRES_MS = 6000;
/**
 * How often a `true` goes on to the bus while it stays true: below the clients' 2 s, so that
 * each repeat passes however the network spaces them.
 */
const TYPING_REFRESH_MS = 1500;
/** After a `false` (a message sent), how soon typing again shows. */
const TYPING_RESTART_MS = 1000;
/**
 * SetTyping calls a user may make per second (and at once): far above what a client needs (one
 * every two seconds while typing, one when it stops), so that only a flood is refused.
 */
const CALLS_PER_SECOND = 5;
const CALLS_BURST = 10;

export interface TypingOptions {
  bus: Pick<Fanout, "deliver">;
  hub: Hub;
  callers: Callers;
  rooms: Rooms;
  roles: RoomRoles;
  logger: Logger;
  /** The server's clock, in milliseconds. */
  now: () => number;
}

export class Typing {
  readonly #o: TypingOptions;
  readonly #gate = new TypingGate({
    refreshMs: TYPING_REFRESH_MS,
    restartMs: TYPING_RESTART_MS,
    expiresMs: TYPING_EXPIRES_MS,
  });
  readonly #limiter = new RateLimiter({ ratePerSecond: CALLS_PER_SECOND, burst: CALLS_BURST });

  constructor(options: TypingOptions) {
    this.#o = options;
  }

  /**
   * `caller` started (`typing`) or stopped typing in `room` ("" is the default room). Refused
   * like a send to that room would be (not a member: PERMISSION_DENIED, no such room:
   * NOT_FOUND), and past `CALLS_PER_SECOND` (RESOURCE_EXHAUSTED) before the store is asked.
   */
  async setTyping(caller: Caller, room: string, typing: boolean): Promise<void> {
    const { callers, rooms } = this.#o;
    const action = "Cannot set typing";
    const me = await callers.identify(caller, undefined, action);
    const named = rooms.checkName(action, room.trim() || DEFAULT_ROOM);
    const allowed = this.#limiter.take(me.userId);
    if (!allowed.ok) {
      throw new ChatError(
        "resource_exhausted",
        `${action}: the limit is ${CALLS_PER_SECOND} calls per second (${CALLS_BURST} at once); retry in ${
          seconds(allowed.retryAfterMs)
        } s`,
      );
    }
    const id = await rooms.memberRoom(action, named, me.userId);
    // Stopping is always allowed: a muted member's client may still clear what it showed.
    if (typing) await this.#o.roles.refuseMuted(action, id, me.userId);
    if (!this.#gate.pass(me.userId, id, typing, this.#o.now())) return;
    await this.#send({
      room: id,
      userId: me.userId,
      displayName: callers.nameOf(caller, me),
      typing,
      expiresInMs: typing ? TYPING_EXPIRES_MS : 0,
    });
  }

  /** `handle`, which on closing ends its user's typing once no stream of theirs is left here. */
  watch(handle: StreamHandle): StreamHandle {
    return {
      ...handle,
      close: () => {
        handle.close();
        this.#streamClosed(handle.userId);
      },
    };
  }

  #streamClosed(userId: string): void {
    if (this.#o.hub.countOf(userId) > 0) return;
    for (const room of this.#gate.end(userId, this.#o.now())) {
      // Only the user id matters to a receiver dropping a typer; the name is gone with the stream.
      void this.#send({ room, userId, displayName: userId, typing: false, expiresInMs: 0 });
    }
  }

  /** To every gateway; when the bus cannot take it, to this gateway's streams at least. */
  async #send(event: TypingEvent): Promise<void> {
    try {
      await this.#o.bus.deliver({ type: "typing", event });
    } catch (err) {
      this.#o.logger.debug("Typing not published", {
        room: event.room,
        error: describeError(err),
      });
      this.#o.hub.typing(event);
    }
  }
}
