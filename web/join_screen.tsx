/**
 * Sign in with a name and a password; a name nobody has yet creates an
 * account. The name is remembered on this device; errors show in place.
 */

import { useState } from "preact/hooks";
import { PASSWORD_MIN_LENGTH } from "../protocol/limits.ts";
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from "../protocol/names.ts";
import { ChatError } from "../client/core/model.ts";
import { plainWords } from "./failures.ts";
import { Logo } from "./icons.tsx";

type Field = "name" | "password";

/**
 * A problem with what was typed, before asking the server (which checks the same username rules,
 * protocol/names.ts); undefined when it looks right.
 */
export function checkSignIn(
  name: string,
  password: string,
): { field: Field; text: string } | undefined {
  if (name === "") return { field: "name", text: "Enter a name to join." };
  if (name.length > USERNAME_MAX_LENGTH) {
    return {
      field: "name",
      text: `That name is ${name.length} characters; ${USERNAME_MAX_LENGTH} is the most.`,
    };
  }
  if (!USERNAME_PATTERN.test(name)) {
    return {
      field: "name",
      text: "A name may only hold letters, digits, '.', '_' and '-' (no spaces).",
    };
  }
  if (password === "") return { field: "password", text: "Enter your password." };
  return undefined;
}

/** Which field a refusal from the server is about. */
function fieldOf(err: unknown): Field | undefined {
  if (!(err instanceof ChatError)) return undefined;
  if (/password/i.test(err.message)) return "password";
  if (/username|name/i.test(err.message)) return "name";
  return undefined;
}

export function JoinScreen(
  { initialName, notice, onSignIn }: {
    initialName: string;
    /** Why the chat sent the user back here (a refusal, an ended sign-in). */
    notice?: string;
    /** Signs in; rejects (with a `ChatError`) when the server refuses. */
    onSignIn: (name: string, password: string) => Promise<void>;
  },
) {
  const [name, setName] = useState(initialName);
  const [password, setPassword] = useState("");
  const [problem, setProblem] = useState<{ field?: Field; text: string } | undefined>(undefined);
  const [edited, setEdited] = useState(false);
  const [busy, setBusy] = useState(false);
  const shown = problem ?? (edited || !notice ? undefined : { text: notice });
  const invalid = (field: Field) => shown && shown.field === field ? "true" : undefined;
  const describedBy = (field: Field, help: string) =>
    shown && (shown.field === field || shown.field === undefined) ? `join-error ${help}` : help;

  async function submit() {
    if (busy) return;
    const trimmed = name.trim();
    const local = checkSignIn(trimmed, password);
    if (local) {
      setProblem(local);
      document.getElementById(local.field === "name" ? "name-input" : "password-input")?.focus();
      return;
    }
    setProblem(undefined);
    setBusy(true);
    try {
      await onSignIn(trimmed, password);
    } catch (err) {
      const field = fieldOf(err);
      setProblem({ field, text: plainWords(err) });
      if (field === "password" || field === undefined) setPassword("");
      document.getElementById(field === "name" ? "name-input" : "password-input")?.focus();
      setBusy(false);
    }
  }

  return (
    <main class="join">
      <form
        class="join-card"
        aria-labelledby="join-title"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
      >
        <div class="join-brand">
          <Logo />
          <span>Chat</span>
        </div>
        <h1 id="join-title">Join the conversation</h1>
        <p class="join-lead">Sign in with your name, or pick a new one to create an account.</p>
        <label for="name-input" class="field-label">Your name</label>
        <input
          id="name-input"
          name="username"
          type="text"
          autoComplete="username"
          autoCapitalize="none"
          spellcheck={false}
          maxLength={USERNAME_MAX_LENGTH}
          value={name}
          autoFocus={initialName === ""}
          aria-invalid={invalid("name")}
          aria-describedby={describedBy("name", "name-help")}
          onInput={(event) => {
            setName(event.currentTarget.value);
            setProblem(undefined);
            setEdited(true);
          }}
        />
        <p id="name-help" class="field-help">Letters, digits, '.', '_' or '-'. Others see it.</p>
        <label for="password-input" class="field-label field-gap">
          Password — a new name creates an account
        </label>
        <input
          id="password-input"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          autoFocus={initialName !== ""}
          aria-invalid={invalid("password")}
          aria-describedby={describedBy("password", "password-help")}
          onInput={(event) => {
            setPassword(event.currentTarget.value);
            setProblem(undefined);
            setEdited(true);
          }}
        />
        <p id="password-help" class="field-help">
          At least {PASSWORD_MIN_LENGTH} characters for a new account.
        </p>
        {shown && <p id="join-error" class="field-error" role="alert">{shown.text}</p>}
        <button
          type="submit"
          class="primary-button"
          disabled={busy}
          aria-busy={busy ? "true" : undefined}
        >
          {busy ? "Joining…" : "Join"}
        </button>
      </form>
    </main>
  );
}
