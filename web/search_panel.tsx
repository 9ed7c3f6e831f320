/**
 * The search box of the side panel: words typed there are looked for in the history of the
 * reader's rooms; each result names its room, sender and time and shows the text around the
 * match, and opens the room at that message when pressed.
 */

import { useState } from "preact/hooks";
import type { ChatMessage } from "../client/core/model.ts";
import { directPeer, isDirect } from "../client/core/rooms.ts";
import { SEARCH_QUERY_MAX, searchWords } from "../protocol/search.ts";
import { plainWords } from "./failures.ts";
import { fullTime, shortTime } from "./format.ts";

/** The most characters of a result's text shown; the rest is cut around the first match. */
const SNIPPET_CHARS = 140;
/** How much of the text before the first match a cut snippet keeps. */
const SNIPPET_LEAD = 40;

/** `content` cut to the part around its first word of `words`, split into matching and not. */
export function snippet(
  content: string,
  words: readonly string[],
): { text: string; match: boolean }[] {
  const wanted = new Set(words);
  const isMatch = (part: string) => wanted.has(part.toLowerCase());
  const parts = content.split(/([\p{L}\p{N}]+)/u);
  let at = 0;
  let first = -1;
  for (const part of parts) {
    if (first < 0 && isMatch(part)) first = at;
    at += part.length;
  }
  const start = content.length > SNIPPET_CHARS && first > SNIPPET_LEAD ? first - SNIPPET_LEAD : 0;
  const end = Math.min(content.length, start + SNIPPET_CHARS);
  const shown: { text: string; match: boolean }[] = start > 0 ? [{ text: "…", match: false }] : [];
  at = 0;
  for (const part of parts) {
    const from = Math.max(at, start);
    const to = Math.min(at + part.length, end);
    if (from < to) {
      shown.push({ text: part.slice(from - at, to - at), match: isMatch(part) });
    }
    at += part.length;
  }
  if (end < content.length) shown.push({ text: "…", match: false });
  return shown;
}

function roomName(room: string, myId: string): string {
  return isDirect(room) ? `@${directPeer(room, myId)}` : `#${room}`;
}

export function SearchPanel(
  { myId, stale, onSearch, onOpen }: {
    myId: string;
    stale: boolean;
    onSearch: (query: string) => Promise<ChatMessage[]>;
    /** Opens the result's room at it. */
    onOpen: (room: string, seq: number) => Promise<void>;
  },
) {
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<
    { words: string[]; messages: ChatMessage[] } | undefined
  >(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  async function run() {
    const trimmed = query.trim();
    if (trimmed === "") {
      setError("Type words to look for.");
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      setResults({ words: searchWords(trimmed), messages: await onSearch(trimmed) });
    } catch (err) {
      setError(plainWords(err));
    } finally {
      setBusy(false);
    }
  }

  async function open(message: ChatMessage) {
    setError(undefined);
    try {
      await onOpen(message.room, message.seq);
    } catch (err) {
      setError(plainWords(err));
    }
  }

  return (
    <section class="panel-section search-panel" aria-labelledby="search-title">
      <h2 id="search-title" class="section-title">Search</h2>
      <form
        class="room-form"
        role="search"
        aria-label="Search messages"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          void run();
        }}
      >
        <label for="search-input" class="sr-only">Words to find</label>
        <input
          id="search-input"
          type="search"
          placeholder="Search messages"
          autoComplete="off"
          value={query}
          maxLength={SEARCH_QUERY_MAX}
          aria-invalid={error ? "true" : undefined}
          aria-describedby={error ? "search-error" : undefined}
          onInput={(event) => setQuery(event.currentTarget.value)}
        />
        <button type="submit" class="small-button" disabled={busy || stale}>Find</button>
      </form>
      {error && <p id="search-error" class="panel-error" role="alert">{error}</p>}
      {results && (
        <div class="search-results" aria-live="polite">
          <p class="search-count">
            {results.messages.length === 0
              ? "Nothing found"
              : results.messages.length === 1
              ? "1 message"
              : `${results.messages.length} messages`}
          </p>
          <ul class="search-list">
            {results.messages.map((m) => (
              <li key={`${m.room}#${m.seq}`}>
                <button
                  type="button"
                  class="search-result"
                  data-room={m.room}
                  data-seq={m.seq}
                  onClick={() => void open(m)}
                >
                  <span class="search-where">
                    <span class="search-room">{roomName(m.room, myId)}</span>{" "}
                    <span class="search-sender">{m.displayName}</span>{" "}
                    {m.timestamp && (
                      <time dateTime={m.timestamp.toISOString()} title={fullTime(m.timestamp)}>
                        {shortTime(m.timestamp)}
                      </time>
                    )}
                  </span>
                  <span class="search-snippet">
                    {snippet(m.content, results.words).map((part, i) =>
                      part.match ? <mark key={i}>{part.text}</mark> : part.text
                    )}
                  </span>
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}
