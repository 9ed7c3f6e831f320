// deno-lint-ignore-file no-console
/**
 * The load runs in client processes separate from the gateways, so a gateway's CPU and memory
 * are its own: `clients.ts` is a child's entry, `ClientProcess` the parent's handle on it. A
 * child holds subscriber streams or a publisher (bench/load.ts), or both.
 *
 * Protocol: one JSON object per line. The parent writes commands to the child's stdin; the child
 * answers on stdout with `{"ev": ...}` lines, and sends a `tick` with its counters every second.
 *
 * | command                            | answer                                 |
 * |------------------------------------|----------------------------------------|
 * | `subscribe` (SubscribeOptions)     | `subscribed` (every stream requested)  |
 * | `phase` {run, messages}            | `phased`                               |
 * | `complete` {quietMs, capMs}        | `stats` {stats: DeliveryStats}         |
 * | `resume` {timeoutMs}               | `resumed` {ends}                       |
 * | `publish` (PublishOptions)         | `published` {stats: PublishStats}      |
 * | `exit`                             | (the child exits)                      |
 */

import { setTimeout as sleep } from "node:timers/promises";
import { ChatClient } from "../client/chat_client.ts";
import { readLines } from "../scripts/processes.ts";
import {
  type DeliveryStats,
  publish,
  publishing,
  type PublishOptions,
  type PublishStats,
  type Sender,
  type StreamEnd,
  type SubscribeOptions,
  Subscribers,
} from "./load.ts";
import { isWebAddress, WebSender } from "./web_load.ts";

type Command =
  | ({ cmd: "subscribe" } & SubscribeOptions)
  | { cmd: "phase"; run: string; messages: number }
  | { cmd: "complete"; quietMs: number; capMs: number }
  | { cmd: "resume"; timeoutMs: number }
  | ({ cmd: "publish" } & PublishOptions)
  | { cmd: "exit" };

/** A child's counters, sent every second. */
export interface Tick {
  /** Streams the gateways accepted. */
  opened: number;
  /** Reading streams still open. */
  reading: number;
  /** Reading streams that got a warm-up message of the current run. */
  warmed: number;
  /** Measured deliveries in the current run. */
  delivered: number;
  sent: number;
  acked: number;
  /** Streams that ended (cut or refused), and how the first one did. */
  ended: number;
  firstEnd: string;
}

/** What a child says on its stdout, one JSON line each. */
type Event =
  | { ev: "tick"; tick: Tick }
  | { ev: "subscribed" }
  | { ev: "phased"; tick: Tick }
  | { ev: "stats"; stats: DeliveryStats }
  | { ev: "resumed"; ends: StreamEnd[] }
  | { ev: "published"; stats: PublishStats }
  | { ev: "error"; message: string };

/** The answer a command waits for. */
type Answer = Exclude<Event, { ev: "tick" } | { ev: "error" }>;

async function child(): Promise<void> {
  const out = (event: Event) => console.log(JSON.stringify(event));
  let subscribers: Subscribers | undefined;
  let chat: (Sender & { close(): void }) | undefined;
  const tick = (): Tick => ({
    opened: subscribers?.opened ?? 0,
    reading: subscribers?.reading() ?? 0,
    warmed: subscribers?.warmed() ?? 0,
    delivered: subscribers?.delivered ?? 0,
    sent: publishing.sent,
    acked: publishing.acked,
    ended: subscribers?.ends.length ?? 0,
    firstEnd: subscribers?.ends[0]
      ? `${subscribers.ends[0].code} ${subscribers.ends[0].details}`
      : "",
  });
  const ticker = setInterval(() => out({ ev: "tick", tick: tick() }), 1000);
  const run = async (command: Command) => {
    switch (command.cmd) {
      case "subscribe":
        subscribers = new Subscribers(command);
        await subscribers.open();
        out({ ev: "subscribed" });
        break;
      case "phase":
        subscribers?.phase(command.run, command.messages);
        out({ ev: "phased", tick: tick() });
        break;
      case "complete":
        await subscribers!.complete(command.quietMs, command.capMs);
        out({ ev: "stats", stats: subscribers!.stats() });
        break;
      case "resume":
        out({ ev: "resumed", ends: await subscribers!.resume(command.timeoutMs) });
        break;
      case "publish":
        // One channel for every publish of this process, closed when it is told to exit.
        chat ??= isWebAddress(command.address)
          ? new WebSender(command.address)
          : new ChatClient(command.address);
        out({ ev: "published", stats: await publish(command, chat) });
        break;
    }
  };
  try {
    for await (const line of readLines(Deno.stdin.readable)) {
      if (!line.trim()) continue;
      const command = JSON.parse(line) as Command;
      if (command.cmd === "exit") return;
      // Not awaited: a `phase` or a counter query must not wait behind a running publish.
      run(command).catch((err) => {
        console.error(err);
        out({ ev: "error", message: String(err?.stack ?? err) });
      });
    }
  } finally {
    clearInterval(ticker);
    subscribers?.close();
    chat?.close();
  }
}

