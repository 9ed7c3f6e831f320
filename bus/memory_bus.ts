/**
 * The in-memory bus: the ports of bus/bus.ts inside one process, for `deno task start` and for
 * tests. It serves one process only; several machines need the Kafka adapter (bus/kafka/).
 *
 * Room logs are queues, one per room and one per user, all handled by one processor at a time
 * (the first to join; the others stand by and take over when it leaves). The log gives no
 * positions: the processor's store numbers the messages, and followers get each message once it
 * is stored, so the store always holds what they were handed. Deliveries and heartbeats go to
 * every subscriber in turn; presence keeps the latest record of each user who is online, for
 * observers that come later.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { ChatError, describeError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ChatMessage, ConnectionEvent, Delivery, Heartbeat, Presence } from "../core/types.ts";
import type { Bus, Following, ProcessorHandlers, Subscription } from "./bus.ts";

export interface MemoryBusOptions {
  logger: Logger;
  /** Pause before a failed handler sees its item again (default 200 ms). */
  retryDelayMs?: number;
}

const SET_ASIDE_KEPT = 1000;

/** An item of a room log: a message or a connection event. */
type Logged = { message: ChatMessage } | { connection: ConnectionEvent };

/**
 * What one handler of a queue decides about the run of items it failed on: hand the same run
 * again, drop it, or hand its items one at a time (one of them is bad).
 */
type OnFailure<T> = (error: unknown, run: readonly T[]) => "retry" | "skip" | "split";

/** The most messages of one room the processor gets at once. */
const RUN_LIMIT = 500;

/**
 * Items handed to `handle` in order, in runs of up to `runLimit`; a run is dropped once handled,
 * or when `onFailure` says to skip it, and handed again after a pause otherwise.
 */
class Queue<T> {
  readonly items: T[] = [];
  #running = false;
  /** Items still to be handed one at a time, after a run was split. */
  #singles = 0;

  constructor(
    private readonly handle: () => ((run: readonly T[]) => Promise<void>) | undefined,
    private readonly onFailure: OnFailure<T>,
    private readonly retryDelayMs: number,
    private readonly signal: AbortSignal,
    /** Called when every item is handled. */
    private readonly onIdle?: () => void,
    private readonly runLimit = 1,
  ) {}

  push(item: T): void {
    this.items.push(item);
    this.pump();
  }

  pump(): void {
    if (this.#running || this.signal.aborted) return;
    this.#running = true;
    void this.#run().finally(() => {
      this.#running = false;
      // Pushed after the loop ended but before this callback ran.
      if (this.items.length > 0 && this.handle()) this.pump();
    });
  }

  async #run(): Promise<void> {
    while (this.items.length > 0 && !this.signal.aborted) {
      const handle = this.handle();
      if (!handle) return;
      const run = this.items.slice(0, this.#singles > 0 ? 1 : this.runLimit);
      try {
        await handle(run);
      } catch (err) {
        const decision = this.onFailure(err, run);
        if (decision === "split" && run.length > 1) {
          this.#singles = run.length;
          continue;
        }
        if (decision !== "skip") {
          await sleep(this.retryDelayMs, undefined, { signal: this.signal }).catch(() => {});
          continue;
        }
      }
      // Unless a newer handler took over meanwhile, which then gets it again.
      if (this.handle() === handle) {
        this.items.splice(0, run.length);
        this.#singles = Math.max(0, this.#singles - run.length);
      }
    }
    if (this.items.length === 0) this.onIdle?.();
  }
}

/**
 * How far one follower got with each room: the newest position given to its queue and the
 * newest handed to its handler, for the rooms with messages still on their way to it.
 */
class FollowerProgress {
  readonly #given = new Map<string, number>();
  readonly #handed = new Map<string, number>();

  given(message: ChatMessage): void {
    this.#given.set(message.room, message.seq);
  }

