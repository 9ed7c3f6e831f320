// deno-lint-ignore-file no-console
/**
 * What the fault scenarios share: a recorder process driving load, the verdict printed as
 * figures, the partition leader to kill, and the memory and file descriptors of a process.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { TOPICS } from "../../bus/kafka/topics.ts";
import { kafkaBrokers, type Service, spawn } from "../processes.ts";
import { account, describeVerdict, type Verdict } from "./delivery_ledger.ts";
import type { RecorderPlan, RecorderResult } from "./recorder.ts";

export interface Recorder {
  service: Service;
  /** Resolves once every stream is open. */
  ready(): Promise<void>;
  /** Resolves once at least `acked` sends were acknowledged. */
  acked(acked: number, timeoutMs?: number): Promise<void>;
  /** Waits for the end and draws the verdict; fails if the recorder died. */
  verdict(name: string, timeoutMs: number): Promise<Verdict & { reopened: number }>;
}

/** Starts the recorder process with `plan` (defaults: 1 s drain, 20 s send deadline). */
export function startRecorder(
  plan: Omit<RecorderPlan, "drainMs" | "sendDeadlineMs" | "prefix"> & Partial<RecorderPlan>,
): Recorder {
  const full: RecorderPlan = {
    prefix: `m${crypto.randomUUID().slice(0, 8)}`,
    drainMs: 30_000,
    sendDeadlineMs: 20_000,
    ...plan,
  };
  const service = spawn("recorder", "tests/faults/recorder.ts", { args: [JSON.stringify(full)] });
  const lastProgress = () => {
    const line = service.output.findLast((l) => l.startsWith("progress "));
    return line ? JSON.parse(line.slice("progress ".length)) as { acked: number } : undefined;
  };
  return {
    service,
    async ready() {
      await service.waitForLine(/^ready$/, 60_000);
    },
    async acked(acked, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while ((lastProgress()?.acked ?? 0) < acked) {
        if (Date.now() > deadline) {
          throw new Error(`fewer than ${acked} sends acknowledged after ${timeoutMs} ms`);
        }
        await service.waitForLine(/^(progress|result) /, timeoutMs).catch(() => {});
        await sleep(200);
      }
    },
    async verdict(name, timeoutMs) {
      const line = await service.waitForLine(/^result /, timeoutMs);
      const status = await service.exit(10_000);
      if (status.code !== 0) {
        throw new Error(`the recorder exited with ${status.code}:\n${service.output.join("\n")}`);
      }
      const result = JSON.parse(line.slice("result ".length)) as RecorderResult;
      const verdict = account(result.sends, new Map(Object.entries(result.streams)), {
        from: result.loadFrom,
        to: result.loadTo,
      });
      const reopened = Object.values(result.reopened).reduce((a, b) => a + b, 0);
      console.log(`FIGURES ${describeVerdict(name, verdict)}; streams reopened ${reopened}`);
      if (verdict.lostSample.length > 0) {
        console.log(`  lost, e.g.: ${verdict.lostSample}`);
        // Where it went missing: never written to Kafka, or written and not handled.
        for (const id of new Set(verdict.lostSample)) {
          console.log(`  ${id}: ${await findInKafka(id)}`);
        }
      }
      return { ...verdict, reopened };
    },
  };
}

/** The node id (1..3) leading the partition of `chatting` that messages keyed `key` go to. */
export async function leaderFor(key: string, topic = TOPICS.chatting.name): Promise<number> {
  const admin = new Kafka({
    clientId: "fault-tests",
    brokers: kafkaBrokers().split(","),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitionMetadata = topics[0]!.partitions;
    const partition = Partitioners.DefaultPartitioner()({
      topic,
      partitionMetadata,
      message: { key, value: null },
    });
    return partitionMetadata.find((p) => p.partitionId === partition)!.leader;
  } finally {
    await admin.disconnect();
  }
}

/** Where `needle` is on `chatting` and `chat-deliveries`, read with kcat (an independent client). */
async function findInKafka(needle: string): Promise<string> {
  const found: string[] = [];
  for (const topic of [TOPICS.chatting.name, TOPICS.deliveries.name]) {
    const out = await new Deno.Command("kcat", {
      args: ["-b", kafkaBrokers(), "-C", "-t", topic, "-e", "-q", "-f", "%p/%o %s\n"],
      stdout: "piped",
      stderr: "null",
    }).output().catch(() => undefined);
    const lines = new TextDecoder().decode(out?.stdout).split("\n");
    const at = lines.filter((l) => l.includes(`"${needle}`)).map((l) => l.split(" ")[0]);
    found.push(`${topic} ${at.length > 0 ? `at ${at.join(", ")}` : "nowhere"}`);
  }
  return found.join("; ");
}

/** Resident memory of a process, in KiB (from /proc). */
export function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

/** How many file descriptors a process holds open. */
export function openFds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** node:timers/promises `setTimeout`, for the scenarios that take it from here. */
export { sleep };

/**
 * The node id (1..3) of the active KRaft controller, from Kafka's own `kafka-metadata-quorum`
 * tool (kafkajs cannot ask: in KRaft the metadata answer names a random broker as controller).
 */
export async function activeController(): Promise<number> {
  const jars = new URL("../../kafka/.jars/*", import.meta.url).pathname;
  const out = await new Deno.Command("java", {
    args: [
      "-cp",
      jars,
      "org.apache.kafka.tools.MetadataQuorumCommand",
      "--bootstrap-server",
      kafkaBrokers(),
      "describe",
      "--status",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const leader = /LeaderId:\s+(\d+)/.exec(text)?.[1];
  if (!out.success || leader === undefined) {
    throw new Error(
      `Cannot tell the active controller:\n${text}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return Number(leader);
}

/**
 * Waits until every partition of every topic has all its replicas in sync again: the cluster
 * is whole, and the next broker may go down without any partition losing its last copy.
 */
export async function awaitFullySynced(timeoutMs = 120_000): Promise<number> {
  const started = performance.now();
  const admin = new Kafka({
    clientId: "fault-tests",
    brokers: kafkaBrokers().split(","),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    for (;;) {
      try {
        const { topics } = await admin.fetchTopicMetadata();
        const behind = topics.flatMap((t) =>
          t.partitions.filter((p) => p.isr.length < p.replicas.length).map((p) =>
            `${t.name}/${p.partitionId}`
          )
        );
        if (behind.length === 0) return Math.round(performance.now() - started);
        if (performance.now() - started > timeoutMs) {
          throw new Error(`partitions still out of sync after ${timeoutMs} ms: ${behind}`);
        }
      } catch (err) {
        if (performance.now() - started > timeoutMs) throw err;
      }
      await sleep(500);
    }
  } finally {
    await admin.disconnect();
  }
}
