/**
 * The terminal's `ChatTransport`: native gRPC through a `ChatClient` (one channel per attempt).
 *
 * A connection counts as made once the channel is ready and the server has taken the stream:
 * the stream delivers something, or our user shows in ListOnline, or (when the processor is
 * slow) `confirmTimeoutMs` has passed with the stream still open. Only then is the stream
 * reported open, so a refused stream never looks connected first. A channel that is not ready
 * within `connectTimeoutMs` fails every call of the attempt.
 */

import * as grpc from "@grpc/grpc-js";
import { DEFAULT_ROOM } from "../protocol/names.ts";
import { ChatClient } from "./chat_client.ts";
import { type Clock, sleep, systemClock } from "./core/clock.ts";
import { ChatError, type ChatTransport, type ChatUser } from "./core/model.ts";
import { toChatMessage, toHistoryPage, toRoom, toStreamEvent, toUser } from "./core/wire.ts";
import { formatDelay } from "./format.ts";

/** What the transport needs of a native client: `ChatClient`, or a test's fake. */
export type NativeChat = Pick<
  ChatClient,
  | "stream"
  | "send"
  | "listOnline"
  | "waitForReady"
  | "close"
  | "token"
  | "signIn"
  | "createRoom"
  | "joinRoom"
  | "leaveRoom"
  | "listRooms"
  | "openDirect"
  | "history"
  | "editMessage"
  | "deleteMessage"
  | "react"
  | "setTyping"
  | "markRead"
  | "setTopic"
  | "setRole"
  | "removeMember"
  | "muteMember"
  | "setRoomAccess"
  | "invite"
  | "listInvitations"
  | "search"
  | "seenBy"
  | "historyAround"
  | "block"
  | "listBlocked"
>;

const CHANNEL_OPTIONS: grpc.ClientOptions = {
  // A fresh channel per attempt, so grpc-js's own reconnect backoff never adds to ours.
  "grpc.use_local_subchannel_pool": 1,
  // Notice a server that vanished without closing the connection.
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
};

/** A chat client for `address`; plaintext unless `credentials` (see `tlsCredentials`) say otherwise. */
export function connectChat(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): NativeChat {
  return new ChatClient(address, credentials, CHANNEL_OPTIONS);
}

/** grpc-js's "No connection established. Last error: Error: connect ECONNREFUSED ..." made readable. */
export function shorten(details: string): string {
  const last = /Last error: (?:Error: )?(.*?)(?:\.\s*Resolution note:.*)?$/s.exec(details)?.[1];
  const reason = last ?? details;
  if (/ECONNREFUSED/.test(reason)) return "connection refused";
  if (/ENOTFOUND|EAI_AGAIN/.test(reason)) return "host not found";
  if (/ETIMEDOUT/.test(reason)) return "connection timed out";
  if (/ECONNRESET/.test(reason)) return "connection reset";
  return reason.trim();
}

/** A grpc-js failure as a `ChatError`: the status by name, the details made readable. */
function toChatError(err: unknown): ChatError {
  if (err instanceof ChatError) return err;
  const e = err as Partial<grpc.ServiceError> | undefined;
  const code = typeof e?.code === "number" ? grpc.status[e.code] ?? "UNKNOWN" : "UNKNOWN";
  const details = typeof e?.details === "string" && e.details !== ""
    ? e.details
    : err instanceof Error
    ? err.message
    : String(err);
  return new ChatError(code, shorten(details));
}

export interface GrpcTransportOptions {
  /** How long to wait for the channel to become ready. */
  connectTimeoutMs?: number;
  /** How long to wait for our user to show as online before calling the stream open. */
  confirmTimeoutMs?: number;
  clock?: Clock;
}

