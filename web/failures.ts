/** The words the page shows for a failed call: short, in the user's terms, never a stack. */

import { ChatError } from "../client/core/model.ts";

/** Turns any failure into words for the screen. */
export function describeFailure(err: unknown): string {
  if (err instanceof ChatError) {
    if (isNetworkFailure(err)) return "The server is unavailable";
    return err.message || err.code;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Whether the call never reached a server (connection refused, network down). */
export function isNetworkFailure(err: unknown): boolean {
  if (!(err instanceof ChatError)) return false;
  if (err.code === "UNAVAILABLE" && /fetch|network/i.test(err.message)) return true;
  // fetch() itself failed: the transport reports it as INTERNAL or UNKNOWN with the browser's text.
  return (err.code === "INTERNAL" || err.code === "UNKNOWN") &&
    /failed to fetch|networkerror|network error|load failed|fetch failed|connection/i.test(
      err.message,
    );
}

/** The words to show when a send failed; the text itself is kept by the caller. */
export function describeSendFailure(err: unknown): string {
  if (err instanceof ChatError) {
    if (isNetworkFailure(err) || err.code === "UNAVAILABLE") {
      const detail = isNetworkFailure(err) ? "" : ` (${err.message})`;
      return `Not sent: the server is unavailable${detail}. Your text is kept; send it again once reconnected.`;
    }
    return `Not sent: ${err.message || err.code}`;
  }
  return `Not sent: ${describeFailure(err)}`;
}

/** The server's words without the "Cannot …:" start, as a sentence: "Wrong password for ann". */
export function plainWords(err: unknown): string {
  if (isNetworkFailure(err)) return "The server is unavailable; try again in a moment.";
  const text = describeFailure(err).replace(/^Cannot [^:]{1,40}:\s*/, "");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
