/**
 * The response body of a browser stream in a binary-framed protocol (gRPC-Web, binary or text,
 * and Connect with protobuf), which the hub's frames go to directly: each message is framed once
 * for all the streams of one framing and the same bytes are queued on each, as the native port
 * writes one encoding to all its streams. Connect, which would serialize every message again for
 * every stream (about 2 µs each), keeps the rest of the call (reading the request, refusals, the
 * trailers), which server/web_api.ts appends with `finish` once the stream ends.
 */

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

export class StreamBody {
  readonly body: ReadableStream<Uint8Array>;
  #out!: ReadableStreamDefaultController<Uint8Array>;
  #open = true;
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
    }, { highWaterMark: 0 });
  }

  /** Queues an encoded `chat.Message`. */
  write(message: Uint8Array): void {
    if (!this.#open) return;
    this.#lastWriteAt = performance.now();
    this.#out.enqueue(frameOf(message, this.framing));
  }

  /** Frames queued and not yet taken by the client's connection. */
  pending(): number {
    return this.#open ? -(this.#out.desiredSize ?? 0) : 0;
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
    for await (const chunk of rest ?? []) {
      if (!this.#open) return;
      this.#out.enqueue(reframe(chunk));
    }
    if (this.#open) this.#out.close();
    this.#open = false;
  }
}
