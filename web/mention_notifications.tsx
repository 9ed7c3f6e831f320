/**
 * Browser notifications of mentions: when someone names the reader while the page is in the
 * background, and only once the reader allowed notifications from the button this offers (a
 * browser asks only after a click, never on its own).
 */

import { useState } from "preact/hooks";
import type { ChatMessage } from "../client/core/model.ts";
import { isDirect } from "../client/core/rooms.ts";

/** How much of the message a notification shows. */
const BODY_MAX = 200;

function supported(): boolean {
  return typeof Notification !== "undefined";
}

/**
 * Shows a notification for `message`, which mentions the reader, if the page is not being looked
 * at and notifications are allowed. The same message never notifies twice (its tag).
 */
export function notifyOfMention(message: ChatMessage): void {
  if (!supported() || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible") return;
  const where = isDirect(message.room) ? "a direct message" : `#${message.room}`;
  const notification = new Notification(`${message.displayName} mentioned you in ${where}`, {
    body: message.content.length > BODY_MAX
      ? `${message.content.slice(0, BODY_MAX - 1)}…`
      : message.content,
    tag: `${message.userId}/${message.messageId}`,
  });
  notification.onclick = () => {
    globalThis.focus();
    notification.close();
  };
}

/** "Notify me of mentions", while the reader has neither allowed nor refused notifications. */
export function NotificationsToggle() {
  const [permission, setPermission] = useState(supported() ? Notification.permission : "denied");
  if (permission !== "default") return null;
  return (
    <p class="panel-notify">
      <button
        type="button"
        class="small-button"
        onClick={async () => setPermission(await Notification.requestPermission())}
      >
        Notify me of mentions
      </button>
    </p>
  );
}
