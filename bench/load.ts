/**
 * The load the benchmarks put on a gateway: many subscriber streams and one sender.
 *
 * Subscribers are real `CreateStream` calls over gRPC (grpc-js), each on its own channel and TCP
 * connection unless `channels` is smaller than `streams` (then stream i uses channel i % channels).
 * To keep the measuring side cheap they do not decode whole messages with protobuf.js: the
 * response deserializer passes the bytes through and only the `content` field (field 2) is read.
 * So the numbers measure the server, not the cost of decoding 1,000,000 messages in the client.
 *
 * Content is `b:<n>:<send time in ms>` for measured messages and `w:<tag>:<n>` for warm-up ones.
 * Latency = receive time − send time, both taken with `performance.timeOrigin + performance.now()`
 * (wall clock, sub-millisecond; comparable across processes on one machine).
 *
 * `BENCH_TRACE=<file>`: the subscriber process also writes every sample there as
 * `stream,send time,latency` lines, to look at latency over time.
 */

import * as grpc from "@grpc/grpc-js";
import { ChatClient } from "../client/chat_client.ts";
import { broadcastMethods, SERVICE_NAME, type WireConnect } from "../server/proto.ts";
import { type LatencySummary, nowMs, sleep, summarise, until } from "./stats.ts";

const TRACE: string[] | undefined = Deno.env.get("BENCH_TRACE") ? [] : undefined;

/** `CreateStream` only, with a pass-through deserializer: the client sees raw `chat.Message` bytes. */
const LeanClient = grpc.makeGenericClientConstructor(
  {
    CreateStream: {
      ...broadcastMethods.CreateStream!,
      responseDeserialize: (bytes: Buffer) => bytes,
    },
  } as unknown as grpc.ServiceDefinition,
  SERVICE_NAME,
);

/** Where the `content` field (2) of an encoded `chat.Message` lies, or [-1, -1] when absent. */
function contentSpan(buf: Uint8Array): [number, number] {
  let i = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    while (i < buf.length) {
      const b = buf[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
      shift += 7;
    }
    return value;
  };
  while (i < buf.length) {
    const tag = varint();
    const field = tag >>> 3;
    switch (tag & 7) {
      case 0:
        varint();
        break;
      case 1:
        i += 8;
        break;
      case 5:
        i += 4;
        break;
      case 2: {
        const len = varint();
        if (field === 2) return [i, i + len];
        i += len;
        break;
      }
      default:
        return [-1, -1];
    }
  }
  return [-1, -1];
}

/** Parses the ASCII decimal number in buf[start, end), with an optional fraction. */
function decimal(buf: Uint8Array, start: number, end: number): number {
  let value = 0;
  let scale = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === 46) scale = 1;
    else {
      value = value * 10 + (c - 48);
      if (scale) scale *= 10;
    }
  }
  return scale ? value / scale : value;
}

/** Warm-up tags: `w:<tag>:<n>` with tag 0..WARM_TAGS-1 (one per room in the Kafka run). */
export const WARM_TAGS = 8;

/** Classifies a frame: 'b' measured (with its send time), 'w' warm-up (with its tag), or undefined. */
function readFrame(
  buf: Uint8Array,
): { kind: "b"; sent: number } | { kind: "w"; tag: number } | undefined {
  const [s, e] = contentSpan(buf);
  if (s < 0 || e - s < 2 || buf[s + 1] !== 58) return undefined;
  if (buf[s] === 119) {
    const tag = e - s > 2 ? buf[s + 2]! - 48 : 0;
    return { kind: "w", tag: tag >= 0 && tag < WARM_TAGS ? tag : 0 };
  }
  if (buf[s] !== 98) return undefined;
  const second = buf.indexOf(58, s + 2);
  if (second < 0 || second >= e) return undefined;
  return { kind: "b", sent: decimal(buf, second + 1, e) };
}

export interface SubscribeOptions {
  /** Gateways' `host:port`; stream i connects to addresses[i % length]. */
  addresses: string[];
  streams: number;
  /** How many channels (TCP connections) carry the streams; default one per stream. */
  channels?: number;
  /** Stream i is user `${userPrefix}${i}`. */
  userPrefix: string;
  /** Streams (by index) that never read until `resume()`: slow consumers. */
  paused?: number[];
  /** Measured messages expected per stream, to size the latency buffer. */
  expected: number;
}

export interface StreamEnd {
  index: number;
  code: number;
  details: string;
  /** When the client saw it (ms, `nowMs()`). */
  at: number;
  /** Whether the stream was still paused when the end reached the client. */
  whilePaused: boolean;
}

