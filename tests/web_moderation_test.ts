/**
 * Moderation on the page, in Chromium on an in-process gateway (AUTH=on), as an owner uses it:
 * ann makes ben a moderator, mutes and removes carl from the room's member list, and every line
 * ("ben joined", "You made ben a moderator", "dan left"...) is still there after a reload, placed
 * among the messages by time. A member sees no moderation buttons.
 */

import assert from "node:assert/strict";
import {
  buildPage,
  closeAll,
  join,
  notes,
  openBrowser,
  PASSWORD,
  roomByName,
  type TestBrowser,
} from "./browser.ts";
import { newClient, startSystem, waitFor } from "./helpers.ts";

Deno.test({
  name: "web page: the owner moderates from the member list; the event lines survive a reload",
  // Playwright keeps a pipe and timers to Chromium open between steps.
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await buildPage();
  const system = await startSystem({ config: { auth: "on" } });
  const browsers: TestBrowser[] = [];
  const [ben, carl, dan] = [
    newClient(system.address()),
    newClient(system.address()),
    newClient(system.address()),
  ];
  try {
    for (const [c, name] of [[ben, "ben"], [carl, "carl"], [dan, "dan"]] as const) {
      await c.signIn(name, PASSWORD);
    }
    const ann = await openBrowser();
    browsers.push(ann);
    const page = ann.page;
    const url = `http://127.0.0.1:${system.gateways[0]!.httpPort}`;
    await join(page, url, "ann");
    await roomByName(page, "club", "Create");
    await page.locator('.room-item[data-room="club"][aria-current="true"]').waitFor();
    for (const c of [ben, carl, dan]) await c.joinRoom("club");
    await ben.send("", "hello club", { room: "club" });
    await dan.leaveRoom("club");
    const expectNotes = async (wanted: string[]) =>
      await waitFor(
        async () => JSON.stringify(await notes(page)) === JSON.stringify(wanted),
        10_000,
        `notes ${JSON.stringify(wanted)}, shown ${JSON.stringify(await notes(page))}`,
      );
    await expectNotes([
      "You created the room",
      "ben joined",
      "carl joined",
      "dan joined",
      "dan left",
    ]);

    await page.locator(".room-members summary").click();
    const member = (name: string) => page.locator("li.member").filter({ hasText: name });
    await member("ben").getByRole("button", { name: "Make moderator" }).click();
    await member("ben").locator(".member-role", { hasText: "moderator" }).waitFor();
    await member("carl").getByRole("button", { name: "Mute", exact: true }).click();
    await waitFor(
      async () => (await system.store.mutedUntil("club", "carl")) !== undefined,
      10_000,
      "carl muted",
    );
    await member("carl").getByRole("button", { name: "Remove", exact: true }).click();
    await waitFor(async () => (await member("carl").count()) === 0, 10_000, "carl gone");
    const moderation = (shown: string[]) => shown.slice(5);
    await waitFor(async () => moderation(await notes(page)).length === 3, 10_000, "three lines");
    const live = await notes(page);
    assert.deepEqual(moderation(live)[0], "You made ben a moderator");
    assert.match(moderation(live)[1]!, /^You muted carl until (\d{4}-\d\d-\d\d )?\d\d:\d\d$/);
    assert.deepEqual(moderation(live)[2], "You removed carl");

    // Signed in again (a reload): the lines come back from history, ben's message among them.
    await page.reload();
    await page.locator('.room-item[data-room="club"][aria-current="true"]').waitFor();
    await expectNotes(live);
    const rows = await page.locator("li.note, li.msg").evaluateAll((items) =>
      items.map((li) => li.classList.contains("note") ? "note" : "msg")
    );
    assert.deepEqual(rows.filter((r) => r === "msg").length, 1);
    assert.equal(rows.indexOf("msg"), 4, "ben's message after the joins, before dan left");
    assert.deepEqual(ann.pageErrors, []);

    // A member of the room is offered nothing to do to others.
    const benPage = await openBrowser();
    browsers.push(benPage);
    await join(benPage.page, url, "ben");
    await benPage.page.locator('.room-item[data-room="club"]').click();
    await benPage.page.locator(".room-members summary").click();
    await benPage.page.locator("li.member").first().waitFor();
    assert.equal(
      await benPage.page.getByRole("button", { name: "Make moderator" }).count(),
      0,
      "a moderator does not make moderators",
    );
    await page.locator(".room-members summary").click();
    await ann.page.locator("li.member").filter({ hasText: "ben" }).getByRole("button", {
      name: "Make member",
    }).click();
    await waitFor(
      async () =>
        (await benPage.page.getByRole("button", { name: "Remove", exact: true }).count()) === 0,
      10_000,
      "ben, a member again, is offered no Remove",
    );
    // Muted, ben's page says until when.
    await ann.page.locator("li.member").filter({ hasText: "ben" }).getByRole("button", {
      name: "Mute",
      exact: true,
    }).click();
    await benPage.page.locator(".room-muted").waitFor({ timeout: 10_000 });
    assert.match(
      (await benPage.page.locator(".room-muted").textContent()) ?? "",
      /^You are muted here until (\d{4}-\d\d-\d\d )?\d\d:\d\d$/,
    );
  } finally {
    for (const c of [ben, carl, dan]) c.close();
    await closeAll(browsers);
    await system.stop();
  }
});
