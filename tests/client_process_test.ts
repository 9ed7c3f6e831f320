/**
 * The terminal client as a real process (`deno run -A client/main.ts`),
 * driven through its stdin and read on its stdout, against an in-process system
 * with sign-in on (AUTH=on). Stdin is a pipe, so its first line is the password
 * (or --password-file / $CHAT_PASSWORD gives it).
 */

import assert from "node:assert/strict";
import { readLines } from "../client/terminal_io.ts";
import type { Gateway } from "../server/gateway.ts";
import { newClient, startSystem, waitFor } from "./helpers.ts";
import { hasScript, spawnInTerminal } from "./terminal_process.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("../client/main.ts", import.meta.url).pathname;
const STAMP = String.raw`\[\d{2}:\d{2}:\d{2}\] `;
const encoder = new TextEncoder();
const PASSWORD = "correct horse battery";

interface ClientProcess {
  readonly lines: string[];
  type(line: string): Promise<void>;
  /** Ctrl-D. */
  endInput(): Promise<void>;
  /** Waits for a line matching `pattern`, after the first `from` lines; returns its index. */
  see(pattern: RegExp, options?: { from?: number; timeoutMs?: number }): Promise<number>;
  /** Waits for the process to exit; returns its code. */
  exit(timeoutMs?: number): Promise<number>;
  kill(signal: Deno.Signal): void;
  stderr(): string;
  /** Kills the process if it still runs and waits for everything it held to close. */
  dispose(): Promise<void>;
}

function spawnClient(...args: string[]): ClientProcess {
  return spawnClientWith({}, ...args);
}

/** A client that signs in with `password`, typed as the first line of its stdin. */
function spawnSignedIn(password: string, ...args: string[]): ClientProcess {
  const client = spawnClientWith({}, ...args);
  void client.type(password).catch(() => {});
  return client;
}

function spawnClientWith(
  options: { env?: Record<string, string> },
  ...args: string[]
): ClientProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", CHAT_SERVER: "", CHAT_PASSWORD: "", ...options.env },
  }).spawn();
  const lines: string[] = [];
  let errors = "";
  const reading = (async () => {
    for await (const line of readLines(child.stdout)) lines.push(line);
  })();
  const readingErrors = (async () => {
    for await (const line of readLines(child.stderr)) errors += line + "\n";
  })();
  const stdin = child.stdin.getWriter();
  let inputOpen = true;
  let exited: number | undefined;
  const status = child.status.then((s) => exited = s.code);
  const describe = () => `stdout:\n${lines.join("\n")}\nstderr:\n${errors}`;
  const self: ClientProcess = {
    lines,
    type: (line) => stdin.write(encoder.encode(line + "\n")),
    async endInput() {
      inputOpen = false;
      await stdin.close();
    },
    async see(pattern, { from = 0, timeoutMs = 15_000 } = {}) {
      let found = -1;
      await waitFor(
        () => (found = lines.findIndex((l, i) => i >= from && pattern.test(l))) >= 0,
        timeoutMs,
        `${pattern} in the client's output\n${describe()}`,
      );
      return found;
    },
    async exit(timeoutMs = 10_000) {
      await waitFor(() => exited !== undefined, timeoutMs, `the client to exit\n${describe()}`);
      return exited!;
    },
    kill: (signal) => child.kill(signal),
    stderr: () => errors,
    async dispose() {
      if (exited === undefined) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      if (inputOpen) {
        inputOpen = false;
        await stdin.close().catch(() => {});
      }
      await status;
      await reading;
      await readingErrors;
    },
  };
  return self;
}

const connected = (user: string) => new RegExp(`^Connected to server as user: ${user}$`);

