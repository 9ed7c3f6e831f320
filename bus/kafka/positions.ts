/**
 * Positions in the room logs: a message's `seq` is where Kafka wrote it in its room's partition
 * of `chatting` (the offset + 1), so every gateway and every processor that reads the record
 * knows its position without asking anyone, and delivery needs one Kafka hop. The positions of
 * one room increase with the order of its messages but are not dense: the partition carries
 * other rooms' messages too. (Centrifugo's publication offsets, with Kafka's offsets as the
 * counter, and its epoch.) A recreated `chatting` topic starts its offsets again at 0: the
 * operator raises the epoch (`KAFKA_LOG_EPOCH`), and positions go on above every earlier one.
 *
 * Two things the readers of a log have to agree on besides the position:
 *
 * - **Retried sends.** A send whose write was in doubt (bus/kafka/outbox.ts) is retried by its
 *   client with the same message id and may be in the log twice. Each reader hands on the first
 *   copy and drops a later one it saw within the last `RECENT_SENDS` records of the partition;
 *   the store keeps the first too (idempotent by sender and id). A gateway's follower that starts
 *   reads those records back first (from the partition's start when it holds fewer), only to
 *   remember their sends: a retry after its start of a send made before is dropped there too.
 * - **What the store holds.** A gateway hands a message to its streams as soon as it reads it,
 *   while the processors store it a moment later. Whatever reads the store about messages a
 *   gateway has shown (a resume, a reaction to the newest message) waits first until the
 *   processors' group has committed past what this gateway handed on: the processors commit a
 *   record's offset only once it is stored.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { ChatError, describeError } from "../../core/errors.ts";
import type { ChatMessage } from "../../core/types.ts";
import type { LogRecord } from "./types.ts";
import { withTimeout } from "./waits.ts";

/** How many records back of each partition a reader remembers the sends of. */
export const RECENT_SENDS = 10_000;
/** How often a waiting `stored` asks Kafka for the processors' positions. */
const STORED_POLL_MS = 20;

/** Offsets one epoch spans: a partition of 2^40 records, far more than a log keeps. */
const EPOCH_SPAN = 2 ** 40;
/** The highest epoch whose positions stay exact in a JavaScript number (below 2^53). */
export const MAX_LOG_EPOCH = 2 ** 53 / EPOCH_SPAN - 2;

/** The position of `record` in its partition: epoch × 2^40 + its offset + 1 (from 1). */
export function positionOf(record: LogRecord, epoch = 0): number {
  return positionAt(Number(record.offset), epoch);
}

/** The position of the record at `offset`. */
export function positionAt(offset: number, epoch = 0): number {
  return epoch * EPOCH_SPAN + offset + 1;
}

/**
 * The sends shown from the last `limit` records of each partition: `seen` is true for a message
 * whose sender and id came before. A message is added once shown, so that one whose showing
 * failed is not taken for a repeat when it comes again.
 */
export class RecentSends {
  readonly #byPartition = new Map<number, { keys: Set<string>; order: string[]; next: number }>();

  constructor(private readonly limit = RECENT_SENDS) {}

  seen(partition: number, message: ChatMessage): boolean {
    return this.#byPartition.get(partition)?.keys.has(keyOf(message)) ?? false;
  }

  add(partition: number, message: ChatMessage): void {
    let recent = this.#byPartition.get(partition);
    if (!recent) this.#byPartition.set(partition, recent = { keys: new Set(), order: [], next: 0 });
    const key = keyOf(message);
    if (recent.keys.has(key)) return;
    if (recent.order.length < this.limit) recent.order.push(key);
    else {
      recent.keys.delete(recent.order[recent.next]!);
      recent.order[recent.next] = key;
      recent.next = (recent.next + 1) % this.limit;
    }
    recent.keys.add(key);
  }
}

/** The sender and id, as the store's idempotence counts them; NUL cannot be in a user id. */
function keyOf(message: ChatMessage): string {
  return `${message.userId}\u0000${message.id}`;
}

/** What `StoredWatch` needs from Kafka. */
export interface StoredWatchParts {
  /** The partition of the room log `room`, or undefined before the bus connected once. */
  partitionOf(room: string): number | undefined;
  /** The processors' group's committed offsets (the next record each will read) per partition. */
  committed(): Promise<Map<number, number>>;
  /** How long `stored` waits before it gives up. */
  readonly timeoutMs: number;
}

