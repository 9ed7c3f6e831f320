/**
 * Blocking users through real gRPC on two gateways: the blocker's streams (on one gateway) skip
 * the blocked user's messages, edits, reactions and typing sent through the other, live and on
 * resume; history, search and unread counts leave them out; the blocked user cannot reach the
 * blocker by direct message; unblocking undoes it everywhere. And the limits.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { MAX_BLOCKED_USERS } from "../server/chat_blocks.ts";
import { connectUser, newClient, refused, signedInUser, startSystem, waitFor } from "./helpers.ts";

Deno.test("blocking: the blocker hears nothing more from the blocked user, on every gateway, until unblocking", async () => {
  const system = await startSystem({
    gateways: 2,
    config: { auth: "on", rateLimitPerSecond: 100, rateLimitBurst: 100 },
  });
  const ann = await signedInUser(system, "ann", { gateway: 0 });
  // Ann's phone: her calls go through the other gateway than her stream.
  const phone = await signedInUser(system, "ann", { gateway: 1 });
  const ben = await signedInUser(system, "ben", { gateway: 1 });
  const cat = await signedInUser(system, "cat", { gateway: 1 });
  const resumed: (typeof ann)[] = [];
  try {
    await ben.client.openDirect("ann");
    await ben.client.send("", "before", { room: "general" });
    await waitFor(() => ann.contents().includes("before"), 5000, "ann hears ben before");

    await phone.client.block("ben");
    assert.deepEqual(await phone.client.listBlocked(), ["ben"]);
    await ben.client.send("", "hidden one", { room: "general" });
    await ben.client.setTyping("general", true);
    await cat.client.send("", "cat speaks", { room: "general" });
    await cat.client.setTyping("general", true);
    await waitFor(() => ann.contents().includes("cat speaks"), 5000, "cat's message at ann");
    await waitFor(() => cat.contents().includes("hidden one"), 5000, "cat still hears ben");
    const typers = (u: typeof ann) =>
      u.received.filter((m) => m.typing?.typing).map((m) => m.typing!.user?.id);
    await waitFor(() => typers(ann).includes("cat"), 5000, "cat's typing at ann");
    const catSeq = (await cat.client.history("general", 0, 1)).messages[0]!.seq;
    await ben.client.react("general", catSeq, "👍");
    await ben.client.editMessage("general", catSeq - 1n, "hidden edit");
    await cat.client.react("general", catSeq, "🎉");
    await waitFor(
      () => ann.received.some((m) => m.reaction?.emoji === "🎉"),
      5000,
      "cat's reaction at ann",
    );
    assert.deepEqual(ann.contents(), ["before", "cat speaks"], "nothing of ben's after the block");
    assert.deepEqual(typers(ann), ["cat"]);
    assert.ok(!ann.received.some((m) => m.reaction?.user?.id === "ben"), "no reaction of ben's");
    assert.ok(!ann.received.some((m) => m.change), "no edit of ben's");

    // History, search, unread: ben's messages are not there for ann, all of them are for cat.
    const shown = async (u: typeof ann) =>
      (await u.client.history("general")).messages.map((m) => m.content).reverse();
    assert.deepEqual(await shown(phone), ["cat speaks"]);
    assert.deepEqual(await shown(cat), ["before", "hidden edit", "cat speaks"]);
    assert.deepEqual((await phone.client.search("hidden")).map((m) => m.content), []);
    assert.equal((await cat.client.search("hidden")).length, 1);
    const general = (await phone.client.listRooms()).find((r) => r.id === "general")!;
    assert.equal(general.unread, 1, "only cat's message is unread");

    // A stream that resumes from the start replays cat's message, not ben's.
    const again = connectUser(system.address(1), "ann", {
      client: phone.client,
      resume: [{ room: "general", lastSeq: 0 }],
    });
    resumed.push(again);
    await waitFor(() => again.contents().includes("cat speaks"), 5000, "the replay");
    assert.deepEqual(again.contents(), ["cat speaks"]);

    // Direct messages: ben cannot reach ann, told as if she had left; ann still can.
    const dm = "dm:ann:ben";
    await assert.rejects(
      ben.client.send("", "let me in", { room: dm }),
      refused(
        status.PERMISSION_DENIED,
        /^Cannot send message: ann left the direct conversation with ben; only ann can open it again$/,
      ),
    );
    await assert.rejects(
      ben.client.openDirect("ann"),
      refused(status.PERMISSION_DENIED, /^Cannot open direct messages: ann left the direct/),
    );
    await assert.rejects(
      ben.client.openDirect("ANN"),
      refused(status.PERMISSION_DENIED, /ann left the direct/),
    );
    await phone.client.openDirect("ben");
    await phone.client.send("", "stop it", { room: dm });

    // Unblocking: at once, on the gateway of her stream too.
    await phone.client.block("ben", false);
    assert.deepEqual(await phone.client.listBlocked(), []);
    await ben.client.send("", "sorry", { room: dm });
    await waitFor(() => ann.contents().includes("sorry"), 5000, "ben heard again");
    assert.equal((await phone.client.search("hidden")).length, 1);
  } finally {
    for (const u of [ann, phone, ben, cat, ...resumed]) u.close();
    await system.stop();
  }
});

Deno.test("blocking: strangers, too many, too fast (hostile ids: attack_block_test.ts)", async () => {
  const system = await startSystem({
    config: { auth: "on", rateLimitPerSecond: 1, rateLimitBurst: 4 },
  });
  const ann = newClient(system.address());
  try {
    await ann.signIn("ann", "correct horse battery");
    await newClient(system.address()).signIn("ben", "correct horse battery");
    await assert.rejects(
      ann.block("nobody"),
      refused(status.NOT_FOUND, /^Cannot block user: there is no user "nobody"$/),
    );
    await assert.rejects(
      ann.block("ben", false).then(() => ann.block("nobody", false)),
      refused(status.NOT_FOUND, /^Cannot unblock user: there is no user "nobody"$/),
    );
    // The rate limit (bursts of 4: three calls above took theirs).
    await ann.block("ben");
    await assert.rejects(
      ann.block("ben"),
      refused(status.RESOURCE_EXHAUSTED, /^Cannot block user: the rate limit is 1 messages/),
    );
    // The most blocked users: unblocking is still allowed.
    for (let i = 0; i < MAX_BLOCKED_USERS; i++) await system.store.setBlocked("ann", `u${i}`, true);
    await system.addGateway({ rateLimitPerSecond: 100, rateLimitBurst: 100 });
    const annAgain = newClient(system.address(1));
    try {
      await annAgain.signIn("ann", "correct horse battery");
      await annAgain.block("ben", false);
      await assert.rejects(
        annAgain.block("ben"),
        refused(
          status.RESOURCE_EXHAUSTED,
          /^Cannot block user: ann blocked 1000 users, the limit is 1000; unblock one first$/,
        ),
      );
      assert.equal((await annAgain.listBlocked()).length, MAX_BLOCKED_USERS);
    } finally {
      annAgain.close();
    }
  } finally {
    ann.close();
    await system.stop();
  }
});
