/** Editing and deleting messages through real gRPC on two gateways, with every refusal a user meets. */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { refused, signedInUser, startSystem, waitFor } from "./helpers.ts";

Deno.test("edits and deletes: sender and owner may, others may not; every member's stream is told", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on", maxMessageBytes: 100 } });
  const ann = await signedInUser(system, "ann", { gateway: 0 });
  const ben = await signedInUser(system, "ben", { gateway: 1 });
  const cat = await signedInUser(system, "cat", { gateway: 1 });
  const classic = await signedInUser(system, "dan", { gateway: 1, presenceEvents: false });
  try {
    await ann.client.createRoom("team");
    await ben.client.joinRoom("team");
    await classic.client.joinRoom("team");
    await ann.client.send("", "helo", { room: "team" });
    await ben.client.send("", "mine", { room: "team" });
    await waitFor(() => ben.contents().length === 2, 5000, "both messages at ben");

    // The sender edits; every member's stream on both gateways hears of it, mentions included.
    const edited = await ann.client.editMessage("team", 1, "hello @ben");
    assert.equal(edited.content, "hello @ben");
    assert.deepEqual(edited.mentions, ["ben"]);
    assert.ok(edited.editedAt, "edited_at is set");
    const changeAt = (u: typeof ann, seq: bigint) =>
      u.received.filter((m) => m.change?.seq === seq).map((m) => m.change!);
    await waitFor(() => changeAt(ben, 1n).length === 1, 5000, "ben hears of the edit");
    const [change] = changeAt(ben, 1n);
    assert.deepEqual(
      [change!.room, change!.deleted, change!.content, change!.by?.id, change!.mentions],
      ["team", false, "hello @ben", "ann", ["ben"]],
    );
    await waitFor(() => changeAt(ann, 1n).length === 1, 5000, "the editor's own stream too");
    const [first] = (await ben.client.history("team", 2, 1)).messages;
    assert.deepEqual([first!.content, Boolean(first!.editedAt)], ["hello @ben", true]);

    // Nobody else edits, or deletes what is not theirs in a room they do not own.
    await assert.rejects(
      ben.client.editMessage("team", 1, "mine now"),
      refused(status.PERMISSION_DENIED, /message 1 of team is ann's; only its sender edits it/),
    );
    await assert.rejects(
      ben.client.deleteMessage("team", 1),
      refused(
        status.PERMISSION_DENIED,
        /only its sender or the room's owner and moderators delete it/,
      ),
    );
    await assert.rejects(
      cat.client.editMessage("team", 1, "x"),
      refused(status.PERMISSION_DENIED, /not a member/),
    );

    // The owner deletes any message of the room; its text is gone from history.
    await ann.client.deleteMessage("team", 2);
    await waitFor(() => changeAt(ben, 2n).length === 1, 5000, "ben hears of the deletion");
    assert.equal(changeAt(ben, 2n)[0]!.deleted, true);
    const [deleted] = (await ben.client.history("team")).messages;
    assert.deepEqual([deleted!.seq, deleted!.content, deleted!.deleted], [2n, "", true]);
    await ann.client.deleteMessage("team", 2); // again: gone either way
    await assert.rejects(
      ben.client.editMessage("team", 2, "back"),
      refused(status.FAILED_PRECONDITION, /message 2 of team was deleted/),
    );

    // Hostile fields: each refused with what is wrong.
    await assert.rejects(
      ann.client.editMessage("team", 0, "x"),
      refused(status.INVALID_ARGUMENT, /seq is 0; messages are numbered from 1/),
    );
    await assert.rejects(
      ann.client.editMessage("team", 2n ** 63n, "x"),
      refused(status.INVALID_ARGUMENT, /seq is 9223372036854775808/),
    );
    await assert.rejects(
      ann.client.editMessage("team", 99, "x"),
      refused(status.NOT_FOUND, /team has no message 99/),
    );
    await assert.rejects(
      ann.client.editMessage("team", 1, "  "),
      refused(status.INVALID_ARGUMENT, /Cannot edit message: the content is empty/),
    );
    await assert.rejects(
      ann.client.editMessage("team", 1, "x".repeat(101)),
      refused(status.INVALID_ARGUMENT, /content is 101 bytes, the limit is 100/),
    );
    await assert.rejects(
      ann.client.deleteMessage("nowhere", 1),
      refused(status.NOT_FOUND, /nowhere/),
    );

    // In general nobody is the owner: only the sender deletes.
    await cat.client.send("", "in general");
    await waitFor(() => ann.contents().includes("in general"), 5000, "the general message");
    const seq = ann.received.find((m) => m.content === "in general")!.seq;
    await assert.rejects(
      ann.client.deleteMessage("general", seq),
      refused(status.PERMISSION_DENIED, /only its sender or the room's owner/),
    );
    await cat.client.deleteMessage("", seq);

    // A classic stream (no events asked for) never sees a change.
    assert.equal(classic.received.filter((m) => m.change).length, 0);
    assert.deepEqual(classic.contents(), ["helo", "mine", "in general"]);
  } finally {
    for (const u of [ann, ben, cat, classic]) u.close();
    await system.stop();
  }
});
