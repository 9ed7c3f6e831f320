/**
 * The gRPC-Web bridge: `chat.Broadcast` for browsers, on the gateway's HTTP
 * port, as a thin transport over the same chat service the native gRPC port
 * uses. Follows PROTOCOL-WEB.md of grpc/grpc.
 *
 * Wire decisions (each checked against the standard clients: grpc-web,
 * @protobuf-ts/grpcweb-transport, @connectrpc/connect-web):
 *
 * - Content types `application/grpc-web[+proto]` (binary) and
 *   `application/grpc-web-text[+proto]` (base64); the response mirrors the
 *   request's. Anything else is HTTP 415; a method other than POST is 405.
 * - A success is HTTP 200 with the message frame(s) (flag 0x00) and then one
 *   trailers frame (flag 0x80, `grpc-status: 0`).
 * - An error before any message is a trailers-only response: HTTP 200 with
 *   `grpc-status` / `grpc-message` headers and an EMPTY body, as the spec
 *   allows ("trailers may be sent together with response headers, with no
 *   message in the body"). Not headers plus a trailers frame: the grpc-web
 *   client reports the status once from a trailers frame and once more from
 *   the headers on completion, so its error callback would fire twice. An
 *   error after the stream has started (a slow client cut, shutdown) is a
 *   trailers frame at the end of the body.
 * - Text mode: every frame written to a stream is base64-encoded on its own,
 *   with its padding, and flushed as one chunk, so the body is a run of
 *   concatenated base64 chunks (the spec allows padding mid-stream; every
 *   standard client decodes in groups of 4 characters). A unary response is
 *   one chunk. Request bodies may likewise be several padded chunks.
 * - Keep-alive: gRPC-Web has no keep-alive frame. HTTP/2 PING is not used by
 *   it; an unknown frame flag is rejected by the grpc-web parser ("invalid
 *   frame byte"); a trailers frame ends the call; an empty data frame decodes
 *   as an empty `chat.Message` that a client would show. So by default NOTHING
 *   is sent on an idle stream, and proxies in front must allow long idle
 *   streams (Envoy: route `timeout: 0s` and a large `stream_idle_timeout`;
 *   nginx: `proxy_read_timeout 1h; proxy_buffering off;`), while the client
 *   reconnects when a stream is cut anyway. A client that understands them may
 *   opt in with the request header `x-chat-keepalive: 1`: it then gets an empty
 *   `chat.Message` frame (5 bytes) after every `keepAliveMs` of silence, and
 *   must drop such messages (`isKeepAlive` in web/grpc_chat_api.ts). Standard
 *   clients never send that header, so they never see one.
 * - `grpc-timeout` is not enforced: unary calls answer in milliseconds and a
 *   stream lives until the client goes away.
 * - CORS: same-origin by default (no CORS headers for other origins, so
 *   browsers refuse them); origins in `allowedOrigins` (or "*") get
 *   `Access-Control-Allow-Origin` and their pre-flights are answered 204
 *   with the headers gRPC-Web and Connect clients send (content-type,
 *   x-grpc-web, x-user-agent, grpc-timeout, authorization); responses expose
 *   grpc-status and grpc-message. A browser sends no pre-flight to its own
 *   origin, but one that names the server's own origin (scheme and Host) is
 *   answered as for an allowed origin; a pre-flight from any other origin
 *   gets 403.
 */

import { ChatError, describeError, invalidArgument, toGrpcStatus } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { Caller, ChatService, StreamHandle } from "./chat_service.ts";
import { parseConnect, readRequest, unaryMethod } from "./rpc.ts";
import type { StreamSink } from "./hub.ts";
import { broadcastMethods, SERVICE_NAME, type WireConnect } from "./proto.ts";

export interface GrpcWebOptions {
  logger: Logger;
  /** Origins (`https://chat.example.com`) allowed to call from another origin; "*" allows any. */
  allowedOrigins: string[];
  /** Largest request body read, as sent (base64 in text mode); default 256 KiB. */
  maxRequestBytes?: number;
  /** Silence after which a stream that asked for keep-alives gets one; default 15 s, 0 = never. */
  keepAliveMs?: number;
}

