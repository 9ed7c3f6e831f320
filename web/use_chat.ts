/** The Preact side of a `ChatConnection`: its status, messages and online list as state. */

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  type ChatApi,
  ChatConnection,
  type ChatMessage,
  type ChatUser,
  type ConnectionStatus,
} from "./chat_connection.ts";

/** One row of the conversation: a message, or a note from the page itself. */
export type Entry =
  | { readonly kind: "message"; readonly key: string; readonly message: ChatMessage }
  | { readonly kind: "note"; readonly key: string; readonly text: string; readonly at: Date };

/** Older rows are dropped past this many, so that a long session stays light. */
export const MAX_ENTRIES = 1000;

export interface ChatState {
  status: ConnectionStatus;
  entries: readonly Entry[];
  online: readonly ChatUser[];
  send(content: string): Promise<void>;
  retryNow(): void;
}

let nextKey = 0;

function append(entries: readonly Entry[], entry: Entry): Entry[] {
  const next = entries.length >= MAX_ENTRIES
    ? entries.slice(entries.length - MAX_ENTRIES + 1)
    : entries.slice();
  next.push(entry);
  return next;
}

/**
 * Opens a connection for `user` while the calling component is mounted.
 * `onRefused` is called when the server refuses the user for good.
 */
export function useChat(
  api: ChatApi,
  user: ChatUser,
  onRefused: (error: string) => void,
): ChatState {
  const [status, setStatus] = useState<ConnectionStatus>({ kind: "connecting", attempt: 1 });
  const [entries, setEntries] = useState<readonly Entry[]>([]);
  const [online, setOnline] = useState<readonly ChatUser[]>([]);
  const connection = useRef<ChatConnection | undefined>(undefined);
  const refused = useRef(onRefused);
  refused.current = onRefused;

  useEffect(() => {
    let live = true;
    let wasConnected = false;
    const note = (text: string) =>
      setEntries((prev) =>
        append(prev, { kind: "note", key: `n${nextKey++}`, text, at: new Date() })
      );
    const conn = new ChatConnection({
      api,
      user,
      onStatus: (s) => {
        if (!live) return;
        setStatus(s);
        if (s.kind === "connected") {
          if (wasConnected) {
            note("Reconnected. Messages sent while you were offline are not shown.");
          }
          wasConnected = true;
        }
        if (s.kind === "stopped" && s.error) refused.current(s.error);
      },
      onMessage: (message) => {
        if (!live) return;
        setEntries((prev) =>
          append(prev, { kind: "message", key: message.messageId || `m${nextKey++}`, message })
        );
      },
      onOnline: (users) => live && setOnline(users),
    });
    connection.current = conn;
    conn.start();
    // Back from offline or from a sleeping tab: do not wait for the backoff.
    const retry = () => conn.retryNow();
    const onVisible = () => document.visibilityState === "visible" && retry();
    globalThis.addEventListener("online", retry);
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      live = false;
      globalThis.removeEventListener("online", retry);
      document.removeEventListener("visibilitychange", onVisible);
      conn.stop();
      connection.current = undefined;
    };
  }, [api, user.id, user.displayName]);

  return useMemo(() => ({
    status,
    entries,
    online,
    send: (content: string) =>
      connection.current?.send(content) ?? Promise.reject(new Error("Not connected")),
    retryNow: () => connection.current?.retryNow(),
  }), [status, entries, online]);
}
