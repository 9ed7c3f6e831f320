/**
 * The storage port: chat history with per-room sequence numbers.
 *
 * Adapters (memory, SQLite, PostgreSQL) are held to one contract suite,
 * `tests/store_contract.ts`.
 */

import type { ChatMessage } from "../core/types.ts";

export interface HistoryQuery {
  readonly room: string;
  /** Only messages with a smaller sequence number; omitted means from the newest. */
  readonly beforeSeq?: number;
  readonly limit: number;
}

export interface Store {
  /**
   * Stores a message and gives it the room's next sequence number. Idempotent
   * by message id: storing the same id again returns the first stored copy.
   */
  append(message: ChatMessage): Promise<ChatMessage>;
  /** Newest first. */
  history(query: HistoryQuery): Promise<ChatMessage[]>;
  /** Oldest first: the messages of `room` after `afterSeq`, at most `limit`. */
  since(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]>;
  close(): Promise<void>;
}
