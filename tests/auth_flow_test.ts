/** Sign-in and identity through real gRPC: tokens, impersonation, classic mode, and limits. */

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { UserSchema } from "../protocol/gen/chat_pb.ts";
import { status } from "@grpc/grpc-js";
import { connectUser, newClient, refused, startSystem, waitFor } from "./helpers.ts";

Deno.test("AUTH=on: the first sign-in creates the account; calls need the token", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const client = newClient(system.address());
  try {
    await assert.rejects(
      client.send("ann", "hi"),
      refused(
        status.UNAUTHENTICATED,
        /sign in first and send the token as `authorization: Bearer <token>`/,
      ),
    );
    const first = await client.signIn("ann", "a long password", "Ann A.");
    assert.equal(first.created, true);
    assert.deepEqual(first.user, create(UserSchema, { id: "ann", displayName: "Ann A." }));
    assert.ok(first.expiresAt && Date.parse(first.expiresAt) > Date.now());
    const again = await newClient(system.address()).signIn("ann", "a long password");
    assert.equal(again.created, false);
    await assert.rejects(
      newClient(system.address()).signIn("ann", "wrong password"),
      refused(status.UNAUTHENTICATED, /wrong password for ann/),
    );
    await client.send("", "signed in");
    await waitFor(async () => (await system.store.lastSeq("general")) === 1);
    const [stored] = await system.store.history({ room: "general", limit: 1 });
    assert.equal(stored!.userId, "ann", "the sender comes from the token");
    assert.equal(stored!.displayName, "Ann A.");
  } finally {
    client.close();
    await system.stop();
  }
});

Deno.test("AUTH=on: nobody can send or listen as somebody else", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const mallory = newClient(system.address());
  try {
    await mallory.signIn("mallory", "a long password");
    await assert.rejects(
      mallory.send("alice", "I am alice"),
      refused(status.PERMISSION_DENIED, /signed in as mallory, cannot act as alice/),
    );
    const stream = connectUser(system.address(), "alice", { client: mallory });
    await waitFor(() => stream.ended !== undefined);
    assert.equal(stream.ended!.error!.code, status.PERMISSION_DENIED);
    mallory.token = "not.a.token";
    await assert.rejects(
      mallory.send("", "hi"),
      refused(status.UNAUTHENTICATED, /token is invalid/),
    );
    assert.equal(await system.store.lastSeq("general"), 0, "nothing was published");
  } finally {
    mallory.close();
    await system.stop();
  }
});

Deno.test("AUTH=off: classic clients name themselves, and signed-in ones still work", async () => {
  const system = await startSystem({ config: { auth: "off" } });
  const classic = connectUser(system.address(), "bob");
  const modern = newClient(system.address());
  try {
    await waitFor(() => system.processor.registry.presenceOf("bob", "").online);
    await classic.client.send("bob", "classic");
    await modern.signIn("carol", "a long password");
    await modern.send("", "modern");
    await waitFor(() => classic.contents().length === 2);
    assert.deepEqual(classic.received.map((m) => m.id), ["bob", "carol"]);
  } finally {
    classic.close();
    modern.close();
    await system.stop();
  }
});

Deno.test("limits: rate limit, streams per user and rooms per user answer clearly and publish nothing", async () => {
  const system = await startSystem({
    config: {
      auth: "on",
      rateLimitBurst: 3,
      rateLimitPerSecond: 1,
      maxStreamsPerUser: 2,
      maxRoomsPerUser: 1,
    },
  });
  const client = newClient(system.address());
  try {
    await client.signIn("dan", "a long password");
    for (let i = 0; i < 3; i++) await client.send("", `burst ${i}`);
    await assert.rejects(
      client.send("", "one too many"),
      refused(
        status.RESOURCE_EXHAUSTED,
        /rate limit is 1 messages per second \(bursts of 3\); retry in \d/,
      ),
    );
    await waitFor(async () => (await system.store.lastSeq("general")) === 3);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await system.store.lastSeq("general"), 3, "the refused message was not published");

    const device = () => {
      const c = newClient(system.address());
      c.token = client.token;
      return connectUser(system.address(), "dan", { client: c });
    };
    const s1 = device();
    const s2 = device();
    await waitFor(() => system.gateways[0]!.hub.countOf("dan") === 2);
    const s3 = device();
    await waitFor(() => s3.ended !== undefined);
    assert.equal(s3.ended!.error!.code, status.RESOURCE_EXHAUSTED);
    assert.match(s3.ended!.error!.details, /dan has 2 streams open on this server, the limit is 2/);
    for (const s of [s1, s2, s3]) s.close();

    await client.createRoom("one");
    await assert.rejects(
      client.createRoom("two"),
      refused(status.RESOURCE_EXHAUSTED, /dan is in 1 rooms, the limit is 1; leave one first/),
    );
    assert.equal(await system.store.getRoom("two"), undefined);
  } finally {
    client.close();
    await system.stop();
  }
});
