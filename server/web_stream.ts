/**
 * The response body of a browser stream in a binary-framed protocol (gRPC-Web, binary or text,
 * and Connect with protobuf), which the hub's frames go to directly: each message is framed once
 * for all the streams of one framing and the same bytes are queued on each, as the native port
 * writes one encoding to all its streams. Connect, which would serialize every message again for
 * every stream (about 2 µs each), keeps the rest of the call (reading the request, refusals, the
 * trailers), which server/web_api.ts appends with `finish` once the stream ends.
 *
 * The frames a stream gets during one turn of the event loop leave as one chunk at its end (one
 * write, one system call, for the stream), however many messages the turn delivered: under load,
 * a write per message per connection is most of what a delivery costs, while a quiet stream's
 * one frame waits no longer than the rest of the turn.
 */

import { concat } from "./bytes.ts";
import { encodeBase64Chunk, envelope } from "./web_wire.ts";

/** How a stream's frames are written: enveloped bytes, or each envelope as a base64 chunk. */
export type Framing = "binary" | "text";

/** Each message's frames, made once for every stream they go to (the hub writes one array to all). */
const framed: Record<Framing, WeakMap<Uint8Array, Uint8Array>> = {
  binary: new WeakMap(),
  text: new WeakMap(),
};

function frameOf(message: Uint8Array, framing: Framing): Uint8Array {
  let frame = framed[framing].get(message);
  if (!frame) {
    frame = framing === "text" ? encodeBase64Chunk(envelope(message)) : envelope(message);
    framed[framing].set(message, frame);
  }
  return frame;
}

/** An empty `chat.Message`: a keep-alive. */
const KEEPALIVE = new Uint8Array(0);

/** How many frames a chunk of several holds (a chunk not here is one frame). */
const framesIn = new WeakMap<Uint8Array, number>();

/** Bodies with frames of this turn, written out at its end. */
const batched = new Set<StreamBody>();

function flushBatches(): void {
  for (const body of batched) body.flush();
  batched.clear();
}

export class StreamBody {
  readonly body: ReadableStream<Uint8Array>;
  #out!: ReadableStreamDefaultController<Uint8Array>;
  #open = true;
  /** Frames of this turn, not yet in the body. */
  #batch: Uint8Array[] = [];
  /** When the last frame was queued (`performance.now()`), for keep-alives on idle streams. */
  #lastWriteAt = performance.now();

  /** `onCancel`: the client went away (the body was cancelled). */
  constructor(readonly framing: Framing, onCancel: () => void) {
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#out = controller;
      },
      cancel: () => {
        this.#open = false;
        onCancel();
      },
      // Nothing is pulled ahead: what the client has not taken stays counted in `pending`.
    }, { highWaterMark: 0, size: (chunk) => framesIn.get(chunk) ?? 1 });
  }

  /** Queues an encoded `chat.Message`. */
  write(message: Uint8Array): void {
    if (!this.#open) return;
    this.#lastWriteAt = performance.now();
    if (!batched.size) setImmediate(flushBatches);
    batched.add(this);
    this.#batch.push(frameOf(message, this.framing));
  }

  /** Puts the frames of this turn into the body, as one chunk. */
  flush(): void {
    const frames = this.#batch;
    if (!frames.length || !this.#open) return;
    this.#batch = [];
    const chunk = frames.length === 1 ? frames[0]! : concat(frames);
    if (frames.length > 1) framesIn.set(chunk, frames.length);
    this.#out.enqueue(chunk);
  }

  /** Frames queued and not yet taken by the client's connection. */
  pending(): number {
    return this.#open ? this.#batch.length - (this.#out.desiredSize ?? 0) : 0;
  }

  /** Milliseconds since the last frame was queued. */
  silentFor(): number {
    return performance.now() - this.#lastWriteAt;
  }

  keepAlive(): void {
    this.write(KEEPALIVE);
  }

  /**
   * Ends the body with what Connect wrote after the messages (its trailers, or Connect's end of
   * stream), each chunk passed through `reframe`.
   */
  async finish(
    rest: ReadableStream<Uint8Array> | null,
    reframe: (chunk: Uint8Array) => Uint8Array,
  ): Promise<void> {
    this.flush();
    for await (const chunk of rest ?? []) {
      if (!this.#open) return;
      this.#out.enqueue(reframe(chunk));
    }
    if (this.#open) this.#out.close();
    this.#open = false;
  }
}
