/**
 * The behaviour every `Bus` adapter must have (bus/bus.ts). `busContract` registers one
 * `Deno.test` per rule; tests/memory_bus_test.ts runs it over MemoryBus, tests/kafka_bus_test.ts
 * over KafkaBus on the real cluster.
 *
 * Each test gets a deployment of its own: on Kafka its own topics and processor group (a
 * namespace), so that tests neither see each other's records nor those of earlier runs. Buses of
 * one deployment are what several processes of one chat hold (on memory: the same bus).
 */

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { Bus, Following, Subscription } from "../bus/bus.ts";
import { ChatError, invalidArgument } from "../core/errors.ts";
import type { ChatMessage, ConnectionEvent, Delivery, Presence } from "../core/types.ts";
import { waitFor } from "./helpers.ts";

/** One deployment: `bus()` is one more process's bus (not started yet). */
export interface Deployment {
  bus(): Bus;
  cleanup?(): Promise<void>;
}

export type MakeDeployment = () => Promise<Deployment>;

export interface BusContractOptions {
  /** Longest wait for items to arrive or for the bus to become ready (default 5 s). */
  timeoutMs?: number;
  /** How long to watch that nothing more arrives (default 100 ms). */
  quietMs?: number;
  /** Deno's op and resource sanitizers (default on). */
  sanitize?: boolean;
}

function message(room: string, n: number, content = `${room}-${n}`): ChatMessage {
  return {
    id: `${room}-${n}`,
    userId: "alice",
    displayName: "Alice",
    content,
    timestamp: new Date().toISOString(),
    room,
    seq: 0,
  };
}

function connection(userId: string, n: number, connected: boolean): ConnectionEvent {
  return {
    userId,
    serverId: "gw1",
    connected,
    timestamp: new Date().toISOString(),
    displayName: userId,
    streamId: `gw1/${userId}/${n}`,
  };
}

function presence(userId: string, online: boolean): Presence {
  return {
    userId,
    displayName: userId,
    online,
    servers: online ? ["gw1"] : [],
    timestamp: new Date().toISOString(),
  };
}

const roomEvent = (room: string, n: number): Delivery => ({
  type: "room-event",
  event: { room, userId: `u${n}`, displayName: `U${n}`, joined: true },
});

/** A member of `room` started typing: sent by a gateway itself, in the room's order too. */
const typing = (room: string, n: number): Delivery => ({
  type: "typing",
  event: { room, userId: `u${n}`, displayName: `U${n}`, typing: n % 2 === 0, expiresInMs: 6000 },
});

const readMark = (room: string, n: number): Delivery => ({
  type: "read",
  read: { room, userId: `u${n}`, displayName: `U${n}`, seq: n },
});

/** A message changed, and a reaction to it: sent by a gateway itself, in the room's order too. */
const change = (room: string, n: number): Delivery => ({
  type: "message-change",
  change: {
    room,
    seq: n,
    deleted: false,
    content: `edited ${n}`,
    at: "2026-11-30T12:00:00.000Z",
    byUserId: `u${n}`,
    byDisplayName: `U${n}`,
  },
});
const reaction = (room: string, n: number): Delivery => ({
  type: "reaction",
  event: { room, seq: n, emoji: "👍", userId: `u${n}`, displayName: `U${n}`, added: true },
});

const ids = (messages: readonly ChatMessage[], room?: string) =>
  messages.filter((m) => room === undefined || m.room === room).map((m) => m.id);

const isUnavailable = (err: unknown) => err instanceof ChatError && err.code === "unavailable";

