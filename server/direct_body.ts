/**
 * Response bodies that write themselves to the connection. A stream body fed from elsewhere (the
 * hub's frames, server/web_stream.ts) registers its ReadableStream here; the HTTP port
 * (server/http_server.ts) then hands it the connection once the headers are out, and each chunk
 * leaves in one socket write instead of a ReadableStream read plus node:http's chunked write
 * (four writes through its stream machinery) per chunk. Anything else that reads the body (a
 * handler called in process) reads the ReadableStream as usual.
 */

/** Where a self-writing body writes, once attached. */
export interface BodyOut {
  /**
   * Sends `parts` as one chunk of the body, in one write. A one-part chunk that many bodies send
   * (the same message to many streams) is framed once for all of them.
   */
  write(parts: readonly Uint8Array[]): void;
  /** Whether the connection holds more than it wants buffered, until it drains. */
  behind(): boolean;
  /** Ends the body (the response is complete). */
  end(): void;
}

export interface DirectBody {
  /** From now on the body's chunks go to `out`, those not yet read first. */
  attach(out: BodyOut): void;
}

const bodies = new WeakMap<ReadableStream<Uint8Array>, DirectBody>();

/** Marks `stream` as the readable side of `body`. */
export function registerDirectBody(stream: ReadableStream<Uint8Array>, body: DirectBody): void {
  bodies.set(stream, body);
}

/** The self-writing body behind `stream`, unless it is not one or is being read already. */
export function directBodyOf(stream: ReadableStream<Uint8Array> | null): DirectBody | undefined {
  return stream && !stream.locked ? bodies.get(stream) : undefined;
}
