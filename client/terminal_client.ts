/**
 * The interactive terminal client, as a function of its inputs: lines typed, a line writer, a
 * clock and the server addresses. A thin view over client/core's `ChatSession`, which keeps the
 * connection (reconnect with backoff, moving on to the next server, resume without gaps or
 * repeats, sign-in and signing in again, the outbox); this file prints what happens and turns
 * lines into messages and commands (./commands.ts). `client/main.ts` wires it to stdin,
 * stdout and signals; the tests drive it with fakes.
 *
 * What users rely on:
 * - "Connected to server as user: ..." is printed once the server has taken the stream (see
 *   ./grpc_transport.ts), so a rejected stream never prints it first.
 * - Lines typed while not connected wait, in order, in a bounded outbox (`maxQueued`, 100) and
 *   go once connected; each keeps its message id, so a send retried after a cut connection is
 *   stored once. A full outbox refuses the line ("! Not sent: ..."); while connected, input
 *   waits for room instead (backpressure). A send the server refuses prints
 *   "! Not sent to #room: <reason>" followed by the line itself, so that it can be typed again,
 *   and is dropped (a line for a room that was left or removed meanwhile, for instance).
 * - Lost connections are retried with exponential backoff and jitter (1 s, 2 s, 4 s, ... at most
 *   15 s, each up to 20% shorter), from the shortest again after a connection was made.
 *   INVALID_ARGUMENT, UNAUTHENTICATED and PERMISSION_DENIED are not retried: exit code 2.
 * - End of input and `/quit` first let waiting lines go out (at most `drainTimeoutMs`) and exit
 *   0; an abort (Ctrl-C) exits 0 at once.
 * - Sign-in: with a password, the first sign-in of a new name creates the account ("Created
 *   account <user>"); SignIn UNIMPLEMENTED (a classic server) or no password means the classic
 *   anonymous stream.
 * - Presence events about our own user are not shown; our own messages are (the server echoes
 *   them, which shows they were stored). Lines go to the current room (`/room`, "general" at
 *   first, only ever one of ours); messages of another room are shown with `#room`, and a
 *   direct room as the other person, `@ann`. Our own room events are not shown (the command
 *   that caused them says what happened), except that somebody opened a direct conversation
 *   with us, or that we left a room elsewhere; nor is the other person joining a direct room
 *   we are opening.
 * - Who else is typing in the current room shows in the prompt, `#general (bob is typing…)> `,
 *   and goes from it by itself; what we type (but a command) shows us typing to the others
 *   (`watchDraft`).
 */

import { DEFAULT_ROOM, directRoomMembers, nameKey } from "../protocol/names.ts";
import type { BackoffOptions } from "./core/backoff.ts";
import { ChatSession } from "./core/chat_session.ts";
import { type Clock, systemClock } from "./core/clock.ts";
import type { RoomEvent } from "./core/model.ts";
import type { Outgoing } from "./core/outbox.ts";
import { directPeer } from "./core/rooms.ts";
import { typingText } from "./core/typing.ts";
import {
  type ConnectionStatus,
  DEFAULT_BACKOFF,
  type SignInEvent,
} from "./core/session_options.ts";
import { type CommandContext, runCommand } from "./commands.ts";
import {
  count,
  formatChange,
  formatDelay,
  formatMessage,
  formatModeration,
  formatPresence,
  formatReaction,
  formatRoomAction,
  formatRoomEvent,
  roomLabel,
  sanitize,
} from "./format.ts";
import { connectChat, grpcTransport, type NativeChat } from "./grpc_transport.ts";

/** How much of a refused line is shown again: enough to retype it, not a screenful. */
const REFUSED_SHOWN = 500;

/**
 * The terminal's reconnect schedule: the default one, except that a made connection is proof
 * enough to start over (it is made only once the server listed us online).
 */
export const TERMINAL_BACKOFF: BackoffOptions = { ...DEFAULT_BACKOFF, stableAfterMs: 0 };

