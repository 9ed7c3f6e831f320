/**
 * The load the benchmark puts on gateways, run inside client processes (bench/clients.ts):
 * subscriber streams and an open-loop publisher.
 *
 * Content of a measured message: `b:<run>:<index>:<scheduled send time, ms>:` padded with `x` to
 * the message size; warm-up messages are `w:<run>:<n>`. `<run>` (8 hex digits) is new for every
 * phase, so a straggler of an earlier phase (or of an earlier, interrupted benchmark on the same
 * Kafka topics) is never counted. Times are `performance.timeOrigin + performance.now()`: wall
 * clock, sub-millisecond, comparable between processes on one machine.
 *
 * Open loop: message i is due at t0 + i / rate and carries that due time; it is sent then, whether
 * or not earlier sends were answered, and latency is receive time − due time. A publisher or
 * server that stalls therefore shows the stall in every message that was due meanwhile (no
 * coordinated omission). Only the fan-out ceiling uses a closed loop (`window` sends in flight).
 *
 * Subscribers are real `CreateStream` calls, each on its own TCP connection: over native gRPC
 * (grpc-js, its own channel each) to a `host:port`, or over gRPC-Web (bench/web_load.ts) to a
 * gateway's HTTP port given as `http://host:port`; sends go the same way. To keep the measuring
 * side cheap they do not decode messages with protobuf-es: the deserializer passes the bytes
 * through and only the `content` field (2) is read.
 */

import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { Broadcast, type Connect, ConnectSchema } from "../protocol/gen/chat_pb.ts";
import { ChatClient } from "../client/chat_client.ts";
import {
  encodeHistogram,
  type Histogram,
  histogram,
  nowMs,
  recordMs,
  Tally,
  until,
} from "./stats.ts";
import { isWebAddress, openWebStream, type StreamCall, type StreamEvents } from "./web_load.ts";

/** Length of a run tag: 8 hex digits. */
export const RUN_LENGTH = 8;

export function newRun(): string {
  return [...crypto.getRandomValues(new Uint8Array(RUN_LENGTH / 2))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The content of measured message `index` of `run`, due at `due`, padded to `bytes`. */
export function measuredContent(run: string, index: number, due: number, bytes: number): string {
  const text = `b:${run}:${index}:${due.toFixed(3)}:`;
  return text.length >= bytes ? text : text + "x".repeat(bytes - text.length);
}

export function warmContent(run: string, n: number): string {
  return `w:${run}:${n}`;
}

const COLON = 58;

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
        if (tag >>> 3 === 2) return [i, i + len];
        i += len;
        break;
      }
      default:
        return [-1, -1];
    }
  }
  return [-1, -1];
}

/** Parses the ASCII decimal number (with an optional fraction) in buf[start, end). */
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

export type Frame =
  | { kind: "b"; index: number; due: number }
  | { kind: "w" }
  | undefined;

/**
 * Reads an encoded `chat.Message`: a measured or warm-up message of `run` (given as ASCII bytes),
 * or undefined for anything else (other runs, presence, other people's messages).
 */
export function readFrame(buf: Uint8Array, run: Uint8Array): Frame {
  const [s, e] = contentSpan(buf);
  const at = s + 2;
  if (s < 0 || e - s < 3 + RUN_LENGTH || buf[s + 1] !== COLON) return undefined;
  for (let k = 0; k < RUN_LENGTH; k++) if (buf[at + k] !== run[k]) return undefined;
  if (buf[at + RUN_LENGTH] !== COLON) return undefined;
  if (buf[s] === 119) return { kind: "w" };
  if (buf[s] !== 98) return undefined;
  const i0 = at + RUN_LENGTH + 1;
  const i1 = buf.indexOf(COLON, i0);
  if (i1 < 0 || i1 >= e) return undefined;
  let d1 = buf.indexOf(COLON, i1 + 1);
  if (d1 < 0 || d1 > e) d1 = e;
  return { kind: "b", index: decimal(buf, i0, i1), due: decimal(buf, i1 + 1, d1) };
}

