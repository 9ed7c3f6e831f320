/** The words of room events, which the terminal and the page share (client/core/room_events.ts). */

import assert from "node:assert/strict";
import { clockTime, describeRoomEvent } from "../client/core/room_events.ts";
import type { RoomEvent } from "../client/core/model.ts";

const ann = { id: "ann", displayName: "Ann" };
const ben = { id: "ben", displayName: "Ben" };
const at = new Date(2026, 10, 30, 13, 0);
const base: RoomEvent = { room: "club", user: ben, joined: true, at };

Deno.test("room events in words: joins and leaves, and every moderation action", () => {
  const words = (event: Partial<RoomEvent>, me = "carl") =>
    describeRoomEvent({ ...base, ...event }, me, at);
  assert.equal(words({ joined: false }), "Ben left");
  assert.equal(words({}, "ben"), "You joined");
  assert.equal(words({ created: true }), "Ben created the room");
  assert.equal(
    words({ action: "role", actor: ann, detail: "moderator" }),
    "Ann made Ben a moderator",
  );
  assert.equal(
    words({ action: "role", actor: ann, detail: "member" }),
    "Ann made Ben a member again",
  );
  assert.equal(
    words({ action: "muted", actor: ann, until: new Date(2026, 10, 30, 14, 5) }),
    "Ann muted Ben until 14:05",
  );
  assert.equal(
    words({ action: "muted", actor: ann, until: new Date(2026, 11, 3, 9, 30) }, "ben"),
    "Ann muted you until 2026-12-03 09:30",
  );
  assert.equal(words({ action: "unmuted", actor: ann }), "Ann unmuted Ben");
  assert.equal(words({ action: "removed", actor: ann, joined: false }, "ann"), "You removed Ben");
  assert.equal(
    words({ action: "topic", actor: ben, detail: "Books" }),
    "Ben set the topic to “Books”",
  );
  assert.equal(words({ action: "topic", actor: ben, detail: "" }), "Ben took the topic away");
  assert.equal(clockTime(new Date(2026, 0, 1, 7, 5), new Date(2026, 0, 1, 23)), "07:05");
});
