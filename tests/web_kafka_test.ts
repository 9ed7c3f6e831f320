/**
 * The web page on the Kafka deployment (tests/kafka_web_deployment.ts: the processor, gateway A
 * with two browser users, gateway B with a terminal client, all their own processes on the test
 * cluster), once on PostgreSQL and once on SQLite: the basics (messages everywhere in order, a
 * reload, presence) and, across the gateways, a mention, a reaction, an edit and a mute.
 * tests/web_kafka_features_test.ts goes through the other features on the same deployment.
 */

import assert from "node:assert/strict";
import {
  buildPage,
  closeAll,
  DESKTOP,
  join,
  openBrowser,
  PASSWORD,
  PHONE,
  roomByName,
  send,
  shownMessages,
  type TestBrowser,
  waitForMessages,
  waitForOnlineToInclude,
  waitForStatus,
} from "./browser.ts";
import { waitFor } from "./helpers.ts";
import { type Service, spawn } from "./processes.ts";
import {
  SLOW_MS,
  startWebDeployment,
  type StoreKind,
  STORES,
  type WebDeployment,
} from "./kafka_web_deployment.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SCREENSHOTS = Deno.env.get("SCREENSHOTS_DIR") ?? `${ROOT}.tmp/screenshots`;

/** The terminal client's chat lines (`[12:00:00] ann: text`), as `sender: text`. */
function clientMessages(client: Service): string[] {
  return client.output
    .map((line) => line.match(/^\[\d\d:\d\d:\d\d\] (.+)$/)?.[1])
    .filter((line): line is string => line !== undefined);
}

for (const kind of STORES) {
  Deno.test({
    name: `web page on Kafka and ${kind}: browsers on gateway A, a terminal client on gateway B`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => basics(kind),
  });
}

