/** The in-memory store, for tests and for a process that keeps no history on disk. */

import type { ChatMessage } from "../core/types.ts";
import type { HistoryQuery, Store } from "./store.ts";

export class MemoryStore implements Store {
  readonly #rooms = new Map<string, ChatMessage[]>();
  readonly #byId = new Map<string, ChatMessage>();

  append(message: ChatMessage): Promise<ChatMessage> {
    const existing = this.#byId.get(message.id);
    if (existing) return Promise.resolve(existing);
    let log = this.#rooms.get(message.room);
    if (!log) this.#rooms.set(message.room, log = []);
    const stored = { ...message, seq: log.length + 1 };
    log.push(stored);
    this.#byId.set(stored.id, stored);
    return Promise.resolve(stored);
  }

  history(query: HistoryQuery): Promise<ChatMessage[]> {
    const log = this.#rooms.get(query.room) ?? [];
    const end = query.beforeSeq === undefined
      ? log.length
      : Math.min(log.length, query.beforeSeq - 1);
    const start = Math.max(0, end - query.limit);
    return Promise.resolve(log.slice(start, Math.max(start, end)).reverse());
  }

  since(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]> {
    const log = this.#rooms.get(room) ?? [];
    return Promise.resolve(log.slice(afterSeq, afterSeq + limit));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
