/**
 * Invite-only rooms and invitations through real gRPC (memory mode, AUTH=on, two gateways): the
 * owner closes a room and invites people, the invitee hears of it live on another gateway, lists
 * and joins it (the invitation is used up) or declines it, outsiders are refused and never see
 * the room in the directory, and the owner alone may do any of it.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { MAX_PENDING_INVITATIONS } from "../server/chat_invitations.ts";
import { refused, signedInUser, startSystem, waitFor } from "./helpers.ts";

Deno.test("invitations: an invite-only room takes invitees only, across gateways", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  const ann = await signedInUser(system, "ann", { gateway: 0 });
  const ben = await signedInUser(system, "ben", { gateway: 1 });
  const cat = await signedInUser(system, "cat", { gateway: 1 });
  const dan = await signedInUser(system, "dan", { gateway: 0 });
  try {
    await ann.client.createRoom("Plans");
    await dan.client.joinRoom("plans");
    const closed = await ann.client.setRoomAccess("plans", true);
    assert.equal(closed.id, "Plans");
    assert.equal(closed.inviteOnly, true);
    assert.equal(closed.invited, false);
    // The members hear of it, on both gateways; nobody else does.
    const accessEvent = (m: (typeof ann.received)[number]) =>
      m.roomEvent?.action === "invite-only" && m.roomEvent.room === "Plans";
    await waitFor(() => ann.received.some(accessEvent) && dan.received.some(accessEvent));
    const seen = dan.received.find(accessEvent)!;
    assert.equal(seen.roomEvent?.actor?.id, "ann");
    assert.equal(seen.roomEvent?.joined, false);
    assert.ok(seen.roomEvent?.at, "stamped");
    assert.equal(seen.content, "");

    // Outsiders: no join, and the room is not in the directory.
    await assert.rejects(
      cat.client.joinRoom("plans"),
      refused(
        status.PERMISSION_DENIED,
        /^Cannot join room Plans: it is invite-only and you have no invitation/,
      ),
    );
    const directory = async (who: typeof ann, query = "") =>
      (await who.client.listRooms(true, query)).map((r) => r.id);
    assert.deepEqual(await directory(cat), ["general"]);
    assert.deepEqual(await directory(cat, "plan"), []);
    assert.deepEqual(await directory(dan, "plan"), ["Plans"], "members still see it");
    assert.equal((await dan.client.listRooms(true, "plan"))[0]?.inviteOnly, true);
    assert.equal((await dan.client.listRooms()).find((r) => r.id === "Plans")?.inviteOnly, true);
    assert.equal(ben.received.some(accessEvent), false, "not told outsiders");

    // The invitation: live on ben's gateway, in his list, used up by joining.
    await ann.client.invite("plans", "BEN");
    const invited = (m: (typeof ann.received)[number]) =>
      m.roomEvent?.action === "invited" && m.roomEvent.user?.id === "ben";
    await waitFor(() => ben.received.some(invited) && dan.received.some(invited));
    const note = ben.received.find(invited)!;
    assert.equal(note.roomEvent?.actor?.id, "ann");
    assert.equal(note.roomEvent?.room, "Plans");
    assert.equal(cat.received.some(invited), false, "not told outsiders");
    const list = await ben.client.listInvitations();
    assert.deepEqual(
      list.map((r) => [r.id, r.invited, r.inviteOnly, r.owner, r.memberCount, r.readSeq]),
      [["Plans", true, true, "ann", 2, 0n]],
    );
    assert.deepEqual(await cat.client.listInvitations(), []);
    assert.deepEqual(await directory(ben, "plan"), [], "an invitee finds it in invitations");
    // Again: nothing new is stored, the invitee is told again (a retry is safe).
    const told = ben.received.filter(invited).length;
    await ann.client.invite("plans", "ben");
    await waitFor(() => ben.received.filter(invited).length === told + 1);
    assert.equal((await ben.client.listInvitations()).length, 1);

    const joined = await ben.client.joinRoom("plans");
    assert.equal(joined.invited, false);
    assert.deepEqual(joined.members, ["ann", "ben", "dan"]);
    assert.deepEqual(await ben.client.listInvitations(), [], "used up");
    await ann.client.send("", "welcome ben", { room: "Plans" });
    await waitFor(() => ben.contents().includes("welcome ben"));
    // Leaving and coming back takes a new invitation.
    await ben.client.leaveRoom("plans");
    await assert.rejects(
      ben.client.joinRoom("plans"),
      refused(status.PERMISSION_DENIED, /invite-only/),
    );

    // Declining: LeaveRoom drops the invitation.
    await ann.client.invite("plans", "cat");
    assert.equal((await cat.client.listInvitations()).length, 1);
    await cat.client.leaveRoom("plans");
    assert.deepEqual(await cat.client.listInvitations(), []);
    await assert.rejects(
      cat.client.joinRoom("plans"),
      refused(status.PERMISSION_DENIED, /invite-only/),
    );
    await assert.rejects(
      cat.client.leaveRoom("plans"),
      refused(status.PERMISSION_DENIED, /cat is not a member of room "Plans"/),
      "nothing left to decline",
    );

    // Its owner may always come back.
    await ann.client.leaveRoom("plans");
    await ann.client.joinRoom("plans");

    // Open again: anyone joins, the directory lists it; members hear of it.
    const opened = await ann.client.setRoomAccess("PLANS", false);
    assert.equal(opened.inviteOnly, false);
    await waitFor(() => dan.received.some((m) => m.roomEvent?.action === "open"));
    assert.deepEqual(await directory(cat, "plan"), ["Plans"]);
    await cat.client.joinRoom("plans");
    // Setting what it is already is no change and no event.
    const events = dan.received.filter((m) => m.roomEvent?.action).length;
    await ann.client.setRoomAccess("plans", false);
    // An invitation to an open room is in the list too, and joining uses it up.
    await ann.client.createRoom("picnic");
    await ann.client.invite("picnic", "ben");
    assert.deepEqual((await ben.client.listInvitations()).map((r) => [r.id, r.inviteOnly]), [
      ["picnic", false],
    ]);
    await ben.client.joinRoom("picnic");
    assert.deepEqual(await ben.client.listInvitations(), []);
    assert.equal(dan.received.filter((m) => m.roomEvent?.action).length, events);
  } finally {
    for (const u of [ann, ben, cat, dan]) u.close();
    await system.stop();
  }
});

Deno.test("invitations: only the owner; group rooms only; existing users; members refused", async () => {
  const system = await startSystem({ gateways: 1, config: { auth: "on" } });
  const ann = await signedInUser(system, "ann");
  const ben = await signedInUser(system, "ben");
  try {
    await ann.client.createRoom("plans");
    await ben.client.joinRoom("plans");
    await ann.client.openDirect("ben");
    const cases: [string, () => Promise<unknown>, number, RegExp][] = [
      [
        "a member who is not the owner closes it",
        () => ben.client.setRoomAccess("plans", true),
        status.PERMISSION_DENIED,
        /^Cannot set room access: ben is a member of room "plans"; only its owner \(ann\) and moderators may$/,
      ],
      [
        "a member who is not the owner invites",
        () => ben.client.invite("plans", "ann"),
        status.PERMISSION_DENIED,
        /^Cannot invite: ben is a member of room "plans"; only its owner \(ann\) and moderators may$/,
      ],
      [
        "general",
        () => ann.client.setRoomAccess("General", true),
        status.FAILED_PRECONDITION,
        /^Cannot set room access: "General" is the default room; only group rooms have owners and moderators$/,
      ],
      [
        "a direct room",
        () => ann.client.invite("dm:ann:ben", "cat"),
        status.FAILED_PRECONDITION,
        /^Cannot invite: "dm:ann:ben" is a direct room; only group rooms have owners and moderators$/,
      ],
      [
        "no such room",
        () => ann.client.setRoomAccess("nowhere", true),
        status.NOT_FOUND,
        /^Cannot set room access: room "nowhere" does not exist$/,
      ],
      [
        "no such user",
        () => ann.client.invite("plans", "nobody"),
        status.NOT_FOUND,
        /^Cannot invite: there is no user "nobody"$/,
      ],
      [
        "a member",
        () => ann.client.invite("plans", "Ben"),
        status.ALREADY_EXISTS,
        /^Cannot invite: ben is already a member of room "plans"$/,
      ],
      [
        "a limit over the most",
        () => ben.client.listInvitations(201),
        status.INVALID_ARGUMENT,
        /^Cannot list invitations: limit is 201, the most is 200$/,
      ],
    ];
    for (const [what, call, code, pattern] of cases) {
      await assert.rejects(call(), refused(code, pattern), what);
    }
  } finally {
    for (const u of [ann, ben]) u.close();
    await system.stop();
  }
});

Deno.test("invitations: at most MAX_PENDING_INVITATIONS pending per room", async () => {
  const system = await startSystem({
    gateways: 1,
    config: { auth: "on", rateLimitPerSecond: 1_000_000, rateLimitBurst: 1_000_000 },
  });
  const ann = await signedInUser(system, "ann");
  try {
    await ann.client.createRoom("crowd");
    const at = new Date().toISOString();
    for (let i = 0; i < MAX_PENDING_INVITATIONS; i++) {
      await system.store.invite({
        roomId: "crowd",
        userId: `u${i}`,
        invitedBy: "ann",
        invitedAt: at,
      });
    }
    await ann.client.signIn("zoe", "correct horse battery").then(() =>
      ann.client.signIn("ann", "correct horse battery")
    );
    await assert.rejects(
      ann.client.invite("crowd", "zoe"),
      refused(
        status.RESOURCE_EXHAUSTED,
        new RegExp(
          `^Cannot invite: room "crowd" has ${MAX_PENDING_INVITATIONS} pending invitations, the limit is ${MAX_PENDING_INVITATIONS}`,
        ),
      ),
    );
    await system.store.uninvite("crowd", "u0");
    await ann.client.invite("crowd", "zoe");
    assert.equal(await system.store.invitationCount("crowd"), MAX_PENDING_INVITATIONS);
  } finally {
    ann.close();
    await system.stop();
  }
});
