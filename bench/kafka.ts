/**
 * End-to-end latency through Kafka with real processes: one gateway (`BUS=kafka deno run -A
 * main.ts`, AUTH=off, its own ports, SQLite in a temporary directory) and one processor
 * (`deno run -A processor.ts`, same database) on the cluster in KAFKA_BROKERS; subscriber streams
 * and one sender in two client processes (bench/clients.ts).
 *
 * The run uses its own room (`bench-<random>`), so other gateways on the same cluster deliver
 * nothing of it to their users. Note that the processor joins the shared consumer group
 * `chatting-processor-group`: do not run this while another test run uses the cluster.
 *
 * Two measured phases on the same streams: paced (a steady `rate` of messages per second, the
 * latency a chat sees) and flood (W sends in flight, as fast as acks allow: the throughput of
 * the chatting → processor → chat-deliveries path).
 */

import { Partitioners } from "kafkajs";
import { ChatClient } from "../client/chat_client.ts";
import { TOPICS } from "../core/config.ts";
import { freePort, type Service, spawn, stopAll } from "../tests/processes.ts";
import { ClientProcess } from "./clients.ts";
import type { DeliveryStats, SendStats } from "./load.ts";
import { loadNow } from "./stats.ts";

export interface KafkaOptions {
  brokers: string;
  streams: number;
  messages: number;
  /** Messages per second in the paced phase. */
  rate: number;
  window: number;
  timeoutMs: number;
  progress?: (line: string) => void;
}

export interface KafkaPhase {
  name: string;
  load: string;
  send: SendStats;
  delivery: DeliveryStats;
  complete: boolean;
  sendPerSecond: number;
  deliveriesPerSecond: number;
}

export interface KafkaResult {
  options: KafkaOptions;
  /** The room measured: the first whose messages went all the way round. */
  room: string;
  /** Rooms (one per `chatting` partition) none of whose messages reached the streams. */
  undelivered: { room: string; partition: number }[];
  /** kafkajs warnings about partitions of topics a consumer did not subscribe to. */
  warnings: string[];
  phases: KafkaPhase[];
  /** Processes in the processor group (or driving one) seen during the run: results disturbed. */
  neighbours: string[];
}

/**
 * Other processes on this machine that may be in the processor group or drive one (a processor,
 * or an integration test that starts processors): running next to them would take partitions
 * from their processors and store their messages in this run's database.
 */
export function kafkaNeighbours(own: Service[] = []): string[] {
  const found: string[] = [];
  const mine = new Set(own.map((s) => String(s.process.pid)));
  const pattern = /processor\.ts|kafka_integration_test|web_kafka_test|cluster_test/;
  try {
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid || mine.has(entry.name)) {
        continue;
      }
      try {
        const cmd = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
        if (pattern.test(cmd)) found.push(`${entry.name}: ${cmd.trim().slice(0, 100)}`);
      } catch {
        // Gone meanwhile, or not ours to read.
      }
    }
  } catch {
    // No /proc: nothing to check.
  }
  return found;
}

const partitioner = Partitioners.DefaultPartitioner();

/**
 * Room names `${base}-p<n>`, one for each partition n of a topic with `partitions` partitions,
 * found with the producer's own partitioner (murmur2 of the key, as kafkajs computes it).
 */
export function roomsPerPartition(base: string, partitions: number): string[] {
  const metadata = Array.from({ length: partitions }, (_, i) => ({
    partitionId: i,
    leader: i,
    replicas: [i],
    isr: [i],
    partitionErrorCode: 0,
  }));
  const rooms: string[] = [];
  for (let p = 0; p < partitions; p++) {
    for (let i = 0; i < 10_000; i++) {
      const room = `${base}-p${p}${i ? `-${i}` : ""}`;
      const at = partitioner({
        topic: TOPICS.chatting.name,
        partitionMetadata: metadata,
        message: { key: room, value: null },
      });
      if (at === p) {
        rooms.push(room);
        break;
      }
    }
  }
  return rooms;
}

