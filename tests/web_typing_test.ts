/**
 * "ann is typing…" in two Chromium pages on an in-process gateway (AUTH=on), as people see it:
 * ann types, ben's page says so under the messages of the room; once ann sends, the line goes
 * and the message is there. A third person typing too makes it "ann and cleo are typing…".
 */

import assert from "node:assert/strict";
import {
  buildPage,
  closeAll,
  join,
  openBrowser,
  send,
  type TestBrowser,
  typingLine,
  waitForMessages,
  waitForTypingLine,
} from "./browser.ts";
import { startSystem } from "./helpers.ts";

Deno.test({
  name: "web page: ben sees ann typing under the messages, and the line goes once she sends",
  // Playwright keeps a pipe and timers to Chromium open between steps.
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await buildPage();
  const system = await startSystem({ config: { auth: "on" } });
  const browsers: TestBrowser[] = [];
  try {
    const base = `http://127.0.0.1:${system.gateways[0]!.httpPort}`;
    const [ann, ben, cleo] = await Promise.all([openBrowser(), openBrowser(), openBrowser()]);
    browsers.push(ann!, ben!, cleo!);
    await join(ann!.page, base, "ann");
    await join(ben!.page, base, "ben");
    await join(cleo!.page, base, "cleo");
    assert.equal(await typingLine(ben!.page), "", "nobody is typing");

    const annBox = ann!.page.getByLabel("Message", { exact: true });
    await annBox.fill("hello b");
    await waitForTypingLine(ben!.page, "ann is typing…");
    assert.equal(await typingLine(ann!.page), "", "ann is not told of herself");
    await cleo!.page.getByLabel("Message", { exact: true }).fill("me too");
    await waitForTypingLine(ben!.page, "ann and cleo are typing…");

    await annBox.fill("hello ben");
    await annBox.press("Enter");
    await waitForMessages(ben!.page, ["hello ben"]);
    await waitForTypingLine(ben!.page, "cleo is typing…");
    await cleo!.page.getByLabel("Message", { exact: true }).fill("");
    await waitForTypingLine(ben!.page, "");
    await send(ben!.page, "thanks");
    await waitForMessages(ann!.page, ["hello ben", "thanks"]);
    for (const b of browsers) assert.deepEqual(b.pageErrors, []);
  } finally {
    await closeAll(browsers);
    await system.stop();
  }
});
