/**
 * The streams open on this gateway, and delivery to them.
 *
 * A message is encoded once and the same bytes are queued on every stream; a
 * stream that falls too far behind is cut (its client reconnects) so that one
 * slow reader never holds up the others.
 */

import { ChatError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ChatMessage, Presence } from "../core/types.ts";
import { encodeStreamMessage, messageToWire, presenceToWire } from "./proto.ts";

/** One open stream as a transport sees it. */
export interface StreamSink {
  /** Queues an encoded `chat.Message`. */
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
}

export interface HubOptions {
  logger: Logger;
  /** Frames a stream may have queued before it is cut. */
  queueLimit: number;
}

export class Hub {
  readonly #streams = new Map<string, LocalStream>();
  /** Highest sequence number delivered per room, so that a re-sent delivery is not shown twice. */
  readonly #delivered = new Map<string, number>();
  readonly #logger: Logger;
  readonly #queueLimit: number;

  constructor(options: HubOptions) {
    this.#logger = options.logger;
    this.#queueLimit = options.queueLimit;
  }

  add(stream: LocalStream): void {
    this.#streams.set(stream.streamId, stream);
  }

  remove(streamId: string): LocalStream | undefined {
    const stream = this.#streams.get(streamId);
    this.#streams.delete(streamId);
    return stream;
  }

  streams(): LocalStream[] {
    return [...this.#streams.values()];
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Delivers a stored message to every local stream; returns how many streams got it. */
  deliver(message: ChatMessage): number {
    const last = this.#delivered.get(message.room) ?? 0;
    if (message.seq > 0 && message.seq <= last) {
      this.#logger.debug("Dropped a repeated delivery", { room: message.room, seq: message.seq });
      return 0;
    }
    if (message.seq > 0) this.#delivered.set(message.room, message.seq);
    const frame = encodeStreamMessage(messageToWire(message));
    let count = 0;
    for (const stream of this.#streams.values()) {
      if (this.#offer(stream, frame)) count++;
    }
    return count;
  }

  /** Tells the streams that asked for presence events that a user came or went. */
  presence(presence: Presence): void {
    let frame: Uint8Array | undefined;
    for (const stream of this.#streams.values()) {
      if (!stream.presenceEvents) continue;
      frame ??= encodeStreamMessage(presenceToWire(presence));
      this.#offer(stream, frame);
    }
  }

  #offer(stream: LocalStream, frame: Uint8Array): boolean {
    const pending = stream.sink.pending();
    if (pending >= this.#queueLimit) {
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
