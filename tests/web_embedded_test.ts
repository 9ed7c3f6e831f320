/**
 * The web page in Chromium against `deno task start` (embedded mode) run as
 * a person would run it, with the default settings (sign-in on): the task
 * builds the page, then serves it and the gRPC-Web bridge on the HTTP port.
 *
 * Screenshots go to .tmp/screenshots, or to SCREENSHOTS_DIR when set
 * (`SCREENSHOTS_DIR=docs/screenshots` refreshes the README's pictures).
 */

import assert from "node:assert/strict";
import type { Page, Route } from "playwright-core";
import {
  blur,
  clickMessageAction,
  closeAll,
  currentRoom,
  DESKTOP,
  focused,
  hasHorizontalScroll,
  join,
  joinError,
  notes,
  openBrowser,
  openPanel,
  openRoom,
  PASSWORD,
  PHONE,
  roomByName,
  roomIds,
  send,
  shownMessages,
  signIn,
  tabUntil,
  type TestBrowser,
  unreadIn,
  waitForMessages,
  waitForOnline,
  waitForRoom,
  waitForStatus,
} from "./browser.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { newClient, waitFor } from "./helpers.ts";
import { freePort } from "./processes.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SCREENSHOTS = Deno.env.get("SCREENSHOTS_DIR") ?? `${ROOT}.tmp/screenshots`;

interface TaskProcess {
  readonly output: string[];
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Runs `deno task start` with `env`, collecting its output. */
function startTask(env: Record<string, string>): TaskProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "start"],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of stream) {
      rest += decoder.decode(chunk, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop()!;
      output.push(...lines);
    }
    if (rest) output.push(rest);
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => (exited = s));
  return {
    output,
    async waitForLine(pattern, timeoutMs = 60_000) {
      await waitFor(
        () => output.some((l) => pattern.test(l)) || exited !== undefined,
        timeoutMs,
        `deno task start to print ${pattern}`,
      ).catch((err) => {
        throw new Error(`${err.message}\n${output.slice(-30).join("\n")}`);
      });
      if (!output.some((l) => pattern.test(l))) {
        throw new Error(
          `deno task start exited (${exited?.code}) before printing ${pattern}\n${
            output.slice(-30).join("\n")
          }`,
        );
      }
    },
    async stop() {
      if (exited === undefined) {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, 15_000);
      await status;
      clearTimeout(timer);
      await pumped;
    },
  };
}

