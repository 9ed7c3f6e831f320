/**
 * The floor: what Kafka itself does on the same cluster, measured with its own tools from the
 * same Maven Central jars (kafka/pom.xml: `org.apache.kafka:kafka-tools`), so the service's
 * numbers can be stated as ratios to it.
 *
 * - `org.apache.kafka.tools.EndToEndLatency <brokers> <topic> <n> all <bytes>`: one message at a
 *   time, produced with acks=all and consumed back; prints the average (4 decimals) and the 50th,
 *   99th and 99.9th percentiles (whole milliseconds, truncated).
 * - `org.apache.kafka.tools.ProducerPerformance`: n records as fast as the producer goes
 *   (acks=all), records per second and send latency percentiles (whole milliseconds).
 *
 * Both run on topic `bench-floor`, created with the partitions and replication of `chatting`.
 * Beside them, `kafkajsEndToEnd` runs EndToEndLatency's loop with the client the service uses:
 * what one Kafka hop costs on this runtime before any of the service's own work. It runs twice:
 * back to back as EndToEndLatency does, and paced as kafka-light sends (one record every 1/rate
 * s), because a record that finds the brokers and the consumer idle takes longer than one that
 * follows another at once.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel } from "kafkajs";
import { CONSUMER_SETTINGS } from "../bus/kafka/subscription.ts";
import { histogram, percentiles, recordMs } from "./stats.ts";
import { TOPICS } from "../bus/kafka/topics.ts";
import { applyReplication, chooseReplication } from "../bus/kafka/replication.ts";

export const FLOOR_TOPIC = "bench-floor";
const JARS = new URL("../kafka/.jars/", import.meta.url).pathname;

export interface EndToEndResult {
  avg_ms: number;
  p50: number;
  p99: number;
  p999: number;
}

/** Reads EndToEndLatency's summary ("Avg latency: 2.1234 ms", "Percentiles: 50th = 2, ..."). */
export function parseEndToEnd(output: string): EndToEndResult {
  const avg = /Avg latency:\s*([\d.]+)\s*ms/.exec(output);
  const pct = /Percentiles:\s*50th\s*=\s*(\d+),\s*99th\s*=\s*(\d+),\s*99\.9th\s*=\s*(\d+)/.exec(
    output,
  );
  if (!avg || !pct) {
    throw new Error(`Cannot read EndToEndLatency's output:\n${output.slice(-1000)}`);
  }
  return { avg_ms: Number(avg[1]), p50: Number(pct[1]), p99: Number(pct[2]), p999: Number(pct[3]) };
}

export interface ProducerPerfResult {
  records: number;
  records_per_s: number;
  mib_per_s: number;
  avg_ms: number;
  max_ms: number;
  p50: number;
  p95: number;
  p99: number;
  p999: number;
}

/** Reads ProducerPerformance's final line (the one with the percentiles). */
export function parseProducerPerformance(output: string): ProducerPerfResult {
  const m =
    /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th/
      .exec(output);
  if (!m) throw new Error(`Cannot read ProducerPerformance's output:\n${output.slice(-1000)}`);
  const n = m.slice(1).map(Number);
  return {
    records: n[0]!,
    records_per_s: n[1]!,
    mib_per_s: n[2]!,
    avg_ms: n[3]!,
    max_ms: n[4]!,
    p50: n[5]!,
    p95: n[6]!,
    p99: n[7]!,
    p999: n[8]!,
  };
}

/** The Kafka version of the jars (from kafka-clients-<version>.jar), or "?". */
export function kafkaVersion(): string {
  try {
    for (const entry of Deno.readDirSync(JARS)) {
      const m = /^kafka-clients-(.+)\.jar$/.exec(entry.name);
      if (m) return m[1]!;
    }
  } catch {
    // No jars.
  }
  return "?";
}

