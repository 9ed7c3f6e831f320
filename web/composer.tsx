/**
 * The send box: Enter sends, Shift+Enter makes a new line. The box empties at
 * once; messages go one after another, in the order typed. A message the server refuses waits above the box with the server's
 * words, in the order it was sent, to be sent again, taken back into the box or
 * discarded: it never comes back into what is being typed, so a burst of
 * refusals can neither reverse nor merge messages.
 */

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { describeSendFailure } from "./failures.ts";
import { SendIcon } from "./icons.tsx";

/** The box grows with its text up to this height, then scrolls. */
const MAX_HEIGHT_PX = 168;

/** A refused message: `order` is when it was sent, among this box's sends. */
interface Unsent {
  order: number;
  content: string;
  error: string;
}

export function Composer(
  { onSend, onDraft, placeholder = "Write a message…" }: {
    onSend: (content: string) => Promise<void>;
    /** Hears of every change of the text in the box (typed, sent, taken back, cleared). */
    onDraft?: (text: string) => void;
    placeholder?: string;
  },
) {
  const [text, setText] = useState("");
  const [unsent, setUnsent] = useState<Unsent[]>([]);
  const [sending, setSending] = useState(0);
  const box = useRef<HTMLTextAreaElement>(null);
  const sends = useRef(0);
  const previous = useRef<Promise<void>>(Promise.resolve());

  useEffect(() => box.current?.focus(), []);

  const drafted = useRef(onDraft);
  drafted.current = onDraft;
  useEffect(() => drafted.current?.(text), [text]);

  // Grow with the text (CSSOM, which the page's content security policy allows).
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, MAX_HEIGHT_PX)}px`;
  }, [text]);

  async function deliver(content: string) {
    const order = sends.current++;
    setSending((n) => n + 1);
    // One send at a time, in the order typed: calls in flight together may reach the server in
    // another order, and the room would show a fast typist's lines shuffled.
    const turn = previous.current.then(() => onSend(content));
    previous.current = turn.catch(() => {});
    try {
      await turn;
    } catch (err) {
      const refused = { order, content, error: describeSendFailure(err) };
      // Answers may come back out of order: each takes its place by when it was sent.
      setUnsent((list) => [...list, refused].sort((a, b) => a.order - b.order));
    } finally {
      setSending((n) => n - 1);
    }
  }

  function send() {
    const content = text;
    if (content.trim() === "") return;
    setText("");
    void deliver(content);
  }

  function settle(item: Unsent) {
    setUnsent((list) => list.filter((u) => u !== item));
    box.current?.focus();
  }

  function onKeyDown(event: KeyboardEvent) {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) {
      return;
    }
    event.preventDefault();
    void send();
  }

  return (
    <form
      class="composer"
      onSubmit={(event) => {
        event.preventDefault();
        void send();
      }}
    >
      {unsent.length > 0 && (
        <ul class="unsent" aria-label="Messages not sent">
          {unsent.map((item) => (
            <li key={item.order} class="composer-error" role="alert">
              <div class="unsent-body">
                <p>{item.error}</p>
                <p class="unsent-text">{item.content}</p>
              </div>
              <div class="unsent-actions">
                <button
                  type="button"
                  class="small-button"
                  onClick={() => {
                    settle(item);
                    void deliver(item.content);
                  }}
                >
                  Send again
                </button>
                <button
                  type="button"
                  class="small-button"
                  disabled={text !== ""}
                  title={text !== "" ? "Send or clear what is in the box first" : undefined}
                  onClick={() => {
                    settle(item);
                    setText(item.content);
                  }}
                >
                  Edit
                </button>
                <button
                  type="button"
                  class="icon-button"
                  aria-label="Discard the message"
                  onClick={() => settle(item)}
                >
                  ×
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
      <div class="composer-row">
        <label for="message-input" class="sr-only">Message</label>
        <textarea
          id="message-input"
          ref={box}
          rows={1}
          value={text}
          placeholder={placeholder}
          aria-describedby="composer-hint"
          onInput={(event) => {
            setText(event.currentTarget.value);
          }}
          onKeyDown={onKeyDown}
        />
        <button
          type="submit"
          class="send-button"
          aria-label="Send"
          title="Send"
          disabled={text.trim() === ""}
          aria-busy={sending > 0 ? "true" : undefined}
        >
          <SendIcon />
        </button>
      </div>
      <p id="composer-hint" class="hint">
        <kbd>Enter</kbd> to send · <kbd>Shift</kbd>+<kbd>Enter</kbd> for a new line
      </p>
    </form>
  );
}
