/** Bounded waits for the Kafka adapter: kafkajs calls can hang while brokers are away. */

import { setTimeout as sleep } from "node:timers/promises";

/** A pause that ends early, without throwing, when `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch(() => {});
}

/** `promise`, or a rejection after `ms`; a late rejection of `promise` is swallowed. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const timer = new Promise<never>((_, reject) => {
    id = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  promise.catch(() => {});
  return Promise.race([promise, timer]).finally(() => clearTimeout(id));
}

/** Waits for `promise` at most `ms`, ignoring its outcome; says whether it settled. */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  try {
    await withTimeout(promise, ms, "wait");
    return true;
  } catch {
    return false;
  }
}
