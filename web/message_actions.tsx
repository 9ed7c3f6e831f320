/**
 * Editing and deleting a message in place: the buttons on a message (Edit for one's own, Delete
 * for one's own or any in a room one owns, "Seen by" for one's own in a group room), the box that
 * edits its text, and what a failure said, next to the message it concerns.
 */

import { createContext } from "preact";
import { useContext, useState } from "preact/hooks";
import type { ChatMessage, SeenBy } from "../client/core/model.ts";
import { plainWords } from "./failures.ts";

export interface MessageActions {
  readonly myId: string;
  /** Who may delete any message of the room; "" when nobody may. */
  readonly owner: string;
  /** Whether the reader moderates the room (owner or moderator): they delete any message too. */
  readonly moderates?: boolean;
  edit(seq: number, content: string): Promise<void>;
  delete(seq: number): Promise<void>;
  /** Toggles the reader's reaction `emoji` on message `seq`. */
  react(seq: number, emoji: string): Promise<void>;
  /** Who read message `seq`; undefined where the room says "Seen" by itself (direct rooms). */
  seenBy?: (seq: number) => Promise<SeenBy>;
}

export const MessageActionsContext = createContext<MessageActions | undefined>(undefined);

function EditBox(
  { initial, onSave, onCancel }: {
    initial: string;
    onSave: (text: string) => void;
    onCancel: () => void;
  },
) {
  const [text, setText] = useState(initial);
  return (
    <form
      class="msg-edit"
      onSubmit={(e) => {
        e.preventDefault();
        onSave(text);
      }}
    >
      <textarea
        aria-label="Edit message"
        value={text}
        rows={Math.min(6, text.split("\n").length)}
        // The box opens because the reader asked to edit: the focus belongs there.
        autoFocus
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") onCancel();
          else if (e.key === "Enter" && !e.shiftKey) {
            e.preventDefault();
            onSave(text);
          }
        }}
      />
      <span class="msg-edit-buttons">
        <button type="submit" class="small-button">Save</button>
        <button type="button" class="small-button" onClick={onCancel}>Cancel</button>
      </span>
    </form>
  );
}

/** "Seen by 2: ben, cat", or that nobody has yet. */
function seenByText({ users, count }: SeenBy): string {
  if (count === 0) return "Nobody has seen it yet";
  const more = count > users.length ? ` and ${count - users.length} more` : "";
  return `Seen by ${count}: ${users.join(", ")}${more}`;
}

/**
 * The message's text, or the box that edits it, with the buttons the reader may use and what a
 * refused change said. `text` is how the text shows when not being edited.
 */
export function EditableText(
  { message, text }: { message: ChatMessage; text: preact.ComponentChildren },
) {
  const actions = useContext(MessageActionsContext);
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [seen, setSeen] = useState<string | undefined>(undefined);
  if (message.deleted) return <p class="msg-text msg-deleted">This message was deleted.</p>;
  const mine = actions !== undefined && message.userId === actions.myId;
  const mayDelete = actions !== undefined &&
    (mine || actions.owner === actions.myId || actions.moderates === true);
  const run = async (change: () => Promise<void>) => {
    setError(undefined);
    try {
      await change();
      setEditing(false);
    } catch (err) {
      setError(plainWords(err));
    }
  };
  return (
    <>
      {editing && actions
        ? (
          <EditBox
            initial={message.content}
            onCancel={() => setEditing(false)}
            onSave={(content) =>
              content === message.content
                ? setEditing(false)
                : run(() => actions.edit(message.seq, content))}
          />
        )
        : text}
      {message.seq > 0 && !editing && (mine || mayDelete) && (
        <span class="msg-actions">
          {mine && (
            <button type="button" class="msg-action" onClick={() => setEditing(true)}>
              Edit
            </button>
          )}
          {mine && actions?.seenBy && (
            <button
              type="button"
              class="msg-action"
              onClick={async () => {
                setError(undefined);
                try {
                  setSeen(seenByText(await actions.seenBy!(message.seq)));
                } catch (err) {
                  setError(plainWords(err));
                }
              }}
            >
              Seen by…
            </button>
          )}
          {mayDelete && (
            <button
              type="button"
              class="msg-action"
              onClick={() =>
                globalThis.confirm("Delete this message for everyone?") &&
                run(() => actions!.delete(message.seq))}
            >
              Delete
            </button>
          )}
        </span>
      )}
      {seen && <p class="msg-seen" role="status">{seen}</p>}
      {error && <p class="msg-error" role="alert">{error}</p>}
    </>
  );
}
