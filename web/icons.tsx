/** The page's few icons, inline so that nothing is fetched for them. */

import type { ChatUser } from "../client/core/model.ts";
import { hueFor, initials } from "./format.ts";

export function Logo() {
  return (
    <svg class="logo" viewBox="0 0 32 32" width="32" height="32" aria-hidden="true">
      <rect width="32" height="32" rx="9" fill="currentColor" />
      <path
        d="M9 11.5c0-1.4 1.1-2.5 2.5-2.5h9c1.4 0 2.5 1.1 2.5 2.5v6c0 1.4-1.1 2.5-2.5 2.5H15l-4 3.2V20h.5A2.5 2.5 0 0 1 9 17.5z"
        fill="#fff"
      />
    </svg>
  );
}

export function SendIcon() {
  return (
    <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
      <path
        d="M4.4 19.6 21 12 4.4 4.4l-.1 5.9L15 12l-10.7 1.7z"
        fill="currentColor"
      />
    </svg>
  );
}

export function MenuIcon() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
      <path
        d="M4 7h16M4 12h16M4 17h10"
        fill="none"
        stroke="currentColor"
        stroke-width="1.9"
        stroke-linecap="round"
      />
    </svg>
  );
}

export function MessageIcon() {
  return (
    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
      <path
        d="M7.5 16H7v3.5l4-3.5h5.5a2.5 2.5 0 0 0 2.5-2.5v-7A2.5 2.5 0 0 0 16.5 4h-9A2.5 2.5 0 0 0 5 6.5v7A2.5 2.5 0 0 0 7.5 16z"
        fill="none"
        stroke="currentColor"
        stroke-width="1.7"
        stroke-linejoin="round"
      />
    </svg>
  );
}

export function LeaveIcon() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
      <path
        d="M10 4H6.5A2.5 2.5 0 0 0 4 6.5v11A2.5 2.5 0 0 0 6.5 20H10M15 8l4 4-4 4M9.5 12H19"
        fill="none"
        stroke="currentColor"
        stroke-width="1.8"
        stroke-linecap="round"
        stroke-linejoin="round"
      />
    </svg>
  );
}

/** A round badge with the user's initials, in the user's own colour. */
export function Avatar({ user, size = "md" }: { user: ChatUser; size?: "xs" | "sm" | "md" }) {
  return (
    <span class={`avatar avatar-${size} hue-${hueFor(user.id) % 12}`} aria-hidden="true">
      {initials(user.displayName || user.id)}
    </span>
  );
}
