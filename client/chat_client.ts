/**
 * A typed client for `chat.Broadcast` over native gRPC (@grpc/grpc-js), shared by the terminal
 * client, the tests and the benchmarks. Requests and answers are the protobuf-es types of
 * protocol/gen, encoded with its codecs (`toBinary`/`fromBinary`) for the methods of the
 * generated `Broadcast` descriptor.
 */

import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  Broadcast,
  type Message,
  type Room,
  type SeenByList,
  type User,
} from "../protocol/gen/chat_pb.ts";

export type { Message, Room, User };

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
  /** ISO 8601; now when not given. */
  timestamp?: string;
  /** Give up (DEADLINE_EXCEEDED) when no answer came within this many ms. */
  deadlineMs?: number;
}

export interface StreamOptions {
  displayName?: string;
  presenceEvents?: boolean;
  /** The last sequence number seen per room: the stream replays what came after. */
  resume?: { room: string; lastSeq: number | bigint }[];
}

export interface MessageStream {
  /** Ends the stream from the client side. */
  cancel(): void;
  readonly call: grpc.ClientReadableStream<Message>;
}

export interface SignedIn {
  token: string;
  user: User | undefined;
  created: boolean;
  /** ISO 8601, if the server said. */
  expiresAt: string | undefined;
}

type Methods = typeof Broadcast.method;
type Input<N extends keyof Methods> = MessageInitShape<Methods[N]["input"]>;
type Output<N extends keyof Methods> = MessageShape<Methods[N]["output"]>;

/** The path, serializer and deserializer grpc-js needs for `name`. */
function rpc<N extends keyof Methods>(name: N) {
  const method = Broadcast.method[name];
  const input = method.input as DescMessage;
  const output = method.output as DescMessage;
  return {
    path: `/${Broadcast.typeName}/${method.name}`,
    serialize: (request: Input<N>) =>
      Buffer.from(toBinary(input, create(input, request as MessageInitShape<DescMessage>))),
    deserialize: (bytes: Buffer) => fromBinary(output, bytes) as Output<N>,
  };
}

export class ChatClient {
  readonly #client: grpc.Client;
  /** Sent as `authorization: Bearer <token>` on every call once set. */
  token: string | undefined;

  constructor(
    address: string,
    credentials = grpc.credentials.createInsecure(),
    options: grpc.ClientOptions = {},
  ) {
    this.#client = new grpc.Client(address, credentials, options);
  }

