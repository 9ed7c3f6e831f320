/**
 * Deliveries that name a message wait for it (server/delivery_order.ts): on its own, and on a
 * gateway whose follower lags behind the fan-out.
 */

import assert from "node:assert/strict";
import { memoryLogger, silentLogger } from "../core/logger.ts";
import type { ChatMessage, Delivery } from "../core/types.ts";
import type { Following } from "../bus/bus.ts";
import { MemoryBus } from "../bus/memory_bus.ts";
import { DeliveryOrder, placeOf } from "../server/delivery_order.ts";
import { signedInUser, startSystem, waitFor } from "./helpers.ts";

function change(room: string, seq: number): Delivery {
  return {
    type: "message-change",
    change: {
      room,
      seq,
      deleted: false,
      content: `edited ${seq}`,
      at: new Date().toISOString(),
      byUserId: "ann",
      byDisplayName: "Ann",
    },
  };
}

function typing(room: string): Delivery {
  return {
    type: "typing",
    event: { room, userId: "ben", displayName: "Ben", typing: true, expiresInMs: 5000 },
  };
}

/** What was shown, as `type room seq`, and a follower's progress the test moves by hand. */
function ordered(options: { waitMs?: number; limit?: number; logger?: typeof silentLogger } = {}) {
  const handed = new Map<string, number>();
  const shown: string[] = [];
  const order = new DeliveryOrder({
    handed: (room) => handed.get(room) ?? 0,
    show: (d) => {
      const place = d.type === "message-change"
        ? `${d.change.room} ${d.change.seq}`
        : d.type === "typing"
        ? `${d.event.room}`
        : d.type;
      shown.push(`${d.type} ${place}`);
    },
    logger: options.logger ?? silentLogger,
    ...options,
  });
  const hand = (room: string, seq: number) => {
    handed.set(room, seq);
    shown.push(`message ${room} ${seq}`);
    order.advanced(room);
  };
  return { order, shown, hand };
}

Deno.test("edits, deletions, reactions and read marks name a position; other room deliveries only their room", () => {
  const event = { room: "team", userId: "ben", displayName: "Ben" };
  assert.deepEqual(placeOf(change("team", 3)), { room: "team", seq: 3 });
  assert.deepEqual(
    placeOf({ type: "reaction", event: { ...event, seq: 4, emoji: "👍", added: true } }),
    { room: "team", seq: 4 },
  );
  assert.deepEqual(placeOf({ type: "read", read: { ...event, seq: 5 } }), { room: "team", seq: 5 });
  assert.deepEqual(placeOf({ type: "room-event", event: { ...event, joined: true } }), {
    room: "team",
    seq: 0,
  });
  assert.deepEqual(placeOf(typing("team")), { room: "team", seq: 0 });
  assert.equal(
    placeOf({ type: "block", block: { userId: "ann", blockedId: "ben", blocked: true } }),
    undefined,
  );
  assert.equal(placeOf({ type: "gateway-dead", serverId: "gw" }), undefined);
});

Deno.test("a change waits for its message; the room's later deliveries wait behind it; other rooms go on", async () => {
  const { order, shown, hand } = ordered();
  try {
    hand("team", 3);
    hand("other", 1);
    await order.accept(change("team", 3));
    assert.deepEqual(shown.slice(2), ["message-change team 3"], "handed: shown at once");

    shown.length = 0;
    await order.accept(change("team", 7));
    await order.accept(typing("team"));
    await order.accept(change("other", 1));
    await order.accept({ type: "resync", reason: "test" });
    assert.deepEqual(shown, ["message-change other 1", "resync resync"]);
    assert.equal(order.held, 2);

    hand("team", 5);
    assert.equal(order.held, 2, "message 5 is not the one named");
    hand("team", 7);
    assert.deepEqual(shown.slice(2), [
      "message team 5",
      "message team 7",
      "message-change team 7",
      "typing team",
    ]);
    assert.equal(order.held, 0);
  } finally {
    order.close();
  }
});