export function busContract(
  name: string,
  makeDeployment: MakeDeployment,
  options: BusContractOptions = {},
) {
  const timeoutMs = options.timeoutMs ?? 5000;
  const quietMs = options.quietMs ?? 100;
  const sanitize = options.sanitize ?? true;

  const test = (title: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `${name}: ${title}`,
      sanitizeOps: sanitize,
      sanitizeResources: sanitize,
      fn,
    });

  const until = (predicate: () => boolean, what: string) => waitFor(predicate, timeoutMs, what);

  /**
   * Runs `fn` with started, ready buses of one deployment (`count` processes), closing them and
   * the subscriptions `fn` registers in `subscriptions` afterwards.
   */
  async function withBuses(
    count: number,
    fn: (buses: Bus[], subscriptions: Subscription[]) => Promise<void>,
  ) {
    const deployment = await makeDeployment();
    const buses = Array.from({ length: count }, () => deployment.bus());
    const subscriptions: Subscription[] = [];
    try {
      for (const bus of buses) await bus.start();
      await until(() => buses.every((b) => b.ready()), "the buses to be ready");
      await fn(buses, subscriptions);
    } finally {
      for (const s of subscriptions) await s.close();
      for (const bus of new Set(buses)) await bus.close();
      await deployment.cleanup?.();
    }
  }

  /** A processor that records what it handled; `onTakeOver` counts its take-overs. */
  async function processor(bus: Bus, subscriptions: Subscription[]) {
    const messages: ChatMessage[] = [];
    const connections: ConnectionEvent[] = [];
    const taken = { count: 0 };
    const subscription = await bus.process({
      messages: (run) => (messages.push(...run), Promise.resolve(run)),
      connection: (e) => (connections.push(e), Promise.resolve()),
      onTakeOver: () => taken.count++,
    });
    subscriptions.push(subscription);
    await until(() => taken.count > 0, "the processor to take over");
    return { messages, connections, taken, subscription };
  }

  test("appended messages reach the processor once each, in order within each room", () =>
    withBuses(1, async ([bus], subs) => {
      const p = await processor(bus!, subs);
      const rooms = ["general", "r1", "r2", "r3"];
      const sent: ChatMessage[] = [];
      // Concurrent appends of one room keep the order they were made in.
      await Promise.all(rooms.map(async (room) => {
        for (let n = 0; n < 6; n++) {
          const m = message(room, n);
          sent.push(m);
          await bus!.append(m);
        }
      }));
      await until(() => p.messages.length >= sent.length, `${sent.length} messages`);
      await sleep(quietMs);
      assert.equal(p.messages.length, sent.length, "each exactly once");
      for (const room of rooms) assert.deepEqual(ids(p.messages, room), ids(sent, room), room);
      // As sent, with the position the log gave it (Kafka), if any.
      const { seq: _, ...got } = p.messages.find((m) => m.id === "r1-3")!;
      const { seq: __, ...was } = sent.find((m) => m.id === "r1-3")!;
      assert.deepEqual(got, was);
    }));

  test("announced connection events reach the processor in order for each user", () =>
    withBuses(1, async ([bus], subs) => {
      const p = await processor(bus!, subs);
      const sent: ConnectionEvent[] = [];
      for (let n = 0; n < 12; n++) {
        const e = connection(`user${n % 3}`, n, n % 2 === 0);
        sent.push(e);
        await bus!.announce(e);
      }
      await until(() => p.connections.length >= sent.length, "12 events");
      await sleep(quietMs);
      assert.equal(p.connections.length, sent.length);
      for (const user of ["user0", "user1", "user2"]) {
        const of = (events: ConnectionEvent[]) =>
          events.filter((e) => e.userId === user).map((e) => e.streamId);
        assert.deepEqual(of(p.connections), of(sent), user);
      }
    }));

  test("a processor that throws gets the same message again, and the room waits for it", () =>
    withBuses(1, async ([bus], subs) => {
      const handled: string[] = [];
      let failures = 0;
      subs.push(
        await bus!.process({
          messages: (run) => {
            if (run.some((m) => m.id === "general-1") && failures < 2) {
              failures++;
              return Promise.reject(new Error("the store is away"));
            }
            handled.push(...run.map((m) => m.id));
            return Promise.resolve(run);
          },
          connection: () => Promise.resolve(),
          onTakeOver: () => handled.push("taken"),
        }),
      );
      await until(() => handled.includes("taken"), "the processor to take over");
      for (let n = 0; n < 4; n++) await bus!.append(message("general", n));
      await until(() => handled.length >= 5, "4 messages");
      await sleep(quietMs);
      assert.equal(failures, 2);
      assert.deepEqual(handled.filter((h) => h !== "taken"), [
        "general-0",
        "general-1",
        "general-2",
        "general-3",
      ]);
    }));

  test("a message the processor refuses with invalid_argument is set aside, and the room goes on", () =>
    withBuses(1, async ([bus], subs) => {
      const handled: string[] = [];
      /** Times the poison came on its own: a run with it is split, and then it is set aside. */
      let refused = 0;
      let taken = false;
      subs.push(
        await bus!.process({
          messages: (run) => {
            if (run.some((m) => m.content === "poison")) {
              if (run.length === 1) refused++;
              return Promise.reject(invalidArgument("Cannot store message: poison"));
            }
            handled.push(...run.map((m) => m.id));
            return Promise.resolve(run);
          },
          connection: () => Promise.resolve(),
          onTakeOver: () => taken = true,
        }),
      );
      await until(() => taken, "the processor to take over");
      await bus!.append(message("general", 0, "poison"));
      await bus!.append(message("general", 1));
      await until(() => handled.length >= 1, "the message after the poison");
      await sleep(quietMs);
      assert.equal(refused, 1, "refused once, never retried");
      assert.deepEqual(handled, ["general-1"]);
    }));

  test("messages that queued while the processor was busy come to it as one run, in order", () =>
    withBuses(1, async ([bus], subs) => {
      const runs: string[][] = [];
      const busy = Promise.withResolvers<void>();
      let taken = false;
      subs.push(
        await bus!.process({
          messages: async (run) => {
            runs.push(run.map((m) => m.id));
            if (runs.length === 1) await busy.promise;
            return run;
          },
          connection: () => Promise.resolve(),
          onTakeOver: () => taken = true,
        }),
      );
      await until(() => taken, "the processor to take over");
      await bus!.append(message("general", 0));
      await until(() => runs.length === 1, "the first message");
      for (let n = 1; n <= 5; n++) await bus!.append(message("general", n));
      busy.resolve();
      await until(() => runs.flat().length >= 6, "6 messages");
      await sleep(quietMs);
      assert.deepEqual(runs.flat(), [0, 1, 2, 3, 4, 5].map((n) => `general-${n}`));
      assert.deepEqual(runs[1], [1, 2, 3, 4, 5].map((n) => `general-${n}`), "one run");
    }));

  test("when one of two processors leaves, the other handles what comes next, each message once", () =>
    withBuses(2, async ([busA, busB], subs) => {
      const a = await processor(busA!, subs);
      const b = await processor(busB!, subs);
      await until(() => a.taken.count >= 2, "the first processor to make room for the second");
      const rooms = ["general", "r1", "r2", "r3", "r4", "r5"];
      for (const room of rooms) await busA!.append(message(room, 0));
      await until(() => a.messages.length + b.messages.length >= 6, "6 messages");
      await a.subscription.close();
      await until(() => b.taken.count >= 2, "the remaining processor to take over");
      for (const room of rooms) await busA!.append(message(room, 1));
      await until(
        () => rooms.every((room) => ids(b.messages, room).includes(`${room}-1`)),
        "the rest on the remaining processor",
      );
      await sleep(quietMs);
      const all = [...a.messages, ...b.messages];
      assert.equal(all.length, 12, "each message handled once");
      for (const room of rooms) {
        assert.deepEqual(ids(b.messages, room).at(-1), `${room}-1`, `order in ${room}`);
      }
    }));

  test("every gateway receives every delivery sent after it subscribed, in order within a room", () =>
    withBuses(2, async ([busA, busB], subs) => {
      await busA!.deliver(roomEvent("general", -1)); // before anyone listens: not received
      const got: [Delivery[], Delivery[]] = [[], []];
      for (const [i, bus] of [busA!, busB!].entries()) {
        subs.push(await bus.onDelivery((d) => (got[i]!.push(d), Promise.resolve())));
      }
      const sent: Delivery[] = [];
      for (let n = 0; n < 10; n++) {
        const room = `room${n % 2}`;
        const kinds = [
          () => roomEvent(room, n),
          () => typing(room, n),
          () => readMark(room, n),
          () => change(room, n),
          () => reaction(room, n),
        ];
        const d: Delivery = kinds[n % kinds.length]!();
        sent.push(d);
        await busB!.deliver(d);
      }
      await until(() => got[0].length >= 10 && got[1].length >= 10, "10 deliveries each");
      await sleep(quietMs);
      const roomOf = (d: Delivery) =>
        d.type === "room-event" || d.type === "typing" || d.type === "reaction"
          ? d.event.room
          : d.type === "read"
          ? d.read.room
          : d.type === "message-change"
          ? d.change.room
          : "";
      for (const deliveries of got) {
        assert.equal(deliveries.length, 10);
        for (const room of ["room0", "room1"]) {
          assert.deepEqual(
            deliveries.filter((d) => roomOf(d) === room),
            sent.filter((d) => roomOf(d) === room),
          );
        }
      }
      await busA!.deliver({ type: "resync", reason: "test" });
      await busA!.deliver({ type: "gateway-dead", serverId: "gw9" });
      await until(() => got[1].length >= 12, "resync and gateway-dead");
      assert.deepEqual(got[1].slice(10).map((d) => d.type).sort(), ["gateway-dead", "resync"]);
    }));

  /**
   * A processor whose store numbers what the log left unnumbered, room by room, and keeps one
   * copy of a retried send, as the stores do; `hold` keeps it busy until resolved.
   */
  async function storingProcessor(bus: Bus, subscriptions: Subscription[]) {
    const stored = new Map<string, ChatMessage>();
    const newest = new Map<string, number>();
    const state = { taken: false, hold: Promise.resolve() };
    subscriptions.push(
      await bus.process({
        messages: async (run) => {
          await state.hold;
          return run.map((m) => {
            const key = `${m.userId}/${m.id}`;
            const first = stored.get(key);
            if (first) return first;
            const seq = m.seq > 0 ? m.seq : (newest.get(m.room) ?? 0) + 1;
            newest.set(m.room, seq);
            const kept = { ...m, seq };
            stored.set(key, kept);
            return kept;
          });
        },
        connection: () => Promise.resolve(),
        onTakeOver: () => state.taken = true,
      }),
    );
    await until(() => state.taken, "the processor to take over");
    return { stored, state };
  }

  test("every follower gets every message appended after it followed, once, in each room's order, with increasing positions", () =>
    withBuses(2, async ([busA, busB], subs) => {
      await storingProcessor(busA!, subs);
      const got: [ChatMessage[], ChatMessage[]] = [[], []];
      for (const [i, bus] of [busA!, busB!].entries()) {
        subs.push(await bus.follow((m) => (got[i]!.push(m), Promise.resolve())));
      }
      const sent: ChatMessage[] = [];
      for (let n = 0; n < 12; n++) {
        const m = message(`room${n % 3}`, n);
        sent.push(m);
        await (n % 2 ? busA! : busB!).append(m);
      }
      // A retried send: the same sender and id again.
      await busB!.append(sent[4]!);
      await until(() => got.every((g) => g.length >= 12), "12 messages on each follower");
      await sleep(quietMs);
      for (const messages of got) {
        assert.equal(messages.length, 12, "each once, the retried one too");
        for (const room of ["room0", "room1", "room2"]) {
          const mine = messages.filter((m) => m.room === room);
          assert.deepEqual(ids(mine, room), ids(sent, room), room);
          const positions = mine.map((m) => m.seq);
          assert.ok(positions[0]! > 0, `${room} has positions`);
          assert.deepEqual(positions, [...positions].sort((a, b) => a - b), `${room} increases`);
          assert.equal(new Set(positions).size, positions.length, `${room}: one per message`);
        }
      }
      // Rooms on different partitions may interleave differently; each message's position is
      // the same everywhere.
      const positions = (messages: ChatMessage[]) => messages.map((m) => `${m.id}@${m.seq}`).sort();
      assert.deepEqual(
        positions(got[0]),
        positions(got[1]),
        "every follower sees the same positions",
      );
    }));

  test("a follower that starts between a send and its retry does not show the retry", () =>
    withBuses(2, async ([busA, busB], subs) => {
      const processor = await storingProcessor(busA!, subs);
      const sent = message("general", 0);
      await busA!.append(sent);
      // Stored too: the memory bus hands its followers what is stored after they follow.
      await until(() => processor.stored.has("alice/general-0"), "the first copy stored");
      // Another gateway (re)starts: the first copy came before, the retry comes after.
      const got: ChatMessage[] = [];
      subs.push(await busB!.follow((m) => (got.push(m), Promise.resolve())));
      await busA!.append(sent);
      await busA!.append(message("general", 1));
      await until(() => got.length >= 1, "the next message");
      await sleep(quietMs);
      assert.deepEqual(ids(got), ["general-1"], "neither the first copy nor its retry");
    }));

  test("stored() resolves once the processors stored what the follower was handed", () =>
    withBuses(1, async ([bus], subs) => {
      const processor = await storingProcessor(bus!, subs);
      const got: ChatMessage[] = [];
      subs.push(await bus!.follow((m) => (got.push(m), Promise.resolve())));
      await bus!.append(message("general", 0));
      await until(() => got.length === 1, "the first message");
      const allStored = () => got.every((m) => processor.stored.has(`${m.userId}/${m.id}`));
      await bus!.stored("general");
      assert.ok(allStored(), "stored when stored() resolved");
      const release = Promise.withResolvers<void>();
      processor.state.hold = release.promise;
      await bus!.append(message("general", 1));
      // Kafka hands it on before it is stored, the memory bus once stored: either way, stored()
      // resolves only when what was handed is stored.
      await sleep(quietMs);
      const waiting = bus!.stored("general").then(allStored);
      await sleep(quietMs);
      release.resolve();
      assert.ok(await waiting, "everything handed was stored when stored() resolved");
      await until(() => got.length === 2, "the second message");
      assert.ok(processor.stored.has("alice/general-1"));
    }));

  test("a follower's handed(room) counts what came before it, and each message as its handler is called", () =>
    withBuses(1, async ([bus], subs) => {
      await storingProcessor(bus!, subs);
      const all: ChatMessage[] = [];
      subs.push(await bus!.follow((m) => (all.push(m), Promise.resolve())));
      await bus!.append(message("before", 0));
      await until(() => all.length === 1, "the message before the second follower");
      const release = Promise.withResolvers<void>();
      const seen: { seq: number; handed: number }[] = [];
      const following: Following = await bus!.follow(async (m) => {
        seen.push({ seq: m.seq, handed: following.handed(m.room) });
        await release.promise;
      });
      subs.push(following);
      assert.ok(following.handed("before") >= all[0]!.seq, "what came before counts as handed");
      await bus!.append(message("held", 0));
      await bus!.append(message("held", 1));
      await until(() => all.length === 3 && seen.length === 1, "both at the first follower");
      const [first, second] = all.slice(1);
      assert.ok(seen[0]!.handed >= first!.seq, "handed as its handler is called");
      assert.ok(following.handed("held") < second!.seq, "the second is not handed yet");
      release.resolve();
      await until(() => following.handed("held") >= second!.seq, "the second handed");
    }));

  test("a delivery handler gets the next delivery only once its promise resolved", () =>
    withBuses(1, async ([bus], subs) => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => release = resolve);
      const got: Delivery[] = [];
      subs.push(
        await bus!.onDelivery(async (d) => {
          got.push(d);
          if (got.length === 1) await held;
        }),
      );
      await bus!.deliver(roomEvent("general", 0));
      await bus!.deliver(roomEvent("general", 1));
      await until(() => got.length >= 1, "the first delivery");
      await sleep(quietMs);
      assert.equal(got.length, 1, "the second waits");
      release();
      await until(() => got.length >= 2, "the second delivery");
    }));

  test("a presence observer gets who is online now, then every change", () =>
    withBuses(2, async ([busA, busB], subs) => {
      await busA!.publishPresence(presence("ann", true));
      await busA!.publishPresence(presence("bob", true));
      await busA!.publishPresence(presence("ann", false));
      await busA!.publishPresence(presence("cid", true));
      const seen: Presence[] = [];
      subs.push(await busB!.observePresence((p) => seen.push(p)));
      const latest = () => {
        const map = new Map(seen.map((p) => [p.userId, p.online]));
        return [...map].filter(([, online]) => online).map(([u]) => u).sort();
      };
      await until(() => latest().length >= 2, "bob and cid online");
      await sleep(quietMs);
      assert.deepEqual(latest(), ["bob", "cid"]);
      await busA!.publishPresence(presence("bob", false));
      await until(() => !latest().includes("bob"), "bob going offline");
      assert.deepEqual(latest(), ["cid"]);
    }));

  test("heartbeats reach every observer, gateways' and processors'", () =>
    withBuses(2, async ([busA, busB], subs) => {
      const seen: [string[], string[]] = [[], []];
      for (const [i, bus] of [busA!, busB!].entries()) {
        subs.push(
          await bus.observeHeartbeats((h) => seen[i]!.push(`${h.serverId}:${h.role ?? "gateway"}`)),
        );
      }
      const timestamp = new Date().toISOString();
      await busA!.beat({ serverId: "gw1", timestamp, streams: 2 });
      await busB!.beat({ serverId: "processor:1", timestamp, streams: 0, role: "processor" });
      await until(() => seen.every((s) => s.length >= 2), "two heartbeats each");
      for (const s of seen) assert.deepEqual(s.sort(), ["gw1:gateway", "processor:1:processor"]);
    }));

  test("onReady listeners are called when the bus becomes ready, also when added later", async () => {
    const deployment = await makeDeployment();
    const bus = deployment.bus();
    try {
      let early = 0;
      let late = 0;
      bus.onReady(() => early++);
      assert.equal(bus.ready(), false, "not ready before start");
      await bus.start();
      await until(() => early >= 1, "the early listener");
      bus.onReady(() => late++);
      await until(() => late >= 1, "the late listener");
    } finally {
      await bus.close();
      await deployment.cleanup?.();
    }
  });

  test("appending, announcing, delivering and beating reject with unavailable before start and after close", async () => {
    const deployment = await makeDeployment();
    const bus = deployment.bus();
    const attempts = () => [
      bus.append(message("general", 0)),
      bus.announce(connection("ann", 0, true)),
      bus.deliver(roomEvent("general", 0)),
      bus.publishPresence(presence("ann", true)),
      bus.beat({ serverId: "gw1", timestamp: new Date().toISOString(), streams: 0 }),
    ];
    try {
      for (const attempt of attempts()) await assert.rejects(attempt, isUnavailable);
      await bus.start();
      await until(() => bus.ready(), "the bus to be ready");
    } finally {
      await bus.close();
      await deployment.cleanup?.();
    }
    assert.equal(bus.ready(), false);
    for (const attempt of attempts()) await assert.rejects(attempt, isUnavailable);
  });

  test("closing a subscription stops its deliveries", () =>
    withBuses(1, async ([bus], subs) => {
      const got: Delivery[] = [];
      const sub = await bus!.onDelivery((d) => (got.push(d), Promise.resolve()));
      const other: Delivery[] = [];
      subs.push(await bus!.onDelivery((d) => (other.push(d), Promise.resolve())));
      await bus!.deliver(roomEvent("general", 0));
      await until(() => got.length === 1, "the first delivery");
      await sub.close();
      await bus!.deliver(roomEvent("general", 1));
      await until(() => other.length === 2, "the other subscription's second delivery");
      await sleep(quietMs);
      assert.equal(got.length, 1);
    }));

  test("closing the bus stops delivery, also with a handler in progress", async () => {
    const deployment = await makeDeployment();
    const bus = deployment.bus();
    try {
      await bus.start();
      await until(() => bus.ready(), "the bus to be ready");
      let calls = 0;
      let release!: () => void;
      const held = new Promise<void>((resolve) => release = resolve);
      await bus.onDelivery(async () => {
        calls++;
        await held;
      });
      await bus.deliver(roomEvent("general", 0));
      await bus.deliver(roomEvent("general", 1));
      await until(() => calls === 1, "the handler to start");
      const closing = bus.close();
      release();
      await closing;
      await sleep(quietMs);
      assert.equal(calls, 1, "nothing handed over after close");
    } finally {
      await bus.close();
      await deployment.cleanup?.();
    }
  });
}
