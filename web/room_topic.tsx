/**
 * A room's topic under its name in the room header, and for the room's owner a way to change it
 * (the server refuses anyone else).
 */

import { useState } from "preact/hooks";
import { TOPIC_MAX_LENGTH, topicProblem } from "../protocol/directory.ts";
import { plainWords } from "./failures.ts";

export function RoomTopic(
  { topic, editable, onSave }: {
    topic: string;
    /** Whether this user owns the room. */
    editable: boolean;
    onSave: (topic: string) => Promise<void>;
  },
) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(topic);
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const save = async () => {
    const trimmed = text.trim();
    const problem = topicProblem(trimmed);
    if (problem) return setError(`Cannot set topic: ${problem}`);
    setBusy(true);
    setError(undefined);
    try {
      await onSave(trimmed);
      setEditing(false);
    } catch (err) {
      setError(plainWords(err));
    } finally {
      setBusy(false);
    }
  };

  if (editing) {
    return (
      <form
        class="topic-form"
        aria-label="Room topic"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          void save();
        }}
      >
        <label for="topic-input" class="sr-only">Topic</label>
        <input
          id="topic-input"
          type="text"
          placeholder="What is this room about?"
          maxLength={TOPIC_MAX_LENGTH}
          value={text}
          aria-invalid={error ? "true" : undefined}
          onInput={(event) => {
            setText(event.currentTarget.value);
            setError(undefined);
          }}
        />
        <button type="submit" class="small-button" disabled={busy}>Save</button>
        <button type="button" class="small-button" onClick={() => setEditing(false)}>
          Cancel
        </button>
        {error && <p class="room-header-error" role="alert">{error}</p>}
      </form>
    );
  }
  return (
    <>
      {topic && <p class="room-topic">{topic}</p>}
      {editable && (
        <button
          type="button"
          class="small-button topic-edit"
          onClick={() => {
            setText(topic);
            setEditing(true);
          }}
        >
          {topic ? "Edit topic" : "Set topic"}
        </button>
      )}
    </>
  );
}
