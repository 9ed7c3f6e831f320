/**
 * SetRoomAccess, Invite and the listing of invitations under attack, through a real gateway over
 * gRPC: hostile room names and user ids (megabytes, NUL, control and bidirectional characters),
 * rooms and users that do not exist, other people's rooms, no token, garbage bytes, both listings
 * at once, a flood of invitations, and an outsider who tries every way into an invite-only room.
 * Each gets its clear status; bob and carol keep chatting meanwhile.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  assertStatus,
  attacker,
  encodeRequest,
  OWN_CONNECTION,
  rawCall,
  status,
  statusOf,
  tokenOf,
  underAttack,
  withAttackSystem,
} from "./attack_support.ts";
import { newClient } from "./helpers.ts";

/** Hostile names, each as room and as user id, with the refusal's start and the name's field. */
const HOSTILE: [string, string, RegExp][] = [
  ["a megabyte", "r".repeat(1 << 20), /is 1048576 characters, the limit is \d+$/],
  ["NUL", "plans\u0000x", /holds a NUL character \(U\+0000\)/],
  ["escape", "\x1b[31mred", /holds a control character \(U\+001B\)/],
  ["right-to-left override", "\u202eplans", /holds a bidirectional control character \(U\+202E\)/],
];

Deno.test("AUTH=on: hostile SetRoomAccess and Invite fields get INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED or UNAUTHENTICATED", async () => {
  await withAttackSystem({ auth: "on" }, async ({ system, b, published }) => {
    const mallory = await attacker(system, "mallory", "on");
    const owner = await attacker(system, "olga", "on");
    await owner.createRoom("plans");
    await owner.setRoomAccess("plans", true);
    await mallory.createRoom("lair");
    await underAttack(b, "hostile access and invitation fields", async () => {
      for (const [what, name, details] of HOSTILE) {
        assertStatus(
          await statusOf(mallory.setRoomAccess(name, true)),
          status.INVALID_ARGUMENT,
          new RegExp(`^Cannot set room access: the room name ${details.source}`),
          `room: ${what}`,
        );
        assertStatus(
          await statusOf(mallory.invite(name, "bob")),
          status.INVALID_ARGUMENT,
          new RegExp(`^Cannot invite: the room name ${details.source}`),
          `invite room: ${what}`,
        );
        assertStatus(
          await statusOf(mallory.invite("lair", name)),
          status.INVALID_ARGUMENT,
          new RegExp(`^Cannot invite: the user id ${details.source}`),
          `invitee: ${what}`,
        );
      }
      const cases: [string, () => Promise<unknown>, number, RegExp][] = [
        [
          "closing someone else's room",
          () => mallory.setRoomAccess("plans", false),
          status.PERMISSION_DENIED,
          /^Cannot set room access: mallory is not a member of room "plans"; only its owner \(olga\) and moderators may$/,
        ],
        [
          "inviting oneself into someone else's room",
          () => mallory.invite("plans", "mallory"),
          status.PERMISSION_DENIED,
          /^Cannot invite: mallory is not a member of room "plans"; only its owner \(olga\) and moderators may$/,
        ],
        [
          "an empty user id",
          () => mallory.invite("lair", "  "),
          status.INVALID_ARGUMENT,
          /^Cannot invite: the user id is empty/,
        ],
        [
          "a user nobody signed up",
          () => mallory.invite("lair", "ghost"),
          status.NOT_FOUND,
          /^Cannot invite: there is no user "ghost"$/,
        ],
        [
          "a room nobody made",
          () => mallory.invite("nowhere", "bob"),
          status.NOT_FOUND,
          /^Cannot invite: room "nowhere" does not exist$/,
        ],
        [
          "someone else's direct room",
          () => mallory.setRoomAccess("dm:bob:carol", true),
          status.FAILED_PRECONDITION,
          /^Cannot set room access: "dm:bob:carol" is a direct room/,
        ],
        [
          "general",
          () => mallory.invite("general", "bob"),
          status.FAILED_PRECONDITION,
          /^Cannot invite: "general" is the default room/,
        ],
        // Every way into the invite-only room stays shut.
        [
          "joining it",
          () => mallory.joinRoom("PLANS"),
          status.PERMISSION_DENIED,
          /^Cannot join room plans: it is invite-only and you have no invitation/,
        ],
        [
          "sending to it",
          () => mallory.send("", "let me in", { room: "plans" }),
          status.PERMISSION_DENIED,
          /mallory is not a member of room "plans"/,
        ],
        [
          "reading it",
          () => mallory.history("plans"),
          status.PERMISSION_DENIED,
          /mallory is not a member of room "plans"/,
        ],
        [
          "leaving it, as if declining an invitation",
          () => mallory.leaveRoom("plans"),
          status.PERMISSION_DENIED,
          /mallory is not a member of room "plans"/,
        ],
        [
          "a limit over the most",
          () => mallory.listInvitations(1_000_000),
          status.INVALID_ARGUMENT,
          /^Cannot list invitations: limit is 1000000, the most is 200$/,
        ],
      ];
      for (const [what, call, code, details] of cases) {
        assertStatus(await statusOf(call()), code, details, what);
      }
    });
    assert.deepEqual(
      (await mallory.listRooms(true, "plans")).map((r) => r.id),
      [],
      "not in the directory",
    );
    assert.deepEqual(await mallory.search("plans"), [], "nor found by search");
    assert.deepEqual(await mallory.listInvitations(), []);

    const anonymous = newClient(system.address());
    for (
      const [what, call] of [
        ["access", () => anonymous.setRoomAccess("plans", false)],
        ["invite", () => anonymous.invite("plans", "mallory")],
        ["invitations", () => anonymous.listInvitations()],
      ] as const
    ) {
      assertStatus(await statusOf(call()), status.UNAUTHENTICATED, /^Cannot /, `no token: ${what}`);
    }
    const raw = new grpc.Client(
      system.address(),
      grpc.credentials.createInsecure(),
      OWN_CONNECTION,
    );
    for (
      const [method, type] of [["SetRoomAccess", "AccessRequest"], ["Invite", "InviteRequest"]]
    ) {
      assertStatus(
        await rawCall(raw, method!, new Uint8Array([0x0a, 0xff]), tokenOf(mallory)),
        status.INVALID_ARGUMENT,
        new RegExp(`^Cannot read request: the message is not a valid chat\\.${type}`),
        `garbage bytes: ${method}`,
      );
    }
    assertStatus(
      await rawCall(
        raw,
        "ListRooms",
        encodeRequest("ListRooms", { all: true, invitations: true }),
        tokenOf(mallory),
      ),
      status.INVALID_ARGUMENT,
      /^Cannot list invitations: all and invitations are two listings; ask for one$/,
      "both listings at once",
    );
    raw.close();
    assert.deepEqual(
      published.chatting.filter((m) => m.userId === "mallory"),
      [],
      "nothing appended to a room's log",
    );
  });
});

Deno.test("a flood of invitations costs its sender RESOURCE_EXHAUSTED at the sending rate", async () => {
  await withAttackSystem(
    { auth: "on", rateLimitPerSecond: 0.001, rateLimitBurst: 5 },
    async ({ system, b }) => {
      const mallory = await attacker(system, "mallory", "on");
      await mallory.createRoom("lair");
      const answers = await underAttack(
        b,
        "invitation flood",
        () =>
          Promise.all(Array.from({ length: 20 }, () => statusOf(mallory.invite("lair", "bob")))),
      );
      const refusals = answers.filter((a) => a.code !== status.OK);
      assert.equal(answers.length - refusals.length, 5, "the burst goes through");
      for (const a of refusals) {
        assertStatus(a, status.RESOURCE_EXHAUSTED, /^Cannot invite: the rate limit is 0\.001 /);
      }
      assert.equal(await system.store.invitationCount("lair"), 1, "one invitation, however many");
    },
  );
});
