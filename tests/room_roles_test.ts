/**
 * RoomRoles.managedRoom, the one check of "the group room this caller manages" that SetTopic,
 * SetRoomAccess, Invite, SetRole, RemoveMember and MuteMember go through: each refusal and who
 * gets through, on a memory store.
 */

import assert from "node:assert/strict";
import { ChatError, type ErrorCode } from "../core/errors.ts";
import { MemoryStore } from "../store/memory_store.ts";
import { RoomRoles } from "../server/room_roles.ts";

const action = "Cannot do it";

async function setUp(): Promise<RoomRoles> {
  const store = new MemoryStore();
  const createdAt = new Date(0).toISOString();
  await store.createRoom({ id: "Club", direct: false, createdBy: "ann", createdAt });
  for (const userId of ["ann", "ben", "cat"]) await store.addMember("Club", userId);
  await store.setRole("Club", "ben", "moderator");
  await store.createRoom({ id: "dm:ann:ben", direct: true, createdBy: "ann", createdAt });
  await store.createRoom({ id: "Left", direct: false, createdBy: "ann", createdAt });
  return new RoomRoles({ store, config: { maxRoomNameLength: 64 }, now: Date.now });
}

function refusedWith(code: ErrorCode, message: string) {
  return (err: unknown) => {
    assert.ok(err instanceof ChatError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.message, `${action}: ${message}`);
    return true;
  };
}

Deno.test("managedRoom: the owner and moderators get the room, its moderators and their role", async () => {
  const roles = await setUp();
  const owned = await roles.managedRoom(action, " club ", "ann", "owner");
  assert.equal(owned.room.id, "Club", "any case, trimmed; the stored spelling");
  assert.deepEqual(owned.moderators, ["ben"]);
  assert.equal(owned.role, "owner");
  assert.equal((await roles.managedRoom(action, "Club", "ann", "moderator")).role, "owner");
  const moderated = await roles.managedRoom(action, "CLUB", "ben", "moderator");
  assert.equal(moderated.room.id, "Club");
  assert.equal(moderated.role, "moderator");
});

Deno.test("managedRoom: refusals say the action, the state and who may", async () => {
  const roles = await setUp();
  const cases: [string, () => Promise<unknown>, ErrorCode, string][] = [
    [
      "a bad name",
      () => roles.managedRoom(action, "  ", "ann", "moderator"),
      "invalid_argument",
      "the room name is empty",
    ],
    [
      "general",
      () => roles.managedRoom(action, "General", "ann", "moderator"),
      "failed_precondition",
      '"General" is the default room; only group rooms have owners and moderators',
    ],
    [
      "a direct room, by its name, stored or not",
      () => roles.managedRoom(action, "dm:ann:cat", "ann", "moderator"),
      "failed_precondition",
      '"dm:ann:cat" is a direct room; only group rooms have owners and moderators',
    ],
    [
      "a name with the direct prefix that no direct room has",
      () => roles.managedRoom(action, "dm:", "ann", "moderator"),
      "not_found",
      'room "dm:" does not exist',
    ],
    [
      "no such room",
      () => roles.managedRoom(action, "nowhere", "ann", "moderator"),
      "not_found",
      'room "nowhere" does not exist',
    ],
    [
      "a member",
      () => roles.managedRoom(action, "club", "cat", "moderator"),
      "permission_denied",
      'cat is a member of room "Club"; only its owner (ann) and moderators may',
    ],
    [
      "a moderator, where only the owner may",
      () => roles.managedRoom(action, "club", "ben", "owner"),
      "permission_denied",
      'ben is a moderator of room "Club"; only its owner (ann) may',
    ],
    [
      "a member, where only the owner may",
      () => roles.managedRoom(action, "club", "cat", "owner"),
      "permission_denied",
      'cat is a member of room "Club"; only its owner (ann) may',
    ],
    [
      "somebody not in it",
      () => roles.managedRoom(action, "club", "dan", "moderator"),
      "permission_denied",
      'dan is not a member of room "Club"; only its owner (ann) and moderators may',
    ],
    [
      "its owner, who left it",
      () => roles.managedRoom(action, "left", "ann", "owner"),
      "permission_denied",
      'ann is the owner of room "Left" but left it; join it again first',
    ],
  ];
  for (const [what, call, code, message] of cases) {
    await assert.rejects(call(), refusedWith(code, message), what);
  }
});