export interface TerminalClientOptions {
  userId: string;
  displayName?: string;
  /** Signs in with it (creating the account the first time); without it, the classic anonymous stream. */
  password?: string;
  /** `host:port` of the gateways, tried in turn: a lost connection moves on to the next one. */
  servers: readonly string[];
  /** The lines typed; its end means Ctrl-D. */
  input: AsyncIterable<string>;
  /** Writes one line (or several, joined by `\n`) for the user. */
  output: (line: string) => void;
  /**
   * Shows where typed lines go, as a prompt (`#general> `, `@ann> `), and who else is typing
   * there (`#general (bob is typing…)> `): called at the start and whenever it changes. For a
   * terminal; without it, no prompt.
   */
  prompt?: (prompt: string) => void;
  /**
   * Hands over a listener for the line being typed (the line editor's, at every key), so that
   * the room's other members see this user typing. Without it, they never do.
   */
  watchDraft?: (listener: (draft: string) => void) => void;
  clock?: Clock;
  /** Aborting it (Ctrl-C) ends the client at once. */
  signal?: AbortSignal;
  connect?: (address: string) => NativeChat;
  backoff?: Partial<BackoffOptions>;
  /** How many lines may wait for a connection. */
  maxQueued?: number;
  /** How long to wait for the channel to become ready before trying again. */
  connectTimeoutMs?: number;
  /** How long to wait for our user to show as online before calling the connection made. */
  confirmTimeoutMs?: number;
  /** How long end of input waits for queued lines to be sent. */
  drainTimeoutMs?: number;
  /** Print a one-time hint after the first connection (for a terminal). */
  interactive?: boolean;
}

/**
 * Runs the client until end of input, `/quit`, an abort, or a refusal that retrying cannot fix;
 * resolves to the exit code (0, or 2 for a refusal). Everything it opened (stream, channel,
 * timers) is closed when it resolves.
 */
export function runTerminalClient(options: TerminalClientOptions): Promise<number> {
  return new TerminalClient(options).run();
}

class TerminalClient implements CommandContext {
  readonly #o: TerminalClientOptions;
  readonly #clock: Clock;
  readonly session: ChatSession;
  readonly write: (line: string) => void;
  readonly stopped: Promise<void>;
  readonly openingDirect = new Set<string>();
  readonly leaving = new Set<string>();
  readonly mine = new Map<string, number>();
  readonly latest = new Map<string, number>();
  /**
   * Direct rooms we opened whose other member's joining is still to come: it is part of the
   * opening, not news. (After reopening a room the other never left, none comes.)
   */
  readonly #addingPeer = new Set<string>();
  #room = DEFAULT_ROOM;
  #finished!: (code: number) => void;
  readonly #exit: Promise<number>;
  #hinted = false;

