/**
 * Whether a gateway is alive, judged by its heartbeats: alive while its last sign of life is no
 * older than the timeout, silent once it is. The gateway (to tell live presence from stale) and
 * the processor's registry (to declare gateways dead) both judge by it, so they cannot disagree on
 * where the line is. Pure: every time is passed in, which is the clock the caller was given.
 */

export interface LivenessOptions {
  /**
   * When a gateway never heard from counts as last heard (the observer's start, so that a
   * gateway gets a whole timeout to be heard); without it such a gateway is not alive, nor
   * listed as silent, until `beat` or `expect` names it.
   */
  unheardSince?: number;
}

export class Liveness {
  /** serverId → last sign of life (ms since epoch) */
  readonly #lastBeat = new Map<string, number>();
  readonly #unheardSince: number | undefined;

  constructor(options: LivenessOptions = {}) {
    this.#unheardSince = options.unheardSince;
  }

  /** Records a sign of life of `serverId` at `at`. */
  beat(serverId: string, at: number): void {
    this.#lastBeat.set(serverId, at);
  }

  /**
   * Starts the clock for a gateway not heard from yet (it showed up some other way): it has a
   * whole timeout from `at`. A gateway already heard from keeps its last beat.
   */
  expect(serverId: string, at: number): void {
    if (!this.#lastBeat.has(serverId)) this.#lastBeat.set(serverId, at);
  }

  /** When `serverId` was last heard from, or `unheardSince`; undefined when there is neither. */
  silentSince(serverId: string): number | undefined {
    return this.#lastBeat.get(serverId) ?? this.#unheardSince;
  }

  /** Whether `serverId` was heard from within `timeoutMs` before `now`. */
  isAlive(serverId: string, now: number, timeoutMs: number): boolean {
    const since = this.silentSince(serverId);
    return since !== undefined && now - since <= timeoutMs;
  }

  /** The gateways heard from (or expected) that are silent for longer than `timeoutMs`, sorted. */
  silent(now: number, timeoutMs: number): string[] {
    return this.known().filter((id) => !this.isAlive(id, now, timeoutMs));
  }

  /** Every gateway heard from (or expected) and not forgotten, sorted. */
  known(): string[] {
    return [...this.#lastBeat.keys()].sort();
  }

  /**
   * Forgets the gateways silent for longer than `timeoutMs`, where that changes no answer of
   * `isAlive` (an unknown gateway counts from `unheardSince`, which must be as old): a gateway
   * process hears every gateway and processor that ever ran beside it, each restart under a new
   * id, and would otherwise keep them all.
   */
  forgetSilent(now: number, timeoutMs: number): void {
    const unheard = this.#unheardSince;
    if (unheard !== undefined && now - unheard <= timeoutMs) return;
    for (const [id, at] of this.#lastBeat) {
      if (now - at > timeoutMs) this.#lastBeat.delete(id);
    }
  }

  /** Forgets `serverId` (declared dead): it is unknown again until heard from. */
  forget(serverId: string): void {
    this.#lastBeat.delete(serverId);
  }

  /** Counts every known gateway as heard from at `now`: each has a whole timeout from there. */
  pardonAll(now: number): void {
    for (const id of this.#lastBeat.keys()) this.#lastBeat.set(id, now);
  }
}
