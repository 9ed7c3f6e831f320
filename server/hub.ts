/**
 * The streams open on this gateway, and delivery to them.
 *
 * A message is encoded once and the same bytes are queued on every stream of
 * its room; a stream that falls too far behind is cut (its client reconnects
 * and resumes) so that one slow reader never holds up the others. Streams are
 * indexed by room and by user, so a delivery touches only the streams that get it.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { ChatError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { type Metrics, NO_METRICS, type QueueDepths } from "../core/metrics.ts";
import type {
  BlockChange,
  ChatMessage,
  MessageChange,
  Presence,
  ReactionEvent,
  ReadMark,
  RoomEvent,
  TypingEvent,
} from "../core/types.ts";
import { directRoomMembers } from "../protocol/names.ts";
import {
  changeToWire,
  encodeStreamMessage,
  messageToWire,
  presenceToWire,
  reactionToWire,
  readToWire,
  roomEventToWire,
  typingToWire,
} from "./wire.ts";

/** One open stream as a transport sees it. */
export interface StreamSink {
  /**
   * Queues an encoded `chat.Message`. The same bytes go to every stream of the room and are never
   * changed afterwards, so a transport may frame them once for all its streams.
   */
  write(frame: Uint8Array): void;
  /** How many frames are queued and not yet taken by the client. */
  pending(): number;
  /** Ends the stream with an error status. */
  fail(error: ChatError): void;
}

export interface LocalStream {
  readonly streamId: string;
  readonly userId: string;
  readonly displayName: string;
  readonly presenceEvents: boolean;
  readonly sink: StreamSink;
  /**
   * The rooms whose messages this stream receives. Once the stream is added, only the hub
   * changes it (when its user joins or leaves), keeping its index by room in step.
   */
  readonly rooms: Set<string>;
  /** The newest sequence number written to this stream, per room. */
  readonly lastSeq: Map<string, number>;
  /** While the stream replays missed messages, live ones wait here. */
  backlog: ChatMessage[] | undefined;
  /**
   * The users this stream's user blocked: their messages, edits, reactions and typing are
   * skipped for it (a Set lookup per delivery, the shared frame unchanged). Loaded when the
   * stream opens; afterwards only the hub changes it ({@linkcode Hub.block}).
   */
  blocked?: Set<string>;
}

export interface HubOptions {
  logger: Logger;
  /** Frames a stream may have queued before it is cut. */
  queueLimit: number;
  /** Counts the streams cut for falling behind. */
  metrics?: Metrics;
}

/** How long a stream past half its queue may go without draining before it is not waited for. */
const STALLED_MS = 500;

export class Hub {
  readonly #streams = new Map<string, LocalStream>();
  /** Each user's streams here, oldest first. */
  readonly #byUser = new Map<string, Set<LocalStream>>();
  /** The streams that receive each room's messages. */
  readonly #byRoom = new Map<string, Set<LocalStream>>();
  /** The streams that asked for presence and room events. */
  readonly #watchers = new Set<LocalStream>();
  /**
   * Streams past half their queue limit, with their smallest queue seen and when it last
   * shrank: `settle()` waits for those that drain, never for one that stalled. A stream stays
   * here until it is nearly drained or gone, so a stalled one is judged once, not per message.
   */
  readonly #crowded = new Map<LocalStream, { pending: number; drainedAt: number }>();
  /**
   * The block changes of users with a stream opening here (reading its list from the store):
   * applied on top of what it read, so that a change made meanwhile is not missed.
   */
  readonly #opening = new Map<string, { streams: number; changes: BlockChange[] }>();
  /** Highest sequence number delivered per room, so that a re-sent delivery is not shown twice. */
  readonly #delivered = new Map<string, number>();
  readonly #logger: Logger;
  readonly #queueLimit: number;
  readonly #metrics: Metrics;

  constructor(options: HubOptions) {
    this.#logger = options.logger;
    this.#queueLimit = options.queueLimit;
    this.#metrics = options.metrics ?? NO_METRICS;
  }

  get queueLimit(): number {
    return this.#queueLimit;
  }

