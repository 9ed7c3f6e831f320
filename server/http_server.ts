/**
 * The gateway's HTTP port: health and readiness, the browser API (server/web_api.ts) and the
 * web page, behind the port's connection limits (server/connection_guard.ts).
 *
 * Served by node:http (HTTP/1.1) or, with TLS, node:http2 with HTTP/1.1 fallback, not
 * Deno.serve: Deno 2.9.3's Deno.serve has no connection cap, no header, body or idle timeout,
 * takes no connection from elsewhere, and cannot ask for or check client certificates
 * (`Deno.ServeTlsOptions` has only `cert` and `key`; denoland/deno#26825), while node:http and
 * node:http2 in Deno 2.9.3 take injected connections and do mutual TLS (`requestCert`, `ca`).
 * Handlers keep the fetch API (`Request` → `Response`); `serveHttp` adapts.
 */

import { setTimeout as sleep } from "node:timers/promises";
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import type { TlsFiles } from "../core/config.ts";
import { describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { concat } from "./bytes.ts";
import { type BodyOut, directBodyOf } from "./direct_body.ts";
import {
  type CallTicket,
  ConnectionGuard,
  type ConnectionLimits,
  peerKey,
} from "./connection_guard.ts";

export type HttpHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo,
) => Response | Promise<Response>;

export interface HttpRoutes {
  /** Whether the gateway can take messages now, and if not, why. */
  readiness: () => { ready: boolean; reason?: string };
  /** Tried in order before the built-in routes; the first non-undefined response wins. */
  handlers?: ((
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ) => Response | undefined | Promise<Response | undefined>)[];
}

export function createHttpHandler(routes: HttpRoutes): HttpHandler {
  return async (request, info) => {
    for (const handler of routes.handlers ?? []) {
      const response = await handler(request, info);
      if (response) return response;
    }
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return Response.json({ status: "ok" });
    if (pathname === "/readyz") {
      const { ready, reason } = routes.readiness();
      return Response.json(ready ? { status: "ready" } : { status: "not ready", reason }, {
        status: ready ? 200 : 503,
      });
    }
    return new Response("Not found\n", { status: 404 });
  };
}

export interface ServeHttpOptions {
  hostname: string;
  port: number;
  /** HTTPS (HTTP/2 and HTTP/1.1); with `clientCa`, only clients with a certificate it signed. */
  tls?: TlsFiles;
  limits: ConnectionLimits;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of HTTP/2 connections. */
  maxStreamsPerConnection: number;
  /** Memory an HTTP/2 session may buffer, in MiB. */
  maxSessionMemoryMb: number;
  /** `Strict-Transport-Security: max-age` with TLS; 0: no header. */
  hstsMaxAgeSeconds: number;
  /**
   * The largest request body read. A bigger one reaches the handler cut to this many bytes plus
   * one (so a handler with this limit sees it is too big), a declared `content-length` over it
   * with no body at all; its connection (or HTTP/2 stream) is closed after the response.
   */
  maxBodyBytes: number;
  reportIntervalMs: number;
  logger: Logger;
  /** The answer to a call over `maxCallsPerAddress` (its request without a body); by default 429. */
  refuse?: (request: Request, message: string) => Response | Promise<Response>;
}

export interface HttpServer {
  readonly port: number;
  readonly guard: ConnectionGuard;
  /**
   * Stops taking connections, closes idle ones, gives open calls `graceMs` to end, then cuts
   * what is left.
   */
  shutdown(graceMs?: number): Promise<void>;
}

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

const NO_BODY = new Set(["GET", "HEAD"]);