  /** Called in the same turn as the handler, before it. */
  handing(message: ChatMessage): void {
    const { room, seq } = message;
    if (!this.#given.has(room)) return;
    if (this.#given.get(room)! > seq) return void this.#handed.set(room, seq);
    this.#given.delete(room);
    this.#handed.delete(room);
  }

  handed(room: string): number {
    return this.#given.has(room) ? this.#handed.get(room) ?? 0 : Infinity;
  }
}

export class MemoryBus implements Bus {
  readonly #logger: Logger;
  readonly #retryDelayMs: number;
  readonly #abort = new AbortController();
  readonly #readyListeners: (() => void)[] = [];
  /** The processors, in the order they joined; the first one handles every log. */
  readonly #processors: ProcessorHandlers[] = [];
  /** Each processor's handler of log items. */
  readonly #handlers = new WeakMap<
    ProcessorHandlers,
    (run: readonly Logged[]) => Promise<void>
  >();
  /** One queue per room and per user. */
  readonly #logs = new Map<string, Queue<Logged>>();
  readonly #deliveryQueues = new Set<Queue<Delivery>>();
  readonly #followerQueues = new Set<Queue<ChatMessage>>();
  readonly #followers = new WeakMap<Queue<ChatMessage>, FollowerProgress>();
  /** Each room's newest position handed to followers: a retried send comes back stored once. */
  readonly #followed = new Map<string, number>();
  readonly #heartbeatQueues = new Set<Queue<Heartbeat>>();
  readonly #presenceQueues = new Set<Queue<Presence>>();
  readonly #online = new Map<string, Presence>();
  /**
   * Items a processor refused for good (`invalid_argument`), with why: the memory dead letters,
   * the last `SET_ASIDE_KEPT` of them.
   */
  readonly setAside: { item: ChatMessage | ConnectionEvent; reason: string }[] = [];
  #started = false;

  constructor(options: MemoryBusOptions) {
    this.#logger = options.logger;
    this.#retryDelayMs = options.retryDelayMs ?? 200;
  }

  start(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      for (const listener of this.#readyListeners) listener();
    }
    return Promise.resolve();
  }

  ready(): boolean {
    return this.#started && !this.#abort.signal.aborted;
  }

  onReady(listener: () => void): void {
    this.#readyListeners.push(listener);
    if (this.ready()) queueMicrotask(listener);
  }

  close(): Promise<void> {
    this.#abort.abort();
    return Promise.resolve();
  }

  /** Runs `publish` if the bus is running, else rejects as Kafka would while away. */
  #whenReady(what: string, publish: () => void): Promise<void> {
    if (!this.ready()) {
      return Promise.reject(new ChatError("unavailable", `Cannot ${what}: the bus is not running`));
    }
    publish();
    return Promise.resolve();
  }

  #retryFailed<T>(what: string): OnFailure<T> {
    return (error) => {
      this.#logger.warn(`${what} failed; retrying the same item`, { error: describeError(error) });
      return "retry";
    };
  }

