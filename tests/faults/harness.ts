// deno-lint-ignore-file no-console
/**
 * What the fault scenarios share: a recorder process driving load, the verdict printed as
 * figures, the partition leader to kill, and the memory and file descriptors of a process.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { type Admin, AssignerProtocol, Kafka, logLevel, Partitioners } from "kafkajs";
import { fixKafkajsIdleTimerLoop } from "../../bus/kafka/idle_timer_fix.ts";
import { PROCESSOR_GROUP, TOPICS } from "../../bus/kafka/topics.ts";
import { kafkaBrokers, kafkaDeployment, type Service, spawn, stopAll } from "../processes.ts";
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

/** Runs `fn` with an admin client of the fault tests' own. */
async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  fixKafkajsIdleTimerLoop();
  const admin = new Kafka({
    clientId: "fault-tests",
    brokers: kafkaBrokers().split(","),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/** The partition of `topic` that records keyed `key` go to, and its leader's node id (1..3). */
async function partitionFor(
  admin: Admin,
  key: string,
  topic: string,
): Promise<{ partition: number; leader: number }> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  const partitionMetadata = topics[0]!.partitions;
  const partition = Partitioners.DefaultPartitioner()({
    topic,
    partitionMetadata,
    message: { key, value: null },
  });
  return { partition, leader: partitionMetadata.find((p) => p.partitionId === partition)!.leader };
}

/** The node id (1..3) leading the partition of `chatting` that messages keyed `key` go to. */
export function leaderFor(key: string, topic = TOPICS.chatting.name): Promise<number> {
  return withAdmin(async (admin) => (await partitionFor(admin, key, topic)).leader);
}

/**
 * The client ids of the processors in the group, each with the `chatting` partitions it holds,
 * once the group is stable (empty while it rebalances). A processor's client id is its
 * `KAFKA_CLIENT_ID`.
 */
export async function processorAssignments(): Promise<Map<string, number[]>> {
  return (await processorGroup()).held;
}

/** The group's state and, once it is stable, what each processor holds (see above). */
function processorGroup(): Promise<{ state: string; held: Map<string, number[]> }> {
  return withAdmin(async (admin) => {
    const { groups: [group] } = await admin.describeGroups([PROCESSOR_GROUP]);
    const held = new Map<string, number[]>();
    if (group?.state !== "Stable") return { state: group?.state ?? "missing", held };
    for (const member of group.members) {
      const assignment = AssignerProtocol.MemberAssignment.decode(member.memberAssignment);
      held.set(member.clientId, assignment?.assignment[TOPICS.chatting.name] ?? []);
    }
    return { state: group.state, held };
  });
}

/**
 * Waits until the group is stable with exactly `clientIds` in it and `chatting`'s partitions
 * shared among them: the processors are ready to take messages. On a timeout it says what it
 * saw last: the group's state and members, or why the cluster could not tell.
 */
export async function processorsHolding(clientIds: string[], timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  const deadline = start + timeoutMs;
  let seen = "nothing yet";
  for (;;) {
    const asked = Date.now();
    try {
      const { state, held } = await processorGroup();
      const partitions = [...held.values()].flat().length;
      if (
        held.size === clientIds.length && clientIds.every((id) => held.has(id)) &&
        partitions === TOPICS.chatting.partitions
      ) return;
      seen = `${state} ${JSON.stringify([...held])}`;
    } catch (err) {
      seen = `no answer: ${err instanceof Error ? err.message : String(err)}`;
    }
    seen += ` (asked ${Math.round((asked - start) / 1000)} s in, answered in ${
      Date.now() - asked
    } ms)`;
    if (Date.now() > deadline) {
      throw new Error(
        `The processor group is not ${
          clientIds.join(", ")
        } after ${timeoutMs} ms; last seen: ${seen}`,
      );
    }
    await sleep(500);
  }
}

/** The client id of the processor that holds the room's partition of `chatting`. */
export async function processorOf(room: string): Promise<string | undefined> {
  const { partition } = await withAdmin((admin) => partitionFor(admin, room, TOPICS.chatting.name));
  for (const [clientId, partitions] of await processorAssignments()) {
    if (partitions.includes(partition)) return clientId;
  }
  return undefined;
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
export function awaitFullySynced(timeoutMs = 120_000): Promise<number> {
  const started = performance.now();
  return withAdmin(async (admin) => {
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
  });
}

export interface LoadOptions {
  /** How long the senders send. */
  seconds: number;
  /** Acknowledged sends before the fault. */
  ackedBeforeFault: number;
  /** How long the verdict may take, from the start of the load. */
  verdictTimeoutMs: number;
  /** The processor's heartbeat timeout (default: the suite's short one). */
  heartbeatTimeoutMs?: number;
  /** The recorder's deadline per send (default 20 s). */
  sendDeadlineMs?: number;
}

export type LoadVerdict = Verdict & { reopened: number; deadVerdicts: string[] };

/**
 * Two gateways and a processor under 200 messages per second (four streams over both gateways);
 * `fault` runs once `ackedBeforeFault` sends were acknowledged, with gateway a's gRPC address.
 * Returns the recorder's verdict and the gateways of this run that a processor declared dead
 * (`gateway-dead` deliveries on `chat-deliveries`, read with kcat, an independent client).
 */
export async function underLoad(
  name: string,
  options: LoadOptions,
  fault: (gateway: string) => Promise<void>,
): Promise<LoadVerdict> {
  const deployment = kafkaDeployment(
    options.heartbeatTimeoutMs ? { heartbeatTimeoutMs: options.heartbeatTimeoutMs } : {},
  );
  const a = deployment.gateway("gateway-a");
  const b = deployment.gateway("gateway-b");
  const processor = deployment.processor("processor", { KAFKA_CLIENT_ID: "processor" });
  const startedAt = Date.now();
  try {
    await Promise.all([a.ready(), b.ready(), processorsHolding(["processor"])]);
    const recorder = startRecorder({
      streams: [
        { name: "a1", user: "ann", servers: [a.grpc, b.grpc] },
        { name: "a2", user: "abe", servers: [a.grpc, b.grpc] },
        { name: "b1", user: "bob", servers: [b.grpc, a.grpc] },
        { name: "b2", user: "bea", servers: [b.grpc, a.grpc] },
      ],
      senders: [
        { user: "sam", server: a.grpc, perSecond: 100 },
        { user: "sue", server: b.grpc, perSecond: 100 },
      ],
      seconds: options.seconds,
      ...(options.sendDeadlineMs ? { sendDeadlineMs: options.sendDeadlineMs } : {}),
      // Consumers rejoin their groups after a leader moves: deliveries can pause for tens of
      // seconds, which is reported, not counted as loss.
      drainMs: 120_000,
    });
    await recorder.ready();
    await recorder.acked(options.ackedBeforeFault);
    await fault(a.grpc);
    const v = await recorder.verdict(name, options.verdictTimeoutMs);
    const deadVerdicts = (await gatewayDeadVerdicts(startedAt)).map((v) => v.serverId)
      .filter((id) => id === a.serverId || id === b.serverId);
    // Reported, not judged: when the processor blamed the cluster instead of the gateways.
    const suspicions = processor.output.filter((l) =>
      /Suspecting the Kafka cluster|verdicts resume/.test(l)
    );
    console.log(
      `FIGURES ${name}: streams cut ${v.reopened}, false dead-gateway verdicts ${deadVerdicts.length}, ` +
        `cluster suspicions logged ${suspicions.length}`,
    );
    for (const line of suspicions) console.log(`  processor: ${line}`);
    if (v.lost > 0 || deadVerdicts.length > 0 || v.reopened > 0) {
      const dir = await Deno.makeTempDir({ prefix: `${name.replaceAll(/\W+/g, "-")}-logs-` });
      for (const s of [a.service, b.service, processor, recorder.service]) {
        await Deno.writeTextFile(`${dir}/${s.name}.log`, s.output.join("\n"));
      }
      console.log(`full logs of every process: ${dir}`);
      for (const s of [a.service, b.service, processor]) {
        const said = s.output.filter((l) => / (WARN|ERROR) /.test(l)).slice(-15);
        console.log(`--- ${s.name} warnings ---\n${said.join("\n")}`);
      }
    }
    return { ...v, deadVerdicts };
  } finally {
    await stopAll([a.service, b.service, processor]);
  }
}

/**
 * The gateways a processor declared dead since `sinceMs` (epoch ms), with when: the
 * `gateway-dead` deliveries on `chat-deliveries` and their Kafka timestamps, read with kcat.
 */
export async function gatewayDeadVerdicts(
  sinceMs: number,
): Promise<{ serverId: string; at: number }[]> {
  const out = await new Deno.Command("kcat", {
    args: [
      "-b",
      kafkaBrokers(),
      "-C",
      "-t",
      TOPICS.deliveries.name,
      "-o",
      `s@${sinceMs}`,
      "-e",
      "-q",
      "-f",
      "%T %s\n",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").flatMap((line) => {
    if (!line.includes('"gateway-dead"')) return [];
    const space = line.indexOf(" ");
    try {
      const record = JSON.parse(line.slice(space + 1));
      return [{ serverId: String(record.server_id), at: Number(line.slice(0, space)) }];
    } catch {
      return [];
    }
  });
}
