// deno-lint-ignore-file no-console
/**
 * The load of a fault scenario, in its own process: streams that record every delivery and
 * senders that record every answer. It runs apart from the test, as a client program would, so
 * that the test's own work (killing services, asking Kafka) never delays a delivery's timestamp.
 * Its clients close their connections when done with them, as real clients do.
 *
 * `deno run -A tests/faults/recorder.ts '<RecorderPlan as JSON>'` prints:
 * - `ready` once every stream is open;
 * - `progress {"acked":..,"refused":..,"delivered":..}` every second while it sends;
 * - `result <RecorderResult as JSON>` at the end, after the senders stopped and the streams had
 *   `drainMs` to receive what was acknowledged; then it exits.
 *
 * A stream that ends is opened again on the next server of its list, resuming from the last
 * sequence number it saw, the way the terminal client does.
 */

import { ChatClient, type Message, type MessageStream } from "../../client/chat_client.ts";
import type { DeliveryRecord, SendRecord } from "./delivery_ledger.ts";

export interface RecorderPlan {
  /** Every message id starts with it, so other traffic is ignored. */
  prefix: string;
  streams: { name: string; user: string; servers: string[] }[];
  senders: { user: string; server: string; perSecond: number }[];
  seconds: number;
  drainMs: number;
  /** How long a send waits for its answer. */
  sendDeadlineMs: number;
  /** Bytes of filler after the id in each message (default none). */
  padding?: number;
}

export interface RecorderResult {
  sends: SendRecord[];
  streams: Record<string, DeliveryRecord[]>;
  /** How often each stream had to be opened again. */
  reopened: Record<string, number>;
  /** When sending started and stopped (ms since the recorder started). */
  loadFrom: number;
  loadTo: number;
}

const ROOM = "general";

function now(): number {
  return performance.now();
}

class RecordedStream {
  readonly received: DeliveryRecord[] = [];
  readonly ids = new Set<string>();
  reopened = 0;
  #lastSeq = 0;
  #server = 0;
  #client: ChatClient | undefined;
  #stream: MessageStream | undefined;
  #open = false;

  constructor(
    readonly spec: RecorderPlan["streams"][number],
    readonly prefix: string,
  ) {}

  get open(): boolean {
    return this.#open;
  }

  start(): void {
    const address = this.spec.servers[this.#server % this.spec.servers.length]!;
    this.#client = new ChatClient(address, undefined, { "grpc.use_local_subchannel_pool": 1 });
    const resume = this.#lastSeq > 0 ? [{ room: ROOM, lastSeq: this.#lastSeq }] : [];
    this.#stream = this.#client.stream(
      this.spec.user,
      (m) => this.#onMessage(m),
      () => this.#onEnd(),
      { resume },
    );
    this.#stream.call.on("metadata", () => this.#open = true);
  }

  #onMessage(message: Message): void {
    this.#open = true;
    // The generated types carry uint64 as bigint; the ledger counts in numbers.
    const seq = Number(message.seq);
    if (!message.content.startsWith(this.prefix) || seq <= 0) return;
    this.#lastSeq = Math.max(this.#lastSeq, seq);
    const id = message.content.split(" ", 1)[0]!;
    this.ids.add(id);
    this.received.push({
      id,
      room: message.room || ROOM,
      seq,
      at: now(),
    });
  }

  #onEnd(): void {
    this.#open = false;
    if (stopping) return;
    this.reopened++;
    this.#server++;
    // The next server gets a new connection: this one is done with.
    this.#client?.close();
    setTimeout(() => this.start(), 200);
  }

  stop(): void {
    this.#stream?.cancel();
    this.#client?.close();
  }
}

let stopping = false;

async function main(plan: RecorderPlan): Promise<void> {
  const streams = plan.streams.map((s) => new RecordedStream(s, plan.prefix));
  for (const s of streams) s.start();
  const deadline = now() + 60_000;
  while (!streams.every((s) => s.open)) {
    if (now() > deadline) throw new Error("streams did not open within 60 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  // A stream is registered with the processor shortly after it opens; messages sent before
  // that would still reach it (the gateway delivers by room), but give the cluster a moment.
  await new Promise((r) => setTimeout(r, 1000));
  console.log("ready");

  const sends: SendRecord[] = [];
  const filler = plan.padding ? ` ${"x".repeat(plan.padding)}` : "";
  const pending = new Set<Promise<void>>();
  const loadFrom = now();
  const progress = setInterval(() => {
    const acked = sends.filter((s) => s.code === 0).length;
    const refused = sends.filter((s) => s.code !== undefined && s.code !== 0).length;
    const delivered = streams.reduce((n, s) => n + s.received.length, 0);
    console.log(`progress ${JSON.stringify({ acked, refused, delivered, pending: pending.size })}`);
  }, 1000);
  const senderClients: ChatClient[] = [];
  await Promise.all(plan.senders.map(async (sender, index) => {
    const client = new ChatClient(sender.server);
    senderClients.push(client);
    const total = Math.round(sender.perSecond * plan.seconds);
    for (let i = 0; i < total; i++) {
      // Open loop: each send leaves on its schedule, whether or not earlier ones were answered.
      const due = loadFrom + (i * 1000) / sender.perSecond;
      const wait = due - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const record: SendRecord = {
        id: `${plan.prefix}-${index}-${i}`,
        room: ROOM,
        code: undefined,
      };
      sends.push(record);
      const sent = client.send(sender.user, record.id + filler, {
        messageId: record.id,
        deadlineMs: plan.sendDeadlineMs,
      }).then(
        () => record.code = 0,
        (err: { code?: number }) => record.code = typeof err.code === "number" ? err.code : -1,
      ).then(() => {
        record.answeredAt = now();
        pending.delete(sent);
      });
      pending.add(sent);
    }
  }));
  const loadTo = now();
  await Promise.all(pending);
  for (const client of senderClients) client.close();
  const acked = sends.filter((s) => s.code === 0).map((s) => s.id);
  const drainUntil = now() + plan.drainMs;
  while (now() < drainUntil && !streams.every((s) => acked.every((id) => s.ids.has(id)))) {
    await new Promise((r) => setTimeout(r, 100));
  }
  // Anything still on its way arrives now, so duplicates show too.
  await new Promise((r) => setTimeout(r, 500));
  stopping = true;
  clearInterval(progress);
  for (const s of streams) s.stop();
  const result: RecorderResult = {
    sends,
    streams: Object.fromEntries(streams.map((s) => [s.spec.name, s.received])),
    reopened: Object.fromEntries(streams.map((s) => [s.spec.name, s.reopened])),
    loadFrom,
    loadTo,
  };
  console.log(`result ${JSON.stringify(result)}`);
}

if (import.meta.main) {
  const plan = JSON.parse(Deno.args[0] ?? "") as RecorderPlan;
  try {
    await main(plan);
    Deno.exit(0);
  } catch (err) {
    console.error(`recorder failed: ${err instanceof Error ? err.stack : err}`);
    Deno.exit(1);
  }
}