/** Serves `handler` on `options.hostname:port` behind the connection limits. */
export async function serveHttp(
  handler: HttpHandler,
  options: ServeHttpOptions,
): Promise<HttpServer> {
  const { tls, limits, logger } = options;
  const guard = new ConnectionGuard({
    name: "HTTP",
    limits,
    logger,
    reportIntervalMs: options.reportIntervalMs,
    idleCloser: "guard",
  });
  const scheme = tls ? "https" : "http";
  const extraHeaders: Record<string, string> = tls && options.hstsMaxAgeSeconds > 0
    ? { "strict-transport-security": `max-age=${options.hstsMaxAgeSeconds}` }
    : {};
  const refuse = options.refuse ??
    ((_request: Request, message: string) =>
      new Response(`${message}\n`, {
        status: 429,
        headers: { "content-type": "text/plain; charset=utf-8" },
      }));
  let stopping = false;

  const onRequest = (req: NodeRequest, res: NodeResponse) => {
    const socket = req.socket;
    const ticket = guard.startCall(peerKey(socket.remoteAddress, socket.remotePort));
    serve(req, res, ticket).catch((err) => {
      logger.error("HTTP request failed", { error: describeError(err) });
      if (!res.headersSent) {
        try {
          const out = res as http.ServerResponse;
          out.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
          out.end("Internal server error\n");
          return;
        } catch {
          // Cannot answer any more: cut below.
        }
      }
      res.destroy();
    });
  };

  async function serve(req: NodeRequest, res: NodeResponse, ticket: CallTicket): Promise<void> {
    const h2 = req.httpVersionMajor === 2;
    let finished = false;
    /** Cancels the response body being sent: the stream behind it closes (a user goes offline). */
    const cancel: { body?: () => void } = {};
    const aborted = new AbortController();
    const completed = Promise.withResolvers<void>();
    completed.promise.catch(() => {});
    res.once("finish", () => {
      finished = true;
      completed.resolve();
    });
    res.once("close", () => {
      ticket.end();
      if (!finished) {
        // The client went away before the whole response was sent.
        aborted.abort();
        cancel.body?.();
        completed.reject(new Deno.errors.Interrupted("The client went away"));
      }
    });

    const method = req.method ?? "GET";
    const authority = (h2 ? req.headers[":authority"] : undefined) ?? req.headers.host ??
      `${options.hostname}:${port}`;
    let url: URL;
    const headers = new Headers();
    try {
      url = new URL(`${scheme}://${authority}${req.url ?? "/"}`);
      const raw = req.rawHeaders;
      for (let i = 0; i + 1 < raw.length; i += 2) {
        if (!raw[i]!.startsWith(":")) headers.append(raw[i]!, raw[i + 1]!);
      }
    } catch {
      ticket.requestDone();
      return send(res, new Response("Bad request\n", { status: 400 }), h2, true, cancel);
    }
    const hasBody = !NO_BODY.has(method) &&
      (h2 ? !(req as http2.Http2ServerRequest).stream.endAfterHeaders : Number(
        req.headers["content-length"] ?? (req.headers["transfer-encoding"] ? 1 : 0),
      ) > 0);
    const info: Deno.ServeHandlerInfo = {
      remoteAddr: {
        transport: "tcp",
        hostname: req.socket.remoteAddress ?? "",
        port: req.socket.remotePort ?? 0,
      },
      completed: completed.promise,
    };
    const request = (body: Uint8Array<ArrayBuffer> | null) => {
      try {
        return new Request(url, { method, headers, body, signal: aborted.signal });
      } catch {
        return undefined;
      }
    };

    if (ticket.refused !== undefined) {
      ticket.requestDone();
      const bare = request(null) ?? new Request(url, { headers, signal: aborted.signal });
      return send(res, await refuse(bare, ticket.refused), h2, hasBody, cancel);
    }
    const read = await readBody(req, hasBody, options.maxBodyBytes);
    if (read === undefined) return; // The client went away, or the guard closed it as too slow.
    ticket.requestDone();
    const built = request(NO_BODY.has(method) ? null : read.body);
    if (!built) {
      return send(
        res,
        new Response(`Method ${method} is not allowed\n`, { status: 405 }),
        h2,
        read.cut,
        cancel,
      );
    }
    const response = await handler(built, info);
    cancel.body = () => response.body?.cancel().catch(() => {});
    if (res.destroyed) {
      cancel.body();
      return;
    }
    await send(res, response, h2, read.cut, cancel);
  }

  /** The request's body, cut at `limit` + 1 bytes; undefined when the request went away. */
  function readBody(
    req: NodeRequest,
    hasBody: boolean,
    limit: number,
  ): Promise<{ body: Uint8Array<ArrayBuffer>; cut: boolean } | undefined> {
    if (!hasBody) {
      req.resume();
      return Promise.resolve({ body: new Uint8Array(0), cut: false });
    }
    if (Number(req.headers["content-length"] ?? 0) > limit) {
      // Refused on its declared size: not a byte of it is read.
      req.pause();
      return Promise.resolve({ body: new Uint8Array(0), cut: true });
    }
    return new Promise((resolve) => {
      const chunks: Uint8Array[] = [];
      let total = 0;
      const done = (value: { body: Uint8Array<ArrayBuffer>; cut: boolean } | undefined) => {
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("close", onClose);
        resolve(value);
      };
      const onData = (chunk: Uint8Array) => {
        chunks.push(chunk);
        total += chunk.length;
        if (total > limit) {
          req.pause();
          done({ body: concat(chunks, limit + 1), cut: true });
        }
      };
      const onEnd = () => done({ body: concat(chunks, total), cut: false });
      const onClose = () => done(undefined);
      req.on("data", onData);
      req.once("end", onEnd);
      req.once("close", onClose);
    });
  }

  /** Writes `response`; `closeAfter`: the request was not read to its end, so its connection (or stream) goes. */
  async function send(
    res: NodeResponse,
    response: Response,
    h2: boolean,
    closeAfter: boolean,
    cancel: { body?: () => void },
  ): Promise<void> {
    const headers: Record<string, string | string[]> = {};
    response.headers.forEach((value, name) => {
      if (name === "set-cookie") {
        const list = headers[name];
        headers[name] = Array.isArray(list) ? [...list, value] : [value];
      } else headers[name] = value;
    });
    Object.assign(headers, extraHeaders);
    if (closeAfter) {
      if (h2) {
        res.once("finish", () => (res as http2.Http2ServerResponse).stream.close());
      } else {
        headers["connection"] = "close";
        res.once("finish", () => (res as http.ServerResponse).socket?.destroySoon());
      }
    }
    if (stopping && !h2) headers["connection"] = "close";
    // The two response types share these methods; the union's overloads do not type-check.
    const out = res as http.ServerResponse;
    out.writeHead(response.status, headers);
    if (!response.body) {
      res.end();
      return;
    }
    const length = Number(response.headers.get("content-length") ?? NaN);
    const socket = h2 ? undefined : (res as http.ServerResponse).socket;
    const direct = length >= 0 || !socket || !(res as { chunkedEncoding?: boolean }).chunkedEncoding
      ? undefined
      : directBodyOf(response.body);
    if (direct && socket) {
      // A stream's headers go out now: the client learns the call was accepted before any message.
      (res as http.ServerResponse).flushHeaders();
      cancel.body = () => response.body?.cancel().catch(() => {});
      direct.attach(chunkedOut(out, socket));
      return;
    }
    const reader = response.body.getReader();
    cancel.body = () => reader.cancel().catch(() => {});
    if (length >= 0) {
      // A body of known length (a unary answer): sent whole, in one write.
      const chunks: Uint8Array[] = [];
      let total = 0;
      try {
        while (total < length) {
          const { done, value } = await reader.read();
          if (done) break;
          chunks.push(value);
          total += value.length;
        }
      } finally {
        cancel.body = undefined;
        reader.releaseLock();
      }
      if (!res.destroyed) out.end(chunks.length === 1 ? chunks[0] : concat(chunks, total));
      return;
    }
    // A stream's headers go out now: the client learns the call was accepted before any message.
    if (!h2) (res as http.ServerResponse).flushHeaders();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        if (res.destroyed) return;
        if (!out.write(value)) {
          await new Promise<void>((resolve) => {
            const go = () => {
              res.off("drain", go);
              res.off("close", go);
              resolve();
            };
            res.on("drain", go);
            res.on("close", go);
          });
          if (res.destroyed) return;
        }
      }
      res.end();
    } finally {
      cancel.body = undefined;
      reader.releaseLock();
    }
  }

  /**
   * A self-writing body's way to an HTTP/1.1 client whose response is chunked: each chunk framed
   * as one HTTP chunk and written straight to the socket, after the headers; `end` writes the
   * last chunk through node:http, which framed none of the others.
   */
  function chunkedOut(res: http.ServerResponse, socket: net.Socket): BodyOut {
    return {
      write(parts) {
        if (!socket.destroyed) socket.write(httpChunkOf(parts));
      },
      behind: () => socket.writableNeedDrain,
      end() {
        if (!res.destroyed) res.end();
      },
    };
  }

  let inner: net.Server;
  if (tls) {
    const secure = http2.createSecureServer({
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      ...(tls.clientCa !== undefined
        ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }
        : {}),
      settings: { maxConcurrentStreams: options.maxStreamsPerConnection },
      maxSessionMemory: options.maxSessionMemoryMb,
      // Backstop: the guard closes a handshake that takes longer than HEADERS_TIMEOUT_MS.
      handshakeTimeout: limits.headersTimeoutMs + 1000,
    }, onRequest);
    secure.on("session", (session: http2.ServerHttp2Session) => {
      const s = session.socket;
      guard.setGracefulClose(peerKey(s?.remoteAddress, s?.remotePort), () => session.close());
      session.on("error", () => {});
    });
    // A client without an acceptable certificate, or one that breaks off the handshake: no call,
    // nothing to log but at debug level.
    secure.on("tlsClientError", (err: Error) => {
      logger.debug("TLS handshake failed", { error: err.message });
    });
    secure.on("sessionError", () => {});
    nodeLimits(secure as unknown as http.Server, limits);
    inner = secure;
  } else {
    const plain = http.createServer({ noDelay: true }, onRequest);
    nodeLimits(plain, limits);
    inner = plain;
  }

  markListening(inner);
  const port = await guard.listen(options.hostname, options.port, (socket) => {
    inner.emit("connection", socket);
  });

  return {
    port,
    guard,
    async shutdown(graceMs = 2000) {
      stopping = true;
      await guard.stopListening();
      // Not listening any more: each HTTP/1.1 connection closes after its response, HTTP/2
      // sessions get a GOAWAY.
      inner.close();
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && guard.connections().some((c) => c.calls > 0)) {
        for (const c of guard.connections()) if (c.calls === 0) c.socket.destroy();
        await sleep(20);
      }
      await guard.close();
    },
  };
}

