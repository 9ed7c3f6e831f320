/**
 * The native gRPC transport: `chat.Broadcast` plus server reflection and the
 * standard health service, as thin handlers over the chat service.
 *
 * Connection limits: grpc-js binds no port here. The port's `ConnectionGuard`
 * (server/connection_guard.ts) accepts every connection on its own net.Server and hands those
 * within its caps to grpc-js through `Server.createConnectionInjector` (grpc-js's public API for
 * connections accepted elsewhere). A server interceptor tells the guard when each call starts,
 * when its request has arrived (half-close) and when it ends, matched to its connection by
 * `call.getPeer()`; tests/connection_limits_test.ts fails if that matching stops working.
 * grpc-js itself sends the GOAWAY of an idle connection (`grpc.max_connection_idle_ms`), and
 * advertises SETTINGS_MAX_CONCURRENT_STREAMS (`grpc.max_concurrent_streams`); an old connection's
 * GOAWAY comes from closing its generation's injector (server/connection_age.ts), not from
 * `grpc.max_connection_age_ms`, whose timer per connection Deno keeps memory for.
 */

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import {
  type DescMethod,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { file_google_protobuf_timestamp, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { HealthImplementation } from "grpc-health-check";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import type { TlsFiles } from "../core/config.ts";
import { ChatError, toGrpcStatus } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { Broadcast, file_chat } from "../protocol/gen/chat_pb.ts";
import { DEFAULT_MAX_RESUME_ROOMS } from "../protocol/limits.ts";
import { AgedConnections } from "./connection_age.ts";
import { ConnectionGuard, type ConnectionLimits } from "./connection_guard.ts";
import { StreamWriter } from "./grpc_stream_writer.ts";
import type { ChatService } from "./chat_service.ts";
import type { StreamHandle } from "./chat_types.ts";
import { callerOf, callUnary, logFailure, parseConnect } from "./rpc.ts";
import { peerHost } from "./sign_in_limits.ts";
import { decodeRequest } from "./wire.ts";

export interface GrpcServer {
  readonly server: grpc.Server;
  /** Marks the service SERVING or NOT_SERVING for health checks. */
  setServing(serving: boolean): void;
  /** Binds and returns the port (useful with port 0). */
  listen(host: string, port: number, credentials?: grpc.ServerCredentials): Promise<number>;
  /** The listening port's connection guard (after `listen`). */
  readonly guard: ConnectionGuard | undefined;
  /** Stops taking calls, gives open calls `graceMs` to finish, then cuts them. */
  close(graceMs: number): Promise<void>;
}

/** A request whose bytes are no valid message: its handler answers with `error`. */
class UnreadableRequest {
  constructor(readonly error: unknown) {}
}

/** A view of `bytes` as a Buffer, for grpc-js, without a copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const streams = (method: DescMethod, side: "client" | "server") =>
  method.methodKind === "bidi_streaming" || method.methodKind === `${side}_streaming`;

/**
 * The grpc-js definition of `service`, with the generated codecs, so that handlers get and give
 * the generated message types. Two choices: a response that is a Uint8Array already is passed
 * through, so that a stream message is encoded once for all streams; and request bytes that do
 * not decode become an `UnreadableRequest`, because grpc-js answers a deserializer that throws
 * with INTERNAL ("Error deserializing request"), blaming the server for the client's bytes.
 */
function serviceDefinition(service: DescService): grpc.ServiceDefinition {
  return Object.fromEntries(service.methods.map((method) => [method.name, {
    path: `/${service.typeName}/${method.name}`,
    originalName: method.localName,
    requestStream: streams(method, "client"),
    responseStream: streams(method, "server"),
    requestSerialize: (message: Message) => asBuffer(toBinary(method.input, message)),
    requestDeserialize: (bytes: Buffer) => {
      try {
        return decodeRequest(
          method.input,
          new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length),
        );
      } catch (err) {
        return new UnreadableRequest(err);
      }
    },
    responseSerialize: (value: Message | Uint8Array) =>
      asBuffer(value instanceof Uint8Array ? value : toBinary(method.output, value)),
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  }]));
}

/**
 * What reflection serves: chat.proto and google/protobuf/timestamp.proto under their real names,
 * chat.proto listing timestamp.proto as its dependency and its fields named as in the .proto
 * (the descriptors protoc-gen-es embedded in protocol/gen), and the health service as
 * proto-loader loads it. proto-loader's own descriptor of chat.proto named no dependency and put
 * Timestamp in a file "google_protobuf.proto", which grpcurl could not resolve.
 */
function reflectedFiles(): protoLoader.PackageDefinition {
  // The repository's copy of health.proto: grpc-health-check's adds a List method whose map
  // field proto-loader describes with a map entry name grpcurl refuses.
  const health = protoLoader.loadSync("grpc/health/v1/health.proto", {
    keepCase: true,
    includeDirs: [new URL("../proto/", import.meta.url).pathname],
  });
  const fileDescriptorProtos = [file_chat, file_google_protobuf_timestamp].map((file) =>
    asBuffer(toBinary(FileDescriptorProtoSchema, file.proto))
  );
  // Reflection reads only `fileDescriptorProtos` of each entry.
  const chat = { fileDescriptorProtos } as unknown as protoLoader.MessageTypeDefinition<
    object,
    object
  >;
  return { ...health, "chat.proto": chat };
}

/** The decoded request, or the error that says why its bytes could not be decoded. */
function request<T extends object>(decoded: T | UnreadableRequest): T {
  if (decoded instanceof UnreadableRequest) throw decoded.error;
  return decoded;
}

function grpcError(err: unknown): Partial<grpc.StatusObject> {
  const { code, details } = toGrpcStatus(err);
  return { code, details };
}

function authorizationOf(metadata: grpc.Metadata): string | undefined {
  const value = metadata.get("authorization")[0];
  return typeof value === "string" ? value : undefined;
}

/**
 * Server credentials for TLS with `tls`'s certificate and key; with `clientCa`, clients must
 * present a certificate signed by it (mutual TLS).
 */
export function tlsServerCredentials(tls: TlsFiles): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(
    // Without client CA certificates grpc-js would pass its whole bundle of public roots as
    // `ca`, and Deno's TLS server sends that bundle with its own certificate: a handshake
    // message too big for clients. An empty list keeps the handshake small.
    Buffer.from(tls.clientCa ?? ""),
    [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }],
    tls.clientCa !== undefined,
  );
}

