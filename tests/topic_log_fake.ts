/**
 * A stand-in for `KafkaConnection` (bus/kafka/types.ts `TopicLog`) for tests of what the Kafka
 * adapter does with records (codecs, dead letters, skipping, reading back) without a cluster: one
 * partition per topic, starting at offset 0; every subscription reads every record from its start
 * point, one at a time (or, for topics of `runs`, every record waiting at once), and a handler
 * that throws gets the same record (or run) again after a pause.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { ChatError } from "../core/errors.ts";
import type { LogRecord, Published, SubscribeOptions, TopicLog } from "../bus/kafka/types.ts";

export class FakeTopicLog implements TopicLog {
  readonly records = new Map<string, LogRecord[]>();
  readonly #readers = new Set<() => void>();
  readonly #abort = new AbortController();
  #started = false;
  /** What handlers threw (each time the record was handed again). */
  readonly failures: string[] = [];
  /** Each group's next record of each topic ("group/topic" → offset). */
  readonly #committed = new Map<string, number>();
  /** Called before each publish; a rejection refuses it (Kafka away for that topic). */
  refuse: (topic: string) => Promise<void> = () => Promise.resolve();

  start(): Promise<void> {
    this.#started = true;
    return Promise.resolve();
  }

  ready(): boolean {
    return this.#started && !this.#abort.signal.aborted;
  }

  onReady(listener: () => void): void {
    if (this.ready()) queueMicrotask(listener);
  }

  async publish(topic: string, key: string, value: string): Promise<Published> {
    if (!this.ready()) throw new ChatError("unavailable", "Cannot publish: the log is closed");
    await this.refuse(topic);
    let records = this.records.get(topic);
    if (!records) this.records.set(topic, records = []);
    const offset = String(records.length);
    records.push({ topic, partition: 0, offset, key, value });
    for (const wake of this.#readers) wake();
    return { topic, partition: 0, offset };
  }

  /** The values published to `topic`. */
  values(topic: string): string[] {
    return (this.records.get(topic) ?? []).map((r) => r.value);
  }

  subscribe(options: SubscribeOptions): Promise<{ close(): Promise<void> }> {
    const closed = new AbortController();
    const signal = AbortSignal.any([this.#abort.signal, closed.signal]);
    const { from } = options;
    const back = from === "latest" ? 0 : typeof from === "object" ? from.back : undefined;
    const next = new Map(options.topics.map((topic) => {
      const end = this.values(topic).length;
      if (back === undefined) return [topic, 0];
      if (options.group === undefined) options.onStart?.(topic, new Map([[0, end]]));
      return [topic, Math.max(0, end - back)];
    }));
    let running = false;
    const read = async () => {
      if (running) return;
      running = true;
      try {
        for (let more = true; more && !signal.aborted;) {
          more = false;
          for (const [topic, at] of next) {
            const records = this.records.get(topic) ?? [];
            if (at >= records.length) continue;
            more = true;
            const runs = options.runs?.topics.includes(topic) ? options.runs : undefined;
            const run = records.slice(at, runs ? records.length : at + 1);
            try {
              await (runs ? runs.handler(run) : options.handler(run[0]!));
              next.set(topic, at + run.length);
              if (options.group) this.#committed.set(`${options.group}/${topic}`, at + run.length);
            } catch (err) {
              this.failures.push(`${topic}/${at}: ${err instanceof Error ? err.message : err}`);
              await sleep(5, undefined, { signal }).catch(() => {});
            }
          }
        }
      } finally {
        running = false;
      }
    };
    this.#readers.add(read);
    queueMicrotask(() => {
      options.onAssigned?.();
      void read();
    });
    return Promise.resolve({
      close: () => {
        closed.abort();
        this.#readers.delete(read);
        return Promise.resolve();
      },
    });
  }

  partitionOf(): number {
    return 0;
  }

  committed(group: string, topic: string): Promise<Map<number, number>> {
    return Promise.resolve(new Map([[0, this.#committed.get(`${group}/${topic}`) ?? -1]]));
  }

  close(): Promise<void> {
    this.#abort.abort();
    return Promise.resolve();
  }
}