async function basics(kind: StoreKind): Promise<void> {
  await buildPage();
  const browsers: TestBrowser[] = [];
  let deployment: WebDeployment | undefined;
  try {
    deployment = await startWebDeployment(kind);
    const { a, b, services } = deployment;
    const ann = await openBrowser({ viewport: DESKTOP });
    browsers.push(ann);
    const ben = await openBrowser({ viewport: PHONE });
    browsers.push(ben);
    await join(ann.page, a.http, "ann");
    await join(ben.page, a.http, "ben");

    const carl = spawn("client", "client/main.ts", {
      args: ["carl", "--server", b.grpc],
      env: { CHAT_PASSWORD: PASSWORD },
      stdin: true,
    });
    services.push(carl);
    await carl.waitForLine(/Connected to server as user: carl/, SLOW_MS);
    for (const page of [ann.page, ben.page]) {
      await waitForOnlineToInclude(page, ["ann", "ben", "carl"], [], SLOW_MS);
    }

    // One message from each, each waited for everywhere, so the order is known.
    const lines = [
      ["ann", "One, from ann in a browser"],
      ["carl", "Two, from carl in a terminal"],
      ["ben", "Three, from ben on a phone"],
    ] as const;
    // The cluster and the processor group are shared with other tests: an earlier test's
    // message may still reach "general", so only this test's lines are compared.
    const ours = (text: string) => lines.some(([, line]) => line === text);
    const delivered = (n: number) => async () => {
      const want = lines.slice(0, n).map(([, text]) => text);
      const onPages = await Promise.all(
        [ann, ben].map(async (x) => (await shownMessages(x.page)).map((m) => m.text).filter(ours)),
      );
      const onClient = clientMessages(carl).map((l) => l.slice(l.indexOf(": ") + 2)).filter(ours);
      return [...onPages, onClient].every((got) => JSON.stringify(got) === JSON.stringify(want));
    };
    for (const [i, [who, text]] of lines.entries()) {
      if (who === "carl") await carl.write(`${text}\n`);
      else await send((who === "ann" ? ann : ben).page, text);
      await waitFor(delivered(i + 1), SLOW_MS, `message ${i + 1} everywhere`).catch(
        async (err) => {
          const pages = await Promise.all(
            [ann, ben].map(async (x) => [
              ...(await shownMessages(x.page)).map((m) => m.text),
              ...(await x.page.locator(".composer-error").allTextContents()),
            ]),
          );
          throw new Error(
            `${err.message}\npages: ${JSON.stringify(pages)}\nclient: ${
              carl.output.slice(-10).join("\n")
            }`,
          );
        },
      );
    }
    for (const x of [ann, ben]) {
      const shown = (await shownMessages(x.page)).filter((m) => ours(m.text));
      assert.deepEqual(shown.map((m) => m.sender), ["ann", "carl", "ben"]);
      assert.ok(shown.every((m) => /\d[:.]\d\d/.test(m.time)), "each message has its time");
    }
    assert.deepEqual(
      clientMessages(carl).filter((l) => ours(l.slice(l.indexOf(": ") + 2))),
      lines.map(([who, text]) => `${who}: ${text}`),
    );

    // Ben reloads: the page rejoins with the token it kept, and loads the room's history.
    await ben.page.reload();
    await waitForStatus(ben.page, "connected", SLOW_MS);
    assert.equal(await ben.page.getByLabel("Your name").count(), 0, "no sign-in screen");
    const history = await waitForMessages(ben.page, lines.map(([, text]) => text), SLOW_MS);
    assert.deepEqual(
      history.map((m) => m.text).filter(ours),
      lines.map(([, text]) => text),
      "once each",
    );
    await waitForOnlineToInclude(ben.page, ["ann", "ben", "carl"], [], SLOW_MS);
    await waitForOnlineToInclude(ann.page, ["ann", "ben", "carl"], [], SLOW_MS);
    await send(ben.page, "Four, after a reload");
    await waitForMessages(ann.page, ["Four, after a reload"], SLOW_MS);
    await waitForMessages(ben.page, ["Four, after a reload"], SLOW_MS);
    await waitFor(
      () => clientMessages(carl).at(-1) === "ben: Four, after a reload",
      SLOW_MS,
      "carl to see ben's message after the reload",
    );

    await Deno.mkdir(SCREENSHOTS, { recursive: true });
    await ann.page.screenshot({ path: `${SCREENSHOTS}/kafka-desktop.png` });
    await ben.page.screenshot({ path: `${SCREENSHOTS}/kafka-phone.png` });

    // What a chat is expected to do today, across the gateways: the pages on A, the terminal on B.
    const club = `club-${crypto.randomUUID().slice(0, 6)}`;
    await roomByName(ann.page, club, "Create");
    await ann.page.locator(`.room-item[data-room="${club}"][aria-current="true"]`).waitFor();
    await carl.write(`/join ${club}\n/room ${club}\n`);
    await carl.waitForLine(new RegExp(`Lines you type go to #${club}`), SLOW_MS);
    // A mention from the terminal is marked on the page of the one it names.
    await carl.write("Five, for @ann\n");
    await waitForMessages(ann.page, ["Five, for @ann"], SLOW_MS);
    const five = ann.page.locator("li.msg").filter({ hasText: "Five, for" });
    assert.equal(await five.locator(".mention-me").textContent(), "@ann");
    // A reaction and an edit from the terminal reach the page.
    await carl.write("/react 👍\n");
    const thumbs = five.locator(".reaction", { hasText: "👍" });
    await waitFor(
      async () =>
        (await thumbs.count()) === 1 && (await thumbs.getAttribute("aria-label")) === "👍 1",
      SLOW_MS,
      "carl's 👍 on ann's page",
    );
    await carl.write("/edit Five, for @ann (fixed)\n");
    await waitForMessages(ann.page, ["Five, for @ann (fixed)"], SLOW_MS);
    assert.equal(await five.locator(".msg-edited").textContent(), "(edited)");
    // The page's edit and reaction reach the terminal.
    await send(ann.page, "Six, from ann");
    await carl.waitForLine(/ann: Six, from ann$/, SLOW_MS);
    // Ann, the room's owner, mutes carl from the member list: his next line is refused on B.
    await ann.page.locator(".room-members summary").click();
    await ann.page.locator("li.member").filter({ hasText: "carl" }).getByRole("button", {
      name: "Mute",
      exact: true,
    }).click();
    await waitFor(
      async () =>
        (await ann.page.locator("li.note").allTextContents()).some((t) => /muted carl/.test(t)),
      SLOW_MS,
      "the kept mute event on ann's page",
    );
    await carl.write("Seven, while muted\n");
    await carl.waitForLine(/muted/, SLOW_MS);
    assert.equal(
      (await shownMessages(ann.page)).filter((m) => m.text === "Seven, while muted").length,
      0,
      "a muted member's line is not delivered",
    );

    // Carl quits the terminal client: both pages see him go.
    await carl.write("/quit\n");
    const exit = await carl.exit(20_000);
    assert.equal(exit.code, 0, "the terminal client leaves cleanly");
    await waitForOnlineToInclude(ann.page, ["ann", "ben"], ["carl"], SLOW_MS);
    await waitForOnlineToInclude(ben.page, ["ann", "ben"], ["carl"], SLOW_MS);

    for (const x of browsers) assert.deepEqual(x.pageErrors, [], "no uncaught errors in the page");
  } finally {
    await closeAll(browsers);
    await deployment?.stop();
  }
}