/** One-part body chunks in HTTP/1.1 chunked framing, made once for the streams that share them. */
const httpChunks = new WeakMap<Uint8Array, Uint8Array>();

/**
 * `parts` as one HTTP/1.1 chunk: its size in hex, CRLF, the bytes, CRLF. Never empty: a chunk of
 * size 0 would end the body.
 */
export function httpChunkOf(parts: readonly Uint8Array[]): Uint8Array {
  const shared = parts.length === 1 ? parts[0]! : undefined;
  const known = shared && httpChunks.get(shared);
  if (known) return known;
  let size = 0;
  for (const part of parts) size += part.length;
  const hex = size.toString(16);
  const out = new Uint8Array(hex.length + size + 4);
  let at = 0;
  for (let i = 0; i < hex.length; i++) out[at++] = hex.charCodeAt(i);
  out[at++] = 13;
  out[at++] = 10;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  out[at++] = 13;
  out[at] = 10;
  if (shared) httpChunks.set(shared, out);
  return out;
}

/**
 * Marks `server` listening, as Deno marks a server that its DENO_SERVE_ADDRESS override listener
 * feeds (ext/node/polyfills/_http_server.js, "override-only"): a stub handle, then "listening".
 * Deno 2.9.3's node:http destroys a keep-alive connection after every response when its server
 * is not listening (`resOnFinish`: `if (!server.listening) socket.destroy()`), and tracks
 * connections for `headersTimeout` and `requestTimeout` only once "listening" fired; this server
 * takes its connections from the guard's listener. tests/connection_limits_test.ts fails if
 * keep-alive stops working.
 */
function markListening(server: net.Server): void {
  (server as unknown as { _handle: unknown })._handle = { close() {}, ref() {}, unref() {} };
  server.emit("listening");
}

/**
 * node:http's own timers as backstops behind the guard's (which close first and count what they
 * close): a client that breaks them is answered 408 and closed, quietly.
 */
function nodeLimits(server: http.Server, limits: ConnectionLimits): void {
  server.headersTimeout = limits.headersTimeoutMs + 1000;
  server.requestTimeout = limits.headersTimeoutMs + limits.bodyTimeoutMs + 2000;
  // Advertised in `Keep-Alive: timeout=`; Deno's node:http closes an idle connection a second
  // after it, the guard at it.
  server.keepAliveTimeout = limits.idleTimeoutMs;
  server.on("clientError", (_err: Error, socket: net.Socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    socket.destroy();
  });
}
