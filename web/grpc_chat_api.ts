/**
 * `ChatBackend` over gRPC-Web (binary format) to the gateway that served the
 * page, with the `BroadcastClient` generated into web/gen (`deno task
 * gen:proto`) and the standard @protobuf-ts/grpcweb-transport. Every call of a
 * signed-in session carries `authorization: Bearer <token>`.
 */

import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { RpcError, type RpcOptions } from "@protobuf-ts/runtime-rpc";
import { BroadcastClient } from "./gen/chat.client.ts";
import type { Message, Room } from "./gen/chat.ts";
import { Timestamp } from "./gen/google/protobuf/timestamp.ts";
import {
  ApiError,
  type ChatApi,
  type ChatBackend,
  type ChatMessage,
  type ChatUser,
  GENERAL,
  type RoomInfo,
  type StreamEvent,
} from "./chat_connection.ts";

/** Header by which the stream asks the bridge for keep-alive messages on idle streams. */
const KEEPALIVE_HEADER = "x-chat-keepalive";
/** The bridge sends a keep-alive after 15 s of silence; this much silence means the stream is dead. */
const SILENCE_LIMIT_MS = 40_000;

/**
 * Whether a streamed message is a keep-alive (an empty `chat.Message`), sent
 * only to a stream opened with the request header `x-chat-keepalive: 1`.
 */
export function isKeepAlive(m: Message): boolean {
  return m.id === "" && m.content === "" && m.messageId === "" && !m.presence &&
    !m.roomEvent && !m.timestamp;
}

/** gRPC percent-encodes status messages; the transport passes them on as they came. */
function decodeGrpcMessage(message: string): string {
  if (!/%[0-9A-Fa-f]{2}/.test(message)) return message;
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof RpcError) return new ApiError(err.code, decodeGrpcMessage(err.message));
  if (err instanceof Error) return new ApiError("UNKNOWN", err.message);
  return new ApiError("UNKNOWN", String(err));
}

/** Runs a call, turning its failure into an `ApiError`. */
async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw toApiError(err);
  }
}

function toUser(u: { id: string; displayName: string } | undefined): ChatUser | undefined {
  return u?.id ? { id: u.id, displayName: u.displayName || u.id } : undefined;
}

export function toChatMessage(m: Message): ChatMessage {
  return {
    messageId: m.messageId,
    userId: m.id,
    displayName: m.displayName || m.id,
    content: m.content,
    timestamp: m.timestamp ? Timestamp.toDate(m.timestamp) : undefined,
    room: m.room || GENERAL,
    seq: m.seq,
  };
}

function toRoom(r: Room): RoomInfo {
  return { id: r.id, direct: r.direct, members: r.members, lastSeq: r.lastSeq };
}

/** What a streamed message means to the page; undefined for what it does not show. */
export function toStreamEvent(m: Message): StreamEvent | undefined {
  if (m.presence) {
    const user = toUser(m.presence.user);
    return user && { type: "presence", user, online: m.presence.online };
  }
  if (m.roomEvent) {
    const user = toUser(m.roomEvent.user);
    return user && {
      type: "room",
      event: {
        room: m.roomEvent.room || m.room || GENERAL,
        user,
        joined: m.roomEvent.joined,
        at: m.timestamp ? Timestamp.toDate(m.timestamp) : undefined,
      },
    };
  }
  // A chat message always has content (the server refuses empty ones); an empty message is an
  // event this page does not know (a newer field).
  if (m.content === "") return undefined;
  return { type: "message", message: toChatMessage(m) };
}

/** The calls of a session signed in with `token`. */
function sessionApi(client: BroadcastClient, token: string): ChatApi {
  const meta = { authorization: `Bearer ${token}` };
  const options = (signal?: AbortSignal): RpcOptions => ({ meta, abort: signal });

  return {
    async stream({ user, presenceEvents, resume }, handlers, signal) {
      // A watchdog: the stream is aborted when nothing (not even a keep-alive) came for too long.
      const abort = new AbortController();
      const onAbort = () => abort.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      let silent = false;
      let ended = false;
      let watchdog: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          silent = true;
          abort.abort();
        }, SILENCE_LIMIT_MS);
      };
      try {
        arm();
        const stream = client.createStream(
          { user, active: true, presenceEvents, resume: resume.map((p) => ({ ...p })) },
          { abort: abort.signal, meta: { ...meta, [KEEPALIVE_HEADER]: "1" } },
        );
        // A refusal also comes as headers (trailers-only): report the stream open only if no
        // error follows them at once.
        stream.headers.then(() => setTimeout(() => ended || handlers.onOpen(), 0), () => {});
        for await (const m of stream.responses) {
          arm();
          if (isKeepAlive(m)) continue;
          const event = toStreamEvent(m);
          if (event) handlers.onEvent(event);
        }
        await stream.status;
      } catch (err) {
        if (silent && !signal.aborted) {
          throw new ApiError("UNAVAILABLE", "The connection went silent");
        }
        throw toApiError(err);
      } finally {
        ended = true;
        clearTimeout(watchdog);
        signal.removeEventListener("abort", onAbort);
      }
    },

    send: ({ user, content, messageId, room }) =>
      call(async () => {
        await client.broadcastMessage({
          id: user.id,
          displayName: user.displayName,
          content,
          messageId,
          room,
          seq: 0,
        }, options()).response;
      }),

    listOnline: (signal) =>
      call(async () => {
        const { users } = await client.listOnline({ room: "" }, options(signal)).response;
        return users.map(toUser).filter((u): u is ChatUser => u !== undefined);
      }),

    listRooms: (signal) =>
      call(async () => {
        const { rooms } = await client.listRooms({ all: false }, options(signal)).response;
        return rooms.map(toRoom);
      }),

    createRoom: (room) =>
      call(async () => toRoom(await client.createRoom({ room }, options()).response)),

    joinRoom: (room) =>
      call(async () => toRoom(await client.joinRoom({ room }, options()).response)),

    leaveRoom: (room) =>
      call(async () => {
        await client.leaveRoom({ room }, options()).response;
      }),

    openDirect: (userId) =>
      call(async () => toRoom(await client.openDirect({ userId }, options()).response)),

    history: (room, limit, signal) =>
      call(async () => {
        const page = await client.history({ room, beforeSeq: 0, limit }, options(signal)).response;
        // Newest first on the wire.
        return page.messages.filter((m) => m.content !== "").map(toChatMessage).reverse();
      }),
  };
}

/** A `ChatBackend` for the gateway at `baseUrl` (the page's own origin). */
export function createGrpcBackend(baseUrl: string): ChatBackend {
  const client = new BroadcastClient(new GrpcWebFetchTransport({ baseUrl, format: "binary" }));
  return {
    signIn: (username, password) =>
      call(async () => {
        const res = await client.signIn({ username, password, displayName: "" }).response;
        const user = toUser(res.user) ?? { id: username, displayName: username };
        return {
          token: res.token,
          user,
          expiresAt: res.expiresAt ? Timestamp.toDate(res.expiresAt).getTime() : undefined,
        };
      }),
    api: (token) => sessionApi(client, token),
  };
}
