// deno-lint-ignore-file no-console
/**
 * The browser path's floor: the least a `Deno.serve` server does to fan gRPC-Web streams out, so
 * that the benchmark can hold the gateway's HTTP port against what the runtime itself costs.
 *
 * ```sh
 * deno run -A bench/web_floor.ts <port>    # prints "Floor listening on http://127.0.0.1:<port>"
 * ```
 *
 * It takes the calls the benchmark's gRPC-Web clients make (bench/web_load.ts) on a gateway:
 * `CreateStream` answers 200 with a streaming body and keeps it open; `BroadcastMessage` takes
 * the request's `chat.Message` as it came, frames it once and enqueues the same bytes on every
 * open stream, then answers OK. Nothing else: no checks, no rooms, no history, no queue limit,
 * no keep-alive.
 */

import { Broadcast } from "../protocol/gen/chat_pb.ts";
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

if (import.meta.main) {
  const port = Number(Deno.args[0] ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`Cannot start the floor: port ${Deno.args[0]} is not a port number`);
    Deno.exit(2);
  }
  const server = serveFloor(port);
  console.log(`Floor listening on http://127.0.0.1:${server.addr.port}`);
}