/** The parent's handle on one client process. */
export class ClientProcess {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #events: Exclude<Event, { ev: "tick" }>[] = [];
  readonly #stderr: string[] = [];
  #exited = false;
  /** The latest counters the child sent. */
  tick: Tick = {
    opened: 0,
    reading: 0,
    warmed: 0,
    delivered: 0,
    sent: 0,
    acked: 0,
    ended: 0,
    firstEnd: "",
  };

  constructor(readonly name: string) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./clients.ts", import.meta.url).pathname],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#read(this.#child.stdout, (line) => {
      const event = JSON.parse(line) as Event;
      if (event.ev === "tick") this.tick = event.tick;
      else this.#events.push(event);
    });
    this.#read(this.#child.stderr, (line) => this.#stderr.push(line));
    this.#child.status.then(() => this.#exited = true);
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    for await (const line of readLines(stream)) if (line.trim()) onLine(line);
  }

  async #call<K extends Answer["ev"]>(
    command: Command,
    answer: K,
    timeoutMs: number,
  ): Promise<Extract<Answer, { ev: K }>> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const failed = this.#events.find((e) => e.ev === "error");
      if (failed) {
        this.#events.splice(this.#events.indexOf(failed), 1);
        throw new Error(`${this.name}: ${failed.message}`);
      }
      const i = this.#events.findIndex((e) => e.ev === answer);
      if (i >= 0) return this.#events.splice(i, 1)[0] as Extract<Answer, { ev: K }>;
      if (this.#exited) break;
      await sleep(10);
    }
    throw new Error(
      `${this.name}: no "${answer}" answer within ${timeoutMs} ms${
        this.#exited ? " (the client process exited)" : ""
      }\n${this.#stderr.slice(-20).join("\n")}`,
    );
  }

  async subscribe(options: SubscribeOptions): Promise<void> {
    await this.#call({ cmd: "subscribe", ...options }, "subscribed", 300_000);
  }

  async phase(run: string, messages: number): Promise<void> {
    this.tick = (await this.#call({ cmd: "phase", run, messages }, "phased", 30_000)).tick;
  }

  async complete(quietMs: number, capMs: number): Promise<DeliveryStats> {
    return (await this.#call({ cmd: "complete", quietMs, capMs }, "stats", capMs + 60_000)).stats;
  }

  async resume(timeoutMs: number): Promise<StreamEnd[]> {
    return (await this.#call({ cmd: "resume", timeoutMs }, "resumed", timeoutMs + 10_000)).ends;
  }

  async publish(options: PublishOptions): Promise<PublishStats> {
    return (await this.#call(
      { cmd: "publish", ...options },
      "published",
      options.timeoutMs + 30_000,
    ))
      .stats;
  }

  /** Asks the child to exit; kills it after `timeoutMs`. */
  async close(timeoutMs = 10_000): Promise<void> {
    if (!this.#exited) {
      await this.#writer.write(new TextEncoder().encode(JSON.stringify({ cmd: "exit" }) + "\n"))
        .catch(() => {});
    }
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, timeoutMs);
    await this.#child.status;
    clearTimeout(timer);
  }
}

if (import.meta.main) {
  await child();
  // The connections were closed on the way out; their GOAWAY frames get a moment to leave
  // before the exit, which does not wait for grpc-js's timers.
  await sleep(200);
  Deno.exit(0);
}