/** The bridge's handler, and its answer to a call refused before it was read. */
export type GrpcWebHandler = GrpcWebRoute & {
  /**
   * A refusal of `request` with RESOURCE_EXHAUSTED and `message`, as the bridge answers it (a
   * trailers-only response, with CORS headers for an allowed origin); HTTP 429 for a request
   * that is no gRPC-Web call.
   */
  refuse(request: Request, message: string): Response;
};

export type GrpcWebRoute = (
  request: Request,
  info?: Deno.ServeHandlerInfo,
) => Response | Promise<Response> | undefined;

/** The request header by which a client asks for keep-alive messages (see above). */
export const KEEPALIVE_HEADER = "x-chat-keepalive";

const PATH_PREFIX = `/${SERVICE_NAME}/`;
const CONTENT_TYPES = new Map<string, Format>([
  ["application/grpc-web", "binary"],
  ["application/grpc-web+proto", "binary"],
  ["application/grpc-web-text", "text"],
  ["application/grpc-web-text+proto", "text"],
]);
const ALLOWED_HEADERS =
  `content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization, ${KEEPALIVE_HEADER}`;
const EXPOSED_HEADERS = "grpc-status, grpc-message";
const PREFLIGHT_MAX_AGE = "7200";
const DEFAULT_MAX_REQUEST_BYTES = 256 * 1024;
const DEFAULT_KEEPALIVE_MS = 15_000;
const FLAG_DATA = 0x00;
const FLAG_TRAILERS = 0x80;
const GRPC_OK = 0;
const GRPC_UNIMPLEMENTED = 12;
const GRPC_RESOURCE_EXHAUSTED = 8;

type Format = "binary" | "text";

const encoder = new TextEncoder();

/** A status this bridge answers with; `ChatError`s map through `toGrpcStatus`. */
class CallError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

function statusOf(err: unknown): { code: number; details: string } {
  if (err instanceof CallError) return { code: err.code, details: err.message };
  return toGrpcStatus(err);
}

