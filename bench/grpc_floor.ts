/**
 * The native gRPC floor of `deno task bench`: the least a fan-out server on this runtime and
 * grpc-js can do, run in the same benchmark as the gateway so that the gateway's CPU per
 * delivery and memory per stream are stated as ratios to it (issue 12). It serves
 * `chat.Broadcast`'s `CreateStream` and `BroadcastMessage` and nothing else: every open stream
 * sits in a set, and a broadcast message is decoded, encoded once, and the same bytes are
 * written to every stream before the call is answered. No rooms, no queue limit, no history, no
 * connection limits: whatever the gateway spends beyond this is the cost of being a chat service.
 *
 * ```sh
 * deno run -A bench/grpc_floor.ts 50051   # prints "Floor listening on 127.0.0.1:50051"
 * ```
 */

import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Buffer } from "node:buffer";
import { Broadcast, CloseSchema, MessageSchema } from "../protocol/gen/chat_pb.ts";

/** Bytes in, bytes out: the handlers do their own protobuf work, once per message. */
const passThrough = (bytes: Buffer) => bytes;

function method(name: string, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: `/${Broadcast.typeName}/${name}`,
    requestStream: false,
    responseStream,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
  };
}

const CLOSE = Buffer.from(toBinary(CloseSchema, create(CloseSchema)));

/** The floor server on `127.0.0.1:port`; resolves with the bound port. */
export function serveFloor(port: number): Promise<{ port: number; server: grpc.Server }> {
  const streams = new Set<grpc.ServerWritableStream<Buffer, Buffer>>();
  const server = new grpc.Server();
  const createStream = Broadcast.method.createStream.name;
  const broadcastMessage = Broadcast.method.broadcastMessage.name;
  server.addService({
    [createStream]: method(createStream, true),
    [broadcastMessage]: method(broadcastMessage, false),
  }, {
    [createStream]: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      streams.add(call);
      const gone = () => streams.delete(call);
      call.on("cancelled", gone);
      call.on("close", gone);
      call.on("error", gone);
      // As the gateway does: headers tell the client the stream was accepted.
      call.sendMetadata(new grpc.Metadata());
    },
    [broadcastMessage]: (
      call: grpc.ServerUnaryCall<Buffer, Buffer>,
      callback: grpc.sendUnaryData<Buffer>,
    ) => {
      const frame = Buffer.from(toBinary(MessageSchema, fromBinary(MessageSchema, call.request)));
      for (const stream of streams) stream.write(frame);
      callback(null, CLOSE);
    },
  });
  return new Promise((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(err);
      else resolve({ port: bound, server });
    });
  });
}

if (import.meta.main) {
  const { port } = await serveFloor(Number(Deno.args[0] ?? 0));
  Deno.stdout.writeSync(new TextEncoder().encode(`Floor listening on 127.0.0.1:${port}\n`));
}