/** partition → the offset of the newest record handed on: how far a follower got. */
export class HandedOffsets {
  readonly #offsets = new Map<number, number>();

  hand(partition: number, offset: number): void {
    const known = this.#offsets.get(partition);
    if (known === undefined || offset > known) this.#offsets.set(partition, offset);
  }

  /**
   * A follower starts at `ends` (each partition's next offset): what came before counts. An empty
   * partition counts as known at -1, so that what names its first messages waits for them.
   */
  startsAt(ends: ReadonlyMap<number, number>): void {
    for (const [partition, next] of ends) this.hand(partition, next - 1);
  }

  /** Undefined while the follower knows no place in `partition` yet. */
  get(partition: number): number | undefined {
    return this.#offsets.get(partition);
  }
}

/**
 * Which records this gateway handed on, and whether the processors stored them yet: `stored`
 * resolves once the store holds every message of a room that `handed` was told of.
 */
export class StoredWatch {
  readonly #handed = new HandedOffsets();
  /** partition → the processors' committed offset, as last read. */
  #committed = new Map<number, number>();
  #reading: Promise<void> | undefined;
  /** Resolved once the follower started: before that, nobody knows what it will not show. */
  readonly #started = Promise.withResolvers<void>();
  #isStarted = false;

  constructor(private readonly parts: StoredWatchParts) {}

  handed(record: LogRecord): void {
    this.#handed.hand(record.partition, Number(record.offset));
  }

  /**
   * A follower starts showing at the end of the log (`ends`: each partition's next offset, when
   * its consumer first started): everything before it counts as handed on. The processors may
   * not have stored all of it yet, and a stream that resumes here would otherwise read the store
   * before they did and never see the rest.
   */
  startsAt(ends: ReadonlyMap<number, number>): void {
    this.#handed.startsAt(ends);
    this.#isStarted = true;
    this.#started.resolve();
  }

  async stored(room: string, signal?: AbortSignal): Promise<void> {
    const deadline = performance.now() + this.parts.timeoutMs;
    // Before the follower started (Kafka away since this gateway started), the store may lack
    // messages the follower will start after: a stream resuming now would never get them.
    while (!this.#isStarted) {
      if (performance.now() > deadline || signal?.aborted) {
        throw new ChatError(
          "unavailable",
          `Cannot read room ${room}'s history yet: this gateway has not started reading the room logs within ${this.parts.timeoutMs} ms (Kafka is unreachable); try again`,
        );
      }
      await Promise.race([
        this.#started.promise,
        sleep(STORED_POLL_MS, undefined, signal ? { signal } : {}).catch(() => {}),
      ]);
    }
    const partition = this.parts.partitionOf(room);
    if (partition === undefined) return;
    const handed = this.#handed.get(partition);
    // Nothing handed on from this partition (it was empty at the start): nothing to wait for.
    if (handed === undefined || handed < 0) return;
    let failure = "";
    while ((this.#committed.get(partition) ?? -1) <= handed) {
      if (performance.now() > deadline || signal?.aborted) {
        throw new ChatError(
          "unavailable",
          `Cannot read room ${room}'s history: the processors have not stored its newest messages within ${this.parts.timeoutMs} ms (${
            failure ||
            `stored up to position ${this.#committed.get(partition) ?? 0} of ${handed + 1}`
          }); try again`,
        );
      }
      try {
        // One reading of the committed offsets at a time, shared by every waiting call.
        this.#reading ??= this.parts.committed().then((c) => {
          this.#committed = c;
        }).finally(() => this.#reading = undefined);
        // A hung read (kafkajs retries a request for up to a minute) must not hold the caller
        // past its deadline.
        await withTimeout(
          this.#reading,
          Math.max(1, deadline - performance.now()),
          "reading the processors' offsets",
        );
        failure = "";
      } catch (err) {
        failure = `cannot read their positions: ${describeError(err)}`;
      }
      if ((this.#committed.get(partition) ?? -1) > handed) return;
      await sleep(STORED_POLL_MS, undefined, signal ? { signal } : {}).catch(() => {});
    }
  }
}