/** The `ChatTransport` of one attempt over `client`. */
export function grpcTransport(
  client: NativeChat,
  options: GrpcTransportOptions = {},
): ChatTransport {
  const clock = options.clock ?? systemClock;
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 2000;
  // The reason the channel did not come up, or undefined once it did.
  const ready: Promise<ChatError | undefined> = client.waitForReady(connectTimeoutMs).then(
    () => undefined,
    (err) =>
      new ChatError(
        "UNAVAILABLE",
        `no connection after ${formatDelay(connectTimeoutMs)} (${toChatError(err).message})`,
      ),
  );
  /** Runs a call, failing it when the channel does not come up. */
  const call = async <T>(run: () => Promise<T>): Promise<T> => {
    const notReady = ready.then((err) => err ? Promise.reject(err) : new Promise<never>(() => {}));
    try {
      return await Promise.race([run(), notReady]);
    } catch (err) {
      throw toChatError(err);
    }
  };

  /** Whether the server lists `user` online, polled until `confirmTimeoutMs` passed. */
  const confirm = async (user: ChatUser, signal: AbortSignal): Promise<void> => {
    const deadline = clock.now() + confirmTimeoutMs;
    while (!signal.aborted && clock.now() < deadline) {
      const users = await client.listOnline().catch(() => []);
      if (users.some((u) => u.id === user.id)) return;
      await sleep(clock, 50, signal);
    }
  };

  return {
    get token() {
      return client.token;
    },
    set token(token) {
      client.token = token;
    },

    stream({ user, presenceEvents, resume }, handlers, signal) {
      return new Promise((resolve, reject) => {
        const over = new AbortController();
        let opened = false;
        const open = () => {
          if (opened || over.signal.aborted) return;
          opened = true;
          handlers.onOpen();
        };
        const end = (err?: unknown) => {
          if (over.signal.aborted) return;
          over.abort();
          signal.removeEventListener("abort", cancel);
          if (err === undefined) resolve();
          else reject(toChatError(err));
        };
        const stream = client.stream(
          user.id,
          (m) => {
            open();
            const event = toStreamEvent(m);
            if (event && !over.signal.aborted) handlers.onEvent(event);
          },
          (error) => end(error),
          { displayName: user.displayName || user.id, presenceEvents, resume: [...resume] },
        );
        const cancel = () => stream.cancel();
        signal.addEventListener("abort", cancel, { once: true });
        ready.then(async (err) => {
          if (err) {
            stream.cancel();
            return end(err);
          }
          await confirm(user, AbortSignal.any([over.signal, signal]));
          open();
        });
      });
    },

    send: ({ user, content, messageId, room }) =>
      call(() =>
        client.send(user.id, content, {
          displayName: user.displayName,
          messageId,
          // Classic servers know the default room only as "".
          room: room === DEFAULT_ROOM ? "" : room,
        })
      ),

    signIn: (username, password, displayName) =>
      call(async () => {
        const signed = await client.signIn(username, password, displayName);
        return {
          token: signed.token,
          user: toUser(signed.user) ?? { id: username, displayName: username },
          created: signed.created,
          expiresAt: signed.expiresAt === undefined ? undefined : Date.parse(signed.expiresAt),
        };
      }),

    listOnline: () =>
      call(async () =>
        (await client.listOnline()).map(toUser).filter((u): u is ChatUser => u !== undefined)
      ),

    listRooms: (all, _signal, query) =>
      call(async () => (await client.listRooms(all, query)).map(toRoom)),
    setTopic: (room, topic) => call(async () => toRoom(await client.setTopic(room, topic))),
    setRole: (room, userId, role) =>
      call(async () => toRoom(await client.setRole(room, userId, role))),
    removeMember: (room, userId) => call(() => client.removeMember(room, userId)),
    muteMember: (room, userId, seconds) => call(() => client.muteMember(room, userId, seconds)),
    setRoomAccess: (room, inviteOnly) =>
      call(async () => toRoom(await client.setRoomAccess(room, inviteOnly))),
    invite: (room, userId) => call(() => client.invite(room, userId)),
    listInvitations: () => call(async () => (await client.listInvitations()).map(toRoom)),
    createRoom: (room) => call(async () => toRoom(await client.createRoom(room))),
    joinRoom: (room) => call(async () => toRoom(await client.joinRoom(room))),
    leaveRoom: (room) => call(() => client.leaveRoom(room)),
    openDirect: (userId) => call(async () => toRoom(await client.openDirect(userId))),
    history: (room, limit, _signal, beforeSeq = 0, aroundSeq = 0) =>
      call(async () =>
        toHistoryPage(
          aroundSeq > 0
            ? await client.historyAround(room, aroundSeq, limit)
            : await client.history(room, beforeSeq, limit),
        )
      ),
    search: (query, room) =>
      call(async () => (await client.search(query, room)).map(toChatMessage)),
    seenBy: (room, seq) =>
      call(async () => {
        const seen = await client.seenBy(room, seq);
        return { users: seen.users, count: seen.count };
      }),
    editMessage: (room, seq, content) =>
      call(async () => toChatMessage(await client.editMessage(room, seq, content))),
    deleteMessage: (room, seq) => call(() => client.deleteMessage(room, seq)),
    react: (room, seq, emoji) => call(() => client.react(room, seq, emoji)),
    setTyping: (room, typing) =>
      call(() => client.setTyping(room === DEFAULT_ROOM ? "" : room, typing)),
    markRead: (room, seq) => call(() => client.markRead(room, seq)),
    block: (userId, blocked) => call(() => client.block(userId, blocked)),
    listBlocked: () => call(() => client.listBlocked()),
    close: () => client.close(),
  };
}