export interface DeliveryStats {
  /** Measured messages received by the reading (not paused) streams. */
  delivered: number;
  /** Measured messages received by paused streams (after resume, or before the pause took hold). */
  deliveredToPaused: number;
  firstAt: number;
  lastAt: number;
  latency: LatencySummary;
  /** Streams that were cut or ended before the run finished. */
  ends: StreamEnd[];
  /** This process's CPU time (user + system) in ms since the subscribers were opened. */
  cpuMs: number;
}

export class Subscribers {
  readonly #clients: grpc.Client[] = [];
  readonly #calls: grpc.ClientReadableStream<Buffer>[] = [];
  readonly #paused: Set<number>;
  readonly #perStream: Int32Array;
  readonly #warm: Int32Array;
  #latencies: Float64Array;
  #samples = 0;
  #deliveredToPaused = 0;
  #firstAt = NaN;
  #lastAt = NaN;
  #cpuStart = cpuMs();
  readonly ends: StreamEnd[] = [];
  readonly streams: number;
  readonly #userPrefix: string;

  constructor(options: SubscribeOptions) {
    const { addresses, streams } = options;
    this.streams = streams;
    this.#userPrefix = options.userPrefix;
    this.#paused = new Set(options.paused ?? []);
    this.#perStream = new Int32Array(streams);
    this.#warm = new Int32Array(streams * WARM_TAGS);
    this.#latencies = new Float64Array(Math.max(1, options.expected * streams));
    const channels = Math.max(1, Math.min(options.channels ?? streams, streams));
    for (let c = 0; c < channels; c++) {
      this.#clients.push(
        new LeanClient(addresses[c % addresses.length]!, grpc.credentials.createInsecure(), {
          // Without this, grpc-js shares one TCP connection among all channels to one address.
          "grpc.use_local_subchannel_pool": 1,
        }),
      );
    }
    for (let i = 0; i < streams; i++) this.#open(i, channels);
  }

  #open(index: number, channels: number): void {
    const client = this.#clients[index % channels]! as unknown as {
      CreateStream(request: WireConnect, metadata: grpc.Metadata): grpc.ClientReadableStream<
        Buffer
      >;
    };
    const userId = `${this.#userPrefix}${index}`;
    const call = client.CreateStream({
      user: { id: userId, displayName: userId },
      active: true,
      presenceEvents: false,
      resume: [],
    }, new grpc.Metadata());
    const paused = this.#paused.has(index);
    let ended = false;
    const end = (code: number, details: string) => {
      if (ended) return;
      ended = true;
      this.ends.push({ index, code, details, at: nowMs(), whilePaused: this.#paused.has(index) });
    };
    call.on("data", (buf: Buffer) => {
      const frame = readFrame(buf);
      if (!frame) return;
      if (frame.kind === "w") {
        this.#warm[index * WARM_TAGS + frame.tag]!++;
        return;
      }
      const now = nowMs();
      this.#perStream[index]!++;
      if (paused) {
        this.#deliveredToPaused++;
        return;
      }
      if (this.#samples === 0) this.#firstAt = now;
      this.#lastAt = now;
      if (this.#samples < this.#latencies.length) {
        this.#latencies[this.#samples] = now - frame.sent;
        if (TRACE) TRACE.push(`${index},${frame.sent.toFixed(3)},${(now - frame.sent).toFixed(3)}`);
      }
      this.#samples++;
    });
    call.on("error", (err: grpc.ServiceError) => end(err.code, err.details));
    call.on("end", () => end(0, "OK"));
    if (paused) call.pause();
    this.#calls.push(call);
  }

  /** Whether every reading stream got at least `count` warm-up messages tagged `tag`. */
  warmedUp(count: number, tag = 0): boolean {
    for (let i = 0; i < this.streams; i++) {
      if (this.#paused.has(i) || this.#ended(i)) continue;
      if (this.#warm[i * WARM_TAGS + tag]! < count) return false;
    }
    return true;
  }

  #ended(index: number): boolean {
    return this.ends.some((e) => e.index === index);
  }

  /** Whether every reading stream got `count` measured messages (or ended). */
  received(count: number): boolean {
    for (let i = 0; i < this.streams; i++) {
      if (this.#paused.has(i)) continue;
      if (this.#perStream[i]! < count && !this.#ended(i)) return false;
    }
    return true;
  }

  /** Waits (bounded) until every reading stream has `count` measured messages. */
  async waitFor(count: number, timeoutMs: number): Promise<boolean> {
    return await until(() => this.received(count), timeoutMs, 10);
  }

  /** Lets the paused streams read again and waits (bounded) until each has ended. */
  async resume(timeoutMs: number): Promise<StreamEnd[]> {
    const paused = [...this.#paused];
    this.#paused.clear();
    for (const i of paused) this.#calls[i]?.resume();
    await until(() => paused.every((i) => this.#ended(i)), timeoutMs, 20);
    return this.ends.filter((e) => paused.includes(e.index));
  }

  stats(): DeliveryStats {
    if (TRACE) Deno.writeTextFileSync(Deno.env.get("BENCH_TRACE")!, TRACE.join("\n"));
    const n = Math.min(this.#samples, this.#latencies.length);
    const samples = this.#latencies.subarray(0, n);
    return {
      delivered: this.#samples,
      deliveredToPaused: this.#deliveredToPaused,
      firstAt: this.#firstAt,
      lastAt: this.#lastAt,
      latency: summarise(samples),
      ends: [...this.ends],
      cpuMs: cpuMs() - this.#cpuStart,
    };
  }

  /** Resets the measurement (not the streams), for a second round on the same streams. */
  reset(): void {
    this.#perStream.fill(0);
    this.#samples = 0;
    this.#deliveredToPaused = 0;
    this.#firstAt = NaN;
    this.#lastAt = NaN;
    this.#cpuStart = cpuMs();
  }

  // No close(): a client process simply exits. A graceful channel close sends GOAWAY, and with
  // Deno 2.9.6's node:http2 a GOAWAY after many calls can abort the *server* process (nghttp2
  // assertion `stream->closed_next == NULL`, denoland/deno#36788).
}

/** This process's CPU time (user + system), in ms. */
export function cpuMs(): number {
  const { user, system } = (globalThis as unknown as {
    process: { cpuUsage(): { user: number; system: number } };
  }).process.cpuUsage();
  return (user + system) / 1000;
}

export interface SendOptions {
  address: string;
  userId: string;
  messages: number;
  /** Sends in flight at once. */
  window: number;
  /** 'b' for measured messages, 'w' for warm-up. */
  kind: "b" | "w";
  /** Warm-up tag, 0..WARM_TAGS-1 (default 0). */
  tag?: number;
  room?: string;
  token?: string;
  /** Messages per second, paced; unset: as fast as acks allow. */
  rate?: number;
  timeoutMs: number;
}

export interface SendStats {
  acked: number;
  failed: number;
  /** gRPC status code → count, for failed sends. */
  errors: Record<string, number>;
  firstAt: number;
  lastAckAt: number;
  timedOut: boolean;
  cpuMs: number;
  /** Send → OK answer, per acknowledged send (ms). */
  ack: LatencySummary;
}

/** Sends `messages` messages with at most `window` in flight; resolves after the last answer. */
export async function send(options: SendOptions, client?: ChatClient): Promise<SendStats> {
  // Never closed (see the note at the end of Subscribers); grpc-js shares one connection per
  // address anyway.
  const chat = client ?? new ChatClient(options.address);
  if (options.token) chat.token = options.token;
  const cpuStart = cpuMs();
  const stats: SendStats = {
    acked: 0,
    failed: 0,
    errors: {},
    firstAt: nowMs(),
    lastAckAt: NaN,
    timedOut: false,
    cpuMs: 0,
    ack: summarise(new Float64Array(0)),
  };
  const acks = new Float64Array(options.messages);
  let acked = 0;
  const deadline = stats.firstAt + options.timeoutMs;
  let next = 0;
  const worker = async () => {
    while (next < options.messages && nowMs() < deadline) {
      const n = next++;
      if (options.rate) {
        const due = stats.firstAt + (n * 1000) / options.rate;
        const wait = due - nowMs();
        if (wait > 0) await sleep(wait);
      }
      const sentAt = nowMs();
      const content = options.kind === "b"
        ? `b:${n}:${sentAt.toFixed(3)}`
        : `w:${options.tag ?? 0}:${n}`;
      try {
        await chat.send(options.userId, content, { room: options.room });
        stats.acked++;
        stats.lastAckAt = nowMs();
        if (acked < acks.length) acks[acked++] = stats.lastAckAt - sentAt;
      } catch (err) {
        stats.failed++;
        const code = String((err as grpc.ServiceError).code ?? "unknown");
        stats.errors[code] = (stats.errors[code] ?? 0) + 1;
      }
    }
  };
  const workers = Promise.all(Array.from({ length: Math.max(1, options.window) }, worker));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    workers.then(() => "done"),
    new Promise<string>((r) => timer = setTimeout(() => r("timeout"), options.timeoutMs + 5000)),
  ]);
  clearTimeout(timer);
  stats.timedOut = outcome === "timeout" || stats.acked + stats.failed < options.messages;
  stats.cpuMs = cpuMs() - cpuStart;
  stats.ack = summarise(acks.subarray(0, acked));
  return stats;
}
