/**
 * "alice is typing…" on a client: who is typing in each room, as the stream tells it, each
 * dropped by itself when the server's expiry passes (a typer whose client vanished never says
 * "stopped"); and this user's own typing, told to the server while the draft changes (again every
 * `TYPING_REFRESH_MS` while it goes on), and "stopped" when the draft is sent or cleared, or
 * after `TYPING_IDLE_MS` without a key.
 */

import type { Clock } from "./clock.ts";
import type { ChatUser, TypingEvent } from "./model.ts";

/**
 * How often "typing" is told again while the user keeps typing: the server's gate passes one
 * every 1.5 s, and receivers drop it after 6 s without one.
 */
export const TYPING_REFRESH_MS = 2000;
/** This long without a key, the user counts as stopped. */
export const TYPING_IDLE_MS = 5000;
/** How long a "typing" holds when the server gives no expiry. */
const DEFAULT_EXPIRY_MS = 6000;
/** The longest a server may make a "typing" hold. */
const MAX_EXPIRY_MS = 30_000;

interface Typer {
  readonly user: ChatUser;
  readonly timer: number;
}

/** Who is typing in each room, in the order they started. */
export class TypingBoard {
  readonly #clock: Clock;
  readonly #changed: (room: string) => void;
  readonly #rooms = new Map<string, Map<string, Typer>>();

  /** `changed` hears of every room whose list of typers changed. */
  constructor(clock: Clock, changed: (room: string) => void) {
    this.#clock = clock;
    this.#changed = changed;
  }

  /** The stream said `event.user` started or stopped typing in `event.room`. */
  seen(event: TypingEvent): void {
    if (!event.typing) return this.stopped(event.room, event.user.id);
    const ms = Math.min(event.expiresInMs || DEFAULT_EXPIRY_MS, MAX_EXPIRY_MS);
    let typers = this.#rooms.get(event.room);
    if (!typers) this.#rooms.set(event.room, typers = new Map());
    const before = typers.get(event.user.id);
    if (before) this.#clock.clearTimeout(before.timer);
    const timer = this.#clock.setTimeout(() => this.stopped(event.room, event.user.id), ms);
    typers.set(event.user.id, { user: event.user, timer });
    if (before?.user.displayName !== event.user.displayName) this.#changed(event.room);
  }

  /** `userId` stopped typing in `room` (said so, sent the message, or expired). */
  stopped(room: string, userId: string): void {
    const typers = this.#rooms.get(room);
    const typer = typers?.get(userId);
    if (!typers || !typer) return;
    this.#clock.clearTimeout(typer.timer);
    typers.delete(userId);
    if (typers.size === 0) this.#rooms.delete(room);
    this.#changed(room);
  }

  /** Who is typing in `room`, in the order they started. */
  typers(room: string): ChatUser[] {
    return [...this.#rooms.get(room)?.values() ?? []].map((t) => t.user);
  }

  /** Forgets everybody (the session stopped), without telling. */
  clear(): void {
    for (const typers of this.#rooms.values()) {
      for (const typer of typers.values()) this.#clock.clearTimeout(typer.timer);
    }
    this.#rooms.clear();
  }
}

/** This user's typing: what to tell the server as the draft changes. */
export class Typist {
  readonly #clock: Clock;
  readonly #tell: (room: string, typing: boolean) => void;
  /** The room told "typing", and when. */
  #typing: { room: string; at: number } | undefined;
  #idle: number | undefined;

  constructor(clock: Clock, tell: (room: string, typing: boolean) => void) {
    this.#clock = clock;
    this.#tell = tell;
  }

  /** The draft for `room` is now `text` (after a key, a paste, a send that cleared it). */
  draft(room: string, text: string): void {
    if (text.trim() === "") return this.stop();
    if (this.#typing && this.#typing.room !== room) this.stop();
    const now = this.#clock.now();
    if (!this.#typing || now - this.#typing.at >= TYPING_REFRESH_MS) {
      this.#typing = { room, at: now };
      this.#tell(room, true);
    }
    if (this.#idle !== undefined) this.#clock.clearTimeout(this.#idle);
    this.#idle = this.#clock.setTimeout(() => this.stop(), TYPING_IDLE_MS);
  }

  /** Tells "stopped" if "typing" was told. */
  stop(): void {
    if (this.#idle !== undefined) this.#clock.clearTimeout(this.#idle);
    this.#idle = undefined;
    const typing = this.#typing;
    this.#typing = undefined;
    if (typing) this.#tell(typing.room, false);
  }
}

/** "alice is typing…", "alice and ben are typing…", "several people are typing…", or "". */
export function typingText(users: readonly ChatUser[]): string {
  const [a, b] = users.map((u) => u.displayName || u.id);
  switch (users.length) {
    case 0:
      return "";
    case 1:
      return `${a} is typing…`;
    case 2:
      return `${a} and ${b} are typing…`;
    default:
      return "several people are typing…";
  }
}