/** The path of `CreateStream`, which subscribers call with a pass-through deserializer. */
const CREATE_STREAM = `/${Broadcast.typeName}/${Broadcast.method.createStream.name}`;
const serializeConnect = (request: Connect) => Buffer.from(toBinary(ConnectSchema, request));
/** The subscriber sees raw `chat.Message` bytes. */
const passThrough = (bytes: Buffer) => bytes;

/** `CreateStream` over native gRPC to `address` (`host:port`), on a channel of its own. */
function openGrpcStream(address: string, request: Connect, events: StreamEvents): StreamCall {
  const client = new grpc.Client(
    address,
    grpc.credentials.createInsecure(),
    // Without this, grpc-js shares one TCP connection among all channels to one address.
    { "grpc.use_local_subchannel_pool": 1 },
  );
  const call = client.makeServerStreamRequest(
    CREATE_STREAM,
    serializeConnect,
    passThrough,
    request,
    new grpc.Metadata(),
  );
  call.on("metadata", () => events.opened());
  call.on("data", (buf: Buffer) => events.message(buf));
  call.on("error", (err: grpc.ServiceError) => events.ended(err.code, err.details));
  call.on("end", () => events.ended(0, "OK"));
  return {
    pause: () => call.pause(),
    resume: () => call.resume(),
    // Cancels the stream and closes the connection (GOAWAY), as a client does.
    cancel() {
      call.cancel();
      client.close();
    },
  };
}

export interface SubscribeOptions {
  /**
   * Gateways' `host:port` (native gRPC) or `http://host:port` (gRPC-Web); stream i connects to
   * addresses[(first + i) % length].
   */
  addresses: string[];
  streams: number;
  /** Global number of this process's first stream: stream i is user `${userPrefix}${first + i}`. */
  first: number;
  userPrefix: string;
  /** Streams (local indices) that never read until `resume()`: slow readers. */
  paused?: number[];
}

export interface StreamEnd {
  index: number;
  code: number;
  details: string;
  /** Whether the stream was still paused when its end reached the client. */
  whilePaused: boolean;
}

export interface DeliveryStats {
  /** Deliveries of measured messages to reading streams, duplicates included. */
  delivered: number;
  /** Expected deliveries to reading streams that did not arrive. */
  lost: number;
  duplicated: number;
  /** Deliveries of indices that were never sent. */
  unexpected: number;
  firstAt: number;
  lastAt: number;
  /** End-to-end latency (due time → receipt), reading streams, first deliveries only. */
  latency: string;
  ends: StreamEnd[];
}

export class Subscribers {
  readonly #calls: StreamCall[] = [];
  readonly #paused: Set<number>;
  readonly #warm: Int32Array;
  #run = new Uint8Array(RUN_LENGTH);
  #tally = new Tally(0, 0);
  #latency: Histogram = histogram();
  #delivered = 0;
  #firstAt = NaN;
  #lastAt = NaN;
  /** Streams whose response headers arrived: the gateway accepted them. */
  opened = 0;
  readonly ends: StreamEnd[] = [];
  readonly streams: number;

  constructor(readonly options: SubscribeOptions) {
    this.streams = options.streams;
    this.#paused = new Set(options.paused ?? []);
    this.#warm = new Int32Array(options.streams);
  }

  /** Opens the streams, `batch` at a time with a pause between, so the gateway can keep up. */
  async open(batch = 100): Promise<void> {
    for (let i = 0; i < this.streams; i++) {
      this.#open(i);
      if (i % batch === batch - 1) await sleep(20);
    }
  }

