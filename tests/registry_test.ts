import assert from "node:assert/strict";
import { Registry } from "../processor/registry.ts";
import type { ConnectionEvent } from "../core/types.ts";

const event = (
  userId: string,
  serverId: string,
  connected: boolean,
  streamId = `${serverId}/${userId}`,
): ConnectionEvent => ({
  userId,
  serverId,
  connected,
  timestamp: "2026-01-01T00:00:00.000Z",
  displayName: userId,
  streamId,
});

Deno.test("a user comes online on the first stream and goes offline with the last", () => {
  const r = new Registry();
  assert.equal(r.apply(event("alice", "gw1", true, "s1"), 0)?.online, true);
  assert.equal(
    r.apply(event("alice", "gw1", true, "s2"), 0),
    undefined,
    "second device, same gateway",
  );
  assert.equal(r.apply(event("alice", "gw1", false, "s1"), 0), undefined, "one device left");
  const off = r.apply(event("alice", "gw1", false, "s2"), 0);
  assert.equal(off?.online, false);
  assert.deepEqual(off?.servers, []);
});

Deno.test("repeated events are idempotent", () => {
  const r = new Registry();
  r.apply(event("bob", "gw1", true), 0);
  assert.equal(r.apply(event("bob", "gw1", true), 0), undefined);
  assert.equal(r.apply(event("bob", "gw1", false), 0)?.online, false);
  assert.equal(r.apply(event("bob", "gw1", false), 0), undefined);
  assert.deepEqual(r.online(), []);
});

Deno.test("a user on two gateways lists both; presence changes when one goes", () => {
  const r = new Registry();
  r.apply(event("carol", "gw1", true), 0);
  assert.deepEqual(r.apply(event("carol", "gw2", true), 0)?.servers, ["gw1", "gw2"]);
  assert.deepEqual(r.apply(event("carol", "gw1", false), 0)?.servers, ["gw2"]);
});

Deno.test("a gateway silent past the timeout is declared dead and its users go offline", () => {
  const r = new Registry();
  r.apply(event("dave", "gw1", true), 0);
  r.apply(event("erin", "gw2", true), 0);
  r.apply(event("erin", "gw1", true, "erin-2"), 0);
  r.heartbeat("gw1", 1000);
  r.heartbeat("gw2", 1000);
  assert.deepEqual(r.expire(10_000, 10_000).deadServers, [], "not yet past the timeout");
  r.heartbeat("gw2", 9000);
  const result = r.expire(11_001, 10_000);
  assert.deepEqual(result.deadServers, ["gw1"]);
  assert.deepEqual(result.disconnected.map((d) => d.userId).sort(), ["dave", "erin"]);
  assert.deepEqual(
    result.presence.map((p) => [p.userId, p.online, p.servers]),
    [["dave", false, []], ["erin", true, ["gw2"]]],
  );
  assert.deepEqual(r.online().map((p) => p.userId), ["erin"]);
  assert.deepEqual(r.servers(), ["gw2"]);
});

Deno.test("a gateway never heard from gets a full timeout from its first connection", () => {
  const r = new Registry();
  r.apply(event("frank", "gw9", true), 5000);
  assert.deepEqual(r.expire(14_000, 10_000).deadServers, []);
  assert.deepEqual(r.expire(15_001, 10_000).deadServers, ["gw9"]);
});

Deno.test("a user who went offline is forgotten, after the offline presence took the name", () => {
  const r = new Registry();
  r.apply({ ...event("alice", "gw1", true, "s1"), displayName: "Alice A." }, 0);
  const off = r.apply(event("alice", "gw1", false, "s1"), 0);
  assert.equal(off?.displayName, "Alice A.", "the offline presence says who left");
  // Nothing is kept for her any more: asked about, she is only an id.
  assert.equal(r.presenceOf("alice", "").displayName, "alice");
  assert.equal(
    r.apply({ ...event("alice", "gw1", true, "s2"), displayName: "Al" }, 0)?.displayName,
    "Al",
  );
});
