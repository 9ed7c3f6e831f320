import assert from "node:assert/strict";
import { Liveness } from "../core/liveness.ts";

Deno.test("liveness: a gateway is alive up to the timeout after its last beat, then silent", () => {
  const l = new Liveness();
  l.beat("gw1", 1000);
  assert.equal(l.isAlive("gw1", 11_000, 10_000), true, "exactly the timeout is still alive");
  assert.equal(l.isAlive("gw1", 11_001, 10_000), false);
  assert.deepEqual(l.silent(11_001, 10_000), ["gw1"]);
  l.beat("gw1", 11_001);
  assert.equal(l.isAlive("gw1", 11_001, 10_000), true, "a new beat revives it");
  assert.equal(l.silentSince("gw1"), 11_001);
});

Deno.test("liveness: a gateway never heard from is unknown, or timed from unheardSince", () => {
  const unknown = new Liveness();
  assert.equal(unknown.isAlive("gw1", 0, 10_000), false);
  assert.equal(unknown.silentSince("gw1"), undefined);
  assert.deepEqual(unknown.silent(1_000_000, 10_000), [], "only known gateways are silent");

  const fromStart = new Liveness({ unheardSince: 5000 });
  assert.equal(fromStart.isAlive("gw1", 15_000, 10_000), true, "a whole timeout from the start");
  assert.equal(fromStart.isAlive("gw1", 15_001, 10_000), false);
  assert.deepEqual(fromStart.known(), [], "not heard from is not known");
});

Deno.test("liveness: expect starts the clock for a new gateway and keeps a known one's beat", () => {
  const l = new Liveness();
  l.expect("gw1", 5000);
  assert.deepEqual(l.silent(15_000, 10_000), []);
  assert.deepEqual(l.silent(15_001, 10_000), ["gw1"]);
  l.beat("gw2", 1000);
  l.expect("gw2", 9000);
  assert.equal(l.silentSince("gw2"), 1000, "a known gateway keeps its last beat");
});

Deno.test("liveness: silent and known are sorted; forget and pardonAll", () => {
  const l = new Liveness();
  l.beat("gw3", 0);
  l.beat("gw1", 0);
  l.beat("gw2", 9000);
  assert.deepEqual(l.known(), ["gw1", "gw2", "gw3"]);
  assert.deepEqual(l.silent(10_001, 10_000), ["gw1", "gw3"]);
  l.forget("gw3");
  assert.deepEqual(l.known(), ["gw1", "gw2"]);
  assert.equal(l.isAlive("gw3", 0, 10_000), false, "forgotten is unknown again");
  l.pardonAll(20_000);
  assert.deepEqual(l.silent(30_000, 10_000), [], "each has a whole timeout from the pardon");
  assert.deepEqual(l.silent(30_001, 10_000), ["gw1", "gw2"]);
});

Deno.test("liveness: forgetSilent drops long-silent gateways without changing any verdict", () => {
  const l = new Liveness({ unheardSince: 0 });
  l.beat("gone-1", 1000);
  l.beat("gone-2", 2000);
  l.beat("alive", 20_000);
  // Within a timeout of the start, forgetting would make a silent gateway count as alive again.
  l.forgetSilent(10_000, 10_000);
  assert.deepEqual(l.known(), ["alive", "gone-1", "gone-2"]);
  const before = ["gone-1", "gone-2", "alive", "never"].map((id) => l.isAlive(id, 25_000, 10_000));
  l.forgetSilent(25_000, 10_000);
  assert.deepEqual(l.known(), ["alive"], "the silent ones are forgotten");
  const after = ["gone-1", "gone-2", "alive", "never"].map((id) => l.isAlive(id, 25_000, 10_000));
  assert.deepEqual(after, before, "every verdict stays");
  assert.deepEqual(after, [false, false, true, false]);
  l.beat("gone-1", 26_000);
  assert.equal(
    l.isAlive("gone-1", 26_000, 10_000),
    true,
    "a forgotten gateway heard again is alive",
  );
});