  #open(index: number): void {
    const { addresses, first, userPrefix } = this.options;
    const address = addresses[(first + index) % addresses.length]!;
    const userId = `${userPrefix}${first + index}`;
    const request = create(ConnectSchema, {
      user: { id: userId, displayName: userId },
      active: true,
    });
    let ended = false;
    const events: StreamEvents = {
      opened: () => this.opened++,
      message: (buf) => this.#receive(index, buf),
      ended: (code, details) => {
        if (ended) return;
        ended = true;
        this.ends.push({ index, code, details, whilePaused: this.#paused.has(index) });
      },
    };
    const call = isWebAddress(address)
      ? openWebStream(address, toBinary(ConnectSchema, request), events)
      : openGrpcStream(address, request, events);
    if (this.#paused.has(index)) call.pause();
    this.#calls.push(call);
  }

  #receive(index: number, buf: Uint8Array): void {
    const frame = readFrame(buf, this.#run);
    if (!frame) return;
    if (frame.kind === "w") {
      this.#warm[index]!++;
      return;
    }
    const now = nowMs();
    const first = this.#tally.record(index, frame.index);
    if (this.#paused.has(index)) return;
    this.#delivered++;
    if (!first) return;
    if (!(this.#firstAt <= now)) this.#firstAt = now;
    this.#lastAt = now;
    recordMs(this.#latency, now - frame.due);
  }

  /** Starts measuring `run`: `messages` measured messages expected per stream. */
  phase(run: string, messages: number): void {
    this.#run = new TextEncoder().encode(run);
    this.#tally = new Tally(this.streams, messages);
    this.#latency.destroy();
    this.#latency = histogram();
    this.#warm.fill(0);
    this.#delivered = 0;
    this.#firstAt = NaN;
    this.#lastAt = NaN;
  }

  #reading(index: number): boolean {
    return !this.#paused.has(index);
  }

  #alive(index: number): boolean {
    return !this.ends.some((e) => e.index === index);
  }

  /** How many reading streams got at least one warm-up message of the current run. */
  warmed(): number {
    let n = 0;
    for (let i = 0; i < this.streams; i++) if (this.#reading(i) && this.#warm[i]! > 0) n++;
    return n;
  }

  /** Reading streams still open. */
  reading(): number {
    let n = 0;
    for (let i = 0; i < this.streams; i++) if (this.#reading(i) && this.#alive(i)) n++;
    return n;
  }

  /** Measured deliveries so far (for the progress line). */
  get delivered(): number {
    return this.#delivered;
  }

  /**
   * Waits until every reading stream has every message of the run, or nothing arrived for
   * `quietMs` (a backlog still draining is waited for; a loss is not), at most `capMs`.
   */
  async complete(quietMs: number, capMs: number): Promise<void> {
    const want = this.#tally.messages;
    let seen = this.#delivered;
    let progressAt = nowMs();
    await until(
      () => {
        if (this.#delivered !== seen) {
          seen = this.#delivered;
          progressAt = nowMs();
        }
        if (nowMs() - progressAt > quietMs) return true;
        for (let i = 0; i < this.streams; i++) {
          if (this.#reading(i) && this.#tally.received(i) < want) return false;
        }
        return true;
      },
      capMs,
      50,
    );
  }

  /** Lets the paused streams read again and waits (bounded) until each has ended. */
  async resume(timeoutMs: number): Promise<StreamEnd[]> {
    const paused = [...this.#paused];
    this.#paused.clear();
    for (const i of paused) this.#calls[i]?.resume();
    await until(() => paused.every((i) => !this.#alive(i)), timeoutMs, 20);
    return this.ends.filter((e) => paused.includes(e.index));
  }

  stats(): DeliveryStats {
    return {
      delivered: this.#delivered,
      lost: this.#tally.lost((i) => this.#reading(i)),
      duplicated: this.#tally.duplicated(),
      unexpected: this.#tally.unexpected,
      firstAt: this.#firstAt,
      lastAt: this.#lastAt,
      latency: encodeHistogram(this.#latency),
      ends: [...this.ends],
    };
  }

  /** Cancels the streams still open and closes every connection, as a client does. */
  close(): void {
    for (const call of this.#calls) call.cancel();
  }
}

export interface PublishOptions {
  /** A gateway's `host:port` (native gRPC) or `http://host:port` (gRPC-Web). */
  address: string;
  userId: string;
  run: string;
  messages: number;
  /** Content size in bytes. */
  bytes: number;
  /** Messages per second on a fixed schedule (open loop) ... */
  rate?: number;
  /** ... or, without a rate, this many sends in flight, each sent when one is answered. */
  window?: number;
  /** Open loop: the most sends in flight; when reached, sending waits (and latency shows it). */
  maxInFlight?: number;
  /** Warm-up messages instead of measured ones. */
  warm?: boolean;
  timeoutMs: number;
}

export interface PublishStats {
  sent: number;
  acked: number;
  failed: number;
  /** gRPC status code → count, for failed sends. */
  errors: Record<string, number>;
  /** Due time of message 0. */
  startAt: number;
  lastAckAt: number;
  /** How late the latest send left, behind its due time (ms): the publisher's own lag. */
  maxBehindMs: number;
  timedOut: boolean;
  /** Publish RPC latency: send → OK answer. */
  rpc: string;
}

/** Live counters of the publisher, for the progress line. */
export const publishing = { sent: 0, acked: 0 };

/** What the publisher sends with: `ChatClient` (native gRPC) or `WebSender` (gRPC-Web). */
export type Sender = Pick<ChatClient, "send">;

/** Sends `messages` messages, open loop at `rate` or closed loop with `window` in flight. */
export async function publish(options: PublishOptions, chat: Sender): Promise<PublishStats> {
  const rpc = histogram();
  const stats: PublishStats = {
    sent: 0,
    acked: 0,
    failed: 0,
    errors: {},
    startAt: nowMs() + 20,
    lastAckAt: NaN,
    maxBehindMs: 0,
    timedOut: false,
    rpc: "",
  };
  publishing.sent = publishing.acked = 0;
  const deadline = stats.startAt + options.timeoutMs;
  let inFlight = 0;
  const fire = (index: number, due: number): Promise<void> => {
    const content = options.warm
      ? warmContent(options.run, index)
      : measuredContent(options.run, index, due, options.bytes);
    const sentAt = nowMs();
    stats.maxBehindMs = Math.max(stats.maxBehindMs, sentAt - due);
    stats.sent = ++publishing.sent;
    inFlight++;
    return chat.send(options.userId, content).then(() => {
      stats.lastAckAt = nowMs();
      stats.acked = ++publishing.acked;
      recordMs(rpc, stats.lastAckAt - sentAt);
    }, (err: grpc.ServiceError) => {
      stats.failed++;
      const code = String(err.code ?? "unknown");
      stats.errors[code] = (stats.errors[code] ?? 0) + 1;
    }).finally(() => inFlight--);
  };
  if (options.rate) {
    const interval = 1000 / options.rate;
    const limit = options.maxInFlight ?? 10_000;
    let next = 0;
    while (next < options.messages && nowMs() < deadline) {
      const due = stats.startAt + next * interval;
      const wait = due - nowMs();
      if (wait > 0) await sleep(wait);
      else if (inFlight >= limit) await sleep(1);
      else {
        const index = next++;
        fire(index, stats.startAt + index * interval);
      }
    }
  } else {
    let next = 0;
    const worker = async () => {
      while (next < options.messages && nowMs() < deadline) {
        const index = next++;
        await fire(index, nowMs());
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.window ?? 1) }, worker));
  }
  await until(() => inFlight === 0, Math.max(0, deadline - nowMs()) + 5000, 5);
  stats.timedOut = stats.acked + stats.failed < options.messages;
  stats.rpc = encodeHistogram(rpc);
  rpc.destroy();
  return stats;
}
