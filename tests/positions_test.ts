/** Positions in the room logs (bus/kafka/positions.ts): retried sends, and what the store holds. */

import assert from "node:assert/strict";
import { ChatError } from "../core/errors.ts";
import type { ChatMessage } from "../core/types.ts";
import {
  HandedOffsets,
  MAX_LOG_EPOCH,
  positionOf,
  RecentSends,
  StoredWatch,
} from "../bus/kafka/positions.ts";
import type { LogRecord } from "../bus/kafka/types.ts";
import { newMessage } from "./store_contract.ts";

/** A send of `userId`'s with message id `id`: what a reader remembers it by. */
const message = (userId: string, id: string): ChatMessage =>
  newMessage("general", { userId, id, displayName: userId });
const record = (partition: number, offset: number): LogRecord => ({
  topic: "chatting",
  partition,
  offset: String(offset),
  key: "general",
  value: "{}",
});

Deno.test("a message's position is its epoch's base + its offset + 1, exact up to the last epoch", () => {
  assert.equal(positionOf(record(0, 0)), 1);
  assert.equal(positionOf(record(1, 41)), 42);
  assert.equal(positionOf(record(0, 0), 1), 2 ** 40 + 1, "a new epoch starts above the old one");
  assert.equal(MAX_LOG_EPOCH, 8190);
  const last = positionOf(record(0, 2 ** 40 - 1), MAX_LOG_EPOCH);
  assert.ok(Number.isSafeInteger(last), `${last} is exact`);
});

Deno.test("recent sends: a retried send is seen once shown, per sender and partition, within the limit", () => {
  const recent = new RecentSends(3);
  assert.equal(recent.seen(0, message("ann", "m1")), false);
  recent.add(0, message("ann", "m1"));
  assert.equal(recent.seen(0, message("ann", "m1")), true);
  assert.equal(recent.seen(0, message("bob", "m1")), false, "another sender's id is another send");
  assert.equal(recent.seen(1, message("ann", "m1")), false, "another partition");
  for (const id of ["m2", "m3", "m4"]) recent.add(0, message("ann", id));
  assert.equal(recent.seen(0, message("ann", "m1")), false, "older than the last 3");
  assert.equal(recent.seen(0, message("ann", "m4")), true);
});

Deno.test("stored() waits until the processors committed past what was handed, and from the start", async () => {
  let committed = new Map<number, number>();
  const watch = new StoredWatch({
    partitionOf: (room) => room === "general" ? 0 : 1,
    committed: () => Promise.resolve(committed),
    timeoutMs: 2000,
  });
  let started = false;
  const beforeStart = watch.stored("random").then(() => started = true);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(started, false, "before the follower started, nobody knows what it will skip");
  watch.startsAt(new Map([[0, 5], [1, 0]]));
  await beforeStart; // partition 1: nothing before the start
  let done = false;
  const waiting = watch.stored("general").then(() => done = true);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(done, false, "offsets 0-4 came before the follower started");
  committed = new Map([[0, 5]]);
  await waiting;
  await watch.stored("random"); // partition 1: nothing before the start
  const short = new StoredWatch({
    partitionOf: () => 0,
    committed: () => Promise.resolve(new Map([[0, 3]])),
    timeoutMs: 50,
  });
  await assert.rejects(
    short.stored("general"),
    (err: unknown) =>
      err instanceof ChatError && err.code === "unavailable" &&
      /has not started reading the room logs within 50 ms/.test(err.message),
  );
  short.startsAt(new Map([[0, 0]]));
  short.handed(record(0, 7));
  await assert.rejects(
    short.stored("general"),
    (err: unknown) =>
      err instanceof ChatError && err.code === "unavailable" &&
      /processors have not stored its newest messages within 50 ms \(stored up to position 3 of 8\)/
        .test(err.message),
  );
});

Deno.test("a partition empty at the start is known at -1: what names its first message waits for it", async () => {
  const handed = new HandedOffsets();
  handed.startsAt(new Map([[0, 0], [1, 4]]));
  assert.equal(handed.get(0), -1, "known, before its first record");
  assert.equal(handed.get(1), 3);
  assert.equal(handed.get(2), undefined, "a partition the start did not name");
  handed.hand(0, 0);
  assert.equal(handed.get(0), 0);
  const watch = new StoredWatch({
    partitionOf: () => 0,
    committed: () => Promise.reject(new Error("not asked: nothing was handed on")),
    timeoutMs: 50,
  });
  watch.startsAt(new Map([[0, 0]]));
  await watch.stored("general");
});
