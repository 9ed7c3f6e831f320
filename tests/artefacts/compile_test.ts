/**
 * `deno task compile` end to end: the single executables it builds (dist/chat-gateway with the web
 * page inside, dist/chat-processor, dist/chat) run a chat on the real cluster with no checkout
 * beside them. Not in `deno task test`'s default run (it is in tests/artefacts/): run it with
 * `deno task test:compile`. `deno compile` downloads the `denort` runtime of this Deno release
 * from dl.deno.land unless DENORT_BIN names one; where neither is possible the test fails with a
 * message that says so, not with a download error deep in the output.
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { kafkaBrokers } from "../fixtures.ts";
import { freePort, readLines } from "../../scripts/processes.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const DIST = `${ROOT}dist`;
const STAMP = String.raw`\[\d{2}:\d{2}:\d{2}\] `;

/** Where `deno compile` fetches the runtime it puts into every executable. */
const DENORT_URL =
  `https://dl.deno.land/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`;

async function compile(): Promise<void> {
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "compile"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (success) return;
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  if (!Deno.env.get("DENORT_BIN") && /dl\.deno\.land|denort/i.test(output)) {
    throw new Error(
      `Cannot compile the executables: deno compile downloads its runtime from ${DENORT_URL}, ` +
        `which this machine cannot reach; set DENORT_BIN to a denort ${Deno.version.deno} ` +
        `binary to compile offline`,
    );
  }
  throw new Error(`Cannot compile the executables: deno task compile failed:\n${output}`);
}

interface Running {
  readonly lines: string[];
  see(pattern: RegExp, timeoutMs?: number): Promise<void>;
  type(line: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the executable `name` of dist/ from a directory of its own, so that it can find nothing
 * of the checkout: what it serves must be inside it.
 */
function start(name: string, args: string[], env: Record<string, string>): Running {
  const child = new Deno.Command(`${DIST}/${name}`, {
    args,
    cwd: Deno.makeTempDirSync({ prefix: `chat-${name}-` }),
    env: { NO_COLOR: "1", ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reading = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const line of readLines(stream)) lines.push(line);
  }));
  const stdin = child.stdin.getWriter();
  return {
    lines,
    async see(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!lines.some((l) => pattern.test(l))) {
        if (Date.now() > deadline) {
          throw new Error(`${name} did not print ${pattern}:\n${lines.slice(-30).join("\n")}`);
        }
        await sleep(100);
      }
    },
    type: (line) => stdin.write(new TextEncoder().encode(line + "\n")),
    async stop() {
      await stdin.close().catch(() => {});
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
      await reading;
    },
  };
}

Deno.test("the compiled gateway, processor and terminal client chat on the real cluster", async () => {
  await compile();
  const data = Deno.makeTempDirSync({ prefix: "chat-compiled-" });
  const grpcPort = freePort();
  const httpPort = freePort();
  const common = {
    KAFKA_BROKERS: await kafkaBrokers(),
    DATABASE_PATH: `${data}/chat.db`,
    DATABASE_URL: "",
    AUTH_SECRET: crypto.randomUUID() + crypto.randomUUID(),
    HEARTBEAT_INTERVAL_MS: "500",
    HEARTBEAT_TIMEOUT_MS: "3000",
  };
  const processor = start("chat-processor", [], common);
  const gateway = start("chat-gateway", [], {
    ...common,
    BUS: "kafka",
    GRPC_PORT: String(grpcPort),
    HTTP_PORT: String(httpPort),
  });
  const clients: Running[] = [];
  try {
    const http = `http://127.0.0.1:${httpPort}`;
    await gateway.see(/Starting gateway/);
    for (let tries = 0;; tries++) {
      const status = await fetch(`${http}/readyz`).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      }, () => 0);
      if (status === 200) break;
      assert.ok(tries < 120, `the compiled gateway is not ready after 60 s (/readyz ${status})`);
      await sleep(500);
    }
    // The page comes from inside the executable: its working directory has no web/dist.
    const page = await fetch(`${http}/`);
    assert.equal(page.status, 200, "GET / serves the embedded page");
    assert.match(await page.text(), /<script[^>]+app\.js/);

    const server = ["--server", `127.0.0.1:${grpcPort}`];
    const password = { CHAT_PASSWORD: "correct horse battery", CHAT_SERVER: "" };
    const alice = start("chat", ["alice", ...server], password);
    const bob = start("chat", ["bob", ...server], password);
    clients.push(alice, bob);
    await alice.see(/^Connected to server as user: alice$/, 60_000);
    await bob.see(/^Connected to server as user: bob$/, 60_000);
    await alice.type("Hello from a single executable");
    await bob.see(new RegExp(`^${STAMP}alice: Hello from a single executable$`));
    await alice.see(new RegExp(`^${STAMP}alice: Hello from a single executable$`));
  } finally {
    for (const client of clients) await client.stop();
    await gateway.stop();
    await processor.stop();
  }
});
