/**
 * What a chat is expected to do today, on the Kafka deployment (tests/kafka_web_deployment.ts:
 * the processor, gateway A with ann's page, gateway B with ben's page and carl's terminal
 * client on a terminal of its own, all their own processes on the test cluster), once on
 * PostgreSQL and once on SQLite. The three use the features as people do, each across the
 * gateways: the room directory, typing, unread counts and mentions, "seen by", search,
 * invitations, blocking, a moderator and a deletion, "Seen" in a direct conversation, and read
 * state on a second device. At the end the store holds what they said.
 *
 * tests/web_kafka_test.ts runs the same deployment for the basics, mentions, reactions, edits
 * and a mute.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  buildPage,
  clickMessageAction,
  closeAll,
  join,
  openBrowser,
  openRoom,
  PASSWORD,
  roomByName,
  send,
  shownMessages,
  type TestBrowser,
  unreadIn,
  waitForMessages,
  waitForOnlineToInclude,
  waitForStatus,
  waitForTypingLine,
} from "./browser.ts";
import { waitFor } from "./helpers.ts";
import {
  SLOW_MS,
  startWebDeployment,
  type StoreKind,
  STORES,
  type WebDeployment,
} from "./kafka_web_deployment.ts";
import { hasScript, spawnInTerminal, type TerminalProcess } from "./terminal_process.ts";

/** A line of the terminal's screen matching `pattern`, waited for. */
async function seeRow(terminal: TerminalProcess, what: string, pattern: RegExp): Promise<void> {
  await terminal.see(what, (rows) => rows.some((row) => pattern.test(row)), SLOW_MS);
}

for (const kind of STORES) {
  Deno.test({
    name: `the features on Kafka and ${kind}: pages on gateways A and B, a terminal on B`,
    ignore: !hasScript,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => features(kind),
  });
}

