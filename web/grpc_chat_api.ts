/**
 * The page's `ChatTransport`: gRPC-Web (binary) to the gateway that served the page, through
 * @connectrpc/connect-web and the `Broadcast` service descriptor of protocol/gen. Every call of
 * a signed-in session carries `authorization: Bearer <token>`.
 */

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Broadcast } from "../protocol/gen/chat_pb.ts";
import { ChatError, type ChatTransport, type ChatUser } from "../client/core/model.ts";
import {
  isKeepAlive,
  toChatMessage,
  toHistoryPage,
  toRoom,
  toStreamEvent,
  toUser,
} from "../client/core/wire.ts";
import { KEEPALIVE_HEADER, KEEPALIVE_INTERVAL_MS } from "../protocol/limits.ts";

/**
 * This much silence means the stream is dead: two keep-alives missed, and 10 s for a slow
 * network to bring the next.
 */
const SILENCE_LIMIT_MS = 2 * KEEPALIVE_INTERVAL_MS + 10_000;

/** A signed-in user and the token to send with every call. */
export interface Session {
  readonly token: string;
  readonly user: ChatUser;
  /** When the token expires (ms since the epoch), if the server said. */
  readonly expiresAt?: number;
}

/** Signing in, and the transport of a signed-in session. */
export interface ChatBackend {
  /** Signs in, creating the account when the name is free; rejects with a `ChatError`. */
  signIn(username: string, password: string): Promise<Session>;
  /** The transport whose calls carry `token`. */
  api(token: string): ChatTransport;
}

/** `Code.InvalidArgument` → `INVALID_ARGUMENT`, the gRPC status name. */
function statusName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

function toChatError(err: unknown): ChatError {
  if (err instanceof ChatError) return err;
  const e = ConnectError.from(err);
  return new ChatError(statusName(e.code), e.rawMessage);
}

/** Runs a call, turning its failure into a `ChatError`. */
async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw toChatError(err);
  }
}

