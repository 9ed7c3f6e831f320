/**
 * A `Store` that times every call into the metrics (`chat_store_duration_seconds` by operation
 * and outcome): one decorator over whichever adapter is open, so no adapter knows of metrics.
 */

import type { Metrics } from "../core/metrics.ts";
import type { Store } from "./store.ts";

type Operation = Exclude<keyof Store, "close">;

/** Every operation of the port: a method added to `Store` must be added here to compile. */
const OPERATIONS: Record<Operation, true> = {
  append: true,
  appendAll: true,
  history: true,
  since: true,
  message: true,
  changeMessage: true,
  toggleReaction: true,
  createAccount: true,
  getAccount: true,
  createRoom: true,
  getRoom: true,
  addMember: true,
  removeMember: true,
  isMember: true,
  members: true,
  roomsOf: true,
  listRooms: true,
  setTopic: true,
  setInviteOnly: true,
  invite: true,
  uninvite: true,
  isInvited: true,
  invitationCount: true,
  invitationsOf: true,
  memberCounts: true,
  lastSeq: true,
  markRead: true,
  readStates: true,
  readPositions: true,
  seenBy: true,
  search: true,
  setBlocked: true,
  blockedBy: true,
  isBlocked: true,
  setRole: true,
  moderators: true,
  setMute: true,
  mutedUntil: true,
  addRoomEvent: true,
  roomEvents: true,
};

/** `store` with each call timed into `metrics`; `store` itself when metrics are off. */
export function measuredStore(store: Store, metrics: Metrics): Store {
  if (!metrics.enabled) return store;
  const measured: Record<string, unknown> = { close: () => store.close() };
  for (const operation of Object.keys(OPERATIONS) as Operation[]) {
    const call = store[operation].bind(store) as (...args: unknown[]) => Promise<unknown>;
    measured[operation] = async (...args: unknown[]) => {
      const done = metrics.storeTimer(operation);
      try {
        const result = await call(...args);
        done(true);
        return result;
      } catch (err) {
        done(false);
        throw err;
      }
    };
  }
  return measured as unknown as Store;
}
