/**
 * The browser API: `chat.Broadcast` on the gateway's HTTP port, served by @connectrpc/connect
 * over the same dispatch as the native gRPC port (server/rpc.ts), so checks, authentication,
 * limits and errors are those of native gRPC.
 *
 * Protocols: gRPC-Web (`application/grpc-web[+proto|+json]`) and Connect (`application/json`
 * and `application/proto` unary, `application/connect+json|+proto` streaming), as the page,
 * @protobuf-ts/grpcweb-transport, @connectrpc/connect-web and curl speak them. Connect serves no
 * gRPC-Web text mode (`application/grpc-web-text`), which @protobuf-ts/grpcweb-transport uses by
 * default: a shim here decodes such a body from base64 and encodes each response frame as its own
 * padded base64 chunk (the spec allows padding mid-stream; every standard client decodes in
 * groups of 4 characters).
 *
 * What is ours, around Connect (its byte-level parts in server/web_wire.ts):
 * - Size: a body over `maxRequestBytes` (as sent, base64 in text mode; the HTTP port reads at most
 *   one byte more) is refused with RESOURCE_EXHAUSTED before a byte of it is parsed, through
 *   Connect's request gate, so the refusal has each protocol's form. Calls over the per-address
 *   cap are refused the same way (`refuse`).
 * - Keep-alive: gRPC-Web has no keep-alive frame, so by default nothing is sent on an idle
 *   stream, and proxies in front must allow long idle streams (Envoy: route `timeout: 0s` and a
 *   large `stream_idle_timeout`; nginx: `proxy_read_timeout 1h; proxy_buffering off;`). A client
 *   that asks with the request header `x-chat-keepalive: 1` (protocol/limits.ts) gets an empty `chat.Message` after
 *   every `keepAliveMs` of silence, and drops it (`isKeepAlive` in client/core/wire.ts).
 *   Standard clients never send that header, so they never see one.
 * - Headers: Connect sends a stream's headers with its first message; here a stream gets them
 *   once the service accepted it, as on the native port, so a client knows it is open.
 * - Plain unary calls: a POST in binary gRPC-Web with one uncompressed message and no
 *   `grpc-timeout` (what the page and the benchmark send) is answered here, through the same
 *   dispatch, without Connect's per-call machinery, which cost more CPU than the send it
 *   carried (about 300 µs a call). Its answer has the bytes Connect's would (compared in
 *   tests/grpc_web_test.ts); a call the service refuses is answered by Connect, the refusal at
 *   its gate.
 * - Encoding: the hub encodes a stream message once for every stream. In the binary-framed
 *   protocols (gRPC-Web binary and text, Connect with protobuf) its frames go straight into the
 *   response body (server/web_stream.ts), framed once for all streams; Connect, which serializes
 *   what a handler yields per stream, keeps the request, the refusals and the trailers. JSON
 *   streams get each frame decoded once (shared by every JSON stream it goes to) and encoded
 *   again by Connect per stream.
 * - CORS: same-origin by default (no CORS headers for other origins, so browsers refuse them);
 *   origins in `allowedOrigins` (or "*") get `Access-Control-Allow-Origin` and their pre-flights
 *   are answered 204 with the headers gRPC-Web and Connect clients send (Connect's `cors` lists)
 *   plus `authorization` and the keep-alive header; responses expose the status headers. A
 *   browser sends no pre-flight to its own origin, but one that names the server's own origin
 *   (scheme and Host) is answered as for an allowed one; a pre-flight from any other origin gets
 *   403.
 */

