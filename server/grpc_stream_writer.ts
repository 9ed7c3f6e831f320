/**
 * How a native stream's messages reach its HTTP/2 stream: each message framed once for every
 * stream, and the messages that queue for one stream while its last write is under way written
 * together, in one go.
 *
 * Through grpc-js, every message to every stream takes its own trip: `call.write` goes through a
 * Node Writable, the interceptors, the serializer, a fresh 5-byte gRPC length prefix and a copy
 * of the message, then one write to the HTTP/2 stream, which in Deno's `node:http2` costs a write
 * request, its closures and a `setImmediate` of its own; and the Writable hands the HTTP/2 stream
 * one message per completed write. A chat delivers the same message to every stream of a room, and
 * at high rates several to each stream at once. Here the gRPC message (compressed-flag byte 0,
 * big-endian length, the encoded `chat.Message`) is framed once and the same bytes go to every
 * stream, and whatever queued for a stream while its previous write was under way goes out as
 * one write. The bytes on the wire are the ones grpc-js writes: length-prefixed messages in the
 * stream's DATA frames.
 *
 * The HTTP/2 stream is reached under grpc-js's public API (the call's intercepting calls hold it
 * as `stream`); `http2StreamOf` says when it is not found, and the stream then writes through
 * `call.write` as before (tests/grpc_stream_writer_test.ts fails then, so the loss is seen).
 */

import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import type { ServerHttp2Stream } from "node:http2";

/** A gRPC message frame: compressed-flag byte 0, big-endian length, then the message. */
function frameOf(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(message.byteLength + 5);
  out[0] = 0;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

/** The message framed last: the hub hands the same message to every stream of a room in turn. */
let lastMessage: Uint8Array | undefined;
let lastFrame: Buffer = Buffer.alloc(0);

function framed(message: Uint8Array): Buffer {
  if (message !== lastMessage) {
    lastFrame = frameOf(message);
    lastMessage = message;
  }
  return lastFrame;
}

/** The HTTP/2 stream under a grpc-js server call, if this grpc-js keeps it where 1.14 does. */
export function http2StreamOf(
  call: grpc.ServerWritableStream<unknown, unknown>,
): ServerHttp2Stream | undefined {
  // ServerWritableStreamImpl.call → ServerInterceptingCall.nextCall … → BaseServerInterceptingCall.stream
  let layer = (call as unknown as { call?: unknown }).call as
    | { nextCall?: unknown; stream?: ServerHttp2Stream }
    | undefined;
  for (let depth = 0; layer && depth < 16; depth++) {
    const stream = layer.stream;
    if (stream && typeof stream.write === "function" && typeof stream.respond === "function") {
      return stream;
    }
    layer = layer.nextCall as typeof layer;
  }
  return undefined;
}

/** Writes one server stream's messages: queued while a write is under way, then all at once. */
export class StreamWriter {
  readonly #call: grpc.ServerWritableStream<unknown, Uint8Array>;
  readonly #http2: ServerHttp2Stream | undefined;
  #headersSent = false;
  /** Messages in the write under way. */
  #writing = 0;
  /** Frames waiting for it to finish. */
  #queued: Buffer[] = [];
  #closed = false;

  constructor(call: grpc.ServerWritableStream<unknown, Uint8Array>) {
    this.#call = call;
    this.#http2 = http2StreamOf(call);
  }

  /** Whether writes skip grpc-js's per-message path (false: this grpc-js hides the stream). */
  get direct(): boolean {
    return this.#http2 !== undefined;
  }

  /** Sends the response headers, once: before the first message, or to accept the stream. */
  sendHeaders(): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    this.#call.sendMetadata(new grpc.Metadata());
  }

  /** Queues an encoded `chat.Message`. */
  write(message: Uint8Array): void {
    if (this.#closed) return;
    if (!this.#http2) {
      this.#call.write(message);
      return;
    }
    const frame = framed(message);
    if (this.#writing > 0) this.#queued.push(frame);
    else this.#send([frame]);
  }

  /** Messages not yet taken: the write under way and those queued behind it. */
  pending(): number {
    return this.#http2 ? this.#writing + this.#queued.length : this.#call.writableLength;
  }

  /** Ends the stream with `status`; what is still queued is dropped (the client resumes). */
  fail(status: Partial<grpc.StatusObject>): void {
    this.#closed = true;
    this.#queued = [];
    this.#call.emit("error", status);
  }

  #send(frames: Buffer[]): void {
    const http2 = this.#http2!;
    // Ended: grpc-js sent the status (a deadline, a shutdown) before the call's close came.
    if (http2.destroyed || http2.closed || http2.writableEnded) {
      this.#closed = true;
      this.#queued = [];
      return;
    }
    this.sendHeaders();
    this.#writing = frames.length;
    http2.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames), (err) => {
      this.#writing = 0;
      // A failed write destroys the HTTP/2 stream; grpc-js reports the call cancelled.
      if (err) this.#closed = true;
      if (this.#closed || this.#queued.length === 0) return;
      const next = this.#queued;
      this.#queued = [];
      this.#send(next);
    });
  }
}
