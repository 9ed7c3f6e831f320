/**
 * The in-memory bus: Kafka's semantics (partitions by key, groups, positions)
 * inside one process, for `deno task start` and for tests. It serves one
 * process only; several machines need the Kafka adapter.
 */

import { ChatError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type {
  Bus,
  BusRecord,
  Published,
  SubscribeOptions,
  Subscription,
  TopicSpecs,
} from "./bus.ts";

interface Partition {
  /** The offset the next record gets. */
  next: number;
  records: BusRecord[];
}

interface Topic {
  compacted: boolean;
  partitions: Partition[];
}

/** A reader of one partition for one subscription or group. */
class Cursor {
  running = false;
  closed = false;
  constructor(
    readonly topic: string,
    readonly partition: number,
    public next: number,
  ) {}
}

interface Member {
  options: SubscribeOptions;
  closed: boolean;
}

interface Group {
  members: Member[];
  cursors: Map<string, Cursor>;
}

const encoder = new TextEncoder();

/** Kafka's murmur2 is not needed here: any stable hash keeps one key on one partition. */
function hash(key: string): number {
  let h = 2166136261;
  for (const byte of encoder.encode(key)) {
    h ^= byte;
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

export interface MemoryBusOptions {
  topics: TopicSpecs;
  logger: Logger;
  /** How many records each partition keeps before the oldest are dropped. */
  retention?: number;
  /** Pause before a failed handler sees its record again. */
  retryDelayMs?: number;
}

export class MemoryBus implements Bus {
  readonly #topics = new Map<string, Topic>();
  readonly #groups = new Map<string, Group>();
  readonly #privates = new Set<{ member: Member; cursors: Cursor[] }>();
  readonly #readyListeners: (() => void)[] = [];
  readonly #retention: number;
  readonly #retryDelayMs: number;
  readonly #logger: Logger;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #started = false;
  #closed = false;

  constructor(options: MemoryBusOptions) {
    this.#logger = options.logger;
    this.#retention = options.retention ?? 10_000;
    this.#retryDelayMs = options.retryDelayMs ?? 200;
    for (const spec of options.topics) {
      this.#topics.set(spec.name, {
        compacted: spec.configs?.["cleanup.policy"] === "compact",
        partitions: Array.from({ length: spec.partitions }, () => ({ next: 0, records: [] })),
      });
    }
  }

  start(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      for (const listener of this.#readyListeners) listener();
    }
    return Promise.resolve();
  }

  ready(): boolean {
    return this.#started && !this.#closed;
  }

  onReady(listener: () => void): void {
    this.#readyListeners.push(listener);
    if (this.ready()) queueMicrotask(listener);
  }

  #topic(name: string): Topic {
    const topic = this.#topics.get(name);
    if (!topic) {
      throw new ChatError("invalid_argument", `Cannot use topic ${name}: it does not exist`);
    }
    return topic;
  }

  publish(topicName: string, key: string, value: string): Promise<Published> {
    if (!this.ready()) {
      return Promise.reject(new ChatError("unavailable", "Cannot publish: the bus is not running"));
    }
    let topic: Topic;
    try {
      topic = this.#topic(topicName);
    } catch (err) {
      return Promise.reject(err);
    }
    const partitionIndex = hash(key) % topic.partitions.length;
    const partition = topic.partitions[partitionIndex]!;
    const offset = partition.next++;
    partition.records.push({
      topic: topicName,
      partition: partitionIndex,
      offset: String(offset),
      key,
      value,
    });
    this.#trim(topic, partition);
    this.#pumpAll();
    return Promise.resolve({ topic: topicName, partition: partitionIndex, offset: String(offset) });
  }

  #trim(topic: Topic, partition: Partition): void {
    if (partition.records.length <= this.#retention * 2) return;
    const cut = partition.records.length - this.#retention;
    if (topic.compacted) {
      // Like log compaction: older records survive while they are the latest for their key.
      // Re-inserting keeps the map in offset order: records must stay sorted for #recordAt.
      const latest = new Map<string, BusRecord>();
      for (const r of partition.records.slice(0, cut)) {
        latest.delete(r.key);
        latest.set(r.key, r);
      }
      const kept = [...latest.values()];
      const tail = partition.records.slice(cut);
      const tailKeys = new Set(tail.map((r) => r.key));
      partition.records = [...kept.filter((r) => !tailKeys.has(r.key)), ...tail];
    } else {
      partition.records = partition.records.slice(cut);
    }
  }

  #startOffset(topic: string, partition: number, from: "earliest" | "latest"): number {
    const p = this.#topic(topic).partitions[partition]!;
    return from === "earliest" ? 0 : p.next;
  }

  #cursorsFor(options: SubscribeOptions): Cursor[] {
    const cursors: Cursor[] = [];
    for (const name of options.topics) {
      const topic = this.#topic(name);
      topic.partitions.forEach((_, i) =>
        cursors.push(new Cursor(name, i, this.#startOffset(name, i, options.from)))
      );
    }
    return cursors;
  }

  subscribe(options: SubscribeOptions): Promise<Subscription> {
    try {
      for (const t of options.topics) this.#topic(t);
    } catch (err) {
      return Promise.reject(err);
    }
    const member: Member = { options, closed: false };
    if (options.group === undefined) {
      const entry = { member, cursors: this.#cursorsFor(options) };
      this.#privates.add(entry);
      queueMicrotask(() => options.onAssigned?.());
      this.#pumpAll();
      return Promise.resolve({
        close: () => {
          member.closed = true;
          for (const c of entry.cursors) c.closed = true;
          this.#privates.delete(entry);
          return Promise.resolve();
        },
      });
    }
    let group = this.#groups.get(options.group);
    if (!group) {
      group = { members: [], cursors: new Map() };
      this.#groups.set(options.group, group);
    }
    for (const name of options.topics) {
      this.#topic(name).partitions.forEach((_, i) => {
        const id = `${name}/${i}`;
        if (!group.cursors.has(id)) {
          group.cursors.set(id, new Cursor(name, i, this.#startOffset(name, i, options.from)));
        }
      });
    }
    group.members.push(member);
    for (const m of group.members) queueMicrotask(() => m.options.onAssigned?.());
    this.#pumpAll();
    return Promise.resolve({
      close: () => {
        member.closed = true;
        group.members = group.members.filter((m) => m !== member);
        for (const m of group.members) queueMicrotask(() => m.options.onAssigned?.());
        this.#pumpAll();
        return Promise.resolve();
      },
    });
  }

  /** The group member that owns a partition: members share partitions round-robin. */
  #owner(group: Group, cursor: Cursor): Member | undefined {
    const able = group.members.filter((m) => m.options.topics.includes(cursor.topic));
    if (able.length === 0) return undefined;
    const ids = [...group.cursors.keys()].filter((id) => id.startsWith(cursor.topic + "/"));
    const index = ids.indexOf(`${cursor.topic}/${cursor.partition}`);
    return able[index % able.length];
  }

  #pumpAll(): void {
    if (this.#closed) return;
    for (const entry of this.#privates) {
      for (const cursor of entry.cursors) this.#pump(cursor, () => entry.member);
    }
    for (const group of this.#groups.values()) {
      for (const cursor of group.cursors.values()) {
        this.#pump(cursor, () => this.#owner(group, cursor));
      }
    }
  }

  /** Hands the records of one partition to its reader one at a time, in order. */
  #pump(cursor: Cursor, owner: () => Member | undefined): void {
    if (cursor.running || cursor.closed) return;
    cursor.running = true;
    const step = async (): Promise<void> => {
      while (!cursor.closed && !this.#closed) {
        const member = owner();
        if (!member || member.closed) break;
        const partition = this.#topic(cursor.topic).partitions[cursor.partition]!;
        const record = this.#recordAt(partition, cursor);
        if (!record) break;
        try {
          await member.options.handler(record);
          cursor.next = Number(record.offset) + 1;
        } catch (err) {
          this.#logger.warn("Record handler failed; retrying the same record", {
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            error: err instanceof Error ? err.message : String(err),
          });
          await new Promise<void>((resolve) => {
            const id = setTimeout(() => {
              this.#timers.delete(id);
              resolve();
            }, this.#retryDelayMs);
            this.#timers.add(id);
          });
        }
      }
      cursor.running = false;
    };
    step().catch((err) => {
      cursor.running = false;
      this.#logger.error("Memory bus reader stopped", { error: String(err) });
    });
  }

  #recordAt(partition: Partition, cursor: Cursor): BusRecord | undefined {
    // Records are sorted by offset; compaction leaves gaps, retention drops the oldest
    // (as in Kafka, a reader that fell behind skips to the oldest kept record).
    const records = partition.records;
    let lo = 0;
    let hi = records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Number(records[mid]!.offset) < cursor.next) lo = mid + 1;
      else hi = mid;
    }
    return records[lo];
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const id of this.#timers) clearTimeout(id);
    this.#timers.clear();
    return Promise.resolve();
  }
}