import {
  create,
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  cors,
  createConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  type UniversalHandler,
  universalServerResponseToFetch,
} from "@connectrpc/connect/protocol";
import { ChatError, toConnectError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { Broadcast, type Connect, type Message, MessageSchema } from "../protocol/gen/chat_pb.ts";
import {
  DEFAULT_MAX_RESUME_ROOMS,
  KEEPALIVE_HEADER,
  KEEPALIVE_INTERVAL_MS,
} from "../protocol/limits.ts";
import { concat } from "./bytes.ts";
import type { ChatService } from "./chat_service.ts";
import type { StreamHandle } from "./chat_types.ts";
import type { StreamSink } from "./hub.ts";
import { callerOf, callUnary, logFailure, parseConnect } from "./rpc.ts";
import {
  BINARY_GRPC_WEB_CONTENT_TYPE,
  BINARY_STREAM_CONTENT_TYPE,
  binaryPayload,
  COMPRESSED_FLAG,
  decodeBase64Body,
  encodeBase64Chunk,
  envelope,
  ENVELOPED_CONTENT_TYPE,
  GRPC_WEB_CONTENT_TYPE,
  GRPC_WEB_OK_TRAILERS,
  isPlainGrpcWebCall,
  mediaType,
  plainTrailers,
  readAtMost,
  streamContentType,
  TEXT_CONTENT_TYPE,
  TRAILER_FLAG,
} from "./web_wire.ts";
import { decodeRequest } from "./wire.ts";
import { StreamBody } from "./web_stream.ts";

export interface WebApiOptions {
  logger: Logger;
  /** Origins (`https://chat.example.com`) allowed to call from another origin; "*" allows any. */
  allowedOrigins: string[];
  /** Largest request body read, as sent (base64 in text mode); default 256 KiB. */
  maxRequestBytes?: number;
  /** Silence after which a stream that asked for keep-alives gets one; default 15 s, 0 = never. */
  keepAliveMs?: number;
  /** The most `Connect.resume` entries (MAX_RESUME_ROOMS); default DEFAULT_MAX_RESUME_ROOMS. */
  maxResumeRooms?: number;
}

export type WebRoute = (
  request: Request,
  info?: Deno.ServeHandlerInfo,
) => Promise<Response | undefined> | Response | undefined;

/** The API's route, and its answer to a call refused before it was read. */
export type WebApi = WebRoute & {
  /**
   * A refusal of `request` with RESOURCE_EXHAUSTED and `message`, in the form of the request's
   * protocol (with CORS headers for an allowed origin); HTTP 429 for a request that is no call.
   */
  refuse(request: Request, message: string): Promise<Response>;
};

const PATH_PREFIX = `/${Broadcast.typeName}/`;
const ALLOWED_HEADERS = [...cors.allowedHeaders, "authorization", KEEPALIVE_HEADER]
  .map((h) => h.toLowerCase()).join(", ");
const EXPOSED_HEADERS = cors.exposedHeaders.map((h) => h.toLowerCase()).join(", ");
const PREFLIGHT_MAX_AGE = "7200";
const DEFAULT_MAX_REQUEST_BYTES = 256 * 1024;

/** The client's address, as the HTTP port saw it. */
const ADDRESS = createContextKey<string | undefined>(undefined);
/** Called by a stream once the service accepted it. */
const ACCEPTED = createContextKey<() => void>(() => {});
/** Why the call is refused before its body is read, if it is. */
const REFUSAL = createContextKey<ConnectError | undefined>(undefined);
/** The body a stream's frames go to, past Connect, in the binary-framed protocols. */
const DIRECT = createContextKey<StreamBody | undefined>(undefined);

/** An empty `chat.Message`: a keep-alive. */
const KEEPALIVE = create(MessageSchema);

/**
 * Stream messages decoded from the hub's frames, each frame once for every web stream it goes
 * to (the hub writes the same bytes to all).
 */
const decoded = new WeakMap<Uint8Array, Message>();

function messageOf(frame: Uint8Array): Message {
  let message = decoded.get(frame);
  if (!message) decoded.set(frame, message = fromBinary(MessageSchema, frame));
  return message;
}

function normalizeOrigin(origin: string): string {
  return origin.trim().replace(/\/+$/, "").toLowerCase();
}

function plain(status: number, text: string, extra: Record<string, string> = {}): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...extra },
  });
}