async function java(args: string[], timeoutMs: number): Promise<string> {
  const tools = [...Deno.readDirSync(JARS)].some((e) => /^kafka-tools-[\d.]+\.jar$/.test(e.name));
  if (!tools) {
    throw new Error(
      "kafka/.jars has no kafka-tools jar: run `deno run -A kafka/cluster.ts fetch` while the cluster is down",
    );
  }
  const child = new Deno.Command("java", {
    args: ["-Xmx256m", "-XX:+UseSerialGC", "-cp", `${JARS}*`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${args[0]} exited with ${out.code}:\n${text.slice(-2000)}`);
  return text;
}

/** Creates the floor topic unless it exists, like `chatting`: same partitions and replication. */
export async function ensureFloorTopic(brokers: string): Promise<void> {
  const admin = new Kafka({
    clientId: "chat-bench-floor",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  // A cluster that just started may not know every partition's leader yet: try again for 60 s.
  const deadline = performance.now() + 60_000;
  try {
    for (;;) {
      try {
        if (!(await admin.listTopics()).includes(FLOOR_TOPIC)) {
          // Replicated as the app replicates `chatting` on this cluster.
          const { brokers } = await admin.describeCluster();
          const spec = applyReplication(TOPICS.chatting, chooseReplication({}, brokers.length));
          await admin.createTopics({
            topics: [{
              topic: FLOOR_TOPIC,
              numPartitions: spec.partitions,
              replicationFactor: spec.replicationFactor,
              configEntries: Object.entries(spec.configs ?? {}).map(([name, value]) => ({
                name,
                value,
              })),
            }],
          });
        }
        const [topic] = (await admin.fetchTopicMetadata({ topics: [FLOOR_TOPIC] })).topics;
        if (topic?.partitions.every((p) => p.leader >= 0 && p.isr.length > 1)) return;
      } catch (err) {
        if (performance.now() > deadline) throw err;
      }
      if (performance.now() > deadline) throw new Error(`${FLOOR_TOPIC} has no leaders after 60 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await admin.disconnect();
  }
}

export interface FloorOptions {
  brokers: string;
  /** Messages of the EndToEndLatency run. */
  messages: number;
  /** Records of the ProducerPerformance run. */
  records: number;
  bytes: number;
  /** The paced kafkajs loop: this many records, one every 1/rate s (kafka-light's rate). */
  paced: { messages: number; rate: number };
}

export interface FloorResult {
  end_to_end: EndToEndResult;
  /** EndToEndLatency's loop with kafkajs in Deno, in milliseconds (not truncated). */
  kafkajs_end_to_end: { p50: number; p99: number; p999: number };
  /** The same loop, one record every 1/rate s. */
  kafkajs_paced: { p50: number; p99: number; p999: number; rate: number };
  producer: ProducerPerfResult;
  /** The two command lines, as run. */
  commands: string[];
}

export async function runFloor(options: FloorOptions): Promise<FloorResult> {
  await ensureFloorTopic(options.brokers);
  const e2eArgs = [
    "org.apache.kafka.tools.EndToEndLatency",
    options.brokers,
    FLOOR_TOPIC,
    String(options.messages),
    "all",
    String(options.bytes),
  ];
  const perfArgs = [
    "org.apache.kafka.tools.ProducerPerformance",
    "--topic",
    FLOOR_TOPIC,
    "--num-records",
    String(options.records),
    "--record-size",
    String(options.bytes),
    "--throughput",
    "-1",
    "--producer-props",
    `bootstrap.servers=${options.brokers}`,
    "acks=all",
  ];
  const e2e = await java(e2eArgs, 300_000);
  const kafkajs = await kafkajsEndToEnd(options.brokers, options.messages, options.bytes);
  const { messages, rate } = options.paced;
  const paced = await kafkajsEndToEnd(options.brokers, messages, options.bytes, rate);
  const perf = await java(perfArgs, 300_000);
  return {
    end_to_end: parseEndToEnd(e2e),
    kafkajs_end_to_end: kafkajs,
    kafkajs_paced: { ...paced, rate },
    producer: parseProducerPerformance(perf),
    commands: [e2eArgs, perfArgs].map((a) => `java -cp 'kafka/.jars/*' ${a.join(" ")}`),
  };
}

/**
 * EndToEndLatency's loop (one record at a time, produced with acks=all and consumed back before
 * the next) with kafkajs, configured as the service uses it: an idempotent producer
 * (bus/kafka/connection.ts) and a consumer of a group of its own with the gateways' settings
 * (bus/kafka/subscription.ts). The consumer reads from the end, which kafkajs settles only at
 * its first fetch: records are sent until one comes back before anything is counted, and the
 * first tenth of the loop warms up uncounted. With `rate`, record i is due at i/rate s from the
 * start and sent then (or at once, when the one before came back later than that), and counts
 * from when it was due.
 */
export async function kafkajsEndToEnd(
  brokers: string,
  messages: number,
  bytes: number,
  rate?: number,
): Promise<{ p50: number; p99: number; p999: number }> {
  const kafka = new Kafka({
    clientId: "chat-bench-floor-kafkajs",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer({ idempotent: true, allowAutoTopicCreation: false });
  const consumer = kafka.consumer({
    groupId: `chat-bench-floor-${crypto.randomUUID()}`,
    ...CONSUMER_SETTINGS,
  });
  const value = "x".repeat(bytes);
  let arrived: ((key: string) => void) | undefined;
  /** Sends a record keyed `key`; resolves with whether it came back within `waitMs`. */
  const roundTrip = async (key: string, waitMs: number): Promise<boolean> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const back = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), waitMs);
      arrived = (got) => got === key && resolve(true);
    });
    try {
      await producer.send({ topic: FLOOR_TOPIC, acks: -1, messages: [{ key, value }] });
      return await back;
    } finally {
      // Also when the send fails: a pending wait would keep the bench alive for up to 30 s.
      clearTimeout(timer);
    }
  };
  const h = histogram();
  try {
    await producer.connect();
    await consumer.connect();
    await consumer.subscribe({ topic: FLOOR_TOPIC, fromBeginning: false });
    await consumer.run({
      eachMessage: ({ message }) => Promise.resolve(arrived?.(message.key?.toString() ?? "")),
    });
    let probes = 0;
    while (!await roundTrip(`probe-${probes}`, 1000)) {
      if (++probes === 60) throw new Error("kafkajs: no record came back within 60 s");
    }
    const t0 = performance.now();
    for (let i = 0; i < messages; i++) {
      // Paced, a record counts from when it was due, as kafka-light's do: one held up by the one
      // before is late by that much.
      const due = rate ? t0 + (i * 1000) / rate : performance.now();
      if (due > performance.now()) await sleep(due - performance.now());
      const started = due;
      if (!await roundTrip(`${i}`, 30_000)) {
        throw new Error(`kafkajs: record ${i} did not come back within 30 s`);
      }
      if (i >= messages / 10) recordMs(h, performance.now() - started);
    }
  } finally {
    arrived = undefined;
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
  }
  const { p50, p99, p999 } = percentiles(h);
  h.destroy();
  return { p50, p99, p999 };
}
