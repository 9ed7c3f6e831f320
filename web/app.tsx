/** The page: the sign-in screen until signed in, then the chat. */

import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import type { ChatBackend, Session } from "./grpc_chat_api.ts";
import { ChatScreen } from "./chat_screen.tsx";
import { JoinScreen } from "./join_screen.tsx";

/**
 * Where the sign-in is kept: the last name used on this device, the session (so that a reload
 * or another tab rejoins), and the room each user had open.
 */
export interface SessionStore {
  lastName(): string;
  remember(name: string): void;
  /** This tab's session, else the one this browser signed in with last; undefined after Sign out. */
  session(): Session | undefined;
  setSession(session: Session | undefined): void;
  /** Calls `onEnded` when another tab signs this session out; returns the unsubscribe. */
  onSignedOutElsewhere(session: Session, onEnded: () => void): () => void;
  /** The room `userId` had open last on this device. */
  lastRoom(userId: string): string | undefined;
  rememberRoom(userId: string, room: string): void;
}

const LAST_NAME_KEY = "chat.name";
const SESSION_KEY = "chat.session";
const ROOM_KEY = "chat.room.";

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
 * A `SessionStore` on localStorage (the name, the room, and the session shared by this origin's
 * tabs) and sessionStorage (this tab's own session, so that a reload stays signed in as this
 * tab's user when another tab signed in as someone else); works, forgetting, where they are
 * blocked.
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
  const shared = () => parseSession(get(() => localStorage, SESSION_KEY));
  const own = () => parseSession(get(() => sessionStorage, SESSION_KEY));
  return {
    lastName: () => get(() => localStorage, LAST_NAME_KEY) ?? "",
    remember: (name) => set(() => localStorage, LAST_NAME_KEY, name),
    session: () => own() ?? shared(),
    setSession: (session) => {
      if (session) {
        const text = JSON.stringify(session);
        set(() => sessionStorage, SESSION_KEY, text);
        set(() => localStorage, SESSION_KEY, text);
        return;
      }
      // Signing out ends the tabs on this token, not another tab's later sign-in.
      const ending = own()?.token;
      set(() => sessionStorage, SESSION_KEY, undefined);
      if (ending === undefined || shared()?.token === ending) {
        set(() => localStorage, SESSION_KEY, undefined);
      }
    },
    onSignedOutElsewhere: (session, onEnded) => {
      const listener = (event: StorageEvent) => {
        if (event.key !== null && event.key !== SESSION_KEY) return;
        if (event.storageArea !== localStorage) return;
        if (parseSession(event.oldValue ?? undefined)?.token !== session.token) return;
        if (shared()?.token !== session.token) onEnded();
      };
      globalThis.addEventListener("storage", listener);
      return () => globalThis.removeEventListener("storage", listener);
    },
    lastRoom: (userId) => get(() => localStorage, ROOM_KEY + userId),
    rememberRoom: (userId, room) => set(() => localStorage, ROOM_KEY + userId, room),
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

  // Signed out in another tab: this tab's token is no longer meant to be used.
  useEffect(() => {
    if (!session) return;
    return store.onSignedOutElsewhere(session, () => {
      store.setSession(undefined);
      setSession(undefined);
      setNotice("Your sign-in ended in another tab; sign in again.");
    });
  }, [store, session]);

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
      initialRoom={store.lastRoom(session.user.id)}
      onRoomShown={(room) => store.rememberRoom(session.user.id, room)}
    />
  );
}
