/**
 * Which user is connected to which gateway, built from connection events and
 * heartbeats. Pure state: the processor feeds it and acts on what it returns.
 * Whether a gateway is alive is the shared `Liveness` rule's answer.
 */

import { Liveness } from "../core/liveness.ts";
import type { ConnectionEvent, Presence } from "../core/types.ts";

export interface Disconnection {
  readonly userId: string;
  readonly serverId: string;
  readonly streamId: string;
  readonly displayName: string;
}

interface StreamEntry {
  readonly userId: string;
  readonly serverId: string;
  readonly displayName: string;
}

export class Registry {
  /** streamId → entry */
  readonly #streams = new Map<string, StreamEntry>();
  /** userId → its stream ids */
  readonly #byUser = new Map<string, Set<string>>();
  /** The gateways' last signs of life. */
  readonly #liveness = new Liveness();
  /** userId → display name, while the user has a stream (and for the offline presence). */
  readonly #names = new Map<string, string>();

  /**
   * Applies a connection event. Returns the user's presence when it changed
   * (came online, went offline, or moved between gateways), else undefined.
   * Idempotent: a repeated event changes nothing.
   */
  apply(event: ConnectionEvent, now: number): Presence | undefined {
    const before = this.#serversOf(event.userId);
    if (event.connected) {
      this.#names.set(event.userId, event.displayName);
      this.#streams.set(event.streamId, {
        userId: event.userId,
        serverId: event.serverId,
        displayName: event.displayName,
      });
      let set = this.#byUser.get(event.userId);
      if (!set) this.#byUser.set(event.userId, set = new Set());
      set.add(event.streamId);
      // A gateway we never heard a heartbeat from gets a full timeout from now.
      this.#liveness.expect(event.serverId, now);
    } else {
      this.#remove(event.streamId);
    }
    return this.#changed(event.userId, before, event.timestamp);
  }

  heartbeat(serverId: string, now: number): void {
    this.#liveness.beat(serverId, now);
  }

  /**
   * Declares dead every gateway silent for longer than `timeoutMs`, drops its
   * streams, and returns the dead gateways with the disconnections and
   * presence changes that follow.
   */
  expire(now: number, timeoutMs: number): {
    deadServers: string[];
    disconnected: Disconnection[];
    presence: Presence[];
  } {
    const deadServers = this.#liveness.silent(now, timeoutMs);
    const disconnected: Disconnection[] = [];
    const presence: Presence[] = [];
    if (deadServers.length === 0) return { deadServers, disconnected, presence };
    const dead = new Set(deadServers);
    const touched = new Map<string, string[]>();
    for (const [streamId, entry] of this.#streams) {
      if (!dead.has(entry.serverId)) continue;
      if (!touched.has(entry.userId)) touched.set(entry.userId, this.#serversOf(entry.userId));
      disconnected.push({ ...entry, streamId });
    }
    for (const d of disconnected) this.#remove(d.streamId);
    for (const id of deadServers) this.#liveness.forget(id);
    const timestamp = new Date(now).toISOString();
    for (const [userId, before] of touched) {
      const change = this.#changed(userId, before, timestamp);
      if (change) presence.push(change);
    }
    return { deadServers, disconnected, presence };
  }

  /** Everybody online now, sorted by user id. */
  online(): Presence[] {
    return [...this.#byUser.keys()].sort().map((userId) => this.presenceOf(userId, ""));
  }

  presenceOf(userId: string, timestamp: string): Presence {
    const servers = this.#serversOf(userId);
    return {
      userId,
      displayName: this.#names.get(userId) ?? userId,
      online: servers.length > 0,
      servers,
      timestamp,
    };
  }

  /**
   * Counts every known gateway as heard from at `now`: after Kafka could not carry heartbeats,
   * each gateway gets a whole timeout to be heard again before it can be called dead.
   */
  pardonAll(now: number): void {
    this.#liveness.pardonAll(now);
  }

  /** Gateways silent for longer than `timeoutMs`. */
  silent(now: number, timeoutMs: number): string[] {
    return this.#liveness.silent(now, timeoutMs);
  }

  /** Gateways that are known alive. */
  servers(): string[] {
    return this.#liveness.known();
  }

  #remove(streamId: string): void {
    const entry = this.#streams.get(streamId);
    if (!entry) return;
    this.#streams.delete(streamId);
    const set = this.#byUser.get(entry.userId);
    set?.delete(streamId);
    if (set && set.size === 0) this.#byUser.delete(entry.userId);
  }

  #serversOf(userId: string): string[] {
    const ids = this.#byUser.get(userId);
    if (!ids) return [];
    const servers = new Set<string>();
    for (const id of ids) {
      const entry = this.#streams.get(id);
      if (entry) servers.add(entry.serverId);
    }
    return [...servers].sort();
  }

  #changed(userId: string, before: string[], timestamp: string): Presence | undefined {
    const after = this.#serversOf(userId);
    const same = before.length === after.length && before.every((s, i) => s === after[i]);
    const presence = same ? undefined : this.presenceOf(userId, timestamp);
    // Forgotten once offline (after the offline presence took the name), or every user who
    // ever connected would stay here.
    if (after.length === 0) this.#names.delete(userId);
    return presence;
  }
}
