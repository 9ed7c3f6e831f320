/**
 * The native gRPC transport: `chat.Broadcast` plus server reflection and the
 * standard health service, as thin handlers over the chat service.
 */

import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { ChatError, invalidArgument, toGrpcStatus } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ChatService } from "./chat_service.ts";
import {
  broadcastMethods,
  packageDefinition,
  SERVICE_NAME,
  timestampToIso,
  type WireConnect,
  type WireMessage,
} from "./proto.ts";

export interface GrpcServer {
  readonly server: grpc.Server;
  /** Marks the service SERVING or NOT_SERVING for health checks. */
  setServing(serving: boolean): void;
  /** Binds and returns the port (useful with port 0). */
  listen(host: string, port: number, credentials?: grpc.ServerCredentials): Promise<number>;
  /** Stops taking calls, gives open calls `graceMs` to finish, then cuts them. */
  close(graceMs: number): Promise<void>;
}

/**
 * The service definition with one change: the stream's serializer passes
 * already-encoded bytes through, so a message is encoded once for all streams.
 */
function broadcastDefinition(): grpc.ServiceDefinition {
  const stream = broadcastMethods.CreateStream!;
  return {
    ...broadcastMethods,
    CreateStream: {
      ...stream,
      responseSerialize: (value: object) =>
        value instanceof Uint8Array
          ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
          : stream.responseSerialize(value),
    },
  } as unknown as grpc.ServiceDefinition;
}

type Callback = grpc.sendUnaryData<object>;

function grpcError(err: unknown): Partial<grpc.StatusObject> {
  const { code, details } = toGrpcStatus(err);
  return { code, details };
}

/** Converts a wire `Connect` into the service's request, or says what is wrong with it. */
export function parseConnect(request: WireConnect): {
  userId: string;
  displayName: string;
  presenceEvents: boolean;
} {
  if (!request.user) throw invalidArgument("Cannot open stream: the request has no user");
  return {
    userId: request.user.id,
    displayName: request.user.displayName,
    presenceEvents: request.presenceEvents,
  };
}

/** Converts a wire `Message` into a send request. */
export function parseMessage(request: WireMessage) {
  return {
    userId: request.id,
    content: request.content,
    displayName: request.displayName,
    timestamp: timestampToIso(request.timestamp),
    messageId: request.messageId,
    room: request.room,
  };
}

export function createGrpcServer(
  service: ChatService,
  logger: Logger,
  options: grpc.ServerOptions = {},
): GrpcServer {
  const server = new grpc.Server({
    // Dead peers are noticed within a minute even when nothing is sent.
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    ...options,
  });

  server.addService(broadcastDefinition(), {
    CreateStream(call: grpc.ServerWritableStream<WireConnect, Uint8Array>) {
      let handle: { close(): void } | undefined;
      try {
        handle = service.openStream(parseConnect(call.request), {
          write: (frame) => {
            call.write(frame);
          },
          pending: () => call.writableLength,
          fail: (error: ChatError) => call.emit("error", grpcError(error)),
        });
      } catch (err) {
        call.emit("error", grpcError(err));
        return;
      }
      const close = () => handle?.close();
      call.on("cancelled", close);
      call.on("close", close);
      call.on("error", close);
    },
    BroadcastMessage(call: grpc.ServerUnaryCall<WireMessage, object>, callback: Callback) {
      let request;
      try {
        request = parseMessage(call.request);
      } catch (err) {
        callback(grpcError(err), null);
        return;
      }
      service.send(request).then(
        () => callback(null, {}),
        (err) => {
          if (!(err instanceof ChatError)) logger.error("Send failed", { error: String(err) });
          callback(grpcError(err), null);
        },
      );
    },
    ListOnline(_call: grpc.ServerUnaryCall<object, object>, callback: Callback) {
      try {
        const users = service.online().map((p) => ({ id: p.userId, displayName: p.displayName }));
        callback(null, { users });
      } catch (err) {
        callback(grpcError(err), null);
      }
    },
  });

  new ReflectionService(packageDefinition).addToServer(server);
  const health = new HealthImplementation({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING" });
  health.addToServer(server);

  return {
    server,
    setServing(serving) {
      const status = serving ? "SERVING" : "NOT_SERVING";
      health.setStatus("", status);
      health.setStatus(SERVICE_NAME, status);
    },
    listen(host, port, credentials = grpc.ServerCredentials.createInsecure()) {
      return new Promise((resolve, reject) => {
        server.bindAsync(`${host}:${port}`, credentials, (err, bound) => {
          if (err) reject(err);
          else resolve(bound);
        });
      });
    },
    close(graceMs) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
