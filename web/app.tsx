/** The page: the sign-in screen until signed in, then the chat. */

import { useCallback, useMemo, useState } from "preact/hooks";
import type { ChatBackend, Session } from "./grpc_chat_api.ts";
import { ChatScreen } from "./chat_screen.tsx";
import { JoinScreen } from "./join_screen.tsx";

/** Where the sign-in is kept: the last name used on this device, and this tab's session. */
export interface SessionStore {
  lastName(): string;
  remember(name: string): void;
  /** The session this tab signed in with, so that a reload rejoins; undefined after Sign out. */
  session(): Session | undefined;
  setSession(session: Session | undefined): void;
}

const LAST_NAME_KEY = "chat.name";
const SESSION_KEY = "chat.session";

function parseSession(text: string | undefined): Session | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text);
    if (
      typeof value?.token === "string" && value.token !== "" &&
      typeof value.user?.id === "string" && value.user.id !== "" &&
      typeof value.user.displayName === "string"
    ) {
      return {
        token: value.token,
        user: { id: value.user.id, displayName: value.user.displayName || value.user.id },
        expiresAt: typeof value.expiresAt === "number" ? value.expiresAt : undefined,
      };
    }
  } catch {
    // Not ours, or from an older page: sign in again.
  }
  return undefined;
}

/**
 * A `SessionStore` on localStorage (the name) and sessionStorage (the token:
 * this tab only, gone when it closes); works, forgetting, where they are blocked.
 */
export function browserSessionStore(): SessionStore {
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
      // Private mode or storage turned off: it is just not remembered.
    }
  };
  return {
    lastName: () => get(() => localStorage, LAST_NAME_KEY) ?? "",
    remember: (name) => set(() => localStorage, LAST_NAME_KEY, name),
    session: () => parseSession(get(() => sessionStorage, SESSION_KEY)),
    setSession: (session) =>
      set(() => sessionStorage, SESSION_KEY, session && JSON.stringify(session)),
  };
}

/** The words on the sign-in screen after the chat sent the user back to it. */
export function endedMessage(error: string, code: string | undefined): string {
  return code === "UNAUTHENTICATED"
    ? `Your sign-in has ended; sign in again. (${error})`
    : `Cannot join: ${error}`;
}

export function App(
  { backend, store, now = Date.now }: {
    backend: ChatBackend;
    store: SessionStore;
    now?: () => number;
  },
) {
  // A reload rejoins with the tab's session, unless its token has expired meanwhile.
  const [initial] = useState(() => {
    const kept = store.session();
    if (kept?.expiresAt === undefined || kept.expiresAt > now()) {
      return { session: kept, notice: undefined };
    }
    store.setSession(undefined);
    return { session: undefined, notice: "Your sign-in has expired; sign in again." };
  });
  const [notice, setNotice] = useState<string | undefined>(initial.notice);
  const [session, setSession] = useState<Session | undefined>(initial.session);
  const api = useMemo(() => session && backend.api(session.token), [backend, session?.token]);

  const signIn = useCallback(async (name: string, password: string) => {
    const signed = await backend.signIn(name, password);
    store.remember(name);
    store.setSession(signed);
    setNotice(undefined);
    setSession(signed);
  }, [backend, store]);

  const signOut = useCallback(() => {
    store.setSession(undefined);
    setSession(undefined);
  }, [store]);

  const ended = useCallback((error: string, code: string | undefined) => {
    store.setSession(undefined);
    setSession(undefined);
    setNotice(endedMessage(error, code));
  }, [store]);

  if (!session || !api) {
    return <JoinScreen initialName={store.lastName()} notice={notice} onSignIn={signIn} />;
  }
  return (
    <ChatScreen
      key={`${session.user.id} ${session.token}`}
      api={api}
      user={session.user}
      onSignOut={signOut}
      onEnded={ended}
    />
  );
}