Deno.test("a change whose message does not come in time is shown anyway, with a warning", async () => {
  const logger = memoryLogger("warn");
  const { order, shown } = ordered({ waitMs: 20, logger });
  try {
    await order.accept(change("team", 9));
    await order.accept(typing("team"));
    assert.deepEqual(shown, []);
    await waitFor(() => order.held === 0, 5000, "the held deliveries to be shown");
    assert.deepEqual(shown, ["message-change team 9", "typing team"]);
    assert.equal(logger.lines.length, 1);
    assert.match(logger.lines[0]!, /Showing deliveries before the messages they name/);
    assert.match(logger.lines[0]!, /count=1 first=9 /);
  } finally {
    order.close();
  }
});

Deno.test("at the limit of held deliveries the next one is taken only once one is shown", async () => {
  const { order, shown, hand } = ordered({ limit: 2 });
  try {
    await order.accept(change("team", 4));
    await order.accept(change("other", 4));
    let taken = false;
    const third = order.accept(typing("third")).then(() => taken = true);
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(taken, false, "the fan-out waits");
    hand("team", 4);
    await third;
    assert.deepEqual(shown, ["message team 4", "message-change team 4", "typing third"]);
    assert.equal(order.held, 1);
  } finally {
    order.close();
  }
});

/**
 * A memory bus whose follower hands messages on only when the test says: a gateway's follower
 * lagging behind the fan-out.
 */
class LaggingFollowerBus extends MemoryBus {
  readonly parked: ChatMessage[] = [];
  readonly #handed = new Map<string, number>();
  #handler: ((message: ChatMessage) => Promise<void>) | undefined;

  override async follow(handler: (message: ChatMessage) => Promise<void>): Promise<Following> {
    this.#handler = handler;
    const inner = await super.follow((message) => {
      this.parked.push(message);
      return Promise.resolve();
    });
    return { close: () => inner.close(), handed: (room) => this.#handed.get(room) ?? 0 };
  }

  async handOn(): Promise<void> {
    for (const message of this.parked.splice(0)) {
      this.#handed.set(message.room, message.seq);
      await this.#handler!(message);
    }
  }
}

Deno.test("on a gateway whose follower lags, an edit reaches the stream after its message", async () => {
  const bus = new LaggingFollowerBus({ logger: silentLogger, retryDelayMs: 20 });
  const system = await startSystem({ bus, config: { auth: "on" } });
  const ann = await signedInUser(system, "ann");
  const ben = await signedInUser(system, "ben");
  try {
    await ann.client.createRoom("team");
    await ann.client.createRoom("side");
    await ann.client.send("", "aside", { room: "side" });
    await waitFor(() => bus.parked.length === 1, 5000, "the side message at the follower");
    await bus.handOn();
    await waitFor(() => ann.contents().includes("aside"), 5000, "ann gets the side message");

    await ann.client.send("", "helo", { room: "team" });
    await waitFor(() => bus.parked.length === 1, 5000, "the team message at the follower");
    await ann.client.editMessage("team", 1, "hello");
    await ben.client.joinRoom("team");
    await ann.client.editMessage("side", 1, "aside!");
    const told = () =>
      ann.received.flatMap((m) =>
        m.change
          ? [`change ${m.change.room} ${m.change.content}`]
          : m.roomEvent?.room === "team" && m.roomEvent.user?.id === "ben"
          ? ["ben joined team"]
          : m.content
          ? [`message ${m.room} ${m.content}`]
          : []
      );
    await waitFor(() => told().includes("change side aside!"), 5000, "the side room's edit");
    assert.deepEqual(told(), ["message side aside", "change side aside!"], "team is held");

    await bus.handOn();
    await waitFor(() => told().length === 5, 5000, "the team message, its edit and the join");
    assert.deepEqual(told().slice(2), [
      "message team helo",
      "change team hello",
      "ben joined team",
    ]);
  } finally {
    await system.stop();
  }
});
