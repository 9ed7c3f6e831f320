/** Small presentation helpers: times, days, initials, avatar colours, status words. */

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

const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  month: "long",
  day: "numeric",
});
const yearDayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });

function startOfDay(date: Date): number {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

/** Whether `a` and `b` fall on the same day of the reader's calendar. */
export function sameDay(a: Date, b: Date): boolean {
  return startOfDay(a) === startOfDay(b);
}

/**
 * A day separator's words: "Today", "Yesterday", or the date ("Monday, November 30"; with the
 * year when it is not this year's).
 */
export function dayLabel(date: Date, now: Date): string {
  // Rounded: a day with a daylight-saving change is 23 or 25 hours long.
  const days = Math.round((startOfDay(now) - startOfDay(date)) / 86_400_000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return (date.getFullYear() === now.getFullYear() ? dayFormat : yearDayFormat).format(date);
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
