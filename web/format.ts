/** Small presentation helpers: times, initials, avatar colours, status words. */

import type { ConnectionStatus } from "../client/core/session_options.ts";

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** "14:05" (or "2:05 PM", by the reader's locale). */
export function shortTime(date: Date): string {
  return timeFormat.format(date);
}

/** Date and time, for a tooltip. */
export function fullTime(date: Date): string {
  return fullFormat.format(date);
}

/** One or two letters for an avatar. */
export function initials(name: string): string {
  const words = name.trim().split(/[\s._-]+/).filter(Boolean);
  const letters = words.length > 1
    ? [...words[0]!].slice(0, 1).concat([...words[1]!].slice(0, 1))
    : [...(words[0] ?? "?")].slice(0, 2);
  return letters.join("").toUpperCase();
}

/** A stable hue (0..359) for a user id, so that each person keeps their colour. */
export function hueFor(id: string): number {
  let hash = 2166136261;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  return Math.abs(hash) % 360;
}

export interface StatusWords {
  /** Short, for the header: "Connected". */
  label: string;
  /** The colour of the dot. */
  tone: "ok" | "busy" | "down";
  /** A sentence for the banner over the messages, when there is something to say. */
  banner?: string;
  /** Why, in the server's or the browser's words. */
  reason?: string;
}

/** The words for a connection status; `now` is for the countdown. */
export function describeStatus(status: ConnectionStatus, now: number): StatusWords {
  switch (status.kind) {
    case "connected":
      return { label: "Connected", tone: "ok" };
    case "connecting":
      return status.attempt > 1
        ? { label: "Reconnecting…", tone: "busy", banner: "Connection lost. Reconnecting now…" }
        : { label: "Connecting…", tone: "busy" };
    case "reconnecting": {
      const seconds = Math.max(1, Math.ceil((status.retryAt - now) / 1000));
      return {
        label: "Reconnecting…",
        tone: "busy",
        banner: `Connection lost. Reconnecting in ${seconds} s…`,
        reason: status.reason,
      };
    }
    case "stopped":
      return { label: "Offline", tone: "down", banner: status.error };
  }
}
