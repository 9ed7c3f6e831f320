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
 * one frame waits no longer than the rest of the turn. On the HTTP port the body writes itself to
 * the connection (server/direct_body.ts); read in process, it is a ReadableStream that holds
 * what was not read yet.
 */

import { concat } from "./bytes.ts";
import { type BodyOut, type DirectBody, registerDirectBody } from "./direct_body.ts";
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

/** Bodies with frames of this turn, written out at its end. */
const batched = new Set<StreamBody>();

function flushBatches(): void {
  for (const body of batched) body.flush();
  batched.clear();
}

export class StreamBody implements DirectBody {
  readonly body: ReadableStream<Uint8Array>;
  #open = true;
  /** Frames of this turn, not yet in the body. */
  #batch: Uint8Array[] = [];
  /** Frames in the body, not yet read (before `attach`), in the chunks they were flushed in. */
  #queued: Uint8Array[][] = [];
  #ended = false;
  /** A read waiting for the next chunk. */
  #wake: (() => void) | undefined;
  /** The connection, once attached. */
  #out: BodyOut | undefined;
  /** Frames written to the connection since it fell behind. */
  #behind = 0;
  /** When frames were last flushed (`performance.now()`), for keep-alives on idle streams. */
  #lastWriteAt = performance.now();

  /** `onCancel`: the client went away (the body was cancelled). */
  constructor(readonly framing: Framing, onCancel: () => void) {
    this.body = new ReadableStream<Uint8Array>({
      pull: (controller) => {
        const frames = this.#queued.shift();
        if (frames) return controller.enqueue(concat(frames));
        if (this.#ended) return controller.close();
        return new Promise<void>((resolve) => this.#wake = resolve).then(() => {
          const next = this.#queued.shift();
          if (next) controller.enqueue(concat(next));
          else controller.close();
        });
      },
      cancel: () => {
        this.#open = false;
        onCancel();
      },
      // Nothing is pulled ahead: what the client has not taken stays counted in `pending`.
    }, { highWaterMark: 0 });
    registerDirectBody(this.body, this);
  }

  attach(out: BodyOut): void {
    this.#out = out;
    for (const frames of this.#queued.splice(0)) this.#send(frames);
    if (this.#ended) out.end();
  }

  /** Queues an encoded `chat.Message`. */
  write(message: Uint8Array): void {
    if (!this.#open) return;
    if (!this.#batch.length) {
      if (!batched.size) setImmediate(flushBatches);
      batched.add(this);
    }
    this.#batch.push(frameOf(message, this.framing));
  }

  /** Puts the frames of this turn into the body, as one chunk. */
  flush(): void {
    const frames = this.#batch;
    if (!frames.length || !this.#open) return;
    this.#batch = [];
    this.#lastWriteAt = performance.now();
    this.#send(frames);
  }

  #send(frames: Uint8Array[]): void {
    const out = this.#out;
    if (!out) {
      this.#queued.push(frames);
      this.#wake?.();
      this.#wake = undefined;
      return;
    }
    if (!out.behind()) this.#behind = 0;
    out.write(frames);
    if (out.behind()) this.#behind += frames.length;
  }

  /**
   * Frames not yet taken by the client's connection: this turn's, and those queued in the body or
   * written since the connection fell behind.
   */
  pending(): number {
    if (!this.#open) return 0;
    let n = this.#batch.length;
    if (this.#out) return n + (this.#out.behind() ? this.#behind : 0);
    for (const frames of this.#queued) n += frames.length;
    return n;
  }

  /** Milliseconds since frames were last flushed. */
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
      this.#send([reframe(chunk)]);
    }
    if (!this.#open) return;
    this.#open = false;
    this.#ended = true;
    this.#out?.end();
    this.#wake?.();
  }
}
