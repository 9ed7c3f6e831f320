/**
 * Room roles, removing and muting members, and the room events that are kept, through real gRPC
 * on two gateways (AUTH=on): what an owner, a moderator and a member may do, what every member's
 * stream is told, what history carries after signing in again, and every refusal.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Message } from "../protocol/gen/chat_pb.ts";
import { refused, signedInUser, startSystem, type TestUser, waitFor } from "./helpers.ts";

/** The room events `user` received live, as "action user by actor detail". */
function eventsAt(user: TestUser, room: string): string[] {
  return user.received.filter((m) => m.roomEvent?.room === room).map(describe);
}

function describe(m: Message): string {
  const e = m.roomEvent!;
  const what = e.action || (e.created ? "created" : e.joined ? "joined" : "left");
  return [what, e.user?.id, e.actor ? `by ${e.actor.id}` : "", e.detail].filter(Boolean).join(" ");
}

Deno.test("moderation: roles, removing and muting cross gateways, are kept, and are refused to others", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  const ann = await signedInUser(system, "ann", { gateway: 0 });
  const ben = await signedInUser(system, "ben", { gateway: 1 });
  const cat = await signedInUser(system, "cat", { gateway: 1 });
  const dan = await signedInUser(system, "dan", { gateway: 0 });
  const classic = await signedInUser(system, "eve", { gateway: 1, presenceEvents: false });
  try {
    await ann.client.createRoom("club");
    for (const u of [ben, cat, dan, classic]) await u.client.joinRoom("club");
    await ann.client.send("", "welcome", { room: "club" });
    await waitFor(() => cat.contents().includes("welcome"), 5000, "cat reads the welcome");

    // Only the owner makes moderators; the room's views say who is what.
    const made = await ann.client.setRole("club", "BEN", "moderator");
    assert.deepEqual([made.role, made.moderators], ["owner", ["ben"]]);
    await assert.rejects(
      ben.client.setRole("club", "cat", "moderator"),
      refused(
        status.PERMISSION_DENIED,
        /ben is a moderator of room "club"; only its owner \(ann\) may/,
      ),
    );
    const [benClub] = (await ben.client.listRooms()).filter((r) => r.id === "club");
    assert.equal(benClub?.role, "moderator");
    const [catClub] = (await cat.client.listRooms()).filter((r) => r.id === "club");
    assert.deepEqual([catClub?.role, catClub?.moderators], ["member", ["ben"]]);
    await waitFor(
      () => eventsAt(cat, "club").includes("role ben by ann moderator"),
      5000,
      "cat (other gateway) hears ben became a moderator",
    );

    // A moderator mutes a member: every send, edit, reaction and typing of theirs is refused.
    await ben.client.muteMember("club", "cat", 600);
    const muted = /cat is muted in room "club" until \d{4}-\d\d-\d\dT/;
    await assert.rejects(
      cat.client.send("", "let me speak", { room: "club" }),
      refused(status.PERMISSION_DENIED, muted),
    );
    await assert.rejects(
      cat.client.react("club", 1, "👍"),
      refused(status.PERMISSION_DENIED, muted),
    );
    await assert.rejects(
      cat.client.setTyping("club", true),
      refused(status.PERMISSION_DENIED, muted),
    );
    await cat.client.setTyping("club", false);
    await cat.client.send("", "still fine in general");
    const [mutedView] = (await cat.client.listRooms()).filter((r) => r.id === "club");
    assert.ok(mutedView?.mutedUntil, "the muted member sees until when");
    const until = timestampMs(mutedView.mutedUntil);
    assert.ok(until > Date.now() + 590_000 && until <= Date.now() + 600_000, String(until));
    await waitFor(
      () => eventsAt(ann, "club").includes("muted cat by ben"),
      5000,
      "ann hears of it",
    );
    const mutedEvent = ann.received.find((m) => m.roomEvent?.action === "muted")!.roomEvent!;
    assert.equal(timestampMs(mutedEvent.until!), until);
    assert.ok(mutedEvent.at, "the event says when");
    // Muted on both gateways, whichever the member calls.
    assert.equal(await system.store.mutedUntil("club", "cat"), new Date(until).toISOString());

    // Unmuted, cat speaks again.
    await ann.client.muteMember("club", "cat", 0);
    await cat.client.send("", "thank you", { room: "club" });
    await waitFor(() => eventsAt(dan, "club").includes("unmuted cat by ann"), 5000, "unmuted");

    // A moderator removes a member: their streams stop getting the room at once, on the
    // other gateway too, and they get the "removed" event; they may join again.
    await ben.client.removeMember("club", "dan");
    await waitFor(() => eventsAt(dan, "club").includes("removed dan by ben"), 5000, "dan is told");
    await waitFor(() => eventsAt(cat, "club").includes("removed dan by ben"), 5000, "cat too");
    await ann.client.send("", "after dan", { room: "club" });
    await waitFor(() => cat.contents().includes("after dan"), 5000, "cat reads on");
    assert.ok(!dan.contents().includes("after dan"), "dan no longer reads the room");
    await assert.rejects(
      dan.client.send("", "am I here?", { room: "club" }),
      refused(status.PERMISSION_DENIED, /dan is not a member of room "club"/),
    );
    assert.ok(!(await system.store.members("club")).includes("dan"));

    // Classic streams get nothing new.
    assert.deepEqual(eventsAt(classic, "club"), []);

    // Refusals: who may act on whom.
    await assert.rejects(
      cat.client.removeMember("club", "eve"),
      refused(
        status.PERMISSION_DENIED,
        /cat is a member of room "club"; only its owner \(ann\) and moderators may$/,
      ),
    );
    await assert.rejects(
      ben.client.removeMember("club", "ann"),
      refused(
        status.PERMISSION_DENIED,
        /ann is the owner of room "club"; nobody acts on the owner/,
      ),
    );
    await ann.client.setRole("club", "cat", "moderator");
    await assert.rejects(
      ben.client.muteMember("club", "cat", 60),
      refused(
        status.PERMISSION_DENIED,
        /cat is the moderator of room "club"; only the owner acts on a moderator/,
      ),
    );
    await assert.rejects(
      ben.client.removeMember("club", "ben"),
      refused(
        status.FAILED_PRECONDITION,
        /that is yourself; leave the room with LeaveRoom instead/,
      ),
    );
    await assert.rejects(
      ben.client.removeMember("club", "dan"),
      refused(status.FAILED_PRECONDITION, /dan is not a member of room "club"/),
    );
    await assert.rejects(
      ann.client.setRole("General", "ben", "moderator"),
      refused(
        status.FAILED_PRECONDITION,
        /"General" is the default room; only group rooms have owners and moderators$/,
      ),
    );
    await ann.client.openDirect("ben");
    await assert.rejects(
      ann.client.removeMember("dm:ann:ben", "ben"),
      refused(
        status.FAILED_PRECONDITION,
        /"dm:ann:ben" is a direct room; only group rooms have owners and moderators$/,
      ),
    );
    await assert.rejects(
      ann.client.removeMember("no-such-room", "ben"),
      refused(status.NOT_FOUND, /room "no-such-room" does not exist/),
    );
    await assert.rejects(
      dan.client.muteMember("club", "eve", 60),
      refused(status.PERMISSION_DENIED, /dan is not a member of room "club"/),
    );

    // The owner takes a moderator's role back: the moderator may no longer delete others' messages.
    await ann.client.setRole("club", "ben", "member");
    await assert.rejects(
      ben.client.deleteMessage("club", 1),
      refused(status.PERMISSION_DENIED, /only its sender or the room's owner and moderators/),
    );
    // A moderator deletes any message, and sets the topic, which every member hears of.
    await cat.client.deleteMessage("club", 1);
    await cat.client.setTopic("club", "Moderated now");
    await waitFor(
      () => eventsAt(ann, "club").includes("topic cat by cat Moderated now"),
      5000,
      "the topic change is a live event",
    );

    // Removed members may join again (the room is not invite-only); a mute outlives that.
    await ann.client.muteMember("club", "eve", 60);
    await ann.client.removeMember("club", "eve");
    await classic.client.joinRoom("club");
    await assert.rejects(
      classic.client.send("", "back", { room: "club" }),
      refused(status.PERMISSION_DENIED, /eve is muted/),
    );

    // History keeps every event, so a client shows them after signing in again.
    const page = await ann.client.history("club");
    assert.deepEqual(page.events.map(describe), [
      "created ann",
      "joined ben",
      "joined cat",
      "joined dan",
      "joined eve",
      "role ben by ann moderator",
      "muted cat by ben",
      "unmuted cat by ann",
      "removed dan by ben",
      "role cat by ann moderator",
      "role ben by ann member",
      "topic cat by cat Moderated now",
      "muted eve by ann",
      "removed eve by ann",
      "joined eve",
    ]);
    assert.ok(page.events.every((m) => m.roomEvent?.at && m.timestamp), "each says when");
  } finally {
    for (const u of [ann, ben, cat, dan, classic]) u.close();
    await system.stop();
  }
});

