// deno-lint-ignore-file no-console
/**
 * Runs benchmark clients in a separate process, so that the gateway's process spends its CPU on
 * the gateway alone (and its memory is the gateway's alone): `clients.ts` is the child's entry,
 * `ClientProcess` the parent's handle on it.
 *
 * Protocol: one JSON object per line. The parent writes commands to the child's stdin; the child
 * answers on stdout with `{"ev": ...}` lines (and reports every stream that ends, as it happens).
 *
 * | command                                   | answer                                   |
 * |-------------------------------------------|------------------------------------------|
 * | `subscribe` (SubscribeOptions)            | `subscribed`                             |
 * | `waitWarm` {count, tag, timeoutMs}        | `warm` {ok}                              |
 * | `wait` {count, timeoutMs}                 | `delivered` {ok, stats: DeliveryStats}   |
 * | `resume` {timeoutMs}                      | `resumed` {ends}                         |
 * | `reset`                                   | `reset`                                  |
 * | `send` (SendOptions)                      | `sent` {stats: SendStats}                |
 * | `exit`                                    | (the child exits)                        |
 */

import {
  type DeliveryStats,
  send,
  type SendOptions,
  type SendStats,
  type StreamEnd,
  type SubscribeOptions,
  Subscribers,
} from "./load.ts";
import { until } from "./stats.ts";

type Command =
  | ({ cmd: "subscribe" } & SubscribeOptions)
  | { cmd: "waitWarm"; count: number; tag?: number; timeoutMs: number }
  | { cmd: "wait"; count: number; timeoutMs: number }
  | { cmd: "resume"; timeoutMs: number }
  | { cmd: "reset" }
  | ({ cmd: "send" } & SendOptions)
  | { cmd: "exit" };

// deno-lint-ignore no-explicit-any
type Event = { ev: string; [key: string]: any };

async function child(): Promise<void> {
  const out = (event: Event) => console.log(JSON.stringify(event));
  let subscribers: Subscribers | undefined;
  let reported = 0;
  // Stream ends are reported as they happen, so the parent sees cuts during a run.
  const watch = setInterval(() => {
    const ends = subscribers?.ends ?? [];
    while (reported < ends.length) out({ ev: "ended", end: ends[reported++] });
  }, 50);
  const decoder = new TextDecoder();
  let rest = "";
  try {
    for await (const chunk of Deno.stdin.readable) {
      rest += decoder.decode(chunk, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (!line.trim()) continue;
        const command = JSON.parse(line) as Command;
        switch (command.cmd) {
          case "subscribe":
            subscribers = new Subscribers(command);
            out({ ev: "subscribed" });
            break;
          case "waitWarm": {
            const s = subscribers!;
            const ok = await until(
              () => s.warmedUp(command.count, command.tag),
              command.timeoutMs,
              10,
            );
            out({ ev: "warm", ok });
            break;
          }
          case "wait": {
            const ok = await subscribers!.waitFor(command.count, command.timeoutMs);
            out({ ev: "delivered", ok, stats: subscribers!.stats() });
            break;
          }
          case "resume":
            out({ ev: "resumed", ends: await subscribers!.resume(command.timeoutMs) });
            break;
          case "reset":
            subscribers!.reset();
            reported = subscribers!.ends.length;
            out({ ev: "reset" });
            break;
          case "send":
            out({ ev: "sent", stats: await send(command) });
            break;
          case "exit":
            return;
        }
      }
    }
  } finally {
    clearInterval(watch);
    // No stream cancels and no channel closes: the process exit drops the connections (see
    // the note at the end of Subscribers in load.ts for why a graceful close is avoided).
  }
}

/** The parent's handle on one client process. */
export class ClientProcess {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #events: Event[] = [];
  readonly #stderr: string[] = [];
  readonly ends: StreamEnd[] = [];
  #exited = false;

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
      if (event.ev === "ended") this.ends.push(event.end as StreamEnd);
      else this.#events.push(event);
    });
    this.#read(this.#child.stderr, (line) => this.#stderr.push(line));
    this.#child.status.then(() => this.#exited = true);
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of stream) {
      rest += decoder.decode(chunk, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) if (line.trim()) onLine(line);
    }
  }

  async #call(command: Command, answer: string, timeoutMs: number): Promise<Event> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const i = this.#events.findIndex((e) => e.ev === answer);
      if (i >= 0) return this.#events.splice(i, 1)[0]!;
      if (this.#exited) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(
      `${this.name}: no "${answer}" answer within ${timeoutMs} ms${
        this.#exited ? " (the client process exited)" : ""
      }\n${this.#stderr.slice(-20).join("\n")}`,
    );
  }

  async subscribe(options: SubscribeOptions, timeoutMs = 60_000): Promise<void> {
    await this.#call({ cmd: "subscribe", ...options }, "subscribed", timeoutMs);
  }

  async waitWarm(count: number, timeoutMs: number, tag = 0): Promise<boolean> {
    const answer = await this.#call(
      { cmd: "waitWarm", count, tag, timeoutMs },
      "warm",
      timeoutMs + 10_000,
    );
    return answer.ok;
  }

  async wait(count: number, timeoutMs: number): Promise<{ ok: boolean; stats: DeliveryStats }> {
    const e = await this.#call({ cmd: "wait", count, timeoutMs }, "delivered", timeoutMs + 30_000);
    return { ok: e.ok, stats: e.stats };
  }

  async resume(timeoutMs: number): Promise<StreamEnd[]> {
    return (await this.#call({ cmd: "resume", timeoutMs }, "resumed", timeoutMs + 10_000)).ends;
  }

  async reset(): Promise<void> {
    await this.#call({ cmd: "reset" }, "reset", 10_000);
    this.ends.length = 0;
  }

  async send(options: SendOptions): Promise<SendStats> {
    return (await this.#call({ cmd: "send", ...options }, "sent", options.timeoutMs + 30_000))
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
  // Open gRPC channels may keep the event loop alive for a moment; the parent waits for exit.
  Deno.exit(0);
}
