/**
 * Search on the page, in Chromium on an in-process gateway (AUTH=on), as people use it: ann looks
 * for a word from long ago, the result names its room and sender with the word marked, and
 * pressing it shows the message among its neighbours (scrolled to, highlighted) until she goes
 * back to the newest messages.
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
import { newClient, startSystem, waitFor } from "./helpers.ts";
import { snippet } from "../web/search_panel.tsx";

Deno.test("snippet: the matching words marked, a long text cut around the first", () => {
  assert.deepEqual(snippet("Hay, the needle!", ["needle", "hay"]), [
    { text: "Hay", match: true },
    { text: ", ", match: false },
    { text: "the", match: false },
    { text: " ", match: false },
    { text: "needle", match: true },
    { text: "!", match: false },
  ]);
  const long = `${"word ".repeat(60)}needle ${"tail ".repeat(60)}`;
  const cut = snippet(long, ["needle"]);
  assert.equal(cut[0]!.text, "…");
  assert.equal(cut.at(-1)!.text, "…");
  assert.ok(cut.some((p) => p.match && p.text === "needle"));
  const shown = cut.map((p) => p.text).join("");
  assert.ok(shown.length <= 142, `${shown.length} characters`);
  assert.deepEqual(snippet("", ["x"]), []);
});

Deno.test({
  name: "web page: a search result opens its room at the message, in context, highlighted",
  // Playwright keeps a pipe and timers to Chromium open between steps.
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await buildPage();
  // Ben writes 120 lines in a row to set the scene: not a flood.
  const system = await startSystem({
    config: { auth: "on", rateLimitPerSecond: 1000, rateLimitBurst: 1000 },
  });
  const browsers: TestBrowser[] = [];
  const ben = newClient(system.address());
  try {
    await ben.signIn("ben", PASSWORD);
    for (let i = 1; i <= 120; i++) {
      await ben.send("", i === 10 ? "the Needle is in the hay" : `line ${i}`, { room: "" });
    }
    await waitFor(async () => (await system.store.lastSeq("general")) === 120, 10_000, "stored");

    const ann = await openBrowser();
    browsers.push(ann);
    const page = ann.page;
    await join(page, `http://127.0.0.1:${system.gateways[0]!.httpPort}`, "ann");
    await waitForMessages(page, ["line 119", "line 120"]);
    assert.equal(await page.locator('li.msg[data-seq="10"]').count(), 0, "not loaded yet");

    await page.getByLabel("Words to find").fill("NEEDLE hay");
    await page.getByLabel("Words to find").press("Enter");
    const result = page.locator(".search-result");
    await result.first().waitFor({ timeout: 10_000 });
    assert.equal(await result.count(), 1);
    assert.match((await result.textContent()) ?? "", /#general ben .*the Needle is in the hay/);
    assert.deepEqual(await result.locator("mark").allTextContents(), ["Needle", "hay"]);
    // The search panel's own styles apply (an unclosed rule before them once hid them all).
    assert.equal(
      await page.locator(".search-list").evaluate((list) => getComputedStyle(list).listStyleType),
      "none",
    );

    await result.click();
    const found = page.locator('li.msg[data-seq="10"]');
    await found.waitFor({ timeout: 10_000 });
    await page.locator(".context-bar").waitFor();
    assert.equal(await found.locator(".msg-text").textContent(), "the Needle is in the hay");
    // Its neighbours are there, the newest are not, and the message is in view.
    assert.equal(await page.locator('li.msg[data-seq="9"]').count(), 1);
    assert.equal(await page.locator('li.msg[data-seq="11"]').count(), 1);
    assert.equal(await page.locator('li.msg[data-seq="120"]').count(), 0);
    assert.ok(await found.isVisible());
    const inView = await found.evaluate((li) => {
      const box = li.getBoundingClientRect();
      const frame = li.closest(".messages")!.getBoundingClientRect();
      return box.top >= frame.top && box.bottom <= frame.bottom;
    });
    assert.ok(inView, "the found message is scrolled into view");
    await page.locator('li.msg[data-seq="10"][data-found]').waitFor({ state: "attached" });

    await page.getByRole("button", { name: "Back to the newest" }).click();
    await waitForMessages(page, ["line 119", "line 120"]);
    assert.equal(await page.locator(".context-bar").count(), 0);
    assert.deepEqual(ann.pageErrors, []);
  } finally {
    ben.close();
    await closeAll(browsers);
    await system.stop();
  }
});
