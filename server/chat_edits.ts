/**
 * Editing and deleting messages in the chat service. A sender edits or deletes their own
 * message (not while muted in its room); a room's owner (its creator) or a moderator deletes any
 * message in it (`room_roles.ts`). The change is stored first
 * (a deleted message's text is kept nowhere), then told to every gateway, whose streams that
 * asked for events show it; history and replays show the stored result.
 */

import type { Config } from "../core/config.ts";
import { ChatError, describeError, unavailable } from "../core/errors.ts";
import type { ChatMessage, MessageChange } from "../core/types.ts";
import type { Bus } from "../bus/bus.ts";
import type { Store } from "../store/store.ts";
import type { Callers } from "./chat_callers.ts";
import { checkContent } from "./chat_checks.ts";
import { targetMessage } from "./chat_targets.ts";
import type { Rooms } from "./chat_rooms.ts";
import type { Caller } from "./chat_types.ts";
import type { Mentions } from "./mentions.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import type { RoomRoles } from "./room_roles.ts";

export interface EditRequest {
  readonly room: string;
  readonly seq: number;
  readonly content: string;
}

export interface DeleteRequest {
  readonly room: string;
  readonly seq: number;
}

export interface EditsOptions {
  bus: Pick<Bus, "deliver" | "ready" | "stored">;
  store: Pick<Store, "message" | "changeMessage">;
  limiter: RateLimiter;
  callers: Callers;
  rooms: Rooms;
  mentions: Mentions;
  roles: RoomRoles;
  config: Pick<Config, "maxMessageBytes" | "rateLimitPerSecond" | "rateLimitBurst">;
  /** The server's clock, in milliseconds since the epoch. */
  now: () => number;
}

export class Edits {
  readonly #options: EditsOptions;

  constructor(options: EditsOptions) {
    this.#options = options;
  }

  async edit(caller: Caller, request: EditRequest): Promise<ChatMessage> {
    const action = "Cannot edit message";
    checkContent(action, request.content, this.#options.config.maxMessageBytes);
    const { me, message } = await this.#target(caller, action, request);
    if (message.userId !== me.userId) {
      throw new ChatError(
        "permission_denied",
        `${action}: message ${request.seq} of ${message.room} is ${message.userId}'s; only its sender edits it`,
      );
    }
    if (message.deleted) {
      throw new ChatError(
        "failed_precondition",
        `${action}: message ${request.seq} of ${message.room} was deleted`,
      );
    }
    await this.#options.roles.refuseMuted(action, message.room, me.userId);
    const mentions = await this.#options.mentions.find(message.room, request.content);
    const changed = await this.#apply(action, me, message, {
      deleted: false,
      content: request.content,
      ...(mentions.length > 0 ? { mentions } : {}),
    });
    if (changed.deleted) {
      throw new ChatError(
        "failed_precondition",
        `${action}: message ${request.seq} of ${message.room} was deleted meanwhile`,
      );
    }
    return changed;
  }

  async delete(caller: Caller, request: DeleteRequest): Promise<void> {
    const action = "Cannot delete message";
    const { me, message } = await this.#target(caller, action, request);
    if (
      message.userId !== me.userId &&
      !(await this.#options.roles.mayModerate(message.room, me.userId))
    ) {
      throw new ChatError(
        "permission_denied",
        `${action}: message ${request.seq} of ${message.room} is ${message.userId}'s; only its sender or the room's owner and moderators delete it`,
      );
    }
    // Deleting twice is not an error: the message is gone either way, and a retry is safe.
    if (!message.deleted) await this.#apply(action, me, message, { deleted: true, content: "" });
  }

  /** The caller and the message they name, in a room they are a member of. */
  async #target(caller: Caller, action: string, request: { room: string; seq: number }) {
    const { callers } = this.#options;
    const me = await callers.identify(caller, undefined, action);
    const message = await targetMessage(this.#options, action, me.userId, request);
    return { me: { ...me, displayName: callers.nameOf(caller, me) }, message };
  }

  /** Stores the change, then tells every gateway; UNAVAILABLE when the bus cannot say it will. */
  async #apply(
    action: string,
    me: { userId: string; displayName: string },
    message: ChatMessage,
    what: Pick<MessageChange, "deleted" | "content" | "mentions">,
  ): Promise<ChatMessage> {
    const { bus, store, now } = this.#options;
    if (!bus.ready()) throw unavailable(`${action}: Kafka is unavailable; try again shortly`);
    const change: MessageChange = {
      room: message.room,
      seq: message.seq,
      ...what,
      at: new Date(now()).toISOString(),
      byUserId: me.userId,
      byDisplayName: me.displayName,
    };
    const changed = await store.changeMessage(change);
    if (!changed) {
      throw new ChatError("not_found", `${action}: ${message.room} has no message ${message.seq}`);
    }
    try {
      await bus.deliver({ type: "message-change", change });
    } catch (err) {
      throw unavailable(
        `${action}: it is saved, but not every reader was told (${
          describeError(err)
        }); retrying is safe`,
        err,
      );
    }
    return changed;
  }
}
