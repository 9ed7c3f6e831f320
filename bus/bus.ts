/**
 * The bus ports: the only way gateways and processors talk to each other, in the chat's words.
 *
 * A gateway appends messages to their room's log and follows the logs to deliver them: one hop,
 * each message with its position in its room's log as `seq`. It announces the streams it opens
 * and closes. The processors handle both in order: they store the messages (history) and keep the
 * registry; what else changes in a room (membership, edits, reactions) is fanned out to every
 * gateway; presence and heartbeats are published and observed. How that travels (topics, keys, partitions, JSON
 * records, consumer groups, dead letters) is the adapter's business: `MemoryBus` serves one
 * process, `KafkaBus` (bus/kafka/) many machines. tests/bus_contract.ts holds both to the same
 * behaviour.
 */

import type { ChatMessage, ConnectionEvent, Delivery, Heartbeat, Presence } from "../core/types.ts";

export interface Subscription {
  close(): Promise<void>;
}

/** A follower of the room logs (`RoomLogs.follow`), and how far it got. */
export interface Following extends Subscription {
  /**
   * How far this follower has handed on the log of `room`: every message the log holds now of
   * the room at a position up to the answer has been passed to the handler (the newest in the
   * same turn as the handler's call, before it resolved), or came before the follower started
   * and never will be. Infinity when none of the room is on its way, or when the bus cannot tell
   * (Kafka never reached). What else changes in a room and names a message by its position waits
   * on this (server/delivery_order.ts).
   */
  handed(room: string): number;
}

/**
 * What the processors do with the room logs and the connection events. Messages of one room
 * come in the order they were appended, connection events of one user in the order announced;
 * the next one of a room (or user) comes only after the handler's promise resolved, and that is
 * when it counts as handled. A handler that throws gets the same item again after a pause:
 * nothing is skipped, except an item refused with a `ChatError` of code `invalid_argument`,
 * which can never be handled: the bus sets it aside (Kafka: the dead-letter topic) and goes on.
 */
export interface ProcessorHandlers {
  /**
   * Consecutive messages of the room logs, oldest first: one or more of one room, or of rooms
   * that share a log partition (Kafka), handled together so that storing them
   * costs one transaction for all. Each comes with its position (`seq`) when the log gives
   * positions (Kafka), else with 0. Resolves with the messages as stored (their positions given).
   * A refusal (`invalid_argument`) of a run of several means one of them is bad: the bus then
   * hands each on its own to find it.
   */
  messages(messages: readonly ChatMessage[]): Promise<readonly ChatMessage[]>;
  connection(event: ConnectionEvent): Promise<void>;
  /**
   * This processor took over rooms and users (it started, or another one left or joined): what
   * it knows of who is connected may be incomplete. Called once it is sure to receive whatever
   * is announced after the call.
   */
  onTakeOver?(): void;
}

/** The processors' input: each room's log of messages, and the gateways' connection events. */
export interface RoomLogs {
  /**
   * Appends `message` to its room's log; resolves once it is durably stored there (it will be
   * handled), rejects with an `unavailable` ChatError when it cannot say so.
   */
  append(message: ChatMessage): Promise<void>;
  /** Announces a stream opened or closed on a gateway; resolves once durably stored. */
  announce(event: ConnectionEvent): Promise<void>;
  /**
   * Joins the processors: each room and each user is handled by one of them at a time, and
   * moves to another when it leaves.
   */
  process(handlers: ProcessorHandlers): Promise<Subscription>;
  /**
   * Receives every message appended after this call resolved, with its position in its room's
   * log as `seq`, one at a time: a room's in order, each once (a retried send that is in the log
   * twice comes once). The next comes once the handler's promise resolved (a gateway slows the
   * flow to its readers' pace).
   */
  follow(handler: (message: ChatMessage) => Promise<void>): Promise<Following>;
  /**
   * Resolves once the store holds every message of `room` that `follow` handed this process;
   * rejects with an `unavailable` ChatError when the processors do not get there in time.
   */
  stored(room: string, signal?: AbortSignal): Promise<void>;
}

/** What processors and gateways send to every gateway besides the messages themselves. */
export interface Fanout {
  /** Sends `delivery` to every gateway; deliveries of one room keep their order. */
  deliver(delivery: Delivery): Promise<void>;
  /**
   * Receives every delivery sent after this call resolved, one at a time: the next comes once
   * the handler's promise resolved (a gateway slows the flow to its readers' pace).
   */
  onDelivery(handler: (delivery: Delivery) => Promise<void>): Promise<Subscription>;
}

/** Who is online: the processors' registry, as everybody sees it. */
export interface PresenceBoard {
  publishPresence(presence: Presence): Promise<void>;
  /**
   * Hands the latest presence of every user who is online (and perhaps of some who left), then
   * every change.
   */
  observePresence(handler: (presence: Presence) => void): Promise<Subscription>;
}

/** Signs of life of gateways and processors. */
export interface Heartbeats {
  /** Publishes a heartbeat; heartbeats never wait behind anything else on the bus. */
  beat(heartbeat: Heartbeat): Promise<void>;
  /** Receives every heartbeat published after this call resolved. */
  observeHeartbeats(handler: (heartbeat: Heartbeat) => void): Promise<Subscription>;
}

export interface Bus extends RoomLogs, Fanout, PresenceBoard, Heartbeats {
  /** Connects; resolves once started, even when the backend is down (it connects later). */
  start(): Promise<void>;
  /** Whether what is published now can be acknowledged. */
  ready(): boolean;
  /** Calls `listener` every time the bus becomes ready (the first time and after each outage). */
  onReady(listener: () => void): void;
  /** Stops every subscription and sends what is waiting. */
  close(): Promise<void>;
}
