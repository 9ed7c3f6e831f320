/**
 * Blocking on the page, in Chromium on an in-process gateway (AUTH=on), as people use it: ann
 * blocks ben from the online list, his messages leave her conversation (those shown already too)
 * and no more come, he is listed under "Blocked", and Unblock there brings him back.
 */

import assert from "node:assert/strict";
import {
  buildPage,
  closeAll,
  join,
  openBrowser,
  PASSWORD,
  type TestBrowser,
  waitForMessages,
} from "./browser.ts";
import { connectUser, newClient, startSystem, waitFor } from "./helpers.ts";

Deno.test({
  name: "web page: Block on the online list hides a person's messages; Unblock brings them back",
  // Playwright keeps a pipe and timers to Chromium open between steps.
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await buildPage();
  const system = await startSystem({ config: { auth: "on" } });
  const browsers: TestBrowser[] = [];
  const ben = newClient(system.address());
  const cat = newClient(system.address());
  await ben.signIn("ben", PASSWORD);
  await cat.signIn("cat", PASSWORD);
  const benOnline = connectUser(system.address(), "ben", { client: ben });
  try {
    const ann = await openBrowser();
    browsers.push(ann);
    const page = ann.page;
    await join(page, `http://127.0.0.1:${system.gateways[0]!.httpPort}`, "ann");
    await ben.send("", "hello from ben", { room: "" });
    await waitForMessages(page, ["hello from ben"]);

    await page.getByRole("button", { name: "Block ben" }).click();
    const blockedList = page.locator("[data-blocked-user]");
    await blockedList.first().waitFor({ timeout: 10_000 });
    assert.deepEqual(await blockedList.allTextContents(), ["benUnblock"]);
    await waitFor(
      async () => (await page.locator("li.msg").count()) === 0,
      10_000,
      "ben's message leaves the view",
    );
    assert.deepEqual(await system.store.blockedBy("ann"), ["ben"]);
    await ben.send("", "still here", { room: "" });
    await cat.send("", "cat here", { room: "" });
    const shown = await waitForMessages(page, ["cat here"]);
    assert.deepEqual(shown.map((m) => m.text), ["cat here"]);
    assert.equal(
      await page.getByRole("button", { name: "Unblock ben" }).count(),
      2,
      "in the online list and in the blocked list",
    );

    await blockedList.getByRole("button", { name: "Unblock ben" }).click();
    await blockedList.first().waitFor({ state: "detached", timeout: 10_000 });
    await ben.send("", "back again", { room: "" });
    await waitForMessages(page, ["cat here", "back again"]);
    assert.deepEqual(ann.pageErrors, []);
  } finally {
    benOnline.close();
    cat.close();
    await closeAll(browsers);
    await system.stop();
  }
});
