/** Reactions through real gRPC on two gateways: toggling, who sees them, and every refusal. */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { reactionProblem } from "../protocol/reactions.ts";
import { refused, signedInUser, startSystem, waitFor } from "./helpers.ts";

Deno.test("reactionProblem: one emoji as people pick them, nothing else", () => {
  for (const ok of ["👍", "❤️", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "1️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]) {
    assert.equal(reactionProblem(ok), undefined, ok);
  }
  assert.equal(reactionProblem(""), "the emoji is empty");
  assert.equal(reactionProblem("x".repeat(65)), "the emoji is 65 bytes, the limit is 64");
  for (const bad of ["a", "👍a", "<b>", "\u200d", "😀😀", "🇫🇷🇫🇷", "\u0000"]) {
    assert.match(reactionProblem(bad) ?? "", /is not one emoji/, JSON.stringify(bad));
  }
});

Deno.test("reactions: a member toggles one; every member's event stream hears; history keeps them", async () => {
  // Reacting 20 times in a row is part of the test, not a flood.
  const system = await startSystem({
    gateways: 2,
    config: { auth: "on", rateLimitPerSecond: 100, rateLimitBurst: 100 },
  });
  const ann = await signedInUser(system, "ann", { gateway: 0 });
  const ben = await signedInUser(system, "ben", { gateway: 1 });
  const cat = await signedInUser(system, "cat", { gateway: 1 });
  const classic = await signedInUser(system, "dan", { gateway: 0, presenceEvents: false });
  try {
    await ann.client.createRoom("team");
    await ben.client.joinRoom("team");
    await classic.client.joinRoom("team");
    await ann.client.send("", "ship it?", { room: "team" });
    await waitFor(() => ben.contents().length === 1, 5000, "the message at ben");

    await ben.client.react("team", 1, "👍");
    const heard = (u: typeof ann) =>
      u.received.filter((m) => m.reaction).map((m) =>
        `${m.reaction!.user?.id} ${m.reaction!.added ? "+" : "-"}${m.reaction!.emoji}`
      );
    await waitFor(() => heard(ann).length === 1, 5000, "ann hears of it on the other gateway");
    await ann.client.react("team", 1, "👍");
    await ann.client.react("team", 1, "🎉");
    await ben.client.react("team", 1, "👍"); // taken back
    await waitFor(() => heard(ben).length === 4, 5000, "ben hears all four");
    assert.deepEqual(heard(ben), ["ben +👍", "ann +👍", "ann +🎉", "ben -👍"]);
    const [message] = (await cat.client.history("")).messages.filter((m) => m.room === "team");
    assert.equal(message, undefined, "cat reads general, not team");
    const [stored] = (await ben.client.history("team")).messages;
    assert.deepEqual(
      stored!.reactions.map((r) => [r.emoji, r.users]),
      [["👍", ["ann"]], ["🎉", ["ann"]]],
    );
    assert.equal(classic.received.filter((m) => m.reaction).length, 0, "no events asked for");

    // Hostile fields and limits.
    await assert.rejects(
      cat.client.react("team", 1, "👍"),
      refused(status.PERMISSION_DENIED, /not a member/),
    );
    await assert.rejects(
      ben.client.react("team", 1, "lol"),
      refused(status.INVALID_ARGUMENT, /Cannot react: "lol" is not one emoji/),
    );
    await assert.rejects(
      ben.client.react("team", 0, "👍"),
      refused(status.INVALID_ARGUMENT, /seq is 0; messages are numbered from 1/),
    );
    await assert.rejects(
      ben.client.react("team", 7, "👍"),
      refused(status.NOT_FOUND, /team has no message 7/),
    );
    const many = ["😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎"];
    for (const emoji of [...many, "😍", "😘", "🥰", "😗", "😙", "😚"]) {
      await ben.client.react("team", 1, emoji);
    }
    await assert.rejects(
      ben.client.react("team", 1, "🙂"),
      refused(status.RESOURCE_EXHAUSTED, /has 20 different reactions, the limit is 20/),
    );
    await ann.client.react("team", 1, "😀"); // one that is there already: fine
    // A crowd cannot make one message's reactions unbounded: they travel with it in history.
    await ann.client.send("", "popular", { room: "team" });
    for (let i = 0; i < 199; i++) await system.store.toggleReaction("team", 2, `fan-${i}`, "👍");
    await ben.client.react("team", 2, "👍"); // the 200th
    await assert.rejects(
      ann.client.react("team", 2, "👍"),
      refused(status.RESOURCE_EXHAUSTED, /message 2 of team has 200 reactions, the limit is 200/),
    );
    await ben.client.react("team", 2, "👍"); // taking one back is always allowed
    await ann.client.deleteMessage("team", 1);
    await assert.rejects(
      ben.client.react("team", 1, "👍"),
      refused(status.NOT_FOUND, /team has no message 1/),
    );
    const gone = (await ben.client.history("team")).messages.find((m) => m.seq === 1n);
    assert.deepEqual(gone!.reactions, [], "a deletion takes the reactions with it");
  } finally {
    for (const u of [ann, ben, cat, classic]) u.close();
    await system.stop();
  }
});
