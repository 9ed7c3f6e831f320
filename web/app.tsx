/** The page: the join screen until a name is chosen, then the chat. */

import { useCallback, useState } from "preact/hooks";
import type { ChatApi, ChatUser } from "./chat_connection.ts";
import { ChatScreen } from "./chat_screen.tsx";
import { JoinScreen } from "./join_screen.tsx";

/** Where the name is kept: the last name used on this device, and this tab's open session. */
export interface NameStore {
  lastName(): string;
  remember(name: string): void;
  /** The name this tab joined with, so that a reload rejoins; undefined after Leave. */
  session(): string | undefined;
  setSession(name: string | undefined): void;
}

const LAST_NAME_KEY = "chat.name";
const SESSION_KEY = "chat.session";

/** A `NameStore` on localStorage and sessionStorage; works (forgetting) where they are blocked. */
export function browserNameStore(): NameStore {
  const get = (storage: () => Storage, key: string) => {
    try {
      return storage().getItem(key) ?? undefined;
    } catch {
      return undefined;
    }
  };
  const set = (storage: () => Storage, key: string, value: string | undefined) => {
    try {
      if (value === undefined) storage().removeItem(key);
      else storage().setItem(key, value);
    } catch {
      // Private mode or storage turned off: the name is just not remembered.
    }
  };
  return {
    lastName: () => get(() => localStorage, LAST_NAME_KEY) ?? "",
    remember: (name) => set(() => localStorage, LAST_NAME_KEY, name),
    session: () => get(() => sessionStorage, SESSION_KEY),
    setSession: (name) => set(() => sessionStorage, SESSION_KEY, name),
  };
}

const asUser = (name: string): ChatUser => ({ id: name, displayName: name });

export function App({ api, names }: { api: ChatApi; names: NameStore }) {
  const [user, setUser] = useState<ChatUser | undefined>(() => {
    const name = names.session();
    return name ? asUser(name) : undefined;
  });
  const [joinError, setJoinError] = useState<string | undefined>(undefined);

  const join = useCallback((name: string) => {
    names.remember(name);
    names.setSession(name);
    setJoinError(undefined);
    setUser(asUser(name));
  }, [names]);

  const leave = useCallback(() => {
    names.setSession(undefined);
    setUser(undefined);
  }, [names]);

  const refused = useCallback((error: string) => {
    names.setSession(undefined);
    setUser(undefined);
    setJoinError(`Cannot join: ${error}`);
  }, [names]);

  if (!user) {
    return <JoinScreen initialName={names.lastName()} error={joinError} onJoin={join} />;
  }
  return <ChatScreen key={user.id} api={api} user={user} onLeave={leave} onRefused={refused} />;
}
