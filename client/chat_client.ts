/**
 * A typed client for `chat.Broadcast` over native gRPC, shared by the
 * terminal client, the tests and the benchmarks.
 */

import * as grpc from "@grpc/grpc-js";
import {
  broadcastMethods,
  isoToTimestamp,
  SERVICE_NAME,
  type WireConnect,
  type WireMessage,
  type WireUser,
} from "../server/proto.ts";

export type { WireMessage, WireUser };

const BroadcastClient = grpc.makeGenericClientConstructor(
  broadcastMethods as unknown as grpc.ServiceDefinition,
  SERVICE_NAME,
);

export interface SendOptions {
  displayName?: string;
  messageId?: string;
  room?: string;
  timestamp?: string;
}

export interface StreamOptions {
  displayName?: string;
  presenceEvents?: boolean;
}

export interface MessageStream {
  /** Ends the stream from the client side. */
  cancel(): void;
  readonly call: grpc.ClientReadableStream<WireMessage>;
}

export class ChatClient {
  readonly #client: grpc.Client;

  constructor(
    address: string,
    credentials = grpc.credentials.createInsecure(),
    options: grpc.ClientOptions = {},
  ) {
    this.#client = new BroadcastClient(address, credentials, options);
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
    };
    // deno-lint-ignore no-explicit-any
    const call = (this.#client as any).CreateStream(request) as grpc.ClientReadableStream<
      WireMessage
    >;
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
  send(userId: string, content: string, options: SendOptions = {}): Promise<void> {
    const request: Partial<WireMessage> = {
      id: userId,
      content,
      timestamp: isoToTimestamp(options.timestamp ?? new Date().toISOString()),
      displayName: options.displayName ?? "",
      messageId: options.messageId ?? "",
      room: options.room ?? "",
    };
    return new Promise((resolve, reject) => {
      // deno-lint-ignore no-explicit-any
      (this.#client as any).BroadcastMessage(request, (err: grpc.ServiceError | null) => {
        if (err) reject(err);
        else resolve();
      });
    });
  }

  listOnline(): Promise<WireUser[]> {
    return new Promise((resolve, reject) => {
      // deno-lint-ignore no-explicit-any
      (this.#client as any).ListOnline(
        {},
        (err: grpc.ServiceError | null, res: { users: WireUser[] }) => {
          if (err) reject(err);
          else resolve(res.users);
        },
      );
    });
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
