/**
 * Browser tests' helpers: Debian's Chromium driven by playwright-core (no
 * browser download), each browser with a fresh profile that is removed after,
 * and the steps a person takes on the chat page.
 */

import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { waitFor } from "./helpers.ts";

export const CHROMIUM_PATH = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** Flags for a quiet, headless, offline-friendly Chromium in a container. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

export interface TestBrowser {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught errors in the page (console noise such as refused connections is not counted). */
  readonly pageErrors: string[];
  close(): Promise<void>;
}

/**
 * Starts Chromium with its own fresh profile (a temporary `--user-data-dir`,
 * passed the way Playwright requires) and one page of `viewport` size.
 */
export async function openBrowser(
  options: { viewport?: { width: number; height: number }; colorScheme?: "light" | "dark" } = {},
): Promise<TestBrowser> {
  const userDataDir = await Deno.makeTempDir({ prefix: "chat-chromium-" });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: options.viewport ?? DESKTOP,
      colorScheme: options.colorScheme ?? "light",
      reducedMotion: "reduce",
      timeout: 60_000,
    });
  } catch (err) {
    await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    throw new Error(
      `Cannot start Chromium at ${CHROMIUM_PATH} (install Debian's chromium package): ${
        (err as Error).message
      }`,
    );
  }
  const page = context.pages()[0] ?? await context.newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));
  return {
    context,
    page,
    pageErrors,
    async close() {
      await context.close().catch(() => {});
      await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Closes every browser given, ignoring the ones not started. */
export async function closeAll(browsers: (TestBrowser | undefined)[]): Promise<void> {
  await Promise.all(browsers.map((b) => b?.close()));
}

// ---- The chat page, as a person uses it ----

export interface ShownMessage {
  sender: string;
  text: string;
  /** The time as shown ("14:05"). */
  time: string;
  /** The `datetime` attribute (ISO). */
  datetime: string;
  mine: boolean;
}

/** The password the tests sign in with (a new name creates the account with it). */
export const PASSWORD = "correct horse battery";

/** Fills in the sign-in form and presses Enter in the password field. */
export async function signIn(page: Page, name: string, password = PASSWORD): Promise<void> {
  await page.getByLabel("Your name").fill(name);
  const field = page.getByLabel(/^Password/);
  await field.fill(password);
  await field.press("Enter");
}

/** Opens the page and signs in as `name` (creating the account the first time). */
export async function join(
  page: Page,
  baseUrl: string,
  name: string,
  password = PASSWORD,
): Promise<void> {
  await page.goto(baseUrl);
  await signIn(page, name, password);
  await waitForStatus(page, "connected");
}

/** The sign-in screen's error, once shown. */
export async function joinError(page: Page, timeoutMs = 10_000): Promise<string> {
  const error = page.locator("#join-error[role=alert]");
  await error.waitFor({ timeout: timeoutMs });
  return (await error.textContent()) ?? "";
}

/** Waits until the header's status is `kind` (connected, connecting, reconnecting, stopped). */
export async function waitForStatus(page: Page, kind: string, timeoutMs = 15_000): Promise<void> {
  await page.locator(`.status[data-status="${kind}"]`).waitFor({ timeout: timeoutMs });
}

/** Types `text` into the message box and presses Enter. */
export async function send(page: Page, text: string): Promise<void> {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
}

/** The messages on screen, in order. */
export function shownMessages(page: Page): Promise<ShownMessage[]> {
  return page.locator("li.msg").evaluateAll((items) =>
    items.map((li) => ({
      sender: li.querySelector(".msg-sender")?.textContent ?? "",
      text: li.querySelector(".msg-text")?.textContent ?? "",
      time: li.querySelector(".msg-time")?.textContent ?? "",
      datetime: li.querySelector(".msg-time")?.getAttribute("datetime") ?? "",
      mine: li.classList.contains("mine"),
    }))
  );
}

/** Waits until the page shows the message texts `texts` (at least, in this order, at the end). */
export async function waitForMessages(
  page: Page,
  texts: string[],
  timeoutMs = 10_000,
): Promise<ShownMessage[]> {
  let last: ShownMessage[] = [];
  await waitFor(
    async () => {
      last = await shownMessages(page);
      const tail = texts.length === 0 ? [] : last.slice(-texts.length).map((m) => m.text);
      return tail.length === texts.length && tail.every((t, i) => t === texts[i]);
    },
    timeoutMs,
    `messages ${JSON.stringify(texts)}`,
  ).catch((err) => {
    throw new Error(`${err.message}; shown: ${JSON.stringify(last.map((m) => m.text))}`);
  });
  return last;
}

/** The names in the "Online now" list, in order. */
export function onlineNames(page: Page): Promise<string[]> {
  return page.locator(".online-user .online-name").allTextContents();
}

/** Waits until the online list is exactly `names` (sorted as the page sorts them). */
export async function waitForOnline(
  page: Page,
  names: string[],
  timeoutMs = 10_000,
): Promise<void> {
  let last: string[] = [];
  await waitFor(
    async () => {
      last = await onlineNames(page);
      return JSON.stringify(last) === JSON.stringify(names);
    },
    timeoutMs,
    `online list ${JSON.stringify(names)}`,
  ).catch((err) => {
    throw new Error(`${err.message}; shown: ${JSON.stringify(last)}`);
  });
}

/**
 * Waits until the online list has every name of `present` and none of `absent`
 * (for a shared cluster, where other users may be online too).
 */
export async function waitForOnlineToInclude(
  page: Page,
  present: string[],
  absent: string[] = [],
  timeoutMs = 10_000,
): Promise<void> {
  let last: string[] = [];
  await waitFor(
    async () => {
      last = await onlineNames(page);
      return present.every((n) => last.includes(n)) && absent.every((n) => !last.includes(n));
    },
    timeoutMs,
    `online list with ${JSON.stringify(present)} and without ${JSON.stringify(absent)}`,
  ).catch((err) => {
    throw new Error(`${err.message}; shown: ${JSON.stringify(last)}`);
  });
}

/** Whether the page can scroll sideways (it must not, at any width). */
export function hasHorizontalScroll(page: Page): Promise<boolean> {
  // Run in the page; a string, since the tests are type-checked without the DOM library.
  return page.evaluate<boolean>(`(() => {
    const doc = document.documentElement;
    return doc.scrollWidth > doc.clientWidth || document.body.scrollWidth > doc.clientWidth;
  })()`);
}

/** Describes the focused element as "tag:label" (its aria-label, its <label>, or its text). */
export function focused(page: Page): Promise<string> {
  return page.evaluate<string>(`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return "";
    const label = el.getAttribute("aria-label") ??
      (el.id ? document.querySelector('label[for="' + el.id + '"]')?.textContent : undefined) ??
      el.textContent;
    return el.tagName.toLowerCase() + ":" + (label ?? "").trim();
  })()`);
}

/** Takes the focus away from whatever has it, as if the page had just loaded. */
export async function blur(page: Page): Promise<void> {
  await page.evaluate("document.activeElement?.blur()");
}

/** Presses Tab until `predicate` holds for the focused element's description; returns the count. */
export async function tabUntil(
  page: Page,
  predicate: (description: string) => boolean,
  maxPresses = 20,
): Promise<number> {
  for (let i = 1; i <= maxPresses; i++) {
    await page.keyboard.press("Tab");
    if (predicate(await focused(page))) return i;
  }
  throw new Error(`Tab did not reach the element within ${maxPresses} presses`);
}

// ---- Rooms ----

/** Opens the side panel when it is a sheet (phone width); nothing at desktop width. */
export async function openPanel(page: Page): Promise<void> {
  const toggle = page.locator(".panel-toggle");
  if (!(await toggle.isVisible()) || (await toggle.getAttribute("aria-expanded")) === "true") {
    return;
  }
  await toggle.click();
  await page.locator(".side-panel.open").waitFor();
}

/** The room shown now (its id). */
export function currentRoom(page: Page): Promise<string | null> {
  return page.locator('.room-item[aria-current="true"]').getAttribute("data-room");
}

/** The rooms in the side panel, by id, in order. */
export function roomIds(page: Page): Promise<string[]> {
  return page.locator(".room-item").evaluateAll((items) =>
    items.map((b) => b.getAttribute("data-room") ?? "")
  );
}

/** Waits until the room `id` is listed in the side panel. */
export async function waitForRoom(page: Page, id: string, timeoutMs = 10_000): Promise<void> {
  await page.locator(`.room-item[data-room="${id}"]`).waitFor({
    state: "attached",
    timeout: timeoutMs,
  });
}

/** Shows the room `id` (from the side panel, opened first on a phone). */
export async function openRoom(page: Page, id: string): Promise<void> {
  await openPanel(page);
  await page.locator(`.room-item[data-room="${id}"]`).click();
  await page.locator(`.room-item[data-room="${id}"][aria-current="true"]`).waitFor({
    state: "attached",
  });
}

/** The line under the messages that says who is typing ("" when nobody is). */
export function typingLine(page: Page): Promise<string | null> {
  return page.locator(".typing").textContent();
}

/** Waits until the typing line reads `text`; says what it read when it does not. */
export async function waitForTypingLine(
  page: Page,
  text: string,
  timeoutMs = 10_000,
): Promise<void> {
  let last: string | null = null;
  await waitFor(
    async () => (last = await typingLine(page)) === text,
    timeoutMs,
    `the typing line to read ${JSON.stringify(text)}`,
  ).catch((err) => {
    throw new Error(`${err.message}; it reads ${JSON.stringify(last)}`);
  });
}

/** The unread count shown next to room `id` (0 when none is shown). */
export async function unreadIn(page: Page, id: string): Promise<number> {
  // One read of the page: a badge that goes between a count and a read must not stall the test.
  const [text] = await page.locator(`.room-item[data-room="${id}"] .unread`).allTextContents();
  return text === undefined ? 0 : Number(text);
}

/** Joins (`Join`) or creates (`Create`) the room `name` with the side panel's form. */
export async function roomByName(page: Page, name: string, action: "Join" | "Create") {
  await openPanel(page);
  await page.getByLabel("Room name").fill(name);
  await page.locator(".room-form").getByRole("button", { name: action, exact: true }).click();
}

/** The quiet lines of the room shown ("ben joined"). */
export function notes(page: Page): Promise<string[]> {
  return page.locator("li.note").allTextContents();
}

let built: Promise<void> | undefined;

/**
 * Builds the page from the sources as they are now (an older build in web/dist would not know
 * the features under test), once per test process.
 */
export function buildPage(): Promise<void> {
  built ??= (async () => {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["task", "build"],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      throw new Error(`deno task build failed: ${new TextDecoder().decode(stderr)}`);
    }
  })();
  return built;
}

/**
 * Clicks one of a message's buttons (Edit, Delete, Seen by…, Add a reaction), which show while
 * the pointer is over the message, as a user does: points at the message, and points again when
 * the list moved it from under the pointer before the click (a row above grew, or one came in).
 */
export async function clickMessageAction(row: Locator, name: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await row.hover();
    try {
      await row.getByRole("button", { name }).click({ timeout: 1000 });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
}