export function createWebApi(service: ChatService, options: WebApiOptions): WebApi {
  const logger = options.logger.with({ transport: "web" });
  const allowed = new Set(options.allowedOrigins.map(normalizeOrigin).filter(Boolean));
  const maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const keepAliveMs = options.keepAliveMs ?? KEEPALIVE_INTERVAL_MS;
  const maxResumeRooms = options.maxResumeRooms ?? DEFAULT_MAX_RESUME_ROOMS;

  /** The call's status for `err`, logged. */
  function failure(method: string, err: unknown): ConnectError {
    logFailure(logger, method, err);
    return toConnectError(err);
  }

  const caller = (context: HandlerContext) =>
    callerOf(
      context.requestHeader.get("authorization"),
      context.values.get(ADDRESS),
      context.signal,
    );

  async function* createStream(request: Connect, context: HandlerContext) {
    const direct = context.values.get(DIRECT);
    const frames: Uint8Array[] = [];
    let failed: ChatError | undefined;
    let wake: (() => void) | undefined;
    const fail = (error: ChatError) => {
      failed ??= error;
      wake?.();
    };
    const sink: StreamSink = direct
      ? { write: (frame) => direct.write(frame), pending: () => direct.pending(), fail }
      : {
        write(frame) {
          frames.push(frame);
          wake?.();
        },
        // Frames Connect has not taken yet: it takes one when the client's connection takes the
        // last.
        pending: () => frames.length,
        fail,
      };
    let handle: StreamHandle;
    try {
      handle = await service.openStream(
        caller(context),
        parseConnect(request, maxResumeRooms),
        sink,
      );
    } catch (err) {
      throw failure("CreateStream", err);
    }
    context.values.get(ACCEPTED)();
    const keepAlive = keepAliveMs > 0 &&
      !["", "0", "false"].includes(context.requestHeader.get(KEEPALIVE_HEADER)?.trim() ?? "");
    // The client went away (or the call ended): Connect aborts the signal.
    const onAbort = () => wake?.();
    context.signal.addEventListener("abort", onAbort);
    try {
      // Direct frames do not wake this loop: an idle stream is one that was written nothing for
      // `keepAliveMs`.
      let quietMs = keepAliveMs;
      while (!context.signal.aborted) {
        const frame = frames.shift();
        if (frame) {
          yield messageOf(frame);
          continue;
        }
        if (failed) throw toConnectError(failed);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const woken = await new Promise<boolean>((resolve) => {
          wake = () => resolve(true);
          if (keepAlive) timer = setTimeout(() => resolve(false), quietMs);
        });
        clearTimeout(timer);
        wake = undefined;
        if (woken) continue;
        if (!direct) {
          yield KEEPALIVE;
          continue;
        }
        if (direct.silentFor() >= keepAliveMs) direct.keepAlive();
        quietMs = Math.max(1, keepAliveMs - direct.silentFor());
      }
    } finally {
      context.signal.removeEventListener("abort", onAbort);
      handle.close();
    }
  }

  /** A unary method's handler: the shared dispatch, its failure logged and answered. */
  function unary<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>) {
    return async (request: MessageShape<I>, context: HandlerContext): Promise<MessageShape<O>> => {
      try {
        return await callUnary(service, caller(context), method, request);
      } catch (err) {
        throw failure(method.name, err);
      }
    };
  }

  const { method } = Broadcast;
  const implementation: ServiceImpl<typeof Broadcast> = {
    createStream,
    broadcastMessage: unary(method.broadcastMessage),
    listOnline: unary(method.listOnline),
    signIn: unary(method.signIn),
    createRoom: unary(method.createRoom),
    joinRoom: unary(method.joinRoom),
    leaveRoom: unary(method.leaveRoom),
    listRooms: unary(method.listRooms),
    openDirect: unary(method.openDirect),
    history: unary(method.history),
    editMessage: unary(method.editMessage),
    deleteMessage: unary(method.deleteMessage),
    setTyping: unary(method.setTyping),
    react: unary(method.react),
    markRead: unary(method.markRead),
    setTopic: unary(method.setTopic),
    search: unary(method.search),
    seenBy: unary(method.seenBy),
    block: unary(method.block),
    listBlocked: unary(method.listBlocked),
    setRole: unary(method.setRole),
    removeMember: unary(method.removeMember),
    muteMember: unary(method.muteMember),
    setRoomAccess: unary(method.setRoomAccess),
    invite: unary(method.invite),
  };

  const router = createConnectRouter({
    grpc: false,
    grpcWeb: true,
    connect: true,
    readMaxBytes: maxRequestBytes,
    // Unknown fields are dropped, as on the native port.
    binaryOptions: { readUnknownFields: false },
    requestGate(context) {
      const refusal = context.values.get(REFUSAL);
      if (refusal) throw refusal;
    },
  });
  router.service(Broadcast, implementation);
  const handlers = new Map<string, UniversalHandler>(
    router.handlers.map((h) => [h.requestPath, h]),
  );

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

  /** Runs `handler` on `request` with `body`, refused at the gate when `refusal` is set. */
  async function call(
    handler: UniversalHandler,
    request: Request,
    body: Uint8Array,
    address: string | undefined,
    refusal: ConnectError | undefined,
    cors: Record<string, string> | undefined,
  ): Promise<Response> {
    const header = new Headers(request.headers);
    const contentType = mediaType(header.get("content-type"));
    const text = TEXT_CONTENT_TYPE.test(contentType);
    // Connect takes no parameters on a binary gRPC-Web content type; gRPC-Web clients may send
    // some (`; charset=utf-8`), which mean nothing for protobuf.
    if (BINARY_GRPC_WEB_CONTENT_TYPE.test(contentType)) {
      header.set("content-type", contentType);
    }
    let bytes: Uint8Array = body;
    if (text) {
      const binary = refusal ? new Uint8Array(0) : decodeBase64Body(body);
      refusal ??= binary ? undefined : new ConnectError(
        "Cannot read request: the body is not valid base64",
        Code.InvalidArgument,
      );
      bytes = binary ?? new Uint8Array(0);
      header.set("content-type", "application/grpc-web+proto");
      header.delete("content-length");
    }
    // Connect answers binary that does not decode with INTERNAL ("parse binary"), blaming
    // itself: such a request is checked here first and refused with INVALID_ARGUMENT as on the
    // native port. A call answered past Connect uses this decode; one Connect serves decodes
    // again.
    const payload = binaryPayload(header.get("content-type"), bytes);
    let input: MessageShape<DescMessage> | undefined;
    if (payload && !refusal) {
      try {
        input = decodeRequest(handler.method.input, payload);
      } catch (err) {
        refusal = toConnectError(err);
      }
    }
    if (
      input && payload && handler.method.methodKind === "unary" &&
      isPlainGrpcWebCall(request.method, contentType, header, bytes, payload)
    ) {
      // Past Connect (see the top of this file); a refusal goes back to it, at its gate.
      // DescMethod is not a union that its methodKind narrows.
      const method = handler.method as DescMethodUnary;
      try {
        const output = await callUnary(
          service,
          callerOf(header.get("authorization"), address, request.signal),
          method,
          input,
        );
        const answer = concat([
          envelope(toBinary(method.output, output)),
          GRPC_WEB_OK_TRAILERS,
        ]);
        return new Response(answer, {
          status: 200,
          headers: {
            ...cors,
            "content-type": "application/grpc-web+proto",
            "content-length": String(answer.length),
          },
        });
      } catch (err) {
        refusal = failure(method.name, err);
      }
    }
    // Connect answers a compressed envelope it cannot decompress, and one with flags it does not
    // know, with INTERNAL, blaming itself.
    const flags = bytes[0] ?? 0;
    if (ENVELOPED_CONTENT_TYPE.test(contentType) && flags !== 0) {
      refusal ??= flags === COMPRESSED_FLAG
        ? new ConnectError(
          "Cannot read request: compressed messages are not supported",
          Code.Unimplemented,
        )
        : new ConnectError(
          `Cannot read request: the envelope has flags 0x${flags.toString(16)}, expected 0`,
          Code.InvalidArgument,
        );
    }
    const accepted = Promise.withResolvers<void>();
    // Aborted when the client goes away, or when the body is cancelled (in process, no socket
    // says so): a stream waiting for its next message then ends.
    const gone = new AbortController();
    request.signal.addEventListener("abort", () => gone.abort(), { once: true });
    const direct = handler.method.methodKind === "server_streaming" && !refusal &&
        BINARY_STREAM_CONTENT_TYPE.test(contentType)
      ? new StreamBody(text ? "text" : "binary", () => {
        gone.abort();
        answered.then((r) => r.body?.cancel()).catch(() => {});
      })
      : undefined;
    const answered = handler({
      httpVersion: "",
      method: request.method,
      url: request.url,
      header,
      body: createAsyncIterable([bytes]),
      signal: gone.signal,
      contextValues: createContextValues()
        .set(ADDRESS, address)
        .set(REFUSAL, refusal)
        .set(ACCEPTED, accepted.resolve)
        .set(DIRECT, direct),
    }).then(universalServerResponseToFetch);
    // Connect sends a stream's headers with its first message; a stream the service accepted
    // gets them at once, as on the native port, so a client knows it is open in a quiet room.
    const first = await Promise.race([answered, accepted.promise]);
    const grpcWeb = GRPC_WEB_CONTENT_TYPE.test(contentType);
    /** A frame of Connect's as the client gets it: gRPC-Web trailers fixed, text in base64. */
    const reframe = (chunk: Uint8Array): Uint8Array<ArrayBuffer> => {
      const frame = grpcWeb && chunk[0] === TRAILER_FLAG ? plainTrailers(chunk) : chunk;
      return text ? encodeBase64Chunk(frame) : frame as Uint8Array<ArrayBuffer>;
    };
    if (!first && direct) {
      answered.then((r) => direct.finish(r.body, reframe)).catch(() => {});
      const headers = new Headers({
        ...cors,
        "content-type": text ? contentType : streamContentType(header.get("content-type")),
      });
      return new Response(direct.body, { status: 200, headers });
    }
    let pending: Promise<ReadableStreamDefaultReader<Uint8Array> | undefined> | undefined;
    const reader = () => pending ??= answered.then((r) => r.body?.getReader());
    const response = first ?? new Response(
      new ReadableStream<Uint8Array>({
        // Pulled as the client takes what came before, so the hub sees a slow client's queue.
        async pull(controller) {
          const next = await (await reader())?.read();
          if (!next || next.done) controller.close();
          else controller.enqueue(next.value);
        },
        // The client went away: cancelling Connect's body ends the stream.
        cancel() {
          gone.abort();
          reader().then((r) => r?.cancel()).catch(() => {});
        },
      }, { highWaterMark: 0 }),
      { status: 200, headers: { "content-type": streamContentType(header.get("content-type")) } },
    );
    const headers = new Headers(response.headers);
    for (const [name, value] of Object.entries(cors ?? {})) headers.set(name, value);
    if (response.status === 405) headers.set("allow", "POST, OPTIONS");
    let out = response.body;
    if (grpcWeb && response.status === 200) {
      if (text) headers.set("content-type", contentType);
      out = response.body?.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array<ArrayBuffer>>({
          transform: (chunk, controller) => controller.enqueue(reframe(chunk)),
        }),
      ) ?? null;
    }
    if (handler.method.methodKind !== "unary") {
      return new Response(out, { status: response.status, headers });
    }
    // A unary answer whole, with its length: the HTTP/1.1 port then sends it in one piece.
    const whole = new Uint8Array(await new Response(out).arrayBuffer());
    headers.set("content-length", String(whole.length));
    return new Response(whole, { status: response.status, headers });
  }

  const route: WebRoute = async (request, info) => {
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
    const handler = handlers.get(pathname);
    if (!handler) {
      // Refused at the gate of a method of the same kind, so in the request's protocol.
      await request.body?.cancel().catch(() => {});
      const streaming = /^application\/connect\+/i.test(request.headers.get("content-type") ?? "");
      const unimplemented = new ConnectError(
        `Cannot call ${pathname.slice(1)}: the service has no such method`,
        Code.Unimplemented,
      );
      const kind = handlers.get(
        `/${Broadcast.typeName}/${streaming ? "CreateStream" : "ListOnline"}`,
      )!;
      return await call(kind, request, new Uint8Array(0), undefined, unimplemented, cors);
    }
    const declared = Number(request.headers.get("content-length") ?? NaN);
    const body = declared > maxRequestBytes
      ? new Uint8Array(0)
      : await readAtMost(request, maxRequestBytes + 1);
    let refusal: ConnectError | undefined;
    if (declared > maxRequestBytes || body.length > maxRequestBytes) {
      const size = declared > maxRequestBytes ? String(declared) : `more than ${maxRequestBytes}`;
      refusal = new ConnectError(
        `Cannot read request: the body is ${size} bytes, the limit is ${maxRequestBytes}`,
        Code.ResourceExhausted,
      );
    }
    const remote = info?.remoteAddr;
    const address = remote && "hostname" in remote ? remote.hostname : undefined;
    return await call(handler, request, refusal ? new Uint8Array(0) : body, address, refusal, cors);
  };

  return Object.assign(route, {
    async refuse(request: Request, message: string): Promise<Response> {
      const cors = corsFor(request.headers.get("origin"), request);
      const handler = handlers.get(new URL(request.url).pathname);
      if (!handler || request.method !== "POST") return plain(429, message, { ...cors });
      const refusal = new ConnectError(message, Code.ResourceExhausted);
      const response = await call(handler, request, new Uint8Array(0), undefined, refusal, cors);
      // Not a call this API takes (a content type it does not serve): plain text.
      return response.status === 415 ? plain(429, message, { ...cors }) : response;
    },
  });
}