  add(stream: LocalStream): void {
    this.#streams.set(stream.streamId, stream);
    let mine = this.#byUser.get(stream.userId);
    if (!mine) this.#byUser.set(stream.userId, mine = new Set());
    mine.add(stream);
    for (const room of stream.rooms) this.#enter(stream, room);
    if (stream.presenceEvents) this.#watchers.add(stream);
  }

  #enter(stream: LocalStream, room: string): void {
    let members = this.#byRoom.get(room);
    if (!members) this.#byRoom.set(room, members = new Set());
    members.add(stream);
  }

  #leave(stream: LocalStream, room: string): void {
    const members = this.#byRoom.get(room);
    members?.delete(stream);
    if (members?.size === 0) this.#byRoom.delete(room);
  }

  remove(streamId: string): LocalStream | undefined {
    const stream = this.#streams.get(streamId);
    this.#streams.delete(streamId);
    if (stream) {
      this.#crowded.delete(stream);
      this.#watchers.delete(stream);
      for (const room of stream.rooms) this.#leave(stream, room);
      const mine = this.#byUser.get(stream.userId);
      mine?.delete(stream);
      if (mine?.size === 0) this.#byUser.delete(stream.userId);
    }
    return stream;
  }

  /**
   * Resolves once no stream past half its queue limit is still draining. A burst of deliveries
   * (a backlog after Kafka paused) is written faster than sockets take it; the caller waits here
   * between deliveries so that readers that keep up are not cut as slow. A stream that takes
   * nothing for `STALLED_MS` is not waited for: it fills up and is cut, and the others go on.
   */
  async settle(): Promise<void> {
    for (;;) {
      const now = performance.now();
      let waiting = false;
      for (const [stream, seen] of this.#crowded) {
        const pending = stream.sink.pending();
        if (pending <= this.#queueLimit / 4 || !this.#streams.has(stream.streamId)) {
          this.#crowded.delete(stream);
          continue;
        }
        if (pending < seen.pending) {
          seen.pending = pending;
          seen.drainedAt = now;
        }
        if (now - seen.drainedAt <= STALLED_MS) waiting = true;
      }
      if (!waiting) return;
      await sleep(5);
    }
  }

  streams(): LocalStream[] {
    return [...this.#streams.values()];
  }

  /** How many streams `userId` has open here. */
  countOf(userId: string): number {
    return this.#byUser.get(userId)?.size ?? 0;
  }

  /** The display name of `userId`'s newest stream here, if it has one. */
  displayNameOf(userId: string): string | undefined {
    let name: string | undefined;
    for (const stream of this.#byUser.get(userId) ?? []) name = stream.displayName;
    return name;
  }

  get size(): number {
    return this.#streams.size;
  }

  /** The queue of the stream furthest behind, and how many are past half the limit (for a scrape). */
  queueDepths(): QueueDepths {
    let deepest = 0;
    let crowded = 0;
    for (const stream of this.#streams.values()) {
      const pending = stream.sink.pending();
      if (pending > deepest) deepest = pending;
      if (pending > this.#queueLimit / 2) crowded++;
    }
    return { deepest, crowded };
  }

  /** Delivers a stored message to every local stream of its room; returns how many got it. */
  deliver(message: ChatMessage): number {
    const last = this.#delivered.get(message.room) ?? 0;
    if (message.seq > 0 && message.seq <= last) {
      this.#logger.debug("Dropped a repeated delivery", { room: message.room, seq: message.seq });
      return 0;
    }
    if (message.seq > 0) this.#delivered.set(message.room, message.seq);
    let frame: Uint8Array | undefined;
    let count = 0;
    for (const stream of this.#byRoom.get(message.room) ?? []) {
      if (stream.blocked?.has(message.userId)) continue;
      if (stream.backlog) {
        stream.backlog.push(message);
        count++;
        continue;
      }
      frame ??= encodeStreamMessage(messageToWire(message));
      if (this.#write(stream, message, frame)) count++;
    }
    return count;
  }

  /** Writes one message to one stream unless it already has it; false when the stream was cut. */
  #write(stream: LocalStream, message: ChatMessage, frame?: Uint8Array): boolean {
    if (message.seq > 0 && message.seq <= (stream.lastSeq.get(message.room) ?? 0)) return true;
    // Skipped, not a gap: clients resume from the newest they got, and the replay skips it again.
    if (stream.blocked?.has(message.userId)) return true;
    if (!this.#offer(stream, frame ?? encodeStreamMessage(messageToWire(message)))) return false;
    if (message.seq > 0) stream.lastSeq.set(message.room, message.seq);
    return true;
  }

  /**
   * Replays missed messages to a stream whose live messages wait in its backlog.
   * Waits while the client is behind, so a long replay never floods memory.
   */
  async replay(stream: LocalStream, messages: ChatMessage[]): Promise<boolean> {
    for (const message of messages) {
      while (stream.sink.pending() > this.#queueLimit / 2) {
        if (!this.#streams.has(stream.streamId)) return false;
        await sleep(10);
      }
      if (!this.#streams.has(stream.streamId)) return false;
      // Removed from the room (or left it) while waiting: nothing of it from now on.
      if (!stream.rooms.has(message.room)) return true;
      if (!this.#write(stream, message)) return false;
    }
    return true;
  }

  /** Ends a replay: writes the live messages that arrived meanwhile, then goes live. */
  goLive(stream: LocalStream): void {
    const backlog = stream.backlog ?? [];
    stream.backlog = undefined;
    for (const message of backlog) {
      if (!this.#write(stream, message)) return;
    }
  }

  /** Tells the streams that asked for presence events that a user came or went. */
  presence(presence: Presence): void {
    let frame: Uint8Array | undefined;
    for (const stream of this.#watchers) {
      frame ??= encodeStreamMessage(presenceToWire(presence));
      this.#offer(stream, frame);
    }
  }

  /**
   * A member joined or left a room: the member's own streams start or stop
   * receiving it, and the room's streams that asked for events are told.
   */
  roomEvent(event: RoomEvent): void {
    // Told: the room's streams before the change and after it, which differ only by the member's.
    const told = new Set(this.#byRoom.get(event.room));
    // Joining, leaving and being removed move the member; the other actions leave them in it.
    const moves = event.action === undefined || event.action === "removed";
    for (const stream of moves ? this.#byUser.get(event.userId) ?? [] : []) {
      if (event.joined) {
        told.add(stream);
        stream.rooms.add(event.room);
        this.#enter(stream, event.room);
      } else {
        stream.rooms.delete(event.room);
        this.#leave(stream, event.room);
      }
    }
    let frame: Uint8Array | undefined;
    for (const stream of told) {
      if (!stream.presenceEvents) continue;
      frame ??= encodeStreamMessage(roomEventToWire(event));
      this.#offer(stream, frame);
    }
  }

  /**
   * Someone did something to a room (changed its access, invited someone): the room's streams
   * and those of whom it is about (an invitee, not in the room yet) are told, if they asked for
   * events. Nobody's membership changes.
   */
  roomAction(event: RoomEvent): void {
    const told = new Set(this.#byRoom.get(event.room));
    for (const stream of this.#byUser.get(event.userId) ?? []) told.add(stream);
    let frame: Uint8Array | undefined;
    for (const stream of told) {
      if (!stream.presenceEvents) continue;
      frame ??= encodeStreamMessage(roomEventToWire(event));
      this.#offer(stream, frame);
    }
  }

  /** A message of a room was edited or deleted: the room's streams that asked for events are told. */
  change(change: MessageChange): void {
    let frame: Uint8Array | undefined;
    for (const stream of this.#byRoom.get(change.room) ?? []) {
      if (!stream.presenceEvents) continue;
      // An edit's new text is the blocked author's; a deletion shows nothing of theirs.
      if (!change.deleted && stream.blocked?.has(change.byUserId)) continue;
      frame ??= encodeStreamMessage(changeToWire(change));
      this.#offer(stream, frame);
    }
  }

  /** A reaction was added or taken back: the room's streams that asked for events are told. */
  reaction(event: ReactionEvent): void {
    let frame: Uint8Array | undefined;
    for (const stream of this.#byRoom.get(event.room) ?? []) {
      if (!stream.presenceEvents || stream.blocked?.has(event.userId)) continue;
      frame ??= encodeStreamMessage(reactionToWire(event));
      this.#offer(stream, frame);
    }
  }

  /**
   * Tells the room's streams that asked for events, except the typer's own, that a member
   * started or stopped typing. Ephemeral, so it is worth less than a cut stream: a stream past
   * half its queue limit does not get it.
   */
  typing(event: TypingEvent): void {
    let frame: Uint8Array | undefined;
    for (const stream of this.#byRoom.get(event.room) ?? []) {
      if (!stream.presenceEvents || stream.userId === event.userId) continue;
      if (stream.blocked?.has(event.userId)) continue;
      if (stream.sink.pending() > this.#queueLimit / 2) continue;
      frame ??= encodeStreamMessage(typingToWire(event));
      this.#offer(stream, frame);
    }
  }

  /**
   * A member read a room: the reader's streams here (their other devices) and, in a direct room,
   * the other member's ("seen"), each only if it asked for events and is in the room.
   */
  read(mark: ReadMark): void {
    const readers = [mark.userId];
    const pair = directRoomMembers(mark.room);
    if (pair?.includes(mark.userId)) readers.push(pair[0] === mark.userId ? pair[1] : pair[0]);
    let frame: Uint8Array | undefined;
    for (const userId of readers) {
      for (const stream of this.#byUser.get(userId) ?? []) {
        if (!stream.presenceEvents || !stream.rooms.has(mark.room)) continue;
        frame ??= encodeStreamMessage(readToWire(mark));
        this.#offer(stream, frame);
      }
    }
  }

  /** A user blocked or unblocked another: each of the blocker's streams here skips from now on, or not. */
  block(change: BlockChange): void {
    this.#opening.get(change.userId)?.changes.push(change);
    for (const stream of this.#byUser.get(change.userId) ?? []) {
      if (change.blocked) (stream.blocked ??= new Set()).add(change.blockedId);
      else stream.blocked?.delete(change.blockedId);
    }
  }

  /**
   * Call before a stream of `userId` reads its blocked users from the store; call what it
   * returns, exactly once, with what was read (or nothing, when the read failed): it gives the
   * list with every change told meanwhile applied in order. A change the read saw already is
   * applied again to no effect, and one it did not see is not lost.
   */
  openingBlocks(userId: string): (read?: readonly string[]) => Set<string> {
    let opening = this.#opening.get(userId);
    if (!opening) this.#opening.set(userId, opening = { streams: 0, changes: [] });
    opening.streams++;
    const seen = opening;
    return (read = []) => {
      const blocked = new Set(read);
      for (const { blockedId, blocked: on } of seen.changes) {
        if (on) blocked.add(blockedId);
        else blocked.delete(blockedId);
      }
      if (--seen.streams === 0 && this.#opening.get(userId) === seen) this.#opening.delete(userId);
      return blocked;
    };
  }

  /** Tells the stream `streamId` alone of a read, if it is still open and asked for events. */
  readTo(streamId: string, mark: ReadMark): void {
    const stream = this.#streams.get(streamId);
    if (stream?.presenceEvents) this.#offer(stream, encodeStreamMessage(readToWire(mark)));
  }

  /** The stream `streamId`, while it is open here. */
  stream(streamId: string): LocalStream | undefined {
    return this.#streams.get(streamId);
  }

  #offer(stream: LocalStream, frame: Uint8Array): boolean {
    const pending = stream.sink.pending();
    if (pending > this.#queueLimit / 2 && !this.#crowded.has(stream)) {
      this.#crowded.set(stream, { pending, drainedAt: performance.now() });
    }
    if (pending >= this.#queueLimit) {
      this.#metrics.streamCut();
      this.#logger.warn("Cutting a slow stream", {
        user: stream.userId,
        stream: stream.streamId,
        pending,
      });
      stream.sink.fail(
        new ChatError(
          "resource_exhausted",
          `Stream closed: the client is ${pending} messages behind, the limit is ${this.#queueLimit}; reconnect to continue`,
        ),
      );
      return false;
    }
    stream.sink.write(frame);
    return true;
  }
}
