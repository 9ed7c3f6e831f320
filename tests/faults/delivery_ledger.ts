/**
 * The books of a fault scenario: every send with its answer, every delivery on every stream, and
 * the verdict drawn from them. The delivery guarantee under test: a message the gateway
 * acknowledged reaches every stream of its room exactly once, in one per-room order (sequence
 * numbers rising, the same on every stream; they need not be consecutive: in Kafka mode they are
 * the messages' places in a log that other rooms share).
 */

/** One send and how it ended: `code` 0 is an acknowledgement, undefined means no answer came. */
export interface SendRecord {
  id: string;
  room: string;
  code: number | undefined;
  /** When the answer came (ms, the streams' clock). */
  answeredAt?: number;
}

/** One message as a stream received it. */
export interface DeliveryRecord {
  id: string;
  room: string;
  seq: number;
  /** When it arrived (ms, any clock shared by the stream's records). */
  at: number;
}

export interface Verdict {
  sent: number;
  acknowledged: number;
  /** Sends answered with an error, by gRPC status name or number. */
  refused: Record<string, number>;
  /** Sends that got no answer at all. */
  unanswered: number;
  streams: number;
  /** Deliveries counted over all streams. */
  delivered: number;
  /** (acknowledged message, stream) pairs where the stream never got the message. */
  lost: number;
  /** Deliveries beyond the first of the same message on the same stream. */
  duplicated: number;
  /** Deliveries whose sequence number was not above the previous of its room on its stream. */
  backwards: number;
  /** Messages given different sequence numbers on different streams. */
  reordered: number;
  /** The longest time between two deliveries on one stream, in ms. */
  maxPauseMs: number;
  /** The longest time between two acknowledged sends, in ms (sends answered in the window). */
  maxAckPauseMs: number;
  /** A few of the lost message ids, to start looking from. */
  lostSample: string[];
  /** Whether the last send of the run was acknowledged: the service works again at the end. */
  lastAcknowledged: boolean;
}

const STATUS_NAMES: Record<number, string> = {
  1: "CANCELLED",
  2: "UNKNOWN",
  3: "INVALID_ARGUMENT",
  4: "DEADLINE_EXCEEDED",
  8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION",
  13: "INTERNAL",
  14: "UNAVAILABLE",
};

/**
 * Draws the verdict. `streams` maps a stream's name to what it received, in order of arrival;
 * every stream counts as a member of every room sent to. `pauseFrom`/`pauseTo` bound the window
 * in which pauses between deliveries are measured (the time the load ran).
 */
export function account(
  sends: readonly SendRecord[],
  streams: ReadonlyMap<string, readonly DeliveryRecord[]>,
  pauseWindow: { from: number; to: number } = { from: -Infinity, to: Infinity },
): Verdict {
  const refused: Record<string, number> = {};
  let acknowledged = 0;
  let unanswered = 0;
  for (const send of sends) {
    if (send.code === 0) acknowledged++;
    else if (send.code === undefined) unanswered++;
    else {
      const name = STATUS_NAMES[send.code] ?? String(send.code);
      refused[name] = (refused[name] ?? 0) + 1;
    }
  }
  const acked = sends.filter((s) => s.code === 0);
  const seqOf = new Map<string, number>();
  let delivered = 0, lost = 0, duplicated = 0, backwards = 0, reordered = 0, maxPauseMs = 0;
  const lostSample: string[] = [];
  const reorderedIds = new Set<string>();
  for (const received of streams.values()) {
    delivered += received.length;
    const seen = new Set<string>();
    const lastSeq = new Map<string, number>();
    let previousAt: number | undefined;
    for (const d of received) {
      if (seen.has(d.id)) duplicated++;
      seen.add(d.id);
      const last = lastSeq.get(d.room);
      if (last !== undefined && d.seq <= last) backwards++;
      lastSeq.set(d.room, d.seq);
      const known = seqOf.get(d.id);
      if (known === undefined) seqOf.set(d.id, d.seq);
      else if (known !== d.seq && !reorderedIds.has(d.id)) {
        reorderedIds.add(d.id);
        reordered++;
      }
      if (d.at >= pauseWindow.from && d.at <= pauseWindow.to) {
        if (previousAt !== undefined) maxPauseMs = Math.max(maxPauseMs, d.at - previousAt);
        previousAt = d.at;
      }
    }
    for (const send of acked) {
      if (seen.has(send.id)) continue;
      lost++;
      if (lostSample.length < 5) lostSample.push(send.id);
    }
  }
  const ackTimes = acked.map((s) => s.answeredAt).filter((t): t is number =>
    t !== undefined && t >= pauseWindow.from && t <= pauseWindow.to
  ).sort((x, y) => x - y);
  let maxAckPauseMs = 0;
  for (let i = 1; i < ackTimes.length; i++) {
    maxAckPauseMs = Math.max(maxAckPauseMs, ackTimes[i]! - ackTimes[i - 1]!);
  }
  return {
    sent: sends.length,
    acknowledged,
    refused,
    unanswered,
    streams: streams.size,
    delivered,
    lost,
    duplicated,
    backwards,
    reordered,
    maxPauseMs: Math.round(maxPauseMs),
    maxAckPauseMs: Math.round(maxAckPauseMs),
    lostSample,
    lastAcknowledged: sends.at(-1)?.code === 0,
  };
}

/** One line of figures for the test log. */
export function describeVerdict(name: string, v: Verdict): string {
  const refused = Object.entries(v.refused).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  return `${name}: sent ${v.sent}, acknowledged ${v.acknowledged}, refused ${refused}, ` +
    `unanswered ${v.unanswered}; ${v.streams} streams, delivered ${v.delivered}, lost ${v.lost}, ` +
    `duplicated ${v.duplicated}, backwards ${v.backwards}, reordered ${v.reordered}, ` +
    `longest pause ${v.maxPauseMs} ms, longest pause between acknowledgements ${v.maxAckPauseMs} ms`;
}