Deno.test("moderation: history pages carry the events of their span only", async () => {
  const system = await startSystem({ gateways: 1, config: { auth: "on" } });
  const ann = await signedInUser(system, "ann");
  const ben = await signedInUser(system, "ben");
  try {
    await ann.client.createRoom("paged");
    await ann.client.send("", "one", { room: "paged" });
    await ann.client.send("", "two", { room: "paged" });
    await waitFor(async () => (await system.store.lastSeq("paged")) === 2, 5000, "two stored");
    await ben.client.joinRoom("paged");
    await ann.client.send("", "three", { room: "paged" });
    await waitFor(async () => (await system.store.lastSeq("paged")) === 3, 5000, "three stored");
    await ben.client.leaveRoom("paged");

    const newest = await ann.client.history("paged", 0, 1);
    assert.deepEqual(newest.messages.map((m) => m.content), ["three"]);
    assert.deepEqual(newest.events.map(describe), ["left ben"], "after two, up to now");
    const middle = await ann.client.history("paged", 3, 1);
    assert.deepEqual(middle.messages.map((m) => m.content), ["two"]);
    assert.deepEqual(middle.events.map(describe), ["joined ben"], "between two and three");
    const oldest = await ann.client.history("paged", 2, 5);
    assert.deepEqual(oldest.messages.map((m) => m.content), ["one"]);
    assert.deepEqual(oldest.events.map(describe), ["created ann"], "from the start");
  } finally {
    for (const u of [ann, ben]) u.close();
    await system.stop();
  }
});