Deno.test("two client processes sign in and chat; /who lists both; Ctrl-D and Ctrl-C exit 0", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const alice = spawnSignedIn(PASSWORD, "alice", "--server", system.address());
  const bob = spawnSignedIn(PASSWORD, "bob", "--server", system.address());
  try {
    // Generous: starting a deno process is slow on a busy machine.
    await Promise.all([
      alice.see(connected("alice"), { timeoutMs: 30_000 }),
      bob.see(connected("bob"), { timeoutMs: 30_000 }),
    ]);
    assert.deepEqual(alice.lines.slice(0, 2), [
      "Created account alice",
      "Connected to server as user: alice",
    ]);

    // Presence reaches the gateway through the bus: ask until both show.
    await waitFor(
      async () => {
        const from = alice.lines.length;
        await alice.type("/who");
        const at = await alice.see(/^\* Online \(\d+\): /, { from });
        return alice.lines[at] === "* Online (2): alice, bob";
      },
      15_000,
      "/who to list alice and bob",
    );

    await alice.type("Hello World!");
    await bob.see(new RegExp(`^${STAMP}alice: Hello World!$`));
    await alice.see(new RegExp(`^${STAMP}alice: Hello World!$`));

    await alice.endInput();
    assert.equal(await alice.exit(), 0, "Ctrl-D exits 0");
    await bob.see(/^\* alice went offline$/);

    bob.kill("SIGINT");
    assert.equal(await bob.exit(), 0, "Ctrl-C exits 0");
    assert.equal(alice.stderr(), "");
    assert.equal(bob.stderr(), "");
  } finally {
    await alice.dispose();
    await bob.dispose();
    await system.stop();
  }
});

Deno.test("a client process reconnects when its gateway restarts on the same port", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const port = system.gateways[0]!.grpcPort;
  const bob = spawnSignedIn(PASSWORD, "bob", "--server", `127.0.0.1:${port}`);
  let restarted: Gateway | undefined;
  try {
    const first = await bob.see(connected("bob"), { timeoutMs: 30_000 });
    await system.gateways[0]!.stop();
    restarted = await system.addGateway({ grpcPort: port, serverId: "restarted" });

    const lost = await bob.see(/^Disconnected: .+; reconnecting in \d+(\.\d)?s$/, {
      from: first + 1,
    });
    await bob.see(connected("bob"), { from: lost + 1 });
    await bob.type("still here");
    await bob.see(new RegExp(`^${STAMP}bob: still here$`));

    await bob.endInput();
    assert.equal(await bob.exit(), 0);
    assert.equal(bob.stderr(), "");
  } finally {
    await bob.dispose();
    await restarted?.stop();
    await system.stop();
  }
});

Deno.test("a client process refused at sign-in exits 2 without retrying", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const existing = newClient(system.address());
  let longName: ClientProcess | undefined;
  let wrongPassword: ClientProcess | undefined;
  try {
    await existing.signIn("alice", PASSWORD);
    longName = spawnSignedIn(PASSWORD, "x".repeat(129), "--server", system.address());
    // The password from the environment this time.
    wrongPassword = spawnClientWith(
      { env: { CHAT_PASSWORD: "not the password" } },
      "alice",
      "--server",
      system.address(),
    );
    assert.equal(await longName.exit(30_000), 2);
    assert.deepEqual(longName.lines, [
      "! Cannot sign in: the username is 129 characters, the limit is 32",
    ]);
    assert.equal(await wrongPassword.exit(30_000), 2);
    assert.deepEqual(wrongPassword.lines, ["! Cannot sign in: wrong password for alice"]);
  } finally {
    await longName?.dispose();
    await wrongPassword?.dispose();
    existing.close();
    await system.stop();
  }
});

