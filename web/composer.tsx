/**
 * The send box: Enter sends, Shift+Enter makes a new line. The box empties at
 * once; if the server refuses the message, its words show right above the box
 * and the text comes back into it.
 */

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { describeSendFailure } from "./failures.ts";
import { SendIcon } from "./icons.tsx";

/** The box grows with its text up to this height, then scrolls. */
const MAX_HEIGHT_PX = 168;

export function Composer(
  { onSend, placeholder = "Write a message…" }: {
    onSend: (content: string) => Promise<void>;
    placeholder?: string;
  },
) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [sending, setSending] = useState(0);
  const box = useRef<HTMLTextAreaElement>(null);

  useEffect(() => box.current?.focus(), []);

  // Grow with the text (CSSOM, which the page's content security policy allows).
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, MAX_HEIGHT_PX)}px`;
  }, [text]);

  async function send() {
    const content = text;
    if (content.trim() === "") return;
    setText("");
    setError(undefined);
    setSending((n) => n + 1);
    try {
      await onSend(content);
    } catch (err) {
      setError(describeSendFailure(err));
      // Give the text back, ahead of anything typed since.
      setText((now) => (now === "" ? content : `${content}\n${now}`));
    } finally {
      setSending((n) => n - 1);
    }
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
      {error && (
        <div class="composer-error" role="alert">
          <p id="composer-error-text">{error}</p>
          <button
            type="button"
            class="icon-button"
            aria-label="Dismiss the error"
            onClick={() => {
              setError(undefined);
              box.current?.focus();
            }}
          >
            ×
          </button>
        </div>
      )}
      <div class="composer-row">
        <label for="message-input" class="sr-only">Message</label>
        <textarea
          id="message-input"
          ref={box}
          rows={1}
          value={text}
          placeholder={placeholder}
          aria-describedby={error ? "composer-hint composer-error-text" : "composer-hint"}
          aria-invalid={error ? "true" : undefined}
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
