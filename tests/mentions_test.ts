/** Mentions: which `@names` of a message are members, found by the server and kept with it. */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Mentions } from "../server/mentions.ts";
import { mentionCandidates } from "../protocol/mentions.ts";
import { MemoryStore } from "../store/memory_store.ts";
import { MAX_MENTIONS } from "../protocol/limits.ts";
import { encodeMessage, OWN_CONNECTION, rawCall, tokenOf } from "./attack_support.ts";
import { signedInUser, startSystem, waitFor } from "./helpers.ts";
import { newAccount, newRoom } from "./store_contract.ts";

Deno.test("mentionCandidates: names after @, not inside words or addresses, without repeats", () => {
  assert.deepEqual(mentionCandidates("no at sign"), []);
  assert.deepEqual(
    mentionCandidates("@ann, @Ben.  ben@example.test @ann @ben_ (@cat) @@dan e-@fay @"),
    [["ann"], ["Ben.", "Ben"], ["ben_", "ben"], ["cat"]],
  );
  const many = Array.from({ length: 50 }, (_, i) => `@user${i}`).join(" ");
  assert.equal(mentionCandidates(many).length, MAX_MENTIONS);
  assert.deepEqual(mentionCandidates(`@${"a".repeat(33)}`), [], "longer than any username");
});

Deno.test("Mentions.find: only members count, as stored, in the order named", async () => {
  const store = new MemoryStore();
  await store.createRoom(newRoom("team"));
  for (const id of ["Ann", "ben", "ben."]) await store.addMember("team", id);
  await store.createAccount(newAccount("cat"));
  const mentions = new Mentions({
    store,
    presenceOf: (id) =>
      id === "dan"
        ? { userId: "dan", displayName: "Dan", online: true, servers: ["g"], timestamp: "" }
        : undefined,
  });
  assert.deepEqual(await mentions.find("team", "@ben. and @ANN and @cat and @ann"), [
    "ben.",
    "Ann",
  ]);
  assert.deepEqual(await mentions.find("team", "@ben, hi"), ["ben"]);
  assert.deepEqual(await mentions.find("team", "nothing"), []);
  // Everybody is in general: accounts count, and (AUTH=off) users who are online.
  assert.deepEqual(await mentions.find("general", "@cat @dan @eve"), ["cat", "dan"]);
});

Deno.test("mentions across two gateways: set by the server on delivery and in history, never by the client", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  const ann = await signedInUser(system, "ann", { gateway: 0 });
  const ben = await signedInUser(system, "ben", { gateway: 1 });
  const cat = await signedInUser(system, "cat", { gateway: 1 });
  const attacker = new grpc.Client(system.address(0), grpc.credentials.createInsecure(), {
    ...OWN_CONNECTION,
  });
  try {
    await ann.client.createRoom("team");
    await ben.client.joinRoom("team");
    await ann.client.send("", "@ben and @cat, see ben@example.test; thanks @ann.", {
      room: "team",
    });
    await waitFor(() => ben.contents().length === 1, 5000, "ben has the message");
    const [delivered] = ben.received.filter((m) => m.content);
    assert.deepEqual(delivered!.mentions, ["ben", "ann"], "cat is not a member of team");
    const [stored] = (await ben.client.history("team")).messages;
    assert.deepEqual(stored!.mentions, ["ben", "ann"], "history keeps them");

    // A client that sets mentions itself is not believed: the server finds its own.
    const forged = await rawCall(
      attacker,
      "BroadcastMessage",
      encodeMessage({ id: "ann", content: "hello @ben", room: "general", mentions: ["cat"] }),
      tokenOf(ann.client),
    );
    assert.equal(forged.code, grpc.status.OK, forged.details);
    await waitFor(() => cat.contents().includes("hello @ben"), 5000, "cat has it");
    const general = cat.received.find((m) => m.content === "hello @ben");
    assert.deepEqual(general!.mentions, ["ben"]);
  } finally {
    attacker.close();
    for (const u of [ann, ben, cat]) u.close();
    await system.stop();
  }
});
