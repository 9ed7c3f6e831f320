/**
 * The terminal client as a real process (`deno run -A client/main.ts`),
 * driven through its stdin and read on its stdout, against an in-process system.
 */

import assert from "node:assert/strict";
import { readLines } from "../client/terminal_client.ts";
import type { Gateway } from "../server/gateway.ts";
import { startSystem, waitFor } from "./helpers.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("../client/main.ts", import.meta.url).pathname;
const STAMP = String.raw`\[\d{2}:\d{2}:\d{2}\] `;
const encoder = new TextEncoder();

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
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", CHAT_SERVER: "" },
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

Deno.test("two client processes chat; /who lists both; Ctrl-D and Ctrl-C exit 0", async () => {
  const system = await startSystem();
  const alice = spawnClient("alice", "--server", system.address());
  const bob = spawnClient("bob", "--server", system.address());
  try {
    // Generous: starting a deno process is slow on a busy machine.
    await Promise.all([
      alice.see(connected("alice"), { timeoutMs: 30_000 }),
      bob.see(connected("bob"), { timeoutMs: 30_000 }),
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
  const system = await startSystem();
  const port = system.gateways[0]!.grpcPort;
  const bob = spawnClient("bob", "--server", `127.0.0.1:${port}`);
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

Deno.test("a client process whose user id the server refuses exits 2 without retrying", async () => {
  const system = await startSystem();
  const client = spawnClient("x".repeat(129), "--server", system.address());
  try {
    assert.equal(await client.exit(30_000), 2);
    assert.deepEqual(client.lines, [
      "! Cannot open stream: the user id is 129 characters, the limit is 128",
    ]);
  } finally {
    await client.dispose();
    await system.stop();
  }
});