/** The connection limits of the gRPC port, and the one request limit checked before the service. */
export interface GrpcConnectionOptions {
  limits: ConnectionLimits;
  /** SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxStreamsPerConnection: number;
  /** GOAWAY to connections older than this; 0: never. */
  maxConnectionAgeMs: number;
  /** Memory an HTTP/2 session may buffer, in MiB. */
  maxSessionMemoryMb: number;
  reportIntervalMs: number;
  /** The most `Connect.resume` entries (MAX_RESUME_ROOMS); default DEFAULT_MAX_RESUME_ROOMS. */
  maxResumeRooms?: number;
}

export function createGrpcServer(
  service: ChatService,
  logger: Logger,
  options: grpc.ServerOptions = {},
  connections?: GrpcConnectionOptions,
): GrpcServer {
  const maxResumeRooms = connections?.maxResumeRooms ?? DEFAULT_MAX_RESUME_ROOMS;
  let guard: ConnectionGuard | undefined;
  let aged: AgedConnections | undefined;
  /** Tells the guard when each call starts, has its request, and ends; refuses calls over the per-address limit. */
  const guardCalls: grpc.ServerInterceptor = (_method, call) => {
    const ticket = guard?.startCall(call.getPeer());
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, next) {
            if (ticket?.refused !== undefined) {
              call.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: ticket.refused });
            } else next(metadata);
          },
          onReceiveHalfClose(next) {
            ticket?.requestDone();
            next();
          },
          // Called however the call ends: its status sent, or its stream closed.
          onCancel() {
            ticket?.end();
          },
        });
      },
    });
  };
  const server = new grpc.Server({
    "grpc.keepalive_permit_without_calls": 1,
    // Nothing here reads channelz; on, it keeps a registry entry, a call tracker and a trace per
    // connection, and counts every call.
    "grpc.enable_channelz": 0,
    ...(connections
      ? {
        "grpc.max_concurrent_streams": connections.maxStreamsPerConnection,
        "grpc.max_connection_idle_ms": connections.limits.idleTimeoutMs,
        "grpc-node.max_session_memory": connections.maxSessionMemoryMb,
        interceptors: [guardCalls],
      }
      : {}),
    ...options,
  });

  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of Broadcast.methods) {
    if (method.methodKind !== "unary") continue;
    const unary = method as DescMethodUnary;
    handlers[method.name] = (
      call: grpc.ServerUnaryCall<object, object>,
      callback: grpc.sendUnaryData<object>,
    ) => {
      // Who calls, and a signal for a call its client cancels: a sign-in that has not started
      // hashing yet is then dropped. The peer is read now: after the call it is "unknown".
      const cancelled = new AbortController();
      call.once("cancelled", () => cancelled.abort());
      const caller = callerOf(
        authorizationOf(call.metadata),
        peerHost(call.getPeer()),
        cancelled.signal,
      );
      Promise.resolve()
        .then(() => callUnary(service, caller, unary, request(call.request as never)))
        .then(
          (response) => callback(null, response),
          (err) => {
            logFailure(logger, method.name, err);
            callback(grpcError(err), null);
          },
        );
    };
  }
  handlers[Broadcast.method.createStream.name] = (
    call: grpc.ServerWritableStream<object, Uint8Array>,
  ) => {
    let handle: StreamHandle | undefined;
    let gone = false;
    const close = () => {
      gone = true;
      handle?.close();
    };
    call.on("cancelled", close);
    call.on("close", close);
    call.on("error", close);
    const caller = callerOf(
      authorizationOf(call.metadata),
      peerHost(call.getPeer()),
      new AbortController().signal,
    );
    const writer = new StreamWriter(call);
    Promise.resolve()
      .then(() =>
        service.openStream(caller, parseConnect(request(call.request as never), maxResumeRooms), {
          write: (frame) => writer.write(frame),
          pending: () => writer.pending(),
          fail: (error: ChatError) => writer.fail(grpcError(error)),
        })
      )
      .then(
        (opened) => {
          handle = opened;
          // The client left while the stream was being set up.
          if (gone) opened.close();
          // Headers now tell the client the stream was accepted, before any message comes.
          else writer.sendHeaders();
        },
        (err) => {
          logFailure(logger, "CreateStream", err);
          call.emit("error", grpcError(err));
        },
      );
  };
  server.addService(serviceDefinition(Broadcast), handlers);

  // Reflection describes the health service too, so grpcurl can list and call it.
  new ReflectionService(reflectedFiles()).addToServer(server);
  const health = new HealthImplementation({
    "": "NOT_SERVING",
    [Broadcast.typeName]: "NOT_SERVING",
  });
  health.addToServer(server);

  return {
    server,
    setServing(serving) {
      const status = serving ? "SERVING" : "NOT_SERVING";
      health.setStatus("", status);
      health.setStatus(Broadcast.typeName, status);
    },
    get guard() {
      return guard;
    },
    listen(host, port, credentials = grpc.ServerCredentials.createInsecure()) {
      if (!connections) {
        return new Promise((resolve, reject) => {
          server.bindAsync(`${host}:${port}`, credentials, (err, bound) => {
            if (err) reject(err);
            else resolve(bound);
          });
        });
      }
      const injector = () => server.createConnectionInjector(credentials);
      let handOver: (socket: Duplex) => void;
      if (connections.maxConnectionAgeMs > 0) {
        aged = new AgedConnections(injector, connections.maxConnectionAgeMs);
        handOver = (socket) => aged!.inject(socket);
      } else {
        const only = injector();
        handOver = (socket) => only.injectConnection(socket);
      }
      guard = new ConnectionGuard({
        name: "gRPC",
        limits: connections.limits,
        logger,
        reportIntervalMs: connections.reportIntervalMs,
        idleCloser: "protocol",
      });
      return guard.listen(host, port, handOver);
    },
    async close(graceMs) {
      await guard?.stopListening();
      aged?.stop();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await guard?.close();
    },
  };
}