Deno.test("client processes in a room: /create, /join, /room; the other sees #room", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const passwordFile = await Deno.makeTempFile({ prefix: "chat-password-" });
  await Deno.writeTextFile(passwordFile, PASSWORD + "\n");
  const alice = spawnSignedIn(PASSWORD, "alice", "--server", system.address());
  // Bob's password from a file: his stdin carries only chat lines.
  const bob = spawnClient("bob", "--server", system.address(), "--password-file", passwordFile);
  try {
    await Promise.all([
      alice.see(connected("alice"), { timeoutMs: 30_000 }),
      bob.see(connected("bob"), { timeoutMs: 30_000 }),
    ]);
    await alice.type("/create book-club");
    await alice.see(/^\* Created #book-club \(1 member\); \/room book-club to write there$/);
    await bob.type("/join book-club");
    await bob.see(/^\* Joined #book-club \(2 members\); \/room book-club to write there$/);
    // Alice's stream heard of it: bob now receives the room.
    await alice.see(/^\* bob joined #book-club$/);

    await alice.type("/room book-club");
    await alice.see(/^\* Lines you type go to #book-club$/);
    await alice.type("Chapter one was great");
    await bob.see(new RegExp(`^${STAMP}#book-club alice: Chapter one was great$`));
    await alice.see(new RegExp(`^${STAMP}#book-club alice: Chapter one was great$`));

    // Printed while bob writes to general: unread in book-club, on the server too.
    await bob.type("/rooms");
    await bob.see(/^\* Your rooms \(2\):$/);
    await bob.see(/^ {2}general \(everybody, current\)$/);
    await bob.see(/^ {2}book-club \(2 members, 1 unread\)$/);
    // Its history, printed where bob writes, is read.
    await bob.type("/room book-club");
    await bob.see(/^\* Lines you type go to #book-club$/);
    await bob.type("/history");
    await bob.see(/^\* The last 1 message of #book-club:$/);
    await bob.type("/rooms");
    await bob.see(/^ {2}book-club \(2 members, current\)$/);

    for (const client of [alice, bob]) {
      await client.endInput();
      assert.equal(await client.exit(), 0);
      assert.equal(client.stderr(), "");
      assert.ok(!client.lines.some((l) => l.startsWith("!")), client.lines.join("\n"));
    }
  } finally {
    await alice.dispose();
    await bob.dispose();
    await Deno.remove(passwordFile).catch(() => {});
    await system.stop();
  }
});

Deno.test("client processes: /room to a room not joined is refused, no line is lost; /dm shows @user", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const carol = spawnSignedIn(PASSWORD, "carol", "--server", system.address());
  const ann = spawnSignedIn(PASSWORD, "ann", "--server", system.address());
  try {
    await Promise.all([
      carol.see(connected("carol"), { timeoutMs: 30_000 }),
      ann.see(connected("ann"), { timeoutMs: 30_000 }),
    ]);
    await carol.type("/room nowhere");
    await carol.see(
      /^! You are not in #nowhere: \/join nowhere \(or \/create nowhere\) first; lines you type still go to #general$/,
    );
    await carol.type("not lost");
    await ann.see(new RegExp(`^${STAMP}carol: not lost$`));

    await carol.type("/dm ann");
    await carol.see(/^\* Direct messages with ann: lines you type go to @ann$/);
    await ann.see(/^\* carol opened a direct conversation with you; \/room @carol to answer$/);
    await carol.type("psst");
    await ann.see(new RegExp(`^${STAMP}@carol carol: psst$`));
    await ann.type("/room @carol");
    await ann.see(/^\* Lines you type go to @carol$/);
    await ann.type("hi carol");
    await carol.see(new RegExp(`^${STAMP}@ann ann: hi carol$`));
    await carol.type("/rooms");
    await carol.see(/^ {2}@ann \(direct messages, current\)$/);

    for (const client of [carol, ann]) {
      await client.endInput();
      assert.equal(await client.exit(), 0);
      assert.equal(client.stderr(), "");
      const raw = client.lines.filter((l) => l.includes("dm:") || l.includes(" joined "));
      assert.deepEqual(raw, [], client.lines.join("\n"));
    }
  } finally {
    await carol.dispose();
    await ann.dispose();
    await system.stop();
  }
});

Deno.test({
  name:
    "on a terminal: a prompt names the room, and lines arriving are printed above a half-typed one",
  ignore: !hasScript,
  async fn() {
    const system = await startSystem({ config: { auth: "on" } });
    const ann = spawnSignedIn(PASSWORD, "ann", "--server", system.address());
    const carol = spawnInTerminal(PASSWORD, "carol", "--server", system.address());
    const last = (rows: string[]) => rows.at(-1) ?? "";
    try {
      await ann.see(connected("ann"), { timeoutMs: 30_000 });
      await carol.see(
        "connected, with the prompt",
        (rows) => rows.includes("Connected to server as user: carol") && last(rows) === "#general>",
        30_000,
      );
      await carol.keys("half");
      await carol.see("the half-typed line", (rows) => last(rows) === "#general> half");
      await ann.type("hello carol");
      const stamp = new RegExp(`^${STAMP}ann: hello carol$`);
      await carol.see("ann's line above", (rows) => rows.some((row) => stamp.test(row)));
      assert.equal(last(carol.shown()), "#general> half", "the typed part drawn again below");

      await carol.keys(" done\r");
      await ann.see(new RegExp(`^${STAMP}carol: half done$`));
      await carol.keys("/dm ann\r");
      await carol.see("the direct room's prompt", (rows) => last(rows) === "@ann>");
      assert.ok(
        carol.shown().includes("* Direct messages with ann: lines you type go to @ann"),
        carol.shown().join("\n"),
      );
      await carol.keys("\x04");
      assert.equal((await carol.status).code, 0, "Ctrl-D on an empty line leaves");
      assert.equal(carol.stderr(), "");
      // A client on pipes gets neither a prompt nor escape codes.
      assert.ok(
        !ann.lines.some((l) => l.includes("\x1b") || l.includes(">")),
        ann.lines.join("\n"),
      );
    } finally {
      await carol.dispose();
      await ann.dispose();
      await system.stop();
    }
  },
});

Deno.test("a client process that reconnects to a new gateway prints what it missed exactly once", async () => {
  const system = await startSystem({ gateways: 2, config: { auth: "on" } });
  const port = system.gateways[0]!.grpcPort;
  const bob = spawnSignedIn(PASSWORD, "bob", "--server", `127.0.0.1:${port}`);
  const alice = spawnSignedIn(PASSWORD, "alice", "--server", system.address(1));
  try {
    const first = await bob.see(connected("bob"), { timeoutMs: 30_000 });
    await alice.see(connected("alice"), { timeoutMs: 30_000 });
    await alice.type("before the outage");
    await bob.see(new RegExp(`^${STAMP}alice: before the outage$`));

    await system.gateways[0]!.stop();
    const lost = await bob.see(/^Disconnected: .+; reconnecting in \d+(\.\d)?s$/, {
      from: first + 1,
    });
    for (let i = 1; i <= 3; i++) await alice.type(`missed ${i}`);
    await alice.see(new RegExp(`^${STAMP}alice: missed 3$`));

    // Back, on a new gateway on the same port.
    await system.addGateway({ grpcPort: port, serverId: "replacement" });
    const back = await bob.see(connected("bob"), { from: lost + 1, timeoutMs: 30_000 });
    await bob.see(new RegExp(`^${STAMP}alice: missed 3$`), { from: back + 1 });
    await alice.type("after the outage");
    await bob.see(new RegExp(`^${STAMP}alice: after the outage$`), { from: back + 1 });

    const said = bob.lines
      .filter((l) => new RegExp(`^${STAMP}alice: `).test(l))
      .map((l) => l.replace(new RegExp(`^${STAMP}alice: `), ""));
    assert.deepEqual(said, [
      "before the outage",
      "missed 1",
      "missed 2",
      "missed 3",
      "after the outage",
    ]);

    await bob.endInput();
    assert.equal(await bob.exit(), 0);
    assert.equal(bob.stderr(), "");
  } finally {
    await bob.dispose();
    await alice.dispose();
    await system.stop();
  }
});