/** A transport to the gateway at `baseUrl` (the page's own origin). */
export function grpcWebTransport(baseUrl: string, token?: string): ChatTransport {
  const client = createClient(
    Broadcast,
    createGrpcWebTransport({ baseUrl, useBinaryFormat: true }),
  );
  const headers = (): Record<string, string> =>
    transport.token ? { authorization: `Bearer ${transport.token}` } : {};
  const options = (signal?: AbortSignal) => ({ headers: headers(), signal });

  const transport: ChatTransport = {
    token,

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
        const responses = client.createStream({
          user,
          active: true,
          presenceEvents,
          resume: resume.map((p) => ({ room: p.room, lastSeq: BigInt(p.lastSeq) })),
        }, {
          signal: abort.signal,
          headers: { ...headers(), [KEEPALIVE_HEADER]: "1" },
          // A refusal also comes as headers (trailers-only): report the stream open only if no
          // error follows them at once.
          onHeader: () => setTimeout(() => ended || handlers.onOpen(), 0),
        });
        for await (const m of responses) {
          arm();
          if (isKeepAlive(m)) continue;
          const event = toStreamEvent(m);
          if (event) handlers.onEvent(event);
        }
      } catch (err) {
        if (silent && !signal.aborted) {
          throw new ChatError("UNAVAILABLE", "The connection went silent");
        }
        throw toChatError(err);
      } finally {
        ended = true;
        clearTimeout(watchdog);
        signal.removeEventListener("abort", onAbort);
      }
    },

    send: ({ user, content, messageId, room }) =>
      call(async () => {
        await client.broadcastMessage(
          { id: user.id, displayName: user.displayName, content, messageId, room },
          options(),
        );
      }),

    signIn: (username, password, displayName) =>
      call(async () => {
        const res = await client.signIn({ username, password, displayName }, options());
        return {
          token: res.token,
          user: toUser(res.user) ?? { id: username, displayName: username },
          created: res.created,
          expiresAt: res.expiresAt ? timestampMs(res.expiresAt) : undefined,
        };
      }),

    listOnline: (signal) =>
      call(async () => {
        const { users } = await client.listOnline({ room: "" }, options(signal));
        return users.map(toUser).filter((u): u is ChatUser => u !== undefined);
      }),

    listRooms: (all, signal, query = "") =>
      call(async () => (await client.listRooms({ all, query }, options(signal))).rooms.map(toRoom)),

    setTopic: (room, topic) =>
      call(async () => toRoom(await client.setTopic({ room, topic }, options()))),

    setRole: (room, userId, role) =>
      call(async () => toRoom(await client.setRole({ room, userId, role }, options()))),

    removeMember: (room, userId) =>
      call(async () => void await client.removeMember({ room, userId }, options())),

    muteMember: (room, userId, seconds) =>
      call(async () => void await client.muteMember({ room, userId, seconds }, options())),

    setRoomAccess: (room, inviteOnly) =>
      call(async () => toRoom(await client.setRoomAccess({ room, inviteOnly }, options()))),

    invite: (room, userId) =>
      call(async () => {
        await client.invite({ room, userId }, options());
      }),

    listInvitations: (signal) =>
      call(async () =>
        (await client.listRooms({ invitations: true }, options(signal))).rooms.map(toRoom)
      ),

    createRoom: (room) => call(async () => toRoom(await client.createRoom({ room }, options()))),

    joinRoom: (room) => call(async () => toRoom(await client.joinRoom({ room }, options()))),

    leaveRoom: (room) =>
      call(async () => {
        await client.leaveRoom({ room }, options());
      }),

    openDirect: (userId) =>
      call(async () => toRoom(await client.openDirect({ userId }, options()))),

    history: (room, limit, signal, beforeSeq = 0, aroundSeq = 0) =>
      call(async () => {
        return toHistoryPage(
          await client.history(
            { room, beforeSeq: BigInt(beforeSeq), aroundSeq: BigInt(aroundSeq), limit },
            options(signal),
          ),
        );
      }),

    search: (query, room) =>
      call(async () =>
        (await client.search({ query, room }, options())).messages.map(toChatMessage)
      ),

    seenBy: (room, seq) =>
      call(async () => {
        const seen = await client.seenBy({ room, seq: BigInt(seq) }, options());
        return { users: seen.users, count: seen.count };
      }),

    editMessage: (room, seq, content) =>
      call(async () =>
        toChatMessage(
          await client.editMessage({ room, seq: BigInt(seq), content }, options()),
        )
      ),

    react: (room, seq, emoji) =>
      call(async () => {
        await client.react({ room, seq: BigInt(seq), emoji }, options());
      }),

    deleteMessage: (room, seq) =>
      call(async () => {
        await client.deleteMessage({ room, seq: BigInt(seq) }, options());
      }),

    setTyping: (room, typing) =>
      call(async () => {
        await client.setTyping({ room, typing }, options());
      }),

    markRead: (room, seq) =>
      call(async () => {
        await client.markRead({ room, seq: BigInt(seq) }, options());
      }),

    block: (userId, blocked) =>
      call(async () => {
        await client.block({ userId, blocked }, options());
      }),

    listBlocked: (signal) =>
      call(async () => (await client.listBlocked({}, options(signal))).users),

    // One transport serves every attempt of the page's session: fetch holds no channel.
    close: () => {},
  };
  return transport;
}

/** A `ChatBackend` for the gateway at `baseUrl`. */
export function createGrpcBackend(baseUrl: string): ChatBackend {
  return {
    signIn: async (username, password) => {
      const { token, user, expiresAt } = await grpcWebTransport(baseUrl).signIn(
        username,
        password,
        "",
      );
      return { token, user, ...(expiresAt === undefined ? {} : { expiresAt }) };
    },
    api: (token) => grpcWebTransport(baseUrl, token),
  };
}
