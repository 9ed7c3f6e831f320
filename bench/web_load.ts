/**
 * The benchmark's browser-path client, for the client processes (bench/load.ts): subscriber
 * streams and sends over binary gRPC-Web (`application/grpc-web+proto`), HTTP/1.1 POSTs with
 * Deno's fetch, every stream on its own connection, as a page's connect-web transport sends them.
 * The address is `http://host:port`: a gateway's HTTP port, or the Deno.serve floor
 * (bench/web_floor.ts), which takes the same calls.
 *
 * Like the native subscribers, a stream does not decode messages: it cuts the response body into
 * gRPC-Web frames and hands each data frame's `chat.Message` bytes on; the trailers frame ends the
 * stream with its status.
 *
 * Deno 2.9.3's fetch forgets an abort once its `Response` was collected (tests/abortable_fetch.ts),
 * so a stream is never closed by its signal alone: `cancel()` cancels the body's reader, which
 * the call keeps, and that closes the connection.
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Broadcast, MessageSchema } from "../protocol/gen/chat_pb.ts";
import { concat } from "../server/bytes.ts";
import { envelope, TRAILER_FLAG } from "../server/web_wire.ts";

const CREATE_STREAM = `/${Broadcast.typeName}/${Broadcast.method.createStream.name}`;
const BROADCAST_MESSAGE = `/${Broadcast.typeName}/${Broadcast.method.broadcastMessage.name}`;
const HEADERS = {
  "content-type": "application/grpc-web+proto",
  "x-grpc-web": "1",
  "accept": "application/grpc-web+proto",
};

/** gRPC status codes the client side gives itself. */
const UNKNOWN = 2;
const UNAVAILABLE = 14;

/** Whether `address` is an HTTP port (gRPC-Web) rather than a native gRPC `host:port`. */
export function isWebAddress(address: string): boolean {
  return /^https?:\/\//.test(address);
}

/** What one subscriber stream tells its owner. */
export interface StreamEvents {
  /** The response headers arrived: the server accepted the stream. */
  opened(): void;
  /** One encoded `chat.Message`. */
  message(bytes: Uint8Array): void;
  /** The stream ended with this gRPC status (called once). */
  ended(code: number, details: string): void;
}

/** One subscriber stream, whatever its transport. */
export interface StreamCall {
  /** Stops reading: what the server sends queues up in front of this client. */
  pause(): void;
  resume(): void;
  /** Ends the stream and closes its connection. */
  cancel(): void;
}

/** The status in a trailers block (`name: value` lines), `grpc-message` percent-decoded. */
export function readTrailers(text: string): { code: number; details: string } {
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) fields.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
  }
  let details = fields.get("grpc-message") ?? "";
  try {
    details = decodeURIComponent(details);
  } catch {
    // Not percent-encoded after all: as it came.
  }
  const code = Number(fields.get("grpc-status") ?? NaN);
  return Number.isInteger(code)
    ? { code, details }
    : { code: UNKNOWN, details: `no grpc-status in the trailers: ${JSON.stringify(text)}` };
}

/**
 * Cuts a gRPC-Web response body, as its chunks come, into frames: a chunk may hold several
 * frames, or part of one.
 */
export class FrameReader {
  #rest: Uint8Array | undefined;

  /**
   * Hands the payload of each whole data frame in `chunk` to `onMessage`; returns the trailers'
   * text once the trailers frame is complete (what follows it is ignored).
   */
  push(chunk: Uint8Array, onMessage: (bytes: Uint8Array) => void): string | undefined {
    let buf = chunk;
    if (this.#rest) {
      buf = concat([this.#rest, chunk]);
      this.#rest = undefined;
    }
    let at = 0;
    while (buf.length - at >= 5) {
      const length = ((buf[at + 1]! << 24) | (buf[at + 2]! << 16) | (buf[at + 3]! << 8) |
        buf[at + 4]!) >>> 0;
      if (buf.length - at - 5 < length) break;
      const payload = buf.subarray(at + 5, at + 5 + length);
      const flags = buf[at]!;
      at += 5 + length;
      if (flags & TRAILER_FLAG) return new TextDecoder().decode(payload);
      onMessage(payload);
    }
    if (at < buf.length) this.#rest = buf.slice(at);
    return undefined;
  }
}

/** The status of a response that ended before (or instead of) a trailers frame. */
function statusOf(response: Response): { code: number; details: string } | undefined {
  const code = response.headers.get("grpc-status");
  if (code !== null) {
    return readTrailers(
      `grpc-status: ${code}\r\ngrpc-message: ${response.headers.get("grpc-message") ?? ""}`,
    );
  }
  if (response.status !== 200) {
    return { code: UNAVAILABLE, details: `HTTP ${response.status} ${response.statusText}` };
  }
  return undefined;
}

/** Opens `CreateStream` with the encoded `chat.Connect` `request` on the HTTP port at `url`. */
export function openWebStream(url: string, request: Uint8Array, events: StreamEvents): StreamCall {
  const abort = new AbortController();
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let paused: PromiseWithResolvers<void> | undefined;
  let done = false;
  const end = (code: number, details: string) => {
    if (done) return;
    done = true;
    events.ended(code, details);
  };
  const run = async () => {
    const response = await fetch(`${url}${CREATE_STREAM}`, {
      method: "POST",
      headers: HEADERS,
      body: envelope(request),
      signal: abort.signal,
    });
    const refused = statusOf(response);
    if (refused || !response.body) {
      await response.body?.cancel();
      return end(refused?.code ?? UNKNOWN, refused?.details ?? "The response has no body");
    }
    events.opened();
    reader = response.body.getReader();
    const frames = new FrameReader();
    while (!done) {
      if (paused) await paused.promise;
      const { done: over, value } = await reader.read();
      if (over) break;
      const trailers = frames.push(value, events.message);
      if (trailers !== undefined) {
        const { code, details } = readTrailers(trailers);
        await reader.cancel().catch(() => {});
        return end(code, details);
      }
    }
    end(UNKNOWN, "The stream ended without trailers");
  };
  run().catch((err) => end(UNAVAILABLE, err instanceof Error ? err.message : String(err)));
  return {
    pause() {
      paused ??= Promise.withResolvers();
    },
    resume() {
      paused?.resolve();
      paused = undefined;
    },
    cancel() {
      if (done) return;
      end(1, "Cancelled on client");
      abort.abort();
      reader?.cancel().catch(() => {});
      paused?.resolve();
    },
  };
}

/** A failed send: `code` is the gRPC status, as grpc-js's errors carry it. */
class SendError extends Error {
  constructor(readonly code: number, details: string) {
    super(`Cannot send message: status ${code}, ${details}`);
  }
}

/** Sends `BroadcastMessage` over gRPC-Web, as `ChatClient.send` does over native gRPC. */
export class WebSender {
  constructor(readonly url: string) {}

  async send(userId: string, content: string): Promise<void> {
    const message = create(MessageSchema, {
      id: userId,
      content,
      timestamp: timestampFromDate(new Date()),
    });
    const response = await fetch(`${this.url}${BROADCAST_MESSAGE}`, {
      method: "POST",
      headers: HEADERS,
      body: envelope(toBinary(MessageSchema, message)),
    });
    const body = new Uint8Array(await response.arrayBuffer());
    const trailers = new FrameReader().push(body, () => {});
    const { code, details } = statusOf(response) ??
      (trailers === undefined
        ? { code: UNKNOWN, details: "The answer has no trailers" }
        : readTrailers(trailers));
    if (code !== 0) throw new SendError(code, details);
  }

  /** Nothing to close: fetch's connections go with the process. */
  close(): void {}
}