Deno.test("moderation: hostile rooms, user ids, roles and seconds are refused with words", async () => {
  const system = await startSystem({ gateways: 1, config: { auth: "on" } });
  const ann = await signedInUser(system, "ann");
  const ben = await signedInUser(system, "ben");
  try {
    await ann.client.createRoom("safe");
    await ben.client.joinRoom("safe");
    for (const role of ["owner", "admin", "", "Moderator", "moderator\0", "x".repeat(10_000)]) {
      await assert.rejects(
        ann.client.setRole("safe", "ben", role),
        refused(
          status.INVALID_ARGUMENT,
          /Cannot set role: role is ".{0,40}"; it must be "moderator" or "member"/s,
        ),
        JSON.stringify(role.slice(0, 20)),
      );
    }
    for (const seconds of [604_801, 2 ** 32 - 1]) {
      await assert.rejects(
        ann.client.muteMember("safe", "ben", seconds),
        refused(
          status.INVALID_ARGUMENT,
          /Cannot mute member: seconds is \d+; a mute lasts 1 to 604800 seconds/,
        ),
      );
    }
    for (const userId of ["", "   ", "a\0b", "x".repeat(1000), "ben\u202e"]) {
      await assert.rejects(
        ann.client.removeMember("safe", userId),
        refused(status.INVALID_ARGUMENT, /Cannot remove member: the user id/),
        JSON.stringify(userId.slice(0, 20)),
      );
    }
    await assert.rejects(
      ann.client.removeMember("safe", "../ben"),
      refused(status.FAILED_PRECONDITION, /\.\.\/ben is not a member of room "safe"/),
    );
    for (const room of ["", "a\0b", "x".repeat(1000), "bad room!", "dm:"]) {
      await assert.rejects(
        ann.client.muteMember(room, "ben", 60),
        (err: { code: number; details: string }) =>
          [status.INVALID_ARGUMENT, status.NOT_FOUND].includes(err.code) &&
          /^Cannot mute member: /.test(err.details),
        JSON.stringify(room.slice(0, 20)),
      );
    }
    assert.deepEqual(await system.store.moderators("safe"), []);
    assert.equal(await system.store.mutedUntil("safe", "ben"), undefined);
    assert.ok((await system.store.members("safe")).includes("ben"), "nothing was done");
  } finally {
    for (const u of [ann, ben]) u.close();
    await system.stop();
  }
});

Deno.test("moderation meets blocking and invitations: a muted moderator sets no topic, a blocker gets no invitation, a removed moderator is none", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const ann = await signedInUser(system, "ann");
  const ben = await signedInUser(system, "ben");
  const cat = await signedInUser(system, "cat");
  try {
    await ann.client.createRoom("club");
    for (const u of [ben, cat]) await u.client.joinRoom("club");
    await ann.client.setRole("club", "ben", "moderator");
    await ann.client.muteMember("club", "ben", 600);
    // A topic is told to every member: muted, a moderator may not say it that way either.
    await assert.rejects(
      ben.client.setTopic("club", "buy my stuff"),
      refused(status.PERMISSION_DENIED, /Cannot set topic: ben is muted in room "club" until /),
    );
    assert.equal((await system.store.getRoom("club"))?.topic ?? "", "");

    // Cat blocked ann: ann's invitation is answered as done, and cat hears nothing of it.
    await cat.client.block("ann", true);
    await ann.client.createRoom("plans");
    await ann.client.invite("plans", "cat");
    assert.deepEqual(await cat.client.listInvitations(), [], "no invitation from a blocked user");
    assert.equal(
      cat.received.some((m) => m.roomEvent?.action === "invited"),
      false,
      "no live invitation either",
    );

    // A moderator removed is a member at once, before the removal: no moderator's way back.
    await ann.client.muteMember("club", "ben", 0);
    await ann.client.removeMember("club", "ben");
    assert.deepEqual(await system.store.moderators("club"), []);
  } finally {
    await system.stop();
  }
});