  /** A subscription that feeds `handler` from a queue of its own in `queues`. */
  #subscribe<T>(
    queues: Set<Queue<T>>,
    handler: (item: T) => Promise<void>,
    what: string,
    backlog: readonly T[] = [],
  ): Promise<Subscription> {
    return Promise.resolve(this.#queue(queues, handler, what, backlog).subscription);
  }

  #queue<T>(
    queues: Set<Queue<T>>,
    handler: (item: T) => Promise<void>,
    what: string,
    backlog: readonly T[] = [],
  ): { queue: Queue<T>; subscription: Subscription } {
    const closed = new AbortController();
    const signal = AbortSignal.any([this.#abort.signal, closed.signal]);
    const handle = (run: readonly T[]) => handler(run[0]!);
    const queue = new Queue(() => handle, this.#retryFailed<T>(what), this.#retryDelayMs, signal);
    queues.add(queue);
    for (const item of backlog) queue.push(item);
    const subscription = {
      close: () => {
        closed.abort();
        queues.delete(queue);
        return Promise.resolve();
      },
    };
    return { queue, subscription };
  }

  #log(key: string, item: Logged): void {
    let queue = this.#logs.get(key);
    if (!queue) {
      const created = new Queue<Logged>(
        () => this.#handlerOf(),
        (err, run) => this.#onLogFailure(err, run),
        this.#retryDelayMs,
        this.#abort.signal,
        () => this.#logs.delete(key),
        "message" in item ? RUN_LIMIT : 1,
      );
      this.#logs.set(key, queue = created);
    }
    queue.push(item);
  }

  /** The first processor's handler of log items, as long as there is one. */
  #handlerOf(): ((run: readonly Logged[]) => Promise<void>) | undefined {
    const processor = this.#processors[0];
    if (!processor) return undefined;
    return this.#handlers.get(processor);
  }

  #onLogFailure(err: unknown, run: readonly Logged[]): "retry" | "skip" | "split" {
    if (err instanceof ChatError && err.code === "invalid_argument") {
      if (run.length > 1) return "split";
      const item = run[0]!;
      const refused = "message" in item ? item.message : item.connection;
      this.setAside.push({ item: refused, reason: err.message });
      if (this.setAside.length > SET_ASIDE_KEPT) this.setAside.shift();
      this.#logger.warn("Setting aside what a processor can never handle", { reason: err.message });
      return "skip";
    }
    this.#logger.warn("Processor failed; handing it the same item again", {
      error: describeError(err),
    });
    return "retry";
  }

  #pumpLogs(): void {
    for (const queue of this.#logs.values()) queue.pump();
  }

  append(message: ChatMessage): Promise<void> {
    return this.#whenReady(
      "append the message",
      () => this.#log(`room:${message.room}`, { message }),
    );
  }

  announce(event: ConnectionEvent): Promise<void> {
    return this.#whenReady(
      "announce the connection",
      () => this.#log(`user:${event.userId}`, { connection: event }),
    );
  }

  process(handlers: ProcessorHandlers): Promise<Subscription> {
    this.#handlers.set(
      handlers,
      (run) => {
        const first = run[0]!;
        // A room's queue holds only messages, a user's only connection events.
        if (!("message" in first)) return handlers.connection(first.connection);
        return handlers.messages(run.flatMap((item) => "message" in item ? [item.message] : []))
          .then((stored) => {
            for (const m of stored) {
              if (m.seq <= (this.#followed.get(m.room) ?? 0)) continue;
              this.#followed.set(m.room, m.seq);
              for (const queue of this.#followerQueues) {
                this.#followers.get(queue)?.given(m);
                queue.push(m);
              }
            }
          });
      },
    );
    this.#processors.push(handlers);
    this.#takeOver();
    return Promise.resolve({
      close: () => {
        const index = this.#processors.indexOf(handlers);
        if (index >= 0) this.#processors.splice(index, 1);
        this.#takeOver();
        return Promise.resolve();
      },
    });
  }

  /** Processors joined or left: as in a Kafka group's rebalance, each one is told. */
  #takeOver(): void {
    const processors = [...this.#processors];
    queueMicrotask(() => {
      for (const processor of processors) processor.onTakeOver?.();
      this.#pumpLogs();
    });
  }

  follow(handler: (message: ChatMessage) => Promise<void>): Promise<Following> {
    const progress = new FollowerProgress();
    const { queue, subscription } = this.#queue(this.#followerQueues, (message) => {
      progress.handing(message);
      return handler(message);
    }, "Follower");
    this.#followers.set(queue, progress);
    return Promise.resolve({ ...subscription, handed: (room) => progress.handed(room) });
  }

  /** Followers get messages once stored. */
  stored(): Promise<void> {
    return Promise.resolve();
  }

  deliver(delivery: Delivery): Promise<void> {
    return this.#whenReady("deliver", () => {
      for (const queue of this.#deliveryQueues) queue.push(delivery);
    });
  }

  onDelivery(handler: (delivery: Delivery) => Promise<void>): Promise<Subscription> {
    return this.#subscribe(this.#deliveryQueues, handler, "Delivery handler");
  }

  publishPresence(presence: Presence): Promise<void> {
    return this.#whenReady("publish presence", () => {
      if (presence.online) this.#online.set(presence.userId, presence);
      else this.#online.delete(presence.userId);
      for (const queue of this.#presenceQueues) queue.push(presence);
    });
  }

  observePresence(handler: (presence: Presence) => void): Promise<Subscription> {
    return this.#subscribe(
      this.#presenceQueues,
      (p) => Promise.resolve(handler(p)),
      "Presence observer",
      [...this.#online.values()],
    );
  }

  beat(heartbeat: Heartbeat): Promise<void> {
    return this.#whenReady("send a heartbeat", () => {
      for (const queue of this.#heartbeatQueues) queue.push(heartbeat);
    });
  }

  observeHeartbeats(handler: (heartbeat: Heartbeat) => void): Promise<Subscription> {
    return this.#subscribe(
      this.#heartbeatQueues,
      (h) => Promise.resolve(handler(h)),
      "Heartbeat observer",
    );
  }
}
