/**
 * Reactions under a message: one button per emoji with its count (pressed when the reader
 * reacted with it; a press toggles it), and a small picker of the quick ones.
 */

import { useContext, useState } from "preact/hooks";
import type { ChatMessage } from "../client/core/model.ts";
import { QUICK_REACTIONS } from "../protocol/reactions.ts";
import { plainWords } from "./failures.ts";
import { MessageActionsContext } from "./message_actions.tsx";

export function ReactionBar({ message }: { message: ChatMessage }) {
  const actions = useContext(MessageActionsContext);
  const [picking, setPicking] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  if (!actions || message.deleted || message.seq === 0) return null;
  const toggle = async (emoji: string) => {
    setPicking(false);
    setError(undefined);
    try {
      await actions.react(message.seq, emoji);
    } catch (err) {
      setError(plainWords(err));
    }
  };
  // Without reactions the add button floats by the bubble, so that it takes no room.
  const bare = message.reactions.length === 0 && !picking;
  return (
    <div class={bare ? "reactions bare" : "reactions"}>
      {message.reactions.map(({ emoji, users }) => {
        const mine = users.includes(actions.myId);
        return (
          <button
            key={emoji}
            type="button"
            class={mine ? "reaction mine" : "reaction"}
            aria-pressed={mine ? "true" : "false"}
            aria-label={`${emoji} ${users.length}`}
            title={users.join(", ")}
            onClick={() => toggle(emoji)}
          >
            <span aria-hidden="true">{emoji}</span>
            <span class="reaction-count" aria-hidden="true">{users.length}</span>
          </button>
        );
      })}
      <button
        type="button"
        class="reaction add-reaction"
        aria-expanded={picking ? "true" : "false"}
        aria-label="Add a reaction"
        onClick={() => setPicking((open) => !open)}
      >
        +
      </button>
      {picking && (
        <span class="reaction-picker" role="group" aria-label="Reactions">
          {QUICK_REACTIONS.map((emoji) => (
            <button
              key={emoji}
              type="button"
              class="reaction-choice"
              aria-label={`React with ${emoji}`}
              onClick={() => toggle(emoji)}
            >
              {emoji}
            </button>
          ))}
        </span>
      )}
      {error && <p class="msg-error" role="alert">{error}</p>}
    </div>
  );
}
