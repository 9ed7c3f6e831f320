/**
 * Slow consumer, embedded mode over real gRPC: one stream that never reads must neither slow the
 * others down nor hold the gateway's memory, and must be cut with RESOURCE_EXHAUSTED
 * (`STREAM_QUEUE_LIMIT`, default 1000 messages).
 *
 * Two rounds on a fresh system each, same S reading streams and M messages (M well above the
 * queue limit): (a) the S streams alone, (b) the S streams plus one stream whose client pauses it
 * from the start and never reads. Compares the reading streams' deliveries per second, checks the
 * gateway dropped the paused stream from its hub (server-side cut) and whether the client saw the
 * RESOURCE_EXHAUSTED status while still paused, or only after it resumed reading (then it first
 * has to read every frame queued before the status).
 */

import { ClientProcess } from "./clients.ts";
import { benchSystem, serverCpuMs } from "./fanout.ts";
import type { StreamEnd } from "./load.ts";
import { loadNow, until } from "./stats.ts";

export interface SlowConsumerOptions {
  streams: number;
  messages: number;
  window: number;
  timeoutMs: number;
  /** Rounds of each kind, alternating; the best of each is compared. */
  repeat: number;
  progress?: (line: string) => void;
}

export interface SlowRound {
  deliveriesPerSecond: number;
  /** Gateway CPU time per delivery to a reading stream, in microseconds. */
  serverUsPerDelivery: number;
  complete: boolean;
  load: string;
}

export interface SlowConsumerResult {
  options: SlowConsumerOptions;
  baseline: SlowRound;
  withSlow: SlowRound;
  /** withSlow / baseline deliveries per second. */
  ratio: number;
  /** Whether the gateway removed the paused stream from its hub while it was paused. */
  cutByServer: boolean;
  /** How many measured messages the paused stream had read once resumed (before its status). */
  pausedGot: number;
  /** The paused stream's end as the client saw it, if it did within the bound. */
  end: StreamEnd | undefined;
}

const RESOURCE_EXHAUSTED = 8;

export { RESOURCE_EXHAUSTED };

export async function round(
  options: SlowConsumerOptions,
  paused: boolean,
): Promise<{ round: SlowRound; cutByServer: boolean; pausedGot: number; end?: StreamEnd }> {
  const system = await benchSystem(1);
  const subscribers = new ClientProcess("subscribers");
  const sender = new ClientProcess("sender");
  try {
    const total = options.streams + (paused ? 1 : 0);
    const slowIndex = options.streams;
    const address = system.address();
    await subscribers.subscribe({
      addresses: [address],
      streams: total,
      userPrefix: "reader-",
      paused: paused ? [slowIndex] : [],
      expected: options.messages,
    });
    const hub = system.gateways[0]!.hub;
    if (!await until(() => hub.size === total, 30_000)) {
      throw new Error(`Only ${hub.size} of ${total} streams opened within 30 s`);
    }
    await sender.send({
      address,
      userId: "sender",
      messages: 20,
      window: options.window,
      kind: "w",
      timeoutMs: 30_000,
    });
    await subscribers.waitWarm(20, 30_000);
    await subscribers.reset();
    const load = loadNow();
    const cpu0 = serverCpuMs();
    const [send, delivered] = await Promise.all([
      sender.send({
        address,
        userId: "sender",
        messages: options.messages,
        window: options.window,
        kind: "b",
        timeoutMs: options.timeoutMs,
      }),
      subscribers.wait(options.messages, options.timeoutMs),
    ]);
    const cpu = serverCpuMs() - cpu0;
    const stats = delivered.stats;
    const result = {
      round: {
        deliveriesPerSecond: stats.delivered / ((stats.lastAt - send.firstAt) / 1000),
        complete: delivered.ok && stats.delivered === options.streams * options.messages,
        serverUsPerDelivery: (cpu * 1000) / stats.delivered,
        load,
      },
      cutByServer: paused && hub.size === options.streams,
      pausedGot: 0,
      end: undefined as StreamEnd | undefined,
    };
    if (paused) {
      options.progress?.("resuming the paused stream");
      const ends = await subscribers.resume(15_000);
      result.end = ends.find((e) => e.index === slowIndex) ??
        subscribers.ends.find((e) => e.index === slowIndex);
      result.pausedGot = (await subscribers.wait(0, 1000)).stats.deliveredToPaused;
    }
    return result;
  } finally {
    await Promise.all([subscribers.close(), sender.close()]);
    await system.stop();
  }
}

/**
 * Runs the two rounds `repeat` times, alternating, and compares the best of each: other load on
 * the machine only ever slows a round down, so the best round is the least disturbed one. Every
 * paused round must be cut; the reported end is from the last one.
 */
export async function runSlowConsumer(options: SlowConsumerOptions): Promise<SlowConsumerResult> {
  const baselines: SlowRound[] = [];
  const slows: Awaited<ReturnType<typeof round>>[] = [];
  for (let i = 0; i < options.repeat; i++) {
    options.progress?.(
      `slow consumer ${i + 1}/${options.repeat}: ${options.streams} streams alone`,
    );
    baselines.push((await round(options, false)).round);
    options.progress?.(
      `slow consumer ${i + 1}/${options.repeat}: ${options.streams} streams + 1 paused stream`,
    );
    slows.push(await round(options, true));
  }
  const best = (rounds: SlowRound[]) =>
    rounds.reduce((a, b) => b.deliveriesPerSecond > a.deliveriesPerSecond ? b : a);
  const baseline = best(baselines);
  const withSlow = best(slows.map((s) => s.round));
  const last = slows.at(-1)!;
  return {
    options,
    baseline,
    withSlow,
    ratio: withSlow.deliveriesPerSecond / baseline.deliveriesPerSecond,
    cutByServer: slows.every((s) => s.cutByServer),
    pausedGot: last.pausedGot,
    end: slows.every((s) => s.end?.code === RESOURCE_EXHAUSTED)
      ? last.end
      : slows.find((s) => s.end?.code !== RESOURCE_EXHAUSTED)?.end,
  };
}