async function features(kind: StoreKind): Promise<void> {
  await buildPage();
  const browsers: TestBrowser[] = [];
  let carl: TerminalProcess | undefined;
  let deployment: WebDeployment | undefined;
  try {
    deployment = await startWebDeployment(kind);
    const { a, b } = deployment;
    const ann = await openBrowser();
    browsers.push(ann);
    const ben = await openBrowser();
    browsers.push(ben);
    await join(ann.page, a.http, "ann");
    await join(ben.page, b.http, "ben");
    carl = spawnInTerminal(PASSWORD, "carl", "--server", b.grpc);
    const prompt = (rows: string[]) => rows.at(-1) ?? "";
    await carl.see(
      "carl connected",
      (rows) => rows.includes("Connected to server as user: carl") && prompt(rows) === "#general>",
      SLOW_MS,
    );
    for (const page of [ann.page, ben.page]) {
      await waitForOnlineToInclude(page, ["ann", "ben", "carl"], [], SLOW_MS);
    }

    // The directory: ann opens a room with a topic; ben finds it by its topic and joins it from
    // the list; carl finds it with /rooms all and joins it by name.
    const club = `club-${crypto.randomUUID().slice(0, 6)}`;
    const topic = `Quokka board games ${club.slice(5)} on Fridays`;
    await roomByName(ann.page, club, "Create");
    await ann.page.locator(`.room-item[data-room="${club}"][aria-current="true"]`).waitFor();
    await ann.page.getByRole("button", { name: "Set topic" }).click();
    await ann.page.getByLabel("Topic", { exact: true }).fill(topic);
    await ann.page.locator(".topic-form").getByRole("button", { name: "Save" }).click();
    await ann.page.locator(".room-topic", { hasText: topic }).waitFor();

    await ben.page.getByRole("button", { name: "Browse rooms" }).click();
    await ben.page.getByLabel("Search rooms").fill(`board games ${club.slice(5)}`);
    const entry = ben.page.locator(`.directory-entry[data-room="${club}"]`);
    await entry.waitFor({ timeout: SLOW_MS });
    assert.equal(await entry.locator(".directory-topic").textContent(), topic);
    assert.equal(await entry.locator(".directory-members").textContent(), "1 member");
    await entry.getByRole("button", { name: `Join #${club}` }).click();
    await ben.page.locator(`.room-item[data-room="${club}"][aria-current="true"]`).waitFor({
      state: "attached",
      timeout: SLOW_MS,
    });

    await carl.keys(`/rooms all ${club.slice(5)}\r`);
    await seeRow(
      carl,
      "the club in /rooms all",
      new RegExp(`^  ${club} \\(2 members\\): ${topic}$`),
    );
    await carl.keys(`/join ${club}\r`);
    await seeRow(carl, "joined", new RegExp(`^\\* Joined #${club} \\(3 members\\)`));
    await carl.keys(`/room ${club}\r`);
    await carl.see("the club's prompt", (rows) => prompt(rows) === `#${club}>`, SLOW_MS);
    for (const page of [ann.page, ben.page]) {
      await waitFor(
        async () =>
          (await page.locator("li.note").allTextContents()).some((t) => /carl joined/.test(t)),
        SLOW_MS,
        "carl's join on the pages",
      );
    }

    // Typing: carl types without sending, and ann (on the other gateway) sees it; ann types and
    // carl's prompt says so. Sending ends it.
    await carl.keys("quokkas are");
    await waitForTypingLine(ann.page, "carl is typing…", SLOW_MS);
    await ann.page.getByLabel("Message", { exact: true }).fill("who brings");
    await carl.see(
      "ann typing in carl's prompt",
      (rows) => prompt(rows) === `#${club} (ann is typing…)> quokkas are`,
      SLOW_MS,
    );
    await carl.keys(" welcome\r");
    await waitForMessages(ann.page, ["quokkas are welcome"], SLOW_MS);
    await waitForMessages(ben.page, ["quokkas are welcome"], SLOW_MS);
    await waitForTypingLine(ann.page, "", SLOW_MS);
    await ann.page.getByLabel("Message", { exact: true }).fill("");

    // Unread counts and mentions: ann reads general, carl names her in the club; the room list
    // on her page counts it. Ann names carl in general; his /rooms counts it.
    await openRoom(ann.page, "general");
    await carl.keys("@ann bring the dice\r");
    await waitFor(async () => await unreadIn(ann.page, club) === 1, SLOW_MS, "unread 1 on ann's");
    const clubItem = ann.page.locator(`.room-item[data-room="${club}"]`);
    assert.equal(await clubItem.locator(".mention-badge").textContent(), "@");
    await send(ann.page, "general news for @carl");
    await seeRow(carl, "ann's line in general", /ann: general news for @carl$/);
    await carl.keys("/rooms\r");
    await seeRow(carl, "/rooms", /^\* Your rooms \(2\):$/);
    await seeRow(carl, "general's counts", /^ {2}general \(everybody, 1 unread, 1 mention\)/);
    // Read in the terminal, where carl wrote it: no counts (they would come before the topic).
    await seeRow(carl, "the club, read", new RegExp(`^  ${club} \\(3 members, current\\): `));
    await openRoom(ann.page, club);
    await waitFor(async () => await unreadIn(ann.page, club) === 0, SLOW_MS, "read once shown");

    // Seen by: ann's message, read by ben on his page and by carl in his terminal.
    await send(ann.page, "who has read this?");
    await waitForMessages(ben.page, ["who has read this?"], SLOW_MS);
    await seeRow(carl, "ann's question", /ann: who has read this\?$/);
    const mine = ann.page.locator("li.msg.mine").last();
    const answer = mine.locator(".msg-seen");
    await waitFor(
      async () => {
        await clickMessageAction(mine, "Seen by…");
        await waitFor(async () => (await answer.count()) === 1, 5_000, "an answer");
        return /^Seen by 2: (ben, carl|carl, ben)$/.test(await answer.textContent() ?? "");
      },
      SLOW_MS,
      "seen by ben and carl",
    );
    await carl.keys("/seen\r");
    await seeRow(carl, "/seen", /^\* Seen by 2: (ann, ben|ben, ann)$/);

    // Search: ben finds carl's word and the result opens the message in context; carl finds it
    // in his terminal.
    await ben.page.getByLabel("Words to find").fill("QUOKKAS welcome");
    await ben.page.getByLabel("Words to find").press("Enter");
    const result = ben.page.locator(".search-result");
    await result.first().waitFor({ timeout: SLOW_MS });
    assert.equal(await result.count(), 1);
    assert.match(await result.textContent() ?? "", new RegExp(`#${club} carl .*quokkas are`));
    await result.click();
    await ben.page.locator("li.msg[data-found]", { hasText: "quokkas are welcome" }).waitFor({
      state: "attached",
      timeout: SLOW_MS,
    });
    await carl.keys("/search dice\r");
    await seeRow(carl, "/search", /^\* 1 message found for "dice", best first:$/);
    await seeRow(carl, "the found line", /carl: @ann bring the dice$/);

    // Invitations: ann makes a second room invite-only and invites carl from her page; his
    // terminal is told, lists it and joins; ben's directory does not show it.
    const attic = `attic-${crypto.randomUUID().slice(0, 6)}`;
    await roomByName(ann.page, attic, "Create");
    await ann.page.locator(`.room-item[data-room="${attic}"][aria-current="true"]`).waitFor();
    const toggle = ann.page.getByLabel("Invite only");
    await toggle.click();
    await waitFor(() => toggle.isChecked(), SLOW_MS, "invite-only on");
    await ann.page.getByRole("button", { name: "Invite…" }).click();
    await ann.page.getByLabel("Username to invite").fill("carl");
    await ann.page.getByRole("button", { name: "Invite", exact: true }).click();
    await ann.page.getByRole("status").filter({ hasText: "Invited carl" }).waitFor();
    await seeRow(carl, "the invitation", new RegExp(`ann invited you to #${attic}`));
    await carl.keys("/invites\r");
    await seeRow(
      carl,
      "/invites lists it",
      new RegExp(`^ {2}#${attic} \\(from ann, invite-only, 1 member\\)`),
    );
    await carl.keys(`/join ${attic}\r`);
    await seeRow(carl, "joined the attic", new RegExp(`^\\* Joined #${attic} \\(2 members\\)`));
    await waitFor(
      async () =>
        (await ann.page.locator("li.note").allTextContents()).some((t) => /carl joined/.test(t)),
      SLOW_MS,
      "carl's join in the attic on ann's page",
    );
    await ben.page.getByLabel("Search rooms").fill(attic);
    await ben.page.locator(".directory .panel-note", { hasText: "No room matches." }).waitFor({
      timeout: SLOW_MS,
    });
    await openRoom(ann.page, club);
    await carl.keys(`/room ${club}\r`);
    await carl.see("back in the club", (rows) => prompt(rows) === `#${club}>`, SLOW_MS);

    // Blocking: ben blocks carl on his page; carl's next line reaches ann but not ben, and carl
    // cannot open a direct conversation with ben.
    await ben.page.getByRole("button", { name: "Block carl" }).click();
    await ben.page.locator("[data-blocked-user]", { hasText: "carl" }).waitFor({
      timeout: SLOW_MS,
    });
    await carl.keys("can ben see this?\r");
    await waitForMessages(ann.page, ["can ben see this?"], SLOW_MS);
    await send(ann.page, "after carl's question");
    await waitForMessages(ben.page, ["after carl's question"], SLOW_MS);
    const onBens = (await shownMessages(ben.page)).map((m) => m.text);
    assert.ok(!onBens.includes("can ben see this?"), onBens.join("\n"));
    assert.ok(!onBens.includes("quokkas are welcome"), "carl's earlier lines leave too");
    await carl.keys("/dm ben\r");
    await seeRow(carl, "the refusal", /^! .*ben left the direct conversation with carl/);

    // Moderation: ann, the club's owner, makes carl a moderator from the member list (his
    // /rooms says so) and deletes his line for everyone; his terminal is told.
    await ann.page.locator(".room-members summary").click();
    await ann.page.locator("li.member").filter({ hasText: "carl" }).getByRole("button", {
      name: "Make moderator",
    }).click();
    await seeRow(carl, "made a moderator", /ann made you a moderator/);
    await carl.keys("/rooms\r");
    await seeRow(
      carl,
      "his role in /rooms",
      new RegExp(`^  ${club} \\(3 members, current, you are its moderator\\)`),
    );
    ann.page.once("dialog", (dialog) => dialog.accept());
    await clickMessageAction(
      ann.page.locator("li.msg").filter({ hasText: "can ben see this?" }),
      "Delete",
    );
    await seeRow(carl, "the deletion", /^\* ann deleted a message$/);
    await waitFor(
      async () => !(await shownMessages(ann.page)).some((m) => m.text === "can ben see this?"),
      SLOW_MS,
      "the deleted line gone from ann's page",
    );

    // A direct conversation: carl opens it in his terminal, which reads ann's message there as
    // it prints it; her page on the other gateway says "Seen".
    await carl.keys("/dm ann\r");
    await carl.see("the direct room's prompt", (rows) => prompt(rows) === "@ann>", SLOW_MS);
    const direct = ann.page.locator('.room-item[data-room="dm:ann:carl"]');
    await direct.waitFor({ timeout: SLOW_MS });
    await openRoom(ann.page, "dm:ann:carl");
    await send(ann.page, "see you on friday");
    await seeRow(carl, "ann's direct message", /ann: see you on friday$/);
    await ann.page.locator("li.seen").waitFor({ timeout: SLOW_MS });
    await carl.keys("me too\r");
    await waitForMessages(ann.page, ["see you on friday", "me too"], SLOW_MS);

    // Reading state follows ann to a second device on the other gateway: a line for the club
    // is unread on both, reading it on one clears it on the other, and a reload keeps it so.
    const annToo = await openBrowser();
    browsers.push(annToo);
    await join(annToo.page, b.http, "ann");
    for (const page of [ann.page, annToo.page]) await openRoom(page, "general");
    await carl.keys(`/room ${club}\r`);
    await carl.see("back in the club", (rows) => prompt(rows) === `#${club}>`, SLOW_MS);
    await carl.keys("one more for the club\r");
    for (const page of [ann.page, annToo.page]) {
      await waitFor(async () => await unreadIn(page, club) === 1, SLOW_MS, "unread on each");
    }
    await openRoom(ann.page, club);
    await waitFor(
      async () => await unreadIn(annToo.page, club) === 0,
      SLOW_MS,
      "read on the other device",
    );
    await annToo.page.reload();
    await waitForStatus(annToo.page, "connected", SLOW_MS);
    await annToo.page.locator(`.room-item[data-room="${club}"]`).waitFor({ timeout: SLOW_MS });
    assert.equal(await unreadIn(annToo.page, club), 0, "still read after a reload");

    // What they said is in the deployment's store; the deleted text is not.
    assert.deepEqual((await deployment.stored(club)).filter((text) => text !== ""), [
      "quokkas are welcome",
      "@ann bring the dice",
      "who has read this?",
      "after carl's question",
      "one more for the club",
    ]);
    assert.deepEqual(await deployment.stored("dm:ann:carl"), ["see you on friday", "me too"]);

    await carl.keys("/quit\r");
    const timer = new AbortController();
    const exit = await Promise.race([
      carl.status,
      sleep(SLOW_MS, undefined, { signal: timer.signal }).catch(() => undefined),
    ]);
    timer.abort();
    assert.equal(exit?.code, 0, "the terminal client leaves cleanly, and in time");
    for (const x of browsers) assert.deepEqual(x.pageErrors, [], "no uncaught errors in the page");
  } finally {
    await carl?.dispose();
    await closeAll(browsers);
    await deployment?.stop();
  }
}