  constructor(options: TerminalClientOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.write = options.output;
    this.#exit = new Promise((resolve) => this.#finished = resolve);
    this.stopped = this.#exit.then(() => {});
    const transport = { ...options, clock: this.#clock };
    this.session = new ChatSession({
      user: { id: options.userId.trim(), displayName: options.displayName ?? "" },
      endpoints: options.servers,
      connect: (address) => grpcTransport((options.connect ?? connectChat)(address), transport),
      password: options.password,
      backoff: { ...TERMINAL_BACKOFF, ...options.backoff },
      clock: this.#clock,
      maxQueued: options.maxQueued ?? 100,
      onStatus: (status) => this.#status(status),
      onSignIn: (event) => this.#signedIn(event),
      onMessage: (message) => {
        const me = this.session.user.id;
        if (message.userId === me && message.seq > (this.mine.get(message.room) ?? 0)) {
          this.mine.set(message.room, message.seq);
        }
        if (message.seq > (this.latest.get(message.room) ?? 0)) {
          this.latest.set(message.room, message.seq);
        }
        this.write(formatMessage(message, this.now(), this.room, me));
        // Printed in the room lines go to: read (on the user's other devices too).
        if (message.room === this.room && message.seq > 0) {
          this.session.markRead(message.room, message.seq);
        }
      },
      onReaction: (event) => {
        // Taking one back is not news; our own is answered by the command.
        if (event.added && event.user.id !== this.session.user.id) {
          this.write(formatReaction(event, this.room, this.session.user.id));
        }
      },
      onChange: (change) => {
        // Our own changes are answered by the command already.
        if (change.by.id !== this.session.user.id) {
          this.write(formatChange(change, this.room, this.session.user.id));
        }
      },
      onPresence: (user, online) => {
        if (user.id !== this.session.user.id) this.write(formatPresence(user, online));
      },
      onRoomEvent: (event, source) => this.#roomEvent(event, source),
      onRoomAction: (event) => {
        // Our own actions are answered by the command.
        if (event.actor.id !== this.session.user.id) {
          this.write(formatRoomAction(event, this.session.user.id));
        }
      },
      onNotSent: (message, err) => this.#notSent(message, err),
      onTyping: (room) => {
        if (room === this.room) this.#showPrompt();
      },
    });
    options.watchDraft?.((draft) => {
      // A command being typed is no message being written.
      const command = /^\s*\/(?!\/)/.test(draft);
      this.session.typing(this.room, command ? "" : draft);
    });
  }

  now(): number {
    return this.#clock.now();
  }

  /** Where typed lines go. */
  get room(): string {
    return this.#room;
  }

  set room(room: string) {
    this.#room = room;
    this.#showPrompt();
  }

  /** Where typed lines go, and who else is typing there. */
  #showPrompt(): void {
    const typing = sanitize(typingText(this.session.typers(this.#room)));
    const label = roomLabel(this.#room, this.session.user.id);
    this.#o.prompt?.(typing === "" ? `${label}> ` : `${label} (${typing})> `);
  }

  async run(): Promise<number> {
    const external = this.#o.signal;
    if (external?.aborted) return 0;
    const onAbort = () => this.#finish(0);
    external?.addEventListener("abort", onAbort, { once: true });
    this.room = this.#room;
    this.session.start();
    void this.#inputLoop();
    try {
      return await this.#exit;
    } finally {
      external?.removeEventListener("abort", onAbort);
    }
  }

  #finish(code: number): void {
    this.session.stop();
    this.#finished(code);
  }

  #status(status: ConnectionStatus): void {
    switch (status.kind) {
      case "connected":
        this.write(`Connected to server as user: ${this.session.user.id}`);
        if (this.#o.interactive && !this.#hinted) {
          this.#hinted = true;
          this.write("Type a message and press Enter; /help lists the commands.");
        }
        return;
      case "reconnecting": {
        const next = status.next === status.endpoint ? "" : ` to ${status.next}`;
        const delay = formatDelay(status.delayMs);
        this.write(
          status.wasConnected
            ? `Disconnected: ${status.reason}; reconnecting${next} in ${delay}`
            : `Cannot connect to ${status.endpoint}: ${status.reason}; retrying${next} in ${delay}`,
        );
        return;
      }
      case "stopped":
        if (status.error === undefined) return;
        this.write(`! ${status.error}`);
        this.#finish(2);
    }
  }

  #signedIn(event: SignInEvent): void {
    if (event.kind === "classic") {
      this.write(
        `* The server has no sign-in; continuing as ${this.session.user.id} without it`,
      );
    } else if (event.created) {
      this.write(`Created account ${event.user.id}`);
    }
  }

  /** The server refused a line: say why, and show it so that it can be sent again. */
  #notSent(message: Outgoing, err: unknown): void {
    const reason = err instanceof Error ? err.message : String(err);
    const text = sanitize(message.content);
    const shown = text.length > REFUSED_SHOWN
      ? `${text.slice(0, REFUSED_SHOWN)}… (${count(text.length, "character")} in all)`
      : text;
    this.write(
      `! Not sent to ${roomLabel(message.room, this.session.user.id)}: ${reason}\n` +
        `  Your line: ${shown.replaceAll("\n", "\n             ")}`,
    );
  }

