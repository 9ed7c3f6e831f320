/**
 * Seeds and run counts for the property tests, so that every run is reproducible: the seed is
 * `FC_SEED` when set, otherwise a fixed default, and each property prints the seed it used.
 * A failure's fast-check report adds the `path` that replays exactly the failing case.
 */

import type fc from "fast-check";

/** The seed when `FC_SEED` is unset: a fixed one, so that CI runs the same cases every time. */
export const DEFAULT_SEED = 424242;

/** The seed of this run: `FC_SEED` (a whole number) or the default. */
export function fuzzSeed(): number {
  const raw = Deno.env.get("FC_SEED")?.trim();
  if (!raw) return DEFAULT_SEED;
  const seed = Number(raw);
  if (!Number.isSafeInteger(seed)) {
    throw new Error(`FC_SEED is "${raw}", expected a whole number`);
  }
  return seed;
}

/**
 * fast-check parameters for one property: the run's seed and `numRuns` cases, printed first so
 * that a failure in the log says how to replay it.
 */
export function fuzzParameters<T>(property: string, numRuns: number): fc.Parameters<T> {
  const seed = fuzzSeed();
  // deno-lint-ignore no-console
  console.log(
    `  ${property}: fast-check seed=${seed} numRuns=${numRuns} (replay: FC_SEED=${seed})`,
  );
  return { seed, numRuns };
}
