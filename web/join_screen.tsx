/** Choose a name and join. The name is remembered on this device. */

import { useState } from "preact/hooks";
import { Logo } from "./icons.tsx";

/** Longest name the page accepts (the server takes up to 128 characters). */
export const MAX_NAME_LENGTH = 64;

export function JoinScreen(
  { initialName, error, onJoin }: {
    initialName: string;
    error?: string;
    onJoin: (name: string) => void;
  },
) {
  const [name, setName] = useState(initialName);
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const [edited, setEdited] = useState(false);
  const shown = problem ?? (edited ? undefined : error);

  return (
    <main class="join">
      <form
        class="join-card"
        aria-labelledby="join-title"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          const trimmed = name.trim();
          if (trimmed === "") {
            setProblem("Enter a name to join.");
            return;
          }
          if (trimmed.length > MAX_NAME_LENGTH) {
            setProblem(
              `That name is ${trimmed.length} characters; ${MAX_NAME_LENGTH} is the most.`,
            );
            return;
          }
          setProblem(undefined);
          onJoin(trimmed);
        }}
      >
        <div class="join-brand">
          <Logo />
          <span>Chat</span>
        </div>
        <h1 id="join-title">Join the conversation</h1>
        <p class="join-lead">Pick the name others will see next to your messages.</p>
        <label for="name-input" class="field-label">Your name</label>
        <input
          id="name-input"
          name="name"
          type="text"
          autoComplete="nickname"
          autoCapitalize="none"
          spellcheck={false}
          maxLength={MAX_NAME_LENGTH}
          value={name}
          autoFocus
          aria-invalid={shown ? "true" : undefined}
          aria-describedby={shown ? "name-error name-help" : "name-help"}
          onInput={(event) => {
            setName(event.currentTarget.value);
            setProblem(undefined);
            setEdited(true);
          }}
        />
        <p id="name-help" class="field-help">Remembered on this device.</p>
        {shown && <p id="name-error" class="field-error" role="alert">{shown}</p>}
        <button type="submit" class="primary-button">Join</button>
      </form>
    </main>
  );
}