  #roomEvent(event: RoomEvent, source: "live" | "history"): void {
    // Kept events from before come with /history, not as news.
    if (source === "history") return;
    const me = this.session.user.id;
    if (event.action !== undefined) return this.#moderated(event);
    if (directRoomMembers(event.room)?.includes(me)) return this.#directEvent(event);
    if (event.user.id !== me) return this.write(formatRoomEvent(event, me));
    if (!event.joined) this.#left(event.room);
  }

  /**
   * A direct room's members change only when one opens it (the opener joins first, then the
   * other, who hears only of their own joining) or leaves it (which blocks it for the other).
   */
  #directEvent(event: RoomEvent): void {
    const room = event.room;
    const me = this.session.user.id;
    const peer = sanitize(directPeer(room, me));
    if (event.user.id === me) {
      if (!event.joined) return this.#left(room);
      if (this.openingDirect.delete(nameKey(directPeer(room, me)))) {
        this.#addingPeer.add(room);
        return;
      }
      return this.write(
        `* ${peer} opened a direct conversation with you; /room @${peer} to answer`,
      );
    }
    if (!event.joined) {
      this.#addingPeer.delete(room);
      return this.write(
        `* ${peer} left your direct conversation: nothing more can be sent to @${peer} until ${peer} opens it again`,
      );
    }
    if (this.#addingPeer.delete(room)) return;
    this.write(`* ${peer} opened your direct conversation again; /room @${peer} to answer`);
  }

  /** An owner or moderator acted in a room of ours: `* ann muted carl until 14:05 in #club`. */
  #moderated(event: RoomEvent): void {
    const me = this.session.user.id;
    this.write(`* ${formatModeration(event, me, new Date(this.now()))}`);
    if (event.action === "removed" && event.user.id === me) {
      this.leaving.delete(event.room);
      if (this.room === event.room) {
        this.room = DEFAULT_ROOM;
        this.write(`* Lines you type go to #${DEFAULT_ROOM}`);
      }
    }
  }

  /** We left `room`, here or on another device (or were removed). */
  #left(room: string): void {
    this.#addingPeer.delete(room);
    if (this.leaving.delete(room)) return;
    const label = roomLabel(room, this.session.user.id);
    if (this.room === room) {
      this.room = DEFAULT_ROOM;
      this.write(`* You left ${label}; lines you type go to #${DEFAULT_ROOM}`);
    } else {
      this.write(`* You left ${label}`);
    }
  }

  async #inputLoop(): Promise<void> {
    const lines = this.#o.input[Symbol.asyncIterator]();
    let finished = false;
    const stopped = this.stopped.then(() => "stopped" as const);
    try {
      while (true) {
        const next = await Promise.race([lines.next(), stopped]);
        if (next === "stopped") return;
        if (next.done) {
          finished = true;
          break;
        }
        if (await this.#line(next.value) === "quit") break;
      }
    } finally {
      // A pending read cannot be awaited out: let the iterator close on its own.
      if (!finished) lines.return?.().catch(() => {});
    }
    await this.#drain();
    this.#finish(0);
  }

  async #line(line: string): Promise<"quit" | void> {
    const text = line.replace(/\r$/, "");
    const trimmed = text.trim();
    if (trimmed === "") return;
    if (trimmed.startsWith("/") && !trimmed.startsWith("//")) return await runCommand(this, text);
    const content = trimmed.startsWith("//") ? text.replace("//", "/") : text;
    const queued = await this.session.queue(content, this.room);
    if (queued.kind === "waiting") {
      this.write(`* Not connected: will send once connected (${queued.waiting} waiting)`);
    } else if (queued.kind === "full") {
      this.write(
        `! Not sent: not connected, and ${queued.waiting} messages are already waiting`,
      );
    }
  }

  /** Lets queued lines go out before leaving (connecting if need be), for at most `drainTimeoutMs`. */
  async #drain(): Promise<void> {
    const waiting = this.session.queued;
    const limitMs = this.#o.drainTimeoutMs ?? 5000;
    if (waiting > 0 && !this.session.connected) {
      this.write(`* Waiting up to ${formatDelay(limitMs)} to send ${count(waiting, "message")}`);
    }
    const left = await this.session.drain(limitMs);
    if (left > 0 && this.session.status.kind !== "stopped") {
      this.write(`! Not sent: ${count(left, "message")} still waiting to be sent`);
    }
  }
}