async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png` });
}

/** The day lines of the room shown ("Today", "Yesterday", a date), in order. */
function dayLines(page: Page): Promise<string[]> {
  return page.locator("li.day").allTextContents();
}

/** Whether the message list is scrolled to its bottom. */
function atBottom(page: Page): Promise<boolean> {
  return page.locator(".messages").evaluate((el) =>
    el.scrollHeight - el.scrollTop - el.clientHeight <= 2
  );
}

Deno.test({
  name: "web page against `deno task start` (embedded mode, sign-in on)",
  // Playwright keeps a pipe and timers to Chromium open between steps.
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const httpPort = freePort();
  const grpcPort = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "chat-web-" });
  const env = {
    HTTP_PORT: String(httpPort),
    GRPC_PORT: String(grpcPort),
    DATABASE_PATH: `${dataDir}/chat.db`,
    // SQLite in the temporary folder, even when the test run provides a PostgreSQL URL.
    DATABASE_URL: "",
    // The token secret is generated there, and kept across the restart below.
    AUTH_SECRET_FILE: `${dataDir}/auth-secret`,
    SERVER_ID: "web-test",
    // Sending 30 messages in a row is part of the test, not a flood.
    RATE_LIMIT_PER_SECOND: "100",
    RATE_LIMIT_BURST: "100",
  };
  const base = `http://127.0.0.1:${httpPort}`;
  let server: TaskProcess | undefined = startTask(env);
  const browsers: TestBrowser[] = [];
  const open = async (viewport = DESKTOP) => {
    const b = await openBrowser({ viewport });
    browsers.push(b);
    return b;
  };
  const close = async (b: TestBrowser) => {
    await b.close();
    browsers.splice(browsers.indexOf(b), 1);
  };
  /** How many messages with exactly `text` the page shows. */
  const countOf = async (page: Page, text: string) =>
    (await shownMessages(page)).filter((m) => m.text === text).length;

  try {
    await server.waitForLine(/Gateway listening/);
    assert.ok(
      !server.output.some((l) => /AUTH=off/.test(l)),
      "sign-in is on by default",
    );

    await t.step("serves the built page and its assets, nothing from elsewhere", async () => {
      const page = await fetch(`${base}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
      const html = await page.text();
      assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, "the page loads nothing from a CDN");
      const assets = [["/app.js", /javascript/], ["/styles.css", /text\/css/]] as const;
      for (const [path, type] of assets) {
        const res = await fetch(`${base}${path}`);
        assert.equal(res.status, 200, path);
        assert.match(res.headers.get("content-type") ?? "", type, path);
        const body = await res.text();
        assert.doesNotMatch(body, /https?:\/\/(cdn|unpkg|esm\.sh|fonts\.)/, path);
      }
      const missing = await fetch(`${base}/nothing-here.js`);
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    });

    const ann = await open(DESKTOP);
    const ben = await open(PHONE);

    await t.step(
      "keyboard only: Tab reaches name, password, Join, then the message box",
      async () => {
        await ann.page.goto(base);
        await screenshot(ann.page, "join-desktop");
        await blur(ann.page);
        await tabUntil(ann.page, (d) => d === "input:Your name");
        await ann.page.keyboard.type("ann");
        await tabUntil(
          ann.page,
          (d) => d === "input:Password — a new name creates an account",
          3,
        );
        await ann.page.keyboard.type(PASSWORD);
        await tabUntil(ann.page, (d) => d === "button:Join", 3);
        await ann.page.keyboard.press("Enter");
        await waitForStatus(ann.page, "connected");
        assert.equal(await focused(ann.page), "textarea:Message", "the message box has the focus");
        // From the top of the page, Tab reaches the message box too.
        await blur(ann.page);
        await tabUntil(ann.page, (d) => d === "textarea:Message");
        const name = await ann.page.evaluate(() => localStorage.getItem("chat.name"));
        assert.equal(name, "ann", "the name is remembered in localStorage");
        const session = JSON.parse(
          await ann.page.evaluate(() => sessionStorage.getItem("chat.session")) ?? "{}",
        );
        assert.match(session.token ?? "", /^[\w-]+\.[\w-]+\.[\w-]+$/, "the token is kept");
        assert.equal(session.user?.id, "ann");
        assert.equal(session.password, undefined, "the password is not kept");
        assert.equal(await currentRoom(ann.page), "general");
      },
    );

    await t.step("two users see each other's messages in order, with sender and time", async () => {
      await join(ben.page, base, "ben");
      await waitForOnline(ann.page, ["ann", "ben"]);
      await waitForOnline(ben.page, ["ann", "ben"]);
      const before = Date.now();
      const conversation = [
        ["ann", "Morning! Is the release build green?"],
        ["ben", "Morning Ann. All green, every test passed on the first run."],
        ["ben", "I will deploy right after lunch."],
        ["ann", "Great, thank you!\nI will update the release notes meanwhile."],
        [
          "ben",
          "One thing for the notes: the page now reconnects on its own and catches up on " +
          "what it missed, so people on flaky Wi-Fi no longer need to reload.",
        ],
      ] as const;
      for (const [who, text] of conversation) {
        await send((who === "ann" ? ann : ben).page, text);
        await waitForMessages((who === "ann" ? ben : ann).page, [text]);
      }
      const expected = conversation.map(([, text]) => text);
      const senders = conversation.map(([who]) => who);
      for (const [who, b] of [["ann", ann], ["ben", ben]] as const) {
        const shown = await waitForMessages(b.page, expected);
        assert.deepEqual(shown.map((m) => m.text), expected, `${who} sees them all in order`);
        assert.deepEqual(shown.map((m) => m.sender), senders, `${who} sees who sent each`);
        assert.deepEqual(shown.map((m) => m.mine), senders.map((s) => s === who));
        for (const m of shown) {
          assert.match(m.time, /\d{1,2}[:.]\d{2}/, "each message shows its time");
          const at = Date.parse(m.datetime);
          assert.ok(at >= before - 60_000 && at <= Date.now() + 60_000, `time ${m.datetime}`);
        }
      }
      // Visible to a sighted reader too: the other person's name is shown, not only announced.
      assert.equal(
        await ann.page.locator("li.msg.theirs.first .msg-meta").first().isVisible(),
        true,
      );
    });

    await t.step("phone and desktop layouts fit without sideways scrolling", async () => {
      for (const [b, size] of [[ann, DESKTOP], [ben, PHONE]] as const) {
        assert.deepEqual(b.page.viewportSize(), size);
        assert.equal(await hasHorizontalScroll(b.page), false);
        const box = await b.page.locator(".composer").boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= size.width + 0.5, "composer fits");
        assert.ok(box!.y + box!.height <= size.height + 0.5, "composer is on screen");
      }
      // Desktop shows the rooms and who is online beside the chat; a phone behind a button.
      assert.equal(await ann.page.locator("#side-panel").isVisible(), true);
      assert.equal(await ben.page.locator("#side-panel").isVisible(), false);
      await screenshot(ann.page, "chat-desktop");
      await screenshot(ben.page, "chat-phone");
      const toggle = ben.page.getByRole("button", { name: "Rooms and people" });
      await toggle.click();
      await ben.page.locator("#side-panel.open").waitFor();
      await ben.page.waitForTimeout(300);
      assert.equal(await ben.page.locator("#side-panel").isVisible(), true);
      assert.equal(await hasHorizontalScroll(ben.page), false);
      await screenshot(ben.page, "panel-phone");
      await ben.page.keyboard.press("Escape");
      assert.equal(await toggle.getAttribute("aria-expanded"), "false");
      const phoneJoin = await open(PHONE);
      await phoneJoin.page.goto(base);
      assert.equal(await hasHorizontalScroll(phoneJoin.page), false);
      await screenshot(phoneJoin.page, "join-phone");
      await close(phoneJoin);
    });

    await t.step("Enter sends, Shift+Enter makes a new line", async () => {
      const box = ann.page.getByLabel("Message", { exact: true });
      await box.click();
      await ann.page.keyboard.type("first line");
      await ann.page.keyboard.press("Shift+Enter");
      await ann.page.keyboard.type("second line");
      assert.equal(await box.inputValue(), "first line\nsecond line", "Shift+Enter adds a line");
      assert.equal((await shownMessages(ann.page)).length, 5, "nothing sent yet");
      await ann.page.keyboard.press("Enter");
      await waitForMessages(ben.page, ["first line\nsecond line"]);
      assert.equal(await box.inputValue(), "", "the box is empty after sending");
    });

    await t.step(
      "a newcomer sees recent history; the online list updates when one closes",
      async () => {
        const cat = await open(DESKTOP);
        await join(cat.page, base, "cat");
        // The room is not empty on arrival: its recent history is loaded, once.
        const sofar = (await shownMessages(ann.page)).map((m) => m.text);
        assert.equal(sofar.length, 6);
        const recent = await waitForMessages(cat.page, sofar);
        assert.deepEqual(recent.map((m) => m.text), sofar, "the six messages so far, once each");
        assert.deepEqual(recent.map((m) => m.sender), ["ann", "ben", "ben", "ann", "ben", "ann"]);
        await waitForOnline(ann.page, ["ann", "ben", "cat"]);
        await waitForOnline(ben.page, ["ann", "ben", "cat"]);
        await waitForOnline(cat.page, ["ann", "ben", "cat"]);
        await close(cat);
        await waitForOnline(ann.page, ["ann", "ben"]);
        await waitForOnline(ben.page, ["ann", "ben"]);
      },
    );

    await t.step("an over-long message shows the server's error in place", async () => {
      const tooLong = "x".repeat(64 * 1024 + 100);
      await send(ann.page, tooLong);
      const error = ann.page.locator(".composer-error[role=alert]");
      await error.waitFor({ timeout: 10_000 });
      const text = await error.textContent() ?? "";
      assert.match(text, /Not sent/);
      assert.match(text, /content is 65636 bytes, the limit is 65536/, "the server's words");
      assert.equal(await error.locator(".unsent-text").textContent(), tooLong, "the text is kept");
      assert.equal(await hasHorizontalScroll(ann.page), false);
      await screenshot(ann.page, "error-desktop");
      // Edit takes it back into the box, to shorten it.
      await error.getByRole("button", { name: "Edit" }).click();
      const box = ann.page.getByLabel("Message", { exact: true });
      assert.equal(await box.inputValue(), tooLong);
      assert.equal(await error.count(), 0);
      await box.fill("");
      assert.equal((await shownMessages(ben.page)).length, 6, "ben got nothing");
    });

    await t.step(
      "refused messages wait above the box, in the order sent, never merged into what is typed",
      async () => {
        const box = ann.page.getByLabel("Message", { exact: true });
        const tooLong = (n: number) => `${n} ${"y".repeat(64 * 1024)}`;
        // Three sends in a burst, and a fourth text typed while their refusals come back.
        for (const n of [1, 2, 3]) await send(ann.page, tooLong(n));
        await box.fill("still typing");
        const unsent = ann.page.locator(".unsent li");
        await waitFor(async () => await unsent.count() === 3, 10_000, "three refusals");
        const texts = await ann.page.locator(".unsent-text").allTextContents();
        assert.deepEqual(texts.map((t) => t.split(" ")[0]), ["1", "2", "3"], "in the order sent");
        assert.equal(await box.inputValue(), "still typing", "nothing merged into the box");
        // Edit waits for an empty box; discarding removes one, and the others keep their order.
        assert.equal(await unsent.first().getByRole("button", { name: "Edit" }).isDisabled(), true);
        await unsent.nth(1).getByRole("button", { name: "Discard the message" }).click();
        assert.deepEqual(
          (await ann.page.locator(".unsent-text").allTextContents()).map((t) => t.split(" ")[0]),
          ["1", "3"],
        );
        for (let i = 0; i < 2; i++) {
          await unsent.first().getByRole("button", { name: "Discard the message" }).click();
        }
        assert.equal(await unsent.count(), 0);
        await box.fill("");
        assert.equal((await shownMessages(ben.page)).length, 6, "ben got none of them");
      },
    );

    await t.step("long messages wrap; many messages scroll and stay at the bottom", async () => {
      const long = `A long line: ${"word ".repeat(120)}${"unbroken".repeat(40)}`;
      await send(ben.page, long);
      await waitForMessages(ann.page, [long]);
      for (const b of [ann, ben]) {
        assert.equal(await hasHorizontalScroll(b.page), false, "no sideways scroll");
        const overflow = await b.page.locator("li.msg .bubble").last().evaluate((el) =>
          el.scrollWidth > el.clientWidth + 1
        );
        assert.equal(overflow, false, "the long message wraps inside its bubble");
      }
      const many = Array.from({ length: 30 }, (_, i) => `Message number ${i + 1}`);
      for (const text of many) await send(ben.page, text);
      await waitForMessages(ann.page, many);
      assert.equal(await atBottom(ann.page), true, "the reader at the bottom stays there");
      assert.equal(await atBottom(ben.page), true);

      // The reader scrolls up: new messages do not move what they are reading.
      await ann.page.locator(".messages").evaluate((el) => (el.scrollTop = 200));
      await ann.page.waitForTimeout(100);
      const reading = ann.page.locator("li.msg", { hasText: "Message number 5" }).first();
      const composerBefore = await ann.page.locator(".composer").boundingBox();
      const yBefore = (await reading.boundingBox())!.y;
      await send(ben.page, "While you were reading");
      await send(ben.page, "And another one");
      await waitForMessages(ann.page, ["While you were reading", "And another one"]);
      assert.equal((await reading.boundingBox())!.y, yBefore, "no jump while reading");
      assert.deepEqual(await ann.page.locator(".composer").boundingBox(), composerBefore);
      assert.equal(await atBottom(ann.page), false, "the reader stays where they scrolled");
      const jump = ann.page.locator("button.jump");
      assert.match(await jump.textContent() ?? "", /2 new messages/);
      await jump.click();
      await waitFor(() => atBottom(ann.page), 3000, "scrolled to the bottom");
    });

    await t.step(
      "rooms: created by one, joined by the other, messages stay in their room",
      async () => {
        const generalBefore = (await shownMessages(ben.page)).map((m) => m.text);
        await roomByName(ann.page, "design", "Create");
        await ann.page.locator('.room-item[data-room="design"][aria-current="true"]').waitFor();
        assert.deepEqual(await roomIds(ann.page), ["general", "design"]);
        assert.equal(await ann.page.locator(".room-title-name").textContent(), "design");
        assert.deepEqual(await shownMessages(ann.page), [], "a new room starts empty");
        assert.equal(
          await ann.page.getByLabel("Message", { exact: true }).getAttribute("placeholder"),
          "Message #design",
        );

        // Joining a room that does not exist says so in place.
        await roomByName(ben.page, "desing", "Join");
        const error = ben.page.locator("#room-error[role=alert]");
        await error.waitFor();
        assert.match(
          await error.textContent() ?? "",
          /Room "desing" does not exist; create it first/,
        );

        await roomByName(ben.page, "design", "Join");
        await ben.page.locator('.room-item[data-room="design"][aria-current="true"]').waitFor({
          state: "attached",
        });
        await ben.page.locator("#side-panel").waitFor({ state: "hidden" }); // the sheet closes
        await waitFor(async () => (await notes(ann.page)).includes("ben joined"), 10_000, "note");
        assert.ok((await notes(ann.page)).includes("You created the room"), "not 'You joined'");
        assert.equal(await ann.page.locator(".room-detail").textContent(), "2 members");

        await send(ann.page, "Design review at three");
        await waitForMessages(ben.page, ["Design review at three"]);
        await send(ben.page, "I will bring the mockups");
        await waitForMessages(ann.page, ["Design review at three", "I will bring the mockups"]);

        // Only in the room: general is as it was.
        await openRoom(ben.page, "general");
        await waitForMessages(ben.page, generalBefore.slice(-3));
        assert.deepEqual((await shownMessages(ben.page)).map((m) => m.text), generalBefore);

        // A message in a room not shown counts as unread there; one that names ben, as a mention.
        await send(ann.page, "Room 2 is booked, @ben");
        await waitFor(async () => await unreadIn(ben.page, "design") === 1, 10_000, "unread 1");
        assert.equal(await unreadIn(ben.page, "general"), 0);
        const design = ben.page.locator('.room-item[data-room="design"]');
        assert.equal(await design.locator(".mention-badge").textContent(), "@");
        assert.match(await design.textContent() ?? "", /, 1 mention(?!s)/);
        assert.equal(
          await ben.page.locator('.room-item[data-room="general"] .mention-badge').count(),
          0,
        );
        await ben.page.getByRole("button", { name: "Rooms and people, 1 unread" }).waitFor();
        await openPanel(ben.page);
        await ben.page.waitForTimeout(300);
        await screenshot(ben.page, "rooms-phone");
        await openRoom(ben.page, "design");
        await waitFor(
          async () => await unreadIn(ben.page, "design") === 0,
          10_000,
          "read once shown",
        );
        assert.equal(await design.locator(".mention-badge").count(), 0, "the mention read too");
        await waitForMessages(ben.page, [
          "Design review at three",
          "I will bring the mockups",
          "Room 2 is booked, @ben",
        ]);

        // A direct message, started from the online list.
        await ann.page.getByRole("button", { name: "Message ben" }).click();
        await ann.page.locator('.room-item[data-room="dm:ann:ben"][aria-current="true"]').waitFor();
        assert.equal(await ann.page.locator(".room-title-name").textContent(), "ben");
        await send(ann.page, "Lunch after the review?");
        await waitForRoom(ben.page, "dm:ann:ben");
        await waitFor(
          async () => await unreadIn(ben.page, "dm:ann:ben") === 1,
          10_000,
          "dm unread",
        );
        await openRoom(ben.page, "dm:ann:ben");
        await waitForMessages(ben.page, ["Lunch after the review?"]);
        // Ann sees that ben read it, under her message.
        await ann.page.locator("li.seen").waitFor({ timeout: 10_000 });
        assert.equal(await ann.page.locator("li.seen").textContent(), "Seen");
        await send(ben.page, "Yes!");
        await waitForMessages(ann.page, ["Lunch after the review?", "Yes!"]);
        assert.deepEqual(await roomIds(ben.page), ["general", "design", "dm:ann:ben"]);

        await openRoom(ann.page, "design");
        assert.equal(await hasHorizontalScroll(ann.page), false);
        await screenshot(ann.page, "rooms-desktop");
        for (const b of [ann, ben]) await openRoom(b.page, "general");
        await waitForMessages(ann.page, generalBefore.slice(-3));
        assert.deepEqual((await shownMessages(ann.page)).map((m) => m.text), generalBefore);
      },
    );

    await t.step(
      "the room directory: the owner sets a topic; another user searches, joins from the list",
      async () => {
        const topic = "Tomatoes, beans and other summer plans";
        await roomByName(ann.page, "garden", "Create");
        await ann.page.locator('.room-item[data-room="garden"][aria-current="true"]').waitFor();
        await ann.page.getByRole("button", { name: "Set topic" }).click();
        await ann.page.getByLabel("Topic", { exact: true }).fill(`  ${topic} `);
        await ann.page.locator(".topic-form").getByRole("button", { name: "Save" }).click();
        await ann.page.locator(".room-topic", { hasText: topic }).waitFor();
        assert.equal(await ann.page.getByRole("button", { name: "Edit topic" }).count(), 1);

        await openPanel(ben.page);
        await ben.page.getByRole("button", { name: "Browse rooms" }).click();
        const entry = (id: string) => ben.page.locator(`.directory-entry[data-room="${id}"]`);
        await entry("design").waitFor();
        assert.equal(
          await entry("design").getByRole("button", { name: "Open #design" }).count(),
          1,
        );
        await ben.page.getByLabel("Search rooms").fill("TOMATO");
        await entry("design").waitFor({ state: "detached" });
        await entry("garden").waitFor();
        assert.equal(await entry("garden").locator(".directory-topic").textContent(), topic);
        assert.equal(await entry("garden").locator(".directory-members").textContent(), "1 member");
        assert.equal(await ben.page.locator(".directory-entry").count(), 1, "only the match");
        await ben.page.getByLabel("Search rooms").fill("no such room anywhere");
        await ben.page.locator(".directory .panel-note", { hasText: "No room matches." }).waitFor();
        await ben.page.getByLabel("Search rooms").fill("gard");
        await entry("garden").getByRole("button", { name: "Join #garden" }).click();
        await ben.page.locator('.room-item[data-room="garden"][aria-current="true"]').waitFor({
          state: "attached",
        });
        assert.equal(await ben.page.locator(".room-title-name").textContent(), "garden");
        assert.equal(await ben.page.locator(".room-topic").textContent(), topic);
        assert.equal(
          await ben.page.getByRole("button", { name: /(Set|Edit) topic/ }).count(),
          0,
          "only the owner edits it",
        );
        assert.equal(await hasHorizontalScroll(ben.page), false);
        await screenshot(ben.page, "directory-phone");

        // Back as before: later steps count ben's rooms.
        await ben.page.getByRole("button", { name: "Leave room" }).click();
        await waitFor(async () => !(await roomIds(ben.page)).includes("garden"), 10_000, "left");
        for (const b of [ann, ben]) await openRoom(b.page, "general");
      },
    );

    await t.step("offline for a while: the page catches up exactly once, in order", async () => {
      const before = (await shownMessages(ben.page)).map((m) => m.text);
      await ben.context.setOffline(true);
      await waitForStatus(ben.page, "reconnecting");
      const missed = ["Sent while ben was offline 1", "… 2", "… and 3"];
      for (const text of missed) await send(ann.page, text);
      await waitForMessages(ann.page, missed);
      await ben.page.waitForTimeout(500);
      assert.deepEqual(
        (await shownMessages(ben.page)).map((m) => m.text),
        before,
        "nothing arrives while offline",
      );
      await ben.context.setOffline(false);
      await waitForStatus(ben.page, "connected", 20_000);
      const shown = await waitForMessages(ben.page, missed, 15_000);
      assert.deepEqual(shown.map((m) => m.text), [...before, ...missed], "once each, in order");
      await ben.page.waitForTimeout(500);
      for (const text of missed) assert.equal(await countOf(ben.page, text), 1, text);
      assert.equal(await ben.page.locator("li.note", { hasText: /not shown/ }).count(), 0);
    });

    await t.step("reconnects by itself when the server comes back on the same port", async () => {
      const annBefore = (await shownMessages(ann.page)).map((m) => m.text);
      await server!.stop();
      server = undefined;
      for (const b of [ann, ben]) await waitForStatus(b.page, "reconnecting", 15_000);
      const banner = ann.page.locator(".banner");
      assert.match(await banner.textContent() ?? "", /Reconnecting/);
      assert.equal(await hasHorizontalScroll(ben.page), false);
      // Sending now says why it cannot, in place, and keeps the text.
      await send(ben.page, "Anyone there?");
      const error = ben.page.locator(".composer-error[role=alert]");
      await error.waitFor({ timeout: 10_000 });
      assert.match(await error.textContent() ?? "", /Not sent: the server is unavailable/);
      assert.equal(await error.locator(".unsent-text").textContent(), "Anyone there?");
      await screenshot(ann.page, "reconnecting-desktop");
      await screenshot(ben.page, "reconnecting-phone");

      // Same database and token secret: the tokens the pages hold still work.
      server = startTask(env);
      await server.waitForLine(/Gateway listening/);
      for (const b of [ann, ben]) await waitForStatus(b.page, "connected", 30_000);
      assert.equal(await banner.count(), 0, "the banner is gone");
      await waitForOnline(ann.page, ["ann", "ben"]);
      await waitForOnline(ben.page, ["ann", "ben"]);
      // What was not sent goes now, as it was.
      await error.getByRole("button", { name: "Send again" }).click();
      await waitForMessages(ann.page, ["Anyone there?"]);
      assert.equal(await error.count(), 0);
      await send(ben.page, "Back again");
      await waitForMessages(ann.page, ["Back again"]);
      assert.deepEqual(
        (await shownMessages(ann.page)).map((m) => m.text),
        [...annBefore, "Anyone there?", "Back again"],
        "nothing repeated after the restart",
      );
    });

    await t.step("a reload rejoins with the kept token, and shows recent history", async () => {
      const before = (await shownMessages(ben.page)).map((m) => m.text);
      // A message in a room not shown: its badge comes back after the reload, from the server.
      await openRoom(ann.page, "design");
      await send(ann.page, "Badge for ben");
      await waitForMessages(ann.page, ["Badge for ben"]);
      await openRoom(ann.page, "general");
      await waitFor(async () => await unreadIn(ben.page, "design") === 1, 10_000, "the badge");
      await ben.page.reload();
      await waitForStatus(ben.page, "connected");
      assert.equal(await ben.page.getByLabel("Your name").count(), 0, "no sign-in screen");
      await waitForOnline(ann.page, ["ann", "ben"]);
      const shown = await waitForMessages(ben.page, before.slice(-5));
      assert.deepEqual(
        shown.map((m) => m.text),
        before.slice(-shown.length),
        "the last messages, from history, once each",
      );
      await send(ben.page, "Reloaded and back");
      await waitForMessages(ann.page, ["Reloaded and back"]);
      const last = (await shownMessages(ann.page)).at(-1);
      assert.equal(last?.sender, "ben");
      assert.deepEqual(await roomIds(ben.page), ["general", "design", "dm:ann:ben"]);
      await waitFor(async () => await unreadIn(ben.page, "design") === 1, 10_000, "kept badge");

      // Read here, it stays read after the next reload: the server keeps the position.
      await openRoom(ben.page, "design");
      await waitForMessages(ben.page, ["Badge for ben"]);
      await openRoom(ben.page, "general");
      assert.equal(await unreadIn(ben.page, "design"), 0);
      const benElsewhere = newClient(`127.0.0.1:${grpcPort}`);
      try {
        await benElsewhere.signIn("ben", PASSWORD);
        await waitFor(
          async () => (await benElsewhere.listRooms()).find((r) => r.id === "design")?.unread === 0,
          10_000,
          "the server to have the read position",
        );
      } finally {
        benElsewhere.close();
      }
      await ben.page.reload();
      await waitForStatus(ben.page, "connected");
      await waitFor(async () => (await roomIds(ben.page)).includes("design"), 10_000, "rooms");
      assert.equal(await unreadIn(ben.page, "design"), 0, "still read after the reload");
    });

    await t.step("a token the server refuses sends the page back to sign-in", async () => {
      await ben.page.evaluate(`(() => {
        const session = JSON.parse(sessionStorage.getItem("chat.session"));
        session.token = "not.a.token";
        sessionStorage.setItem("chat.session", JSON.stringify(session));
      })()`);
      await ben.page.reload();
      assert.match(await joinError(ben.page), /sign in again.*the token is invalid/);
      assert.equal(await ben.page.getByLabel("Your name").inputValue(), "ben");
      assert.equal(
        await ben.page.evaluate(() => sessionStorage.getItem("chat.session")),
        null,
        "the refused token is forgotten",
      );
      await signIn(ben.page, "ben");
      await waitForStatus(ben.page, "connected");
    });

    await t.step("a wrong password or a bad name shows the error in place", async () => {
      const eve = await open(PHONE);
      await eve.page.goto(base);
      await signIn(eve.page, "ann", "not ann's password");
      assert.equal(await joinError(eve.page), "Wrong password for ann");
      const password = eve.page.getByLabel(/^Password/);
      assert.equal(await password.getAttribute("aria-invalid"), "true");
      assert.equal(await password.inputValue(), "", "the wrong password is cleared");
      assert.equal(await focused(eve.page), "input:Password — a new name creates an account");
      assert.equal(await hasHorizontalScroll(eve.page), false);
      await screenshot(eve.page, "join-error-phone");

      await signIn(eve.page, "eve", "short");
      assert.equal(
        await joinError(eve.page),
        "The password is 5 characters, it must be at least 8",
      );
      await signIn(eve.page, "eve smith", PASSWORD);
      assert.match(await joinError(eve.page), /may only hold letters, digits/);
      assert.equal(
        await eve.page.getByLabel("Your name").getAttribute("aria-invalid"),
        "true",
      );
      await waitForOnline(ann.page, ["ann", "ben"]);
      await signIn(eve.page, "eve", PASSWORD);
      await waitForStatus(eve.page, "connected");
      await waitForOnline(ann.page, ["ann", "ben", "eve"]);
    });

    await t.step(
      "a long room: older messages load while scrolling up, down to the room's start",
      async () => {
        const cat = newClient(`127.0.0.1:${grpcPort}`);
        try {
          cat.token = (await cat.signIn("cat", PASSWORD)).token;
          await cat.createRoom("archive");
          const texts = Array.from({ length: 230 }, (_, i) => `archive ${i + 1}`);
          for (const text of texts) {
            await cat.send("cat", text, { room: "archive" });
            await sleep(11); // within the rate limit, 100 a second
          }
          // A slow network, so that the reader sees older messages on their way.
          const slow = (route: Route) => setTimeout(() => route.continue(), 400);
          await ann.page.route("**/chat.Broadcast/History", slow);
          await roomByName(ann.page, "archive", "Join");
          await waitForMessages(ann.page, texts.slice(-50));
          assert.equal(await atBottom(ann.page), true, "a room opens at its newest message");
          assert.deepEqual(await dayLines(ann.page), ["Today"], "one line for today's messages");

          const reading = ann.page.locator('li.msg[data-seq="181"]');
          // Near the top, not at it: the next page is asked for before the reader gets there.
          await ann.page.locator(".messages").evaluate((el) => (el.scrollTop = 150));
          await ann.page.getByText("Loading older messages…").waitFor();
          const yBefore = (await reading.boundingBox())!.y;
          await waitFor(
            async () => (await shownMessages(ann.page)).length === 100,
            10_000,
            "a second page",
          );
          await ann.page.waitForTimeout(100);
          const moved = (await reading.boundingBox())!.y - yBefore;
          // Scrolling is in whole pixels.
          assert.ok(Math.abs(moved) <= 1, `what the reader was reading moved by ${moved} px`);
          assert.equal(await ann.page.locator(".history-start").count(), 0, "not the start yet");
          for (let i = 0; i < 5; i++) {
            if (await ann.page.locator(".history-start").count() > 0) break;
            await ann.page.locator(".messages").evaluate((el) => (el.scrollTop = 0));
            await ann.page.waitForTimeout(700);
          }
          await ann.page.locator(".history-start").waitFor();
          assert.equal(
            await ann.page.locator(".history-start").textContent(),
            "This is the start of #archive.",
          );
          assert.deepEqual(
            (await shownMessages(ann.page)).map((m) => m.text),
            texts,
            "every message once, in order",
          );
          await ann.page.unroute("**/chat.Broadcast/History", slow);
          await ann.page.locator(".messages").evaluate((el) => (el.scrollTop = 0));
          await screenshot(ann.page, "history-start-desktop");
        } finally {
          cat.close();
        }
      },
    );

    await t.step("a reload returns to the room the reader was in", async () => {
      assert.equal(await currentRoom(ann.page), "archive");
      await ann.page.reload();
      await waitForStatus(ann.page, "connected");
      await ann.page.locator('.room-item[data-room="archive"][aria-current="true"]').waitFor({
        state: "attached",
      });
      await waitForMessages(ann.page, ["archive 230"]);
      assert.equal(await ann.page.evaluate(() => localStorage.getItem("chat.room.ann")), "archive");
      // A room left is not returned to: general instead.
      await ann.page.getByRole("button", { name: "Leave room" }).click();
      await ann.page.locator('.room-item[data-room="general"][aria-current="true"]').waitFor({
        state: "attached",
      });
      await ann.page.evaluate(() => localStorage.setItem("chat.room.ann", "archive"));
      await ann.page.reload();
      await waitForStatus(ann.page, "connected");
      await waitForRoom(ann.page, "general");
      assert.equal(await currentRoom(ann.page), "general");
      // "Seen" is back after the reload too: the new stream hears how far ben read.
      await openRoom(ann.page, "dm:ann:ben");
      await ann.page.locator("li.seen").waitFor({ timeout: 10_000 });
      await openRoom(ann.page, "general");
    });

    await t.step("a second tab is signed in already; signing out in one ends both", async () => {
      const second = await ann.context.newPage();
      try {
        await second.goto(base);
        await waitForStatus(second, "connected");
        assert.equal(await second.getByLabel("Your name").count(), 0, "no sign-in screen");
        assert.equal(await second.locator(".me-name").textContent(), "ann");
        await ann.page.getByRole("button", { name: "Sign out" }).click();
        await ann.page.getByLabel("Your name").waitFor();
        assert.match(await joinError(second, 5000), /ended in another tab/);
        await signIn(ann.page, "ann");
        await waitForStatus(ann.page, "connected");
      } finally {
        await second.close();
      }
    });

    await t.step(
      "phone: the user's own name, a one-line box under a long room name, who is online in direct messages",
      async () => {
        const page = ben.page;
        assert.equal(await page.locator(".topbar .me .avatar").isVisible(), true);
        await openPanel(page);
        await page.locator(".panel-me").waitFor();
        assert.equal(
          (await page.locator(".panel-me-name").textContent())?.trim(),
          "Signed in as ben",
        );
        // ann is online (signed in again in the step before): her direct conversation says so.
        const dm = page.locator('.room-item[data-room="dm:ann:ben"][data-online="true"]');
        await dm.locator(".presence-dot").waitFor();
        assert.match(await dm.textContent() ?? "", /, online/);
        assert.equal(
          await page.locator('.room-item[data-room="general"]').getAttribute("data-online"),
          null,
          "rooms have no online state",
        );

        const long = `a-very-long-room-name-that-goes-on-${"and-on-".repeat(3)}`;
        await roomByName(page, long, "Create");
        await waitForRoom(page, long);
        const box = page.getByLabel("Message", { exact: true });
        assert.equal(await box.getAttribute("placeholder"), `Message #${long.slice(0, 19)}…`);
        const height = (await box.boundingBox())!.height;
        assert.ok(height < 48, `the empty box is one line high, not ${height} px`);
        assert.equal(await hasHorizontalScroll(page), false);
        await screenshot(page, "long-room-phone");
        await page.getByRole("button", { name: "Leave room" }).click();
        await page.locator('.room-item[data-room="general"][aria-current="true"]').waitFor({
          state: "attached",
        });
      },
    );

    await t.step("messages from another day come under that day's line", async () => {
      // The reader's clock says tomorrow: today's messages are yesterday's.
      const later = await open(DESKTOP);
      await later.page.clock.setFixedTime(Date.now() + 24 * 3600_000);
      await join(later.page, base, "dan");
      await waitForMessages(later.page, ["Reloaded and back"]);
      assert.deepEqual(await dayLines(later.page), ["Yesterday"]);
      await close(later);
    });

    await t.step(
      "a mention of me is marked, and notifies me when the page is in the background",
      async () => {
        await waitForRoom(ann.page, "general");
        await waitForRoom(ben.page, "general");
        // Allowed from the page's own button, as a reader would (the browser asks only on a click).
        const allow = ann.page.getByRole("button", { name: "Notify me of mentions" });
        await allow.waitFor();
        await ann.context.grantPermissions(["notifications"], { origin: base });
        await allow.click();
        await allow.waitFor({ state: "detached" });
        // Watch what the page shows (the real Notification still runs), and put the page in the
        // background as switching to another window does.
        await ann.page.evaluate(`(() => {
        const Real = Notification;
        globalThis.shown = [];
        globalThis.Notification = class extends Real {
          constructor(title, options) {
            super(title, options);
            globalThis.shown.push({ title, body: options?.body });
          }
        };
        Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
      })()`);
        await send(ben.page, "@ann the **build** is green, @nobody");
        await waitForMessages(ann.page, ["@ann the build is green, @nobody"]);
        const marked = ann.page.locator("li.msg.mentions-me").last();
        assert.equal(await marked.locator(".mention-me").textContent(), "@ann");
        assert.equal(await marked.locator(".mention").count(), 1, "@nobody is no member");
        await waitFor(
          async () => (await ann.page.evaluate<unknown[]>("globalThis.shown")).length === 1,
          5000,
          "a notification",
        );
        assert.deepEqual(await ann.page.evaluate("globalThis.shown"), [
          { title: "ben mentioned you in #general", body: "@ann the **build** is green, @nobody" },
        ]);
        // Looking at the page: marked, not notified. The sender sees the mention, not as theirs.
        await ann.page.evaluate(`delete document.visibilityState`);
        await send(ben.page, "and again @ann");
        await waitForMessages(ann.page, ["and again @ann"]);
        assert.equal(await ann.page.locator("li.msg.mentions-me").count(), 2);
        assert.equal((await ann.page.evaluate<unknown[]>("globalThis.shown")).length, 1);
        const sent = ben.page.locator("li.msg").last();
        assert.equal(await sent.locator(".mention").textContent(), "@ann");
        assert.equal(await ben.page.locator(".mention-me, li.mentions-me").count(), 0);
      },
    );

    await t.step(
      "reactions: picked from a message, counted, toggled by a press, kept after a reload",
      async () => {
        await send(ann.page, "lunch at noon?");
        await waitForMessages(ben.page, ["lunch at noon?"]);
        const atBen = ben.page.locator("li.msg").last();
        await clickMessageAction(atBen, "Add a reaction");
        await atBen.getByRole("button", { name: "React with 👍" }).click();
        const atAnn = ann.page.locator("li.msg").last();
        const thumbs = atAnn.locator(".reaction", { hasText: "👍" });
        await waitFor(
          async () => (await thumbs.getAttribute("aria-label")) === "👍 1",
          5000,
          "👍 1",
        );
        assert.equal(await thumbs.getAttribute("aria-pressed"), "false", "ann did not react");
        assert.equal(await thumbs.getAttribute("title"), "ben");
        await thumbs.click();
        await waitFor(
          async () => (await thumbs.getAttribute("aria-label")) === "👍 2",
          5000,
          "👍 2",
        );
        assert.equal(await thumbs.getAttribute("aria-pressed"), "true");
        const atBenThumbs = atBen.locator(".reaction", { hasText: "👍" });
        await waitFor(
          async () => (await atBenThumbs.getAttribute("aria-label")) === "👍 2",
          5000,
          "ben sees 👍 2",
        );
        await atBenThumbs.click(); // ben takes his back
        await waitFor(
          async () => (await thumbs.getAttribute("aria-label")) === "👍 1",
          5000,
          "👍 1",
        );
        await ann.page.reload();
        await waitForStatus(ann.page, "connected");
        await waitForMessages(ann.page, ["lunch at noon?"]);
        const kept = ann.page.locator("li.msg").last().locator(".reaction", { hasText: "👍" });
        assert.equal(await kept.getAttribute("aria-label"), "👍 1");
        assert.equal(await kept.getAttribute("aria-pressed"), "true");
      },
    );

    await t.step("seen by: a sender asks who read their message in a group room", async () => {
      await send(ann.page, "who has read this?");
      await waitForMessages(ben.page, ["who has read this?"]);
      const mine = ann.page.locator("li.msg.mine").last();
      const answer = mine.locator(".msg-seen");
      // Ben's page marks the newest message read by itself, a moment later (coalesced).
      await waitFor(
        async () => {
          await clickMessageAction(mine, "Seen by…");
          await sleep(400);
          // Whoever else of the earlier steps still has general open may have read it too.
          return /^Seen by \d+: (\w+, )*ben(,|$)/.test(await answer.textContent() ?? "");
        },
        5000,
        "seen by ben",
      );
      assert.doesNotMatch(await answer.textContent() ?? "", /ann/, "never the sender");
      const theirs = ben.page.locator("li.msg").last();
      await theirs.hover();
      assert.equal(await theirs.getByRole("button", { name: "Seen by…" }).count(), 0, "not ben's");
    });

    await t.step(
      "a sender edits and deletes their message; every reader sees it, after a reload too",
      async () => {
        await send(ann.page, "teh plan is ready");
        await waitForMessages(ben.page, ["teh plan is ready"]);
        const mine = ann.page.locator("li.msg.mine").last();
        await clickMessageAction(mine, "Edit");
        const box = ann.page.getByLabel("Edit message");
        assert.equal(await box.inputValue(), "teh plan is ready");
        await box.fill("the plan is **ready**");
        await box.press("Enter");
        await waitForMessages(ann.page, ["the plan is ready"]);
        await waitForMessages(ben.page, ["the plan is ready"]);
        const theirs = ben.page.locator("li.msg").last();
        assert.equal(await theirs.locator(".msg-edited").textContent(), "(edited)");
        assert.equal(await theirs.locator("strong").textContent(), "ready");
        // Nobody owns general: ben may neither edit nor delete ann's message.
        assert.equal(await theirs.locator(".msg-action").count(), 0);

        ann.page.once("dialog", (dialog) => dialog.accept());
        await clickMessageAction(mine, "Delete");
        await waitForMessages(ann.page, ["This message was deleted."]);
        await waitForMessages(ben.page, ["This message was deleted."]);
        await ann.page.reload();
        await waitForStatus(ann.page, "connected");
        await waitForMessages(ann.page, ["This message was deleted."]);
        assert.equal(await ann.page.locator("li.msg").last().locator(".msg-action").count(), 0);
        for (const b of [ann, ben]) {
          assert.ok(
            !(await shownMessages(b.page)).some((m) => m.text.includes("plan")),
            "the text is gone",
          );
        }
      },
    );

    for (const b of browsers) assert.deepEqual(b.pageErrors, [], "no uncaught errors in the page");
  } finally {
    await closeAll(browsers);
    await server?.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "web page against `deno task start` with AUTH=off: signing in works there too, and formatting renders as elements, never as markup",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const httpPort = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "chat-web-off-" });
  const server = startTask({
    HTTP_PORT: String(httpPort),
    GRPC_PORT: String(freePort()),
    DATABASE_PATH: `${dataDir}/chat.db`,
    DATABASE_URL: "",
    AUTH_SECRET_FILE: `${dataDir}/auth-secret`,
    SERVER_ID: "web-test-off",
    AUTH: "off",
  });
  let browser: TestBrowser | undefined;
  try {
    await server.waitForLine(/Gateway listening/);
    browser = await openBrowser({ viewport: PHONE });
    const { page } = browser;
    await join(page, `http://127.0.0.1:${httpPort}`, "zoe");
    await send(page, "Hello in classic mode");
    await waitForMessages(page, ["Hello in classic mode"]);
    await page.reload();
    await waitForStatus(page, "connected");
    await waitForMessages(page, ["Hello in classic mode"]);
    await roomByName(page, "quiet", "Create");
    await page.locator('.room-item[data-room="quiet"][aria-current="true"]').waitFor({
      state: "attached",
    });
    await send(page, "Only here");
    await waitForMessages(page, ["Only here"]);

    // Formatting renders as elements, and markup in a message never becomes markup in the page.
    const hostile = [
      "**bold** and _italic_ and `a <b>code</b>` at https://example.test/a?b=1.",
      '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>',
      "[x](javascript:window.__xss=3) javascript:window.__xss=4 **<i onclick=x>**",
      "```\n<b>not bold</b> **nor this**\n```",
      'https://x.test/"onmouseover="window.__xss=5" ok',
    ];
    for (const text of hostile) await send(page, text);
    const shown = await waitForMessages(page, [
      "bold and italic and a <b>code</b> at https://example.test/a?b=1.",
      hostile[1]!,
      "[x](javascript:window.__xss=3) javascript:window.__xss=4 <i onclick=x>",
      "<b>not bold</b> **nor this**",
      hostile[4]!,
    ]);
    assert.equal(shown.length, 6);
    const list = page.locator(".msg-text");
    const first = list.nth(1);
    assert.equal(await first.locator("strong").textContent(), "bold");
    assert.equal(await first.locator("em").textContent(), "italic");
    assert.equal(await first.locator("code").textContent(), "a <b>code</b>");
    const link = first.locator("a");
    assert.equal(await link.getAttribute("href"), "https://example.test/a?b=1");
    assert.equal(await link.getAttribute("rel"), "noopener noreferrer");
    assert.equal(await link.getAttribute("target"), "_blank");
    assert.equal(
      await list.nth(4).locator("pre code").textContent(),
      "<b>not bold</b> **nor this**",
    );
    const lastLink = list.nth(5).locator("a");
    assert.equal(await lastLink.getAttribute("href"), "https://x.test/");
    await lastLink.hover();
    // Nothing from the messages became an element: only the formatting's own ones exist.
    const tags = await page.locator(".msg-text *").evaluateAll((els) =>
      els.map((el) => el.tagName.toLowerCase())
    );
    assert.deepEqual([...new Set(tags)].sort(), ["a", "code", "em", "p", "pre", "strong"]);
    const hrefs = await page.locator(".msg-text a").evaluateAll((links) =>
      links.map((a) => a.getAttribute("href"))
    );
    assert.deepEqual(hrefs, ["https://example.test/a?b=1", "https://x.test/"]);
    assert.equal(await page.evaluate<unknown>("window.__xss"), undefined);
    assert.deepEqual(browser.pageErrors, []);
  } finally {
    await browser?.close();
    await server.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
