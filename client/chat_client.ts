/**
 * A typed client for `chat.Broadcast` over native gRPC, shared by the
 * terminal client, the tests and the benchmarks.
 */

import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import {
  broadcastMethods,
  isoToTimestamp,
  SERVICE_NAME,
  timestampToIso,
  type WireConnect,
  type WireMessage,
  type WireRoom,
  type WireTimestamp,
  type WireUser,
} from "../server/proto.ts";

export type { WireMessage, WireRoom, WireUser };

const BroadcastClient = grpc.makeGenericClientConstructor(
  broadcastMethods as unknown as grpc.ServiceDefinition,
  SERVICE_NAME,
);

/**
 * TLS channel credentials: the server's certificate is checked against `ca` (PEM; the
 * system's roots when undefined). With `identity`, the client presents that certificate
 * (mutual TLS).
 *
 * grpc-js always sets the TLS server name to the target's host, and Deno refuses an IP
 * address there ("options.servername must not be an IP address"); for an IP target it is
 * dropped, and Deno then checks the certificate against the IP address itself.
 */
export function tlsCredentials(
  ca?: string | Uint8Array,
  identity?: { cert: string | Uint8Array; key: string | Uint8Array },
): grpc.ChannelCredentials {
  const credentials = grpc.credentials.createSsl(
    ca === undefined ? null : Buffer.from(ca),
    identity ? Buffer.from(identity.key) : null,
    identity ? Buffer.from(identity.cert) : null,
  );
  const create = credentials._createSecureConnector.bind(credentials);
  credentials._createSecureConnector = (...args) => {
    const connector = create(...args);
    const options = (connector as { connectionOptions?: { servername?: string } })
      .connectionOptions;
    if (options?.servername !== undefined && isIP(options.servername) !== 0) {
      delete options.servername;
    }
    return connector;
  };
  return credentials;
}

export interface SendOptions {
  displayName?: string;
  messageId?: string;
  room?: string;
  timestamp?: string;
  /** Give up (DEADLINE_EXCEEDED) when no answer came within this many ms. */
  deadlineMs?: number;
}

export interface StreamOptions {
  displayName?: string;
  presenceEvents?: boolean;
  /** The last sequence number seen per room: the stream replays what came after. */
  resume?: { room: string; lastSeq: number }[];
}

export interface MessageStream {
  /** Ends the stream from the client side. */
  cancel(): void;
  readonly call: grpc.ClientReadableStream<WireMessage>;
}

export interface SignedIn {
  token: string;
  user: WireUser;
  created: boolean;
  expiresAt: string | undefined;
}

type UnaryCall = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response: never) => void,
) => void;

export class ChatClient {
  readonly #client: grpc.Client;
  /** Sent as `authorization: Bearer <token>` on every call once set. */
  token: string | undefined;

  constructor(
    address: string,
    credentials = grpc.credentials.createInsecure(),
    options: grpc.ClientOptions = {},
  ) {
    this.#client = new BroadcastClient(address, credentials, options);
  }

  #metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.token) metadata.set("authorization", `Bearer ${this.token}`);
    return metadata;
  }

  #unary<T>(method: string, request: object, options: grpc.CallOptions = {}): Promise<T> {
    const call = (this.#client as unknown as Record<string, UnaryCall>)[method]!.bind(this.#client);
    return new Promise((resolve, reject) => {
      call(
        request,
        this.#metadata(),
        options,
        (err, response: T) => err ? reject(err) : resolve(response),
      );
    });
  }

  /** Opens `CreateStream`; `onMessage` gets every message, `onEnd` the final status (an error, or undefined for OK). */
  stream(
    userId: string,
    onMessage: (message: WireMessage) => void,
    onEnd: (error?: grpc.ServiceError) => void,
    options: StreamOptions = {},
  ): MessageStream {
    const request: WireConnect = {
      user: { id: userId, displayName: options.displayName ?? userId },
      active: true,
      presenceEvents: options.presenceEvents ?? false,
      resume: options.resume ?? [],
    };
    const create = (this.#client as unknown as Record<
      string,
      (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<WireMessage>
    >).CreateStream!.bind(this.#client);
    const call = create(request, this.#metadata());
    let ended = false;
    const end = (error?: grpc.ServiceError) => {
      if (ended) return;
      ended = true;
      onEnd(error);
    };
    call.on("data", onMessage);
    call.on("error", (err: grpc.ServiceError) => end(err));
    call.on("end", () => end());
    return { call, cancel: () => call.cancel() };
  }

  /** Sends a message; resolves when the server answered OK. */
  async send(userId: string, content: string, options: SendOptions = {}): Promise<void> {
    await this.#unary("BroadcastMessage", {
      id: userId,
      content,
      timestamp: isoToTimestamp(options.timestamp ?? new Date().toISOString()),
      displayName: options.displayName ?? "",
      messageId: options.messageId ?? "",
      room: options.room ?? "",
    }, options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs });
  }

  async listOnline(room = ""): Promise<WireUser[]> {
    return (await this.#unary<{ users: WireUser[] }>("ListOnline", { room })).users;
  }

  /** Signs in (creating the account on first use) and keeps the token for later calls. */
  async signIn(username: string, password: string, displayName = ""): Promise<SignedIn> {
    const res = await this.#unary<
      { token: string; user: WireUser; created: boolean; expiresAt: WireTimestamp | null }
    >("SignIn", { username, password, displayName });
    this.token = res.token;
    return { ...res, expiresAt: timestampToIso(res.expiresAt) };
  }

  createRoom(room: string): Promise<WireRoom> {
    return this.#unary("CreateRoom", { room });
  }

  joinRoom(room: string): Promise<WireRoom> {
    return this.#unary("JoinRoom", { room });
  }

  async leaveRoom(room: string): Promise<void> {
    await this.#unary("LeaveRoom", { room });
  }

  async listRooms(all = false): Promise<WireRoom[]> {
    return (await this.#unary<{ rooms: WireRoom[] }>("ListRooms", { all })).rooms;
  }

  openDirect(userId: string): Promise<WireRoom> {
    return this.#unary("OpenDirect", { userId });
  }

  history(
    room: string,
    beforeSeq = 0,
    limit = 0,
  ): Promise<{ messages: WireMessage[]; more: boolean }> {
    return this.#unary("History", { room, beforeSeq, limit });
  }

  /** Resolves once the channel is connected, or rejects after `timeoutMs`. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#client.waitForReady(Date.now() + timeoutMs, (err) => err ? reject(err) : resolve());
    });
  }

  close(): void {
    this.#client.close();
  }
}
