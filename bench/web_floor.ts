// deno-lint-ignore-file no-console
/**
 * The browser path's floors: the least a `Deno.serve` server does to fan gRPC-Web streams out, so
 * that the benchmark can hold the gateway's HTTP port against what the runtime itself costs; and
 * the same on `node:http`, which the gateway's HTTP port is built on (for its limits on hostile
 * clients: header and body timeouts, connections per address), to tell what that choice costs
 * from what the gateway adds on top.
 *
 * ```sh
 * deno run -A bench/web_floor.ts <port>         # Deno.serve; prints "Floor listening on http://127.0.0.1:<port>"
 * deno run -A bench/web_floor.ts <port> --node  # node:http
 * ```
 *
 * It takes the calls the benchmark's gRPC-Web clients make (bench/web_load.ts) on a gateway:
 * `CreateStream` answers 200 with a streaming body and keeps it open; `BroadcastMessage` takes
 * the request's `chat.Message` as it came, frames it once and enqueues the same bytes on every
 * open stream, then answers OK. Nothing else: no checks, no rooms, no history, no queue limit,
 * no keep-alive messages on the streams.
 */

import { Buffer } from "node:buffer";
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Broadcast } from "../protocol/gen/chat_pb.ts";
import { httpChunkOf } from "../server/http_server.ts";
import { envelope, TRAILER_FLAG } from "../server/web_wire.ts";

const CREATE_STREAM = `/${Broadcast.typeName}/${Broadcast.method.createStream.name}`;
const BROADCAST_MESSAGE = `/${Broadcast.typeName}/${Broadcast.method.broadcastMessage.name}`;
const HEADERS = { "content-type": "application/grpc-web+proto" };
/** The answer to a send: an empty `chat.Close`, then status OK. */
const SENT = new Uint8Array([
  ...envelope(new Uint8Array(0)),
  ...envelope(new TextEncoder().encode("grpc-status: 0\r\n"), TRAILER_FLAG),
]);

export function serveFloor(port: number): Deno.HttpServer<Deno.NetAddr> {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  return Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen() {},
  }, async (request) => {
    const path = new URL(request.url).pathname;
    if (path === CREATE_STREAM) {
      await request.arrayBuffer();
      let mine: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          mine = controller;
          streams.add(controller);
        },
        cancel() {
          streams.delete(mine);
        },
      });
      return new Response(body, { headers: HEADERS });
    }
    if (path === BROADCAST_MESSAGE) {
      const frame = envelope(new Uint8Array(await request.arrayBuffer()).subarray(5));
      for (const stream of streams) stream.enqueue(frame);
      return new Response(SENT, { headers: HEADERS });
    }
    return new Response("Not found\n", { status: 404 });
  });
}

/**
 * The same on `node:http`: the frames of one event-loop turn go straight to each connection as one
 * HTTP/1.1 chunk, as the gateway's do (server/web_stream.ts, server/direct_body.ts), here built
 * once for every stream; resolves once it listens.
 */
export function serveNodeFloor(port: number): Promise<http.Server> {
  const streams = new Set<Socket>();
  let turn: Uint8Array[] = [];
  const flush = () => {
    const chunk = httpChunkOf(turn);
    turn = [];
    for (const socket of streams) socket.write(chunk);
  };
  // Without Nagle's delay, as the gateway's HTTP port.
  const server = http.createServer({ noDelay: true }, async (req, res) => {
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    const body = Buffer.concat(parts);
    if (req.url === CREATE_STREAM) {
      res.writeHead(200, HEADERS);
      res.flushHeaders();
      const socket = res.socket!;
      streams.add(socket);
      socket.once("close", () => streams.delete(socket));
    } else if (req.url === BROADCAST_MESSAGE) {
      if (!turn.length) setImmediate(flush);
      turn.push(envelope(body.subarray(5)));
      res.writeHead(200, HEADERS);
      res.end(SENT);
    } else {
      res.writeHead(404);
      res.end("Not found\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

if (import.meta.main) {
  const port = Number(Deno.args[0] ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`Cannot start the floor: port ${Deno.args[0]} is not a port number`);
    Deno.exit(2);
  }
  const bound = Deno.args[1] === "--node"
    ? ((await serveNodeFloor(port)).address() as AddressInfo).port
    : serveFloor(port).addr.port;
  console.log(`Floor listening on http://127.0.0.1:${bound}`);
}
