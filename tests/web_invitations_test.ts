/**
 * Invite-only rooms on the page, in Chromium on an in-process gateway (AUTH=on), as people use
 * them: ann makes her room invite-only with its switch and invites ben with "Invite…"; ben's page
 * shows "ann invited you to #plans" at once, and Join takes him in; an invitation he does not
 * want goes with Decline; the invite-only room is not in cat's directory.
 */

import assert from "node:assert/strict";
import { buildPage, closeAll, join, openBrowser, PASSWORD, type TestBrowser } from "./browser.ts";
import { newClient, startSystem, waitFor } from "./helpers.ts";

Deno.test({
  name: "web page: the owner closes a room and invites; the invitee joins or declines",
  // Playwright keeps a pipe and timers to Chromium open between steps.
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await buildPage();
  const system = await startSystem({ config: { auth: "on" } });
  const browsers: TestBrowser[] = [];
  const cat = newClient(system.address());
  try {
    await cat.signIn("cat", PASSWORD);
    const url = `http://127.0.0.1:${system.gateways[0]!.httpPort}`;
    const ann = await openBrowser();
    browsers.push(ann);
    const ben = await openBrowser();
    browsers.push(ben);
    await join(ann.page, url, "ann");
    await join(ben.page, url, "ben");

    await ann.page.getByLabel("Room name").fill("plans");
    await ann.page.getByRole("button", { name: "Create" }).click();
    await ann.page.locator("#room-title", { hasText: "plans" }).waitFor();
    const toggle = ann.page.getByLabel("Invite only");
    assert.equal(await toggle.isChecked(), false);
    // The switch shows what the server says: checked once it made the room invite-only.
    await toggle.click();
    await waitFor(() => toggle.isChecked(), 10_000, "the switch on");
    await ann.page.locator(".note", { hasText: "You made the room invite-only" }).waitFor({
      timeout: 10_000,
    });
    await waitFor(async () => (await system.store.getRoom("plans"))?.inviteOnly === true);
    assert.deepEqual((await cat.listRooms(true, "plans")).map((r) => r.id), []);

    await ann.page.getByRole("button", { name: "Invite…" }).click();
    await ann.page.getByLabel("Username to invite").fill("ben");
    await ann.page.getByRole("button", { name: "Invite", exact: true }).click();
    await ann.page.getByRole("status").filter({ hasText: "Invited ben" }).waitFor();

    const invitation = ben.page.locator('.invitation[data-room="plans"]');
    await invitation.waitFor({ timeout: 10_000 });
    assert.match((await invitation.textContent()) ?? "", /ann invited you to #plans/);
    await invitation.getByRole("button", { name: /^Join/ }).click();
    await ben.page.locator("#room-title", { hasText: "plans" }).waitFor();
    await invitation.waitFor({ state: "detached" });
    assert.deepEqual(await system.store.members("plans"), ["ann", "ben"]);
    // A member who is not the owner sees that it is invite-only, without the switch.
    assert.equal(await ben.page.getByLabel("Invite only").count(), 0);
    await ben.page.locator(".room-header", { hasText: "Invite only" }).waitFor();

    // An invitation that came before the page opened is there too, and Decline drops it.
    const annApi = newClient(system.address());
    await annApi.signIn("ann", PASSWORD);
    await annApi.createRoom("picnic");
    await annApi.invite("picnic", "ben");
    await ben.page.reload();
    const picnic = ben.page.locator('.invitation[data-room="picnic"]');
    await picnic.waitFor({ timeout: 10_000 });
    assert.match((await picnic.textContent()) ?? "", /You are invited to #picnic/);
    await picnic.getByRole("button", { name: /^Decline/ }).click();
    await picnic.waitFor({ state: "detached" });
    assert.equal(await system.store.isInvited("picnic", "ben"), false);
    annApi.close();
    assert.deepEqual(ann.pageErrors, []);
    assert.deepEqual(ben.pageErrors, []);
  } finally {
    cat.close();
    await closeAll(browsers);
    await system.stop();
  }
});