  #metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.token) metadata.set("authorization", `Bearer ${this.token}`);
    return metadata;
  }

  #unary<N extends keyof Methods>(
    name: N,
    request: Input<N>,
    options: grpc.CallOptions = {},
  ): Promise<Output<N>> {
    const { path, serialize, deserialize } = rpc(name);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        path,
        serialize,
        deserialize,
        request,
        this.#metadata(),
        options,
        (err, response) => err ? reject(err) : resolve(response!),
      );
    });
  }

  /** Opens `CreateStream`; `onMessage` gets every message, `onEnd` the final status (an error, or undefined for OK). */
  stream(
    userId: string,
    onMessage: (message: Message) => void,
    onEnd: (error?: grpc.ServiceError) => void,
    options: StreamOptions = {},
  ): MessageStream {
    const { path, serialize, deserialize } = rpc("createStream");
    const call = this.#client.makeServerStreamRequest(path, serialize, deserialize, {
      user: { id: userId, displayName: options.displayName ?? userId },
      active: true,
      presenceEvents: options.presenceEvents ?? false,
      resume: (options.resume ?? []).map((p) => ({ room: p.room, lastSeq: BigInt(p.lastSeq) })),
    }, this.#metadata());
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
    const at = options.timestamp === undefined ? new Date() : new Date(options.timestamp);
    if (Number.isNaN(at.getTime())) {
      throw new RangeError(
        `Cannot send message: the timestamp ${JSON.stringify(options.timestamp)} is not a date`,
      );
    }
    await this.#unary("broadcastMessage", {
      id: userId,
      content,
      timestamp: timestampFromDate(at),
      displayName: options.displayName ?? "",
      messageId: options.messageId ?? "",
      room: options.room ?? "",
    }, options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs });
  }

  async listOnline(room = ""): Promise<User[]> {
    return (await this.#unary("listOnline", { room })).users;
  }

  /** Signs in (creating the account on first use) and keeps the token for later calls. */
  async signIn(username: string, password: string, displayName = ""): Promise<SignedIn> {
    const res = await this.#unary("signIn", { username, password, displayName });
    this.token = res.token;
    return {
      token: res.token,
      user: res.user,
      created: res.created,
      expiresAt: res.expiresAt && timestampDate(res.expiresAt).toISOString(),
    };
  }

  createRoom(room: string): Promise<Room> {
    return this.#unary("createRoom", { room });
  }

  joinRoom(room: string): Promise<Room> {
    return this.#unary("joinRoom", { room });
  }

  async leaveRoom(room: string): Promise<void> {
    await this.#unary("leaveRoom", { room });
  }

  /** With `all`, the directory: with a `query`, only rooms whose name or topic holds it. */
  async listRooms(all = false, query = "", limit = 0): Promise<Room[]> {
    return (await this.#unary("listRooms", { all, query, limit })).rooms;
  }

  /** Sets the topic of `room` (its owner only); "" takes it away. */
  setTopic(room: string, topic: string): Promise<Room> {
    return this.#unary("setTopic", { room, topic });
  }

  /** The owner of `room` makes `userId` a "moderator" or a "member" again. */
  setRole(room: string, userId: string, role: string): Promise<Room> {
    return this.#unary("setRole", { room, userId, role });
  }

  /** An owner or moderator removes `userId` from `room`. */
  async removeMember(room: string, userId: string): Promise<void> {
    await this.#unary("removeMember", { room, userId });
  }

  /** An owner or moderator mutes `userId` in `room` for `seconds` (0 lifts the mute). */
  async muteMember(room: string, userId: string, seconds: number): Promise<void> {
    await this.#unary("muteMember", { room, userId, seconds });
  }

  openDirect(userId: string): Promise<Room> {
    return this.#unary("openDirect", { userId });
  }

  /** Makes `room` invite-only, or open again (its owner only). */
  setRoomAccess(room: string, inviteOnly: boolean): Promise<Room> {
    return this.#unary("setRoomAccess", { room, inviteOnly });
  }

  /** Invites `userId` to `room` (its owner only). */
  async invite(room: string, userId: string): Promise<void> {
    await this.#unary("invite", { room, userId });
  }

  /** The rooms this user is invited to, newest invitation first. */
  async listInvitations(limit = 0): Promise<Room[]> {
    return (await this.#unary("listRooms", { invitations: true, limit })).rooms;
  }

  /** Tells the room's other members that this user is typing there, or stopped. */
  async setTyping(room: string, typing: boolean): Promise<void> {
    await this.#unary("setTyping", { room, typing });
  }

  /** A page of `room`'s history, newest first (`limit` 0: the server's default). */
  async history(
    room: string,
    beforeSeq: number | bigint = 0,
    limit = 0,
  ): Promise<{ messages: Message[]; more: boolean; events: Message[] }> {
    const page = await this.#unary("history", { room, beforeSeq: BigInt(beforeSeq), limit });
    return { messages: page.messages, more: page.more, events: page.events };
  }

  /** A page of `room`'s history centred on message `aroundSeq`, newest first ("in context"). */
  async historyAround(
    room: string,
    aroundSeq: number | bigint,
    limit = 0,
  ): Promise<{ messages: Message[]; more: boolean }> {
    const page = await this.#unary("history", { room, aroundSeq: BigInt(aroundSeq), limit });
    return { messages: page.messages, more: page.more };
  }

  /** The messages of one's rooms (or of `room`) holding every word of `query`, best first. */
  async search(query: string, room = "", limit = 0): Promise<Message[]> {
    return (await this.#unary("search", { query, room, limit })).messages;
  }

  /** Who read message `seq` of `room` ("seen by N"). */
  seenBy(room: string, seq: number | bigint): Promise<SeenByList> {
    return this.#unary("seenBy", { room, seq: BigInt(seq) });
  }

  /** Replaces the text of one's own message `seq` of `room`; resolves with it as stored. */
  editMessage(room: string, seq: number | bigint, content: string): Promise<Message> {
    return this.#unary("editMessage", { room, seq: BigInt(seq), content });
  }

  /** Deletes message `seq` of `room` (one's own, or any in a room one owns). */
  async deleteMessage(room: string, seq: number | bigint): Promise<void> {
    await this.#unary("deleteMessage", { room, seq: BigInt(seq) });
  }

  /** Toggles one's reaction `emoji` on message `seq` of `room`. */
  async react(room: string, seq: number | bigint, emoji: string): Promise<void> {
    await this.#unary("react", { room, seq: BigInt(seq), emoji });
  }

  /** Marks `room` read up to message `seq` for this account, on all its devices. */
  async markRead(room: string, seq: number | bigint): Promise<void> {
    await this.#unary("markRead", { room, seq: BigInt(seq) });
  }

  /** Blocks `userId` (`blocked` true) or unblocks them, for this account. */
  async block(userId: string, blocked = true): Promise<void> {
    await this.#unary("block", { userId, blocked });
  }

  /** The users this account blocked, sorted. */
  async listBlocked(): Promise<string[]> {
    return (await this.#unary("listBlocked", {})).users;
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