/** Percent-encodes a status message as gRPC does: every byte outside 0x20-0x7E, and "%". */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of encoder.encode(message)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function frame(flag: number, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flag;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

function trailersFrame(code: number, details: string): Uint8Array<ArrayBuffer> {
  const message = details ? `grpc-message: ${encodeGrpcMessage(details)}\r\n` : "";
  return frame(FLAG_TRAILERS, encoder.encode(`grpc-status: ${code}\r\n${message}`));
}

/** The bytes to put on the wire: as they are, or as one padded base64 chunk in text mode. */
function wire(format: Format, bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  return format === "text" ? encoder.encode(bytes.toBase64()) : bytes;
}

/** Decodes a text-mode body: one or more base64 chunks, each possibly padded. */
function decodeBase64Body(body: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(body);
  const chunks = text.split(/(?<==)(?=[^=])/).map((chunk) => {
    try {
      return Uint8Array.fromBase64(chunk);
    } catch {
      throw invalidArgument("Cannot read request: the body is not valid base64");
    }
  });
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The one message of a request body: exactly one uncompressed data frame. */
function readFrame(body: Uint8Array): Uint8Array {
  if (body.length === 0) throw invalidArgument("Cannot read request: the body has no frame");
  if (body.length < 5) {
    throw invalidArgument(
      `Cannot read request: the body has ${body.length} bytes, a frame needs at least 5`,
    );
  }
  const flag = body[0]!;
  if (flag === 0x01) {
    throw new CallError(
      GRPC_UNIMPLEMENTED,
      "Cannot read request: compressed messages are not supported",
    );
  }
  if (flag !== FLAG_DATA) {
    throw invalidArgument(`Cannot read request: the first frame has flag 0x${flag.toString(16)}`);
  }
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(1);
  const available = body.length - 5;
  if (length > available) {
    throw invalidArgument(
      `Cannot read request: frame says ${length} bytes, body has ${available}`,
    );
  }
  if (length < available) {
    throw invalidArgument(
      `Cannot read request: the body has ${available - length} bytes after its one message`,
    );
  }
  return body.subarray(5);
}

/** Reads the body up to `limit` bytes; a bigger body is refused without reading the rest. */
async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const tooBig = (size: string) =>
    new CallError(
      GRPC_RESOURCE_EXHAUSTED,
      `Cannot read request: the body is ${size} bytes, the limit is ${limit}`,
    );
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) {
    await request.body?.cancel().catch(() => {});
    throw tooBig(String(declared));
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooBig(`more than ${limit}`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function normalizeOrigin(origin: string): string {
  return origin.trim().replace(/\/+$/, "").toLowerCase();
}

export function createGrpcWebHandler(
  service: ChatService,
  options: GrpcWebOptions,
): GrpcWebHandler {
  const logger = options.logger.with({ transport: "grpc-web" });
  const allowed = new Set(options.allowedOrigins.map(normalizeOrigin).filter(Boolean));
  const maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEPALIVE_MS;

  /** The CORS headers for `origin`, or undefined when it may not call from another origin. */
  function corsFor(origin: string | null, request: Request): Record<string, string> | undefined {
    if (origin === null) return undefined;
    const normalized = normalizeOrigin(origin);
    if (
      !allowed.has("*") && !allowed.has(normalized) &&
      normalized !== normalizeOrigin(new URL(request.url).origin)
    ) return undefined;
    return {
      "access-control-allow-origin": origin,
      "access-control-expose-headers": EXPOSED_HEADERS,
      "vary": "Origin",
    };
  }

  function plain(status: number, text: string, extra: Record<string, string> = {}): Response {
    return new Response(`${text}\n`, {
      status,
      headers: { "content-type": "text/plain; charset=utf-8", ...extra },
    });
  }

  function trailersOnly(
    contentType: string,
    err: unknown,
    cors: Record<string, string> | undefined,
  ): Response {
    const { code, details } = statusOf(err);
    const headers: Record<string, string> = {
      "content-type": contentType,
      "grpc-status": String(code),
      ...cors,
    };
    if (details) headers["grpc-message"] = encodeGrpcMessage(details);
    return new Response(null, { status: 200, headers });
  }

  function unary(
    contentType: string,
    format: Format,
    message: Uint8Array,
    cors: Record<string, string> | undefined,
  ): Response {
    const data = frame(FLAG_DATA, message);
    const trailers = trailersFrame(GRPC_OK, "");
    const body = new Uint8Array(data.length + trailers.length);
    body.set(data);
    body.set(trailers, data.length);
    const bytes = wire(format, body);
    return new Response(bytes, {
      status: 200,
      // Its length up front: the HTTP/1.1 server sends it in one piece, not chunked.
      headers: { "content-type": contentType, "content-length": String(bytes.length), ...cors },
    });
  }

  async function openStream(
    request: Request,
    caller: Caller,
    connect: WireConnect,
    contentType: string,
    format: Format,
    cors: Record<string, string> | undefined,
  ): Promise<Response> {
    const parsed = parseConnect(connect);
    const wantsKeepAlive = keepAliveMs > 0 &&
      !["", "0", "false"].includes(request.headers.get(KEEPALIVE_HEADER)?.trim() ?? "");
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    // Set once the service has the sink; the sink's callbacks may run only after that.
    // deno-lint-ignore prefer-const
    let handle: StreamHandle | undefined;
    let closed = false;
    let lastSent = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;

    const enqueue = (bytes: Uint8Array<ArrayBuffer>) => {
      controller.enqueue(wire(format, bytes));
      lastSent = Date.now();
    };
    /** The stream is over, or the client went away: the user goes offline. */
    const finish = () => {
      if (timer !== undefined) clearTimeout(timer);
      closed = true;
      handle?.close();
    };
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      cancel: finish,
    }, { highWaterMark: 0 });

    const sink: StreamSink = {
      write(bytes) {
        if (closed) return;
        enqueue(frame(FLAG_DATA, bytes));
      },
      // With a high-water mark of 0, -desiredSize is the number of chunks not yet taken.
      pending: () => closed ? 0 : Math.max(0, -(controller.desiredSize ?? 0)),
      fail(error: ChatError) {
        if (closed) return;
        const { code, details } = toGrpcStatus(error);
        try {
          enqueue(trailersFrame(code, details));
          controller.close();
        } catch {
          // Already cancelled by the client: nothing left to tell it.
        }
        finish();
      },
    };

    // Throws (INVALID_ARGUMENT, UNAUTHENTICATED, ...) before anything is sent: the caller
    // answers trailers-only.
    handle = await service.openStream(caller, parsed, sink);
    if (closed) handle.close();
    // The client going away (fetch aborted, connection closed) cancels `body`: see `finish`.
    // (Not request.signal: Deno.serve also aborts it after a successful response.)

    if (wantsKeepAlive) {
      const tick = () => {
        if (closed) return;
        const idle = Date.now() - lastSent;
        if (idle >= keepAliveMs && sink.pending() === 0) {
          // An empty chat.Message: only sent to clients that asked for it.
          enqueue(frame(FLAG_DATA, new Uint8Array(0)));
          timer = setTimeout(tick, keepAliveMs);
        } else {
          timer = setTimeout(tick, Math.max(1, keepAliveMs - idle));
        }
      };
      timer = setTimeout(tick, keepAliveMs);
    }

    return new Response(body, { status: 200, headers: { "content-type": contentType, ...cors } });
  }

  async function call(
    request: Request,
    name: string,
    contentType: string,
    format: Format,
    cors: Record<string, string> | undefined,
    info: Deno.ServeHandlerInfo | undefined,
  ): Promise<Response> {
    try {
      const method = Object.hasOwn(broadcastMethods, name) ? broadcastMethods[name] : undefined;
      if (!method) {
        await request.body?.cancel().catch(() => {});
        throw new CallError(
          GRPC_UNIMPLEMENTED,
          `Cannot call ${SERVICE_NAME}/${name}: the service has no such method`,
        );
      }
      const raw = await readBody(request, maxRequestBytes);
      const message = readFrame(format === "text" ? decodeBase64Body(raw) : raw);
      const remote = info?.remoteAddr;
      const caller: Caller = {
        authorization: request.headers.get("authorization") ?? undefined,
        address: remote && "hostname" in remote ? remote.hostname : undefined,
        // Aborted when the client goes away: a sign-in not yet hashing is then dropped.
        signal: request.signal,
      };
      if (name === "CreateStream") {
        return await openStream(
          request,
          caller,
          readRequest(method, message) as WireConnect,
          contentType,
          format,
          cors,
        );
      }
      const handler = unaryMethod(name);
      if (!handler) {
        throw new CallError(
          GRPC_UNIMPLEMENTED,
          `Cannot call ${SERVICE_NAME}/${name}: not available over gRPC-Web`,
        );
      }
      const response = await handler(service, caller, readRequest(method, message));
      return unary(contentType, format, method.responseSerialize(response), cors);
    } catch (err) {
      if (err instanceof ChatError || err instanceof CallError) {
        logger.debug("gRPC-Web call refused", { method: name, error: err.message });
      } else {
        logger.error("gRPC-Web call failed", { method: name, error: describeError(err) });
      }
      return trailersOnly(contentType, err, cors);
    }
  }

  const route: GrpcWebRoute = (request, info) => {
    const { pathname } = new URL(request.url);
    if (!pathname.startsWith(PATH_PREFIX)) return undefined;
    const origin = request.headers.get("origin");
    const cors = corsFor(origin, request);

    if (request.method === "OPTIONS") {
      if (origin === null) return new Response(null, { status: 204, headers: { allow: "POST" } });
      if (!cors) {
        logger.debug("Refused a CORS pre-flight", { origin });
        return plain(403, `Origin ${origin} may not call this service`);
      }
      return new Response(null, {
        status: 204,
        headers: {
          ...cors,
          "access-control-allow-methods": "POST",
          "access-control-allow-headers": ALLOWED_HEADERS,
          "access-control-max-age": PREFLIGHT_MAX_AGE,
        },
      });
    }
    if (request.method !== "POST") {
      return plain(405, `Method ${request.method} is not allowed: gRPC-Web calls are POST`, {
        allow: "POST, OPTIONS",
        ...cors,
      });
    }
    const contentType = (request.headers.get("content-type") ?? "").split(";")[0]!.trim()
      .toLowerCase();
    const format = CONTENT_TYPES.get(contentType);
    if (!format) {
      return plain(
        415,
        `Content type "${contentType}" is not supported: use application/grpc-web+proto or application/grpc-web-text`,
        { ...cors },
      );
    }
    return call(request, pathname.slice(PATH_PREFIX.length), contentType, format, cors, info);
  };
  return Object.assign(route, {
    refuse(request: Request, message: string): Response {
      const contentType = (request.headers.get("content-type") ?? "").split(";")[0]!.trim()
        .toLowerCase();
      const cors = corsFor(request.headers.get("origin"), request);
      if (!CONTENT_TYPES.has(contentType)) return plain(429, message, { ...cors });
      return trailersOnly(contentType, new CallError(GRPC_RESOURCE_EXHAUSTED, message), cors);
    },
  });
}
