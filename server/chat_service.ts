/**
 * The chat service: what a client can do, whatever transport it came by.
 * The native gRPC handlers and the gRPC-Web bridge both call this.
 */

import { type Config, DEFAULT_ROOM, TOPICS } from "../core/config.ts";
import { ChatError, describeError, invalidArgument, unavailable } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { encodeChatMessage } from "../core/records.ts";
import type { ChatMessage, Presence } from "../core/types.ts";
import type { Bus } from "../bus/bus.ts";
import type { Announcer } from "./announcer.ts";
import type { Hub, StreamSink } from "./hub.ts";

export interface OpenStreamRequest {
  userId: string;
  displayName: string;
  presenceEvents: boolean;
}

export interface SendRequest {
  userId: string;
  content: string;
  displayName?: string;
  /** RFC 3339; the server's clock when absent. */
  timestamp?: string;
  /** Makes a retried send idempotent; generated when absent. */
  messageId?: string;
  room?: string;
}

export interface StreamHandle {
  readonly streamId: string;
  /** The client went away (or the stream failed); idempotent. */
  close(): void;
}

export interface ChatService {
  openStream(request: OpenStreamRequest, sink: StreamSink): StreamHandle;
  send(request: SendRequest): Promise<ChatMessage>;
  online(): Presence[];
}

export interface ChatServiceOptions {
  bus: Bus;
  hub: Hub;
  announcer: Announcer;
  logger: Logger;
  config: Pick<Config, "serverId" | "maxMessageBytes">;
  /** The current presence view (from the processor's registry). */
  online: () => Presence[];
}

const MAX_USER_ID = 128;
const MAX_MESSAGE_ID = 128;
const encoder = new TextEncoder();

function checkUserId(action: string, userId: string): string {
  const id = userId.trim();
  if (id === "") throw invalidArgument(`${action}: the user id is empty`);
  if (id.length > MAX_USER_ID) {
    throw invalidArgument(
      `${action}: the user id is ${id.length} characters, the limit is ${MAX_USER_ID}`,
    );
  }
  return id;
}

export function createChatService(options: ChatServiceOptions): ChatService {
  const { bus, hub, announcer, logger, config } = options;

  return {
    openStream(request, sink) {
      if (request.userId === undefined) throw invalidArgument("Cannot open stream: no user given");
      const userId = checkUserId("Cannot open stream", request.userId);
      const displayName = request.displayName.trim() || userId;
      const streamId = crypto.randomUUID();
      let closed = false;
      const announce = (connected: boolean) =>
        announcer.announce({
          userId,
          serverId: config.serverId,
          connected,
          timestamp: new Date().toISOString(),
          displayName,
          streamId,
        });
      const handle: StreamHandle = {
        streamId,
        close() {
          if (closed) return;
          closed = true;
          hub.remove(streamId);
          announce(false);
          logger.info("Stream closed", { user: userId, stream: streamId });
        },
      };
      hub.add({
        streamId,
        userId,
        displayName,
        presenceEvents: request.presenceEvents,
        sink: {
          write: (frame) => sink.write(frame),
          pending: () => sink.pending(),
          fail: (error) => {
            sink.fail(error);
            handle.close();
          },
        },
      });
      announce(true);
      logger.info("Stream opened", { user: userId, stream: streamId, server: config.serverId });
      return handle;
    },

    async send(request) {
      const userId = checkUserId("Cannot send message", request.userId ?? "");
      const bytes = encoder.encode(request.content).length;
      if (bytes === 0 || request.content.trim() === "") {
        throw invalidArgument("Cannot send message: the content is empty");
      }
      if (bytes > config.maxMessageBytes) {
        throw invalidArgument(
          `Cannot send message: content is ${bytes} bytes, the limit is ${config.maxMessageBytes}`,
        );
      }
      const messageId = request.messageId?.trim() || crypto.randomUUID();
      if (messageId.length > MAX_MESSAGE_ID) {
        throw invalidArgument(
          `Cannot send message: the message id is ${messageId.length} characters, the limit is ${MAX_MESSAGE_ID}`,
        );
      }
      const message: ChatMessage = {
        id: messageId,
        userId,
        displayName: request.displayName?.trim() || userId,
        content: request.content,
        timestamp: request.timestamp ?? new Date().toISOString(),
        room: request.room?.trim() || DEFAULT_ROOM,
        seq: 0,
      };
      if (!bus.ready()) {
        throw unavailable("Cannot send message: Kafka is unavailable; try again shortly");
      }
      try {
        // Keyed by room: one room stays on one partition, so its order is the same for every reader.
        const at = await bus.publish(
          TOPICS.chatting.name,
          message.room,
          encodeChatMessage(message),
        );
        logger.info(
          `Message sent to Kafka - Topic: ${at.topic}, Partition: ${at.partition}, Offset: ${at.offset}`,
        );
      } catch (err) {
        if (err instanceof ChatError) throw err;
        throw unavailable(
          `Cannot send message: Kafka did not store it (${describeError(err)})`,
          err,
        );
      }
      return message;
    },

    online: options.online,
  };
}
