/**
 * The one reconnect schedule of every client: exponential backoff with jitter, reset once a
 * connection has proved healthy.
 */

export interface BackoffOptions {
  /** The first delay. */
  baseMs: number;
  /** No delay is longer. */
  maxMs: number;
  /** Each delay is shortened by up to this fraction, at random, so that clients spread out. */
  jitter: number;
  /** A connection that stayed open this long counts as healthy: the next failure starts over. */
  stableAfterMs: number;
}

/**
 * The delay before the next try after `failures` failures in a row (1 for the first):
 * `base * 2^(failures-1)`, at most `max`, shortened by up to `jitter`.
 */
export function backoffDelay(
  failures: number,
  options: Pick<BackoffOptions, "baseMs" | "maxMs" | "jitter">,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  return Math.round(ceiling * (1 - options.jitter * random()));
}
