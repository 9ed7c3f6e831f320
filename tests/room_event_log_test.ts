/**
 * The room events a history page carries (server/room_events.ts) when the room's positions leave
 * gaps, as they do when the bus gives each message its place in the room's log.
 */

import assert from "node:assert/strict";
import { silentLogger } from "../core/logger.ts";
import { MemoryBus } from "../bus/memory_bus.ts";
import { Hub } from "../server/hub.ts";
import { RoomEventLog } from "../server/room_events.ts";
import { MemoryStore } from "../store/memory_store.ts";
import type { StoredRoomEvent } from "../store/store.ts";
import { newMessage } from "./store_contract.ts";

Deno.test("room events: a page's span ends at the next message however far its position", async () => {
  const store = new MemoryStore();
  const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();
  const [first, second, third] = await store.appendAll([
    newMessage("sparse", { seq: 10, timestamp: at(1) }),
    newMessage("sparse", { seq: 20, timestamp: at(3) }),
    newMessage("sparse", { seq: 35, timestamp: at(5) }),
  ]);
  const event = (minute: number, joined: boolean): StoredRoomEvent => ({
    room: "sparse",
    userId: "ben",
    displayName: "Ben",
    joined,
    at: at(minute),
  });
  const before = event(0, true);
  const between = event(2, false);
  const inside = event(4, true);
  const after = event(6, false);
  for (const e of [before, between, inside, after]) await store.addRoomEvent(e);
  const log = new RoomEventLog({
    bus: new MemoryBus({ logger: silentLogger }),
    hub: new Hub({ logger: silentLogger, queueLimit: 10 }),
    store,
    logger: silentLogger,
    now: Date.now,
  });

  assert.deepEqual(await log.forPage("sparse", [second!], true, 35), [inside], "up to position 35");
  assert.deepEqual(await log.forPage("sparse", [third!], true, undefined), [after], "up to now");
  assert.deepEqual(await log.forPage("sparse", [first!], false, 20), [before, between]);
});
