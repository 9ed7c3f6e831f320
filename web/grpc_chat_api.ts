/**
 * `ChatApi` over gRPC-Web (binary format) with the standard
 * @protobuf-ts/grpcweb-transport client, to the gateway that served the page.
 */

import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { RpcError } from "@protobuf-ts/runtime-rpc";
import {
  BroadcastClient,
  Connect,
  isKeepAlive,
  type Message,
  timestampToDate,
} from "./chat_types.ts";
import { ApiError, type ChatApi, type ChatMessage, type StreamEvent } from "./chat_connection.ts";

/** Header by which the stream asks the bridge for keep-alive messages on idle streams. */
const KEEPALIVE_HEADER = "x-chat-keepalive";
/** The bridge sends a keep-alive after 15 s of silence; this much silence means the stream is dead. */
const SILENCE_LIMIT_MS = 40_000;

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

function toChatMessage(m: Message): ChatMessage {
  return {
    messageId: m.messageId,
    userId: m.id,
    displayName: m.displayName || m.id,
    content: m.content,
    timestamp: m.timestamp ? timestampToDate(m.timestamp) : undefined,
    room: m.room,
    seq: Number(m.seq),
  };
}

function toStreamEvent(m: Message): StreamEvent | undefined {
  if (m.presence) {
    const user = m.presence.user;
    if (!user?.id) return undefined;
    return {
      type: "presence",
      user: { id: user.id, displayName: user.displayName || user.id },
      online: m.presence.online,
    };
  }
  // A chat message always has content (the server refuses empty ones); an empty message is an
  // event this page does not show (for example a room event, a newer field it does not know).
  if (m.content === "") return undefined;
  return { type: "message", message: toChatMessage(m) };
}

/** A `ChatApi` for the gateway at `baseUrl` (the page's own origin). */
export function createGrpcChatApi(baseUrl: string): ChatApi {
  const client = new BroadcastClient(new GrpcWebFetchTransport({ baseUrl, format: "binary" }));

  return {
    async stream({ user, presenceEvents }, handlers, signal) {
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
        const call = client.createStream(
          Connect.create({ user, active: true, presenceEvents }),
          { abort: abort.signal, meta: { [KEEPALIVE_HEADER]: "1" } },
        );
        // A refusal also comes as headers (trailers-only): report the stream open only if no
        // error follows them at once.
        call.headers.then(() => setTimeout(() => ended || handlers.onOpen(), 0), () => {});
        for await (const m of call.responses) {
          arm();
          if (isKeepAlive(m)) continue;
          const event = toStreamEvent(m);
          if (event) handlers.onEvent(event);
        }
        await call.status;
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

    async send({ user, content, messageId }) {
      try {
        await client.broadcastMessage({
          id: user.id,
          displayName: user.displayName,
          content,
          messageId,
          room: "",
          seq: 0,
        }).response;
      } catch (err) {
        throw toApiError(err);
      }
    },

    async listOnline(signal) {
      try {
        const { users } = await client.listOnline({}, { abort: signal }).response;
        return users.filter((u) => u.id !== "").map((u) => ({
          id: u.id,
          displayName: u.displayName || u.id,
        }));
      } catch (err) {
        throw toApiError(err);
      }
    },
  };
}
