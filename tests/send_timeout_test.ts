/**
 * A send Kafka does not acknowledge in time answers UNAVAILABLE within SEND_TIMEOUT_MS, well
 * before a client's deadline, saying that a retry with the same message id is safe; the retry
 * is then delivered once, even when the first attempt reached Kafka late.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { silentLogger } from "../core/logger.ts";
import type { ChatMessage } from "../core/types.ts";
import { MemoryBus } from "../bus/memory_bus.ts";
import { newClient, startSystem, waitFor } from "./helpers.ts";

/** A memory bus whose room logs wait while `held` is set, as on a leaderless partition. */
class StallingBus extends MemoryBus {
  held: Promise<void> | undefined;
  override async append(message: ChatMessage): Promise<void> {
    if (this.held) await this.held;
    return await super.append(message);
  }
}

Deno.test("a send Kafka cannot take answers UNAVAILABLE in time; its retry is delivered once", async () => {
  const bus = new StallingBus({ logger: silentLogger, retryDelayMs: 20 });
  const system = await startSystem({ bus, config: { sendTimeoutMs: 300 } });
  try {
    const reader = newClient(system.address());
    const got: string[] = [];
    const stream = reader.stream("rita", (m) => {
      if (m.content) got.push(m.content);
    }, () => {});
    await new Promise((r) => stream.call.on("metadata", r));

    let release!: () => void;
    bus.held = new Promise((r) => release = r);
    const sender = newClient(system.address());
    const started = performance.now();
    await assert.rejects(
      sender.send("sam", "hello", { messageId: "retry-me", deadlineMs: 10_000 }),
      (err: { code: number; details: string }) => {
        assert.equal(err.code, status.UNAVAILABLE);
        assert.match(err.details, /Kafka is degraded and did not acknowledge it within 300 ms/);
        assert.match(err.details, /retrying with message_id retry-me is safe/);
        return true;
      },
    );
    assert.ok(performance.now() - started < 5000, "answered long before the client's deadline");

    // The first attempt reaches Kafka late, and the client retries with the same id.
    bus.held = undefined;
    release();
    await sender.send("sam", "hello", { messageId: "retry-me" });
    await sender.send("sam", "after", { messageId: "next" });
    await waitFor(() => got.includes("after"), 5000, "the next message");
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(got, ["hello", "after"], "the retried message once, in order");
    stream.cancel();
  } finally {
    await system.stop();
  }
});