const hex = (bytes: number) =>
  [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");

export async function runKafka(options: KafkaOptions): Promise<KafkaResult> {
  const say = options.progress ?? (() => {});
  const dir = await Deno.makeTempDir({ prefix: "chat-bench-kafka-" });
  const tag = hex(4);
  const grpcPort = freePort();
  const httpPort = freePort();
  const common = {
    KAFKA_BROKERS: options.brokers,
    DATABASE_PATH: `${dir}/chat.db`,
    // SQLite shared by the two processes, even when the environment names a PostgreSQL.
    DATABASE_URL: "",
    LOG_LEVEL: Deno.env.get("BENCH_LOG_LEVEL") ?? "info",
  };
  const services: Service[] = [];
  const subscribers = new ClientProcess("subscribers");
  const sender = new ClientProcess("sender");
  try {
    say("starting processor.ts and a BUS=kafka gateway (main.ts)");
    const processor = spawn("processor", "processor.ts", { env: common });
    services.push(processor);
    await processor.waitForLine(/Processor started/, 90_000);
    const gateway = spawn("gateway", "main.ts", {
      env: {
        ...common,
        BUS: "kafka",
        AUTH: "off",
        AUTH_SECRET: hex(32),
        SERVER_ID: `bench-gw-${tag}`,
        GRPC_PORT: String(grpcPort),
        HTTP_PORT: String(httpPort),
        RATE_LIMIT_PER_SECOND: "1000000",
        RATE_LIMIT_BURST: "1000000",
      },
    });
    services.push(gateway);
    await gateway.waitForLine(/Gateway listening/, 90_000);
    const address = `127.0.0.1:${grpcPort}`;

    // Rooms of its own, one per `chatting` partition (a room lives on one partition): sign
    // everybody in (tokens work with AUTH=off), create the rooms, join them.
    const rooms = roomsPerPartition(`bench-${tag}`, TOPICS.chatting.partitions);
    say(`signing in ${options.streams + 1} users, creating rooms ${rooms.join(", ")}`);
    const prefix = `kb-${tag}-`;
    const senderId = `${prefix}sender`;
    const ids = [senderId, ...Array.from({ length: options.streams }, (_, i) => `${prefix}${i}`)];
    const clients = ids.map(() => new ChatClient(address));
    await Promise.all(ids.map((id, i) => clients[i]!.signIn(id, `password-${tag}-${id}`)));
    for (const room of rooms) {
      await clients[0]!.createRoom(room);
      await Promise.all(clients.slice(1).map((c) => c.joinRoom(room)));
    }
    // Closed now, after a few calls each: later, the gateway's GOAWAY at shutdown could abort
    // this process (denoland/deno#36788, see bench/load.ts).
    for (const c of clients) c.close();

    await subscribers.subscribe({
      addresses: [address],
      streams: options.streams,
      userPrefix: prefix,
      expected: options.messages,
    });
    // Until the consumers have their partitions, messages can be missed: send one warm-up
    // message a second to each room until every stream got one of that room, or 90 s passed.
    say("waiting until a message of each room goes all the way round");
    const working: string[] = [];
    const undelivered: { room: string; partition: number }[] = [];
    const deadline = performance.now() + 90_000;
    const pending = new Set(rooms.keys());
    while (pending.size && performance.now() < deadline) {
      for (const i of [...pending]) {
        await sender.send({
          address,
          userId: senderId,
          messages: 1,
          window: 1,
          kind: "w",
          tag: i,
          room: rooms[i],
          timeoutMs: 10_000,
        });
      }
      await new Promise((r) => setTimeout(r, 1000));
      for (const i of [...pending]) {
        if (await subscribers.waitWarm(1, 10, i)) {
          pending.delete(i);
          working.push(rooms[i]!);
        }
      }
    }
    for (const i of pending) undelivered.push({ room: rooms[i]!, partition: i });
    const room = working[0];
    if (room === undefined) {
      throw new Error(
        `No message reached every stream through Kafka within 90 s\n--- gateway ---\n${
          gateway.output.slice(-15).join("\n")
        }\n--- processor ---\n${processor.output.slice(-15).join("\n")}`,
      );
    }
    if (undelivered.length) {
      say(`no delivery in ${undelivered.map((u) => u.room).join(", ")}; measuring in ${room}`);
    }

    const phases: KafkaPhase[] = [];
    for (const phase of ["paced", "flood"] as const) {
      await subscribers.reset();
      say(
        phase === "paced"
          ? `Kafka, paced: ${options.messages} messages at ${options.rate}/s`
          : `Kafka, flood: ${options.messages} messages, ${options.window} in flight`,
      );
      const load = loadNow();
      const [send, delivered] = await Promise.all([
        sender.send({
          address,
          userId: senderId,
          messages: options.messages,
          window: options.window,
          rate: phase === "paced" ? options.rate : undefined,
          kind: "b",
          room,
          timeoutMs: options.timeoutMs,
        }),
        subscribers.wait(options.messages, options.timeoutMs),
      ]);
      const delivery = delivered.stats;
      phases.push({
        name: phase,
        load,
        send,
        delivery,
        complete: delivered.ok && delivery.delivered === options.messages * options.streams,
        sendPerSecond: send.acked / ((send.lastAckAt - send.firstAt) / 1000),
        deliveriesPerSecond: delivery.delivered / ((delivery.lastAt - send.firstAt) / 1000),
      });
    }
    return {
      options,
      room,
      undelivered,
      phases,
      neighbours: kafkaNeighbours(services),
      warnings: [...gateway.output, ...processor.output].filter((l) =>
        /unsubscribed topics/.test(l)
      ).slice(0, 3),
    };
  } finally {
    await Promise.all([subscribers.close(), sender.close()]);
    await stopAll(services);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
