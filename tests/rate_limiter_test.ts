import assert from "node:assert/strict";
import { RateLimiter } from "../server/rate_limiter.ts";

function setup(options: { ratePerSecond?: number; burst?: number; maxKeys?: number } = {}) {
  const clock = { now: 1_000_000 };
  const rl = new RateLimiter({
    ratePerSecond: options.ratePerSecond ?? 5,
    burst: options.burst ?? 20,
    maxKeys: options.maxKeys,
    now: () => clock.now,
  });
  return { limiter: rl, clock };
}

Deno.test("rate limiter: a burst is allowed, then calls are refused with the wait", () => {
  const { limiter, clock } = setup();
  for (let i = 0; i < 20; i++) assert.deepEqual(limiter.take("alice"), { ok: true }, `call ${i}`);
  // 5 per second: one token every 200 ms.
  assert.deepEqual(limiter.take("alice"), { ok: false, retryAfterMs: 200 });
  clock.now += 150;
  assert.deepEqual(limiter.take("alice"), { ok: false, retryAfterMs: 50 });
  clock.now += 49;
  assert.deepEqual(limiter.take("alice"), { ok: false, retryAfterMs: 1 });
  clock.now += 1;
  assert.deepEqual(limiter.take("alice"), { ok: true });
  assert.deepEqual(limiter.take("alice"), { ok: false, retryAfterMs: 200 });
});

Deno.test("rate limiter: a call made retryAfterMs later succeeds, one made earlier does not", () => {
  for (const ratePerSecond of [0.5, 3, 7, 30, 333]) {
    const { limiter, clock } = setup({ ratePerSecond, burst: 2 });
    limiter.take("k");
    limiter.take("k");
    for (let step = 0; step < 40; step++) {
      const refused = limiter.take("k");
      assert.equal(refused.ok, false, `rate ${ratePerSecond}, step ${step}`);
      const wait = refused.ok ? 0 : refused.retryAfterMs;
      clock.now += wait - 1;
      if (wait > 1) assert.equal(limiter.take("k").ok, false, `rate ${ratePerSecond}: early`);
      clock.now += 1;
      assert.equal(limiter.take("k").ok, true, `rate ${ratePerSecond}, step ${step}: on time`);
      clock.now += step % 3; // a little drift
    }
  }
});

Deno.test("rate limiter: the bucket refills over time, up to the burst", () => {
  const { limiter, clock } = setup();
  for (let i = 0; i < 20; i++) limiter.take("alice");
  clock.now += 1000; // 5 tokens
  for (let i = 0; i < 5; i++) assert.deepEqual(limiter.take("alice"), { ok: true }, `call ${i}`);
  assert.equal(limiter.take("alice").ok, false);

  clock.now += 60_000; // far more than the burst: capped at 20
  for (let i = 0; i < 20; i++) assert.deepEqual(limiter.take("alice"), { ok: true }, `call ${i}`);
  assert.equal(limiter.take("alice").ok, false);

  // A steady 5 per second is always allowed.
  for (let i = 0; i < 50; i++) {
    clock.now += 200;
    assert.deepEqual(limiter.take("alice"), { ok: true }, `steady call ${i}`);
  }
});

Deno.test("rate limiter: refused calls do not use up tokens", () => {
  const { limiter, clock } = setup({ ratePerSecond: 1, burst: 1 });
  assert.equal(limiter.take("a").ok, true);
  for (let i = 0; i < 10; i++) assert.equal(limiter.take("a").ok, false);
  clock.now += 1000;
  assert.equal(limiter.take("a").ok, true);
});

Deno.test("rate limiter: keys are independent", () => {
  const { limiter } = setup({ burst: 3 });
  for (let i = 0; i < 3; i++) assert.equal(limiter.take("alice").ok, true);
  assert.equal(limiter.take("alice").ok, false);
  for (let i = 0; i < 3; i++) assert.equal(limiter.take("bob").ok, true);
  assert.equal(limiter.take("bob").ok, false);
  assert.equal(limiter.take("carol").ok, true);
});

Deno.test("rate limiter: a clock that steps back adds no tokens", () => {
  const { limiter, clock } = setup({ burst: 1 });
  assert.equal(limiter.take("a").ok, true);
  clock.now -= 10_000;
  const result = limiter.take("a");
  assert.equal(result.ok, false);
});

Deno.test("rate limiter: memory stays bounded under a flood of distinct keys", () => {
  const { limiter, clock } = setup({ maxKeys: 100 });
  for (let i = 0; i < 10_000; i++) {
    assert.equal(limiter.take(`flood-${i}`).ok, true);
    assert.ok(limiter.size <= 100, `size ${limiter.size} after ${i + 1} keys`);
  }
  // Buckets that refilled completely are dropped as time passes, even under the cap.
  clock.now += 4000; // burst / rate = 4 s
  assert.equal(limiter.take("fresh").ok, true);
  assert.equal(limiter.size, 1);
});

Deno.test("rate limiter: idle full buckets are dropped, busy ones kept", () => {
  const { limiter, clock } = setup({ ratePerSecond: 10, burst: 2 });
  for (let i = 0; i < 50; i++) limiter.take(`idle-${i}`);
  limiter.take("busy");
  limiter.take("busy");
  assert.equal(limiter.size, 51);
  clock.now += 150; // idle ones (1 token left) are full after 100 ms; busy (0 left) after 200 ms
  assert.equal(limiter.take("other").ok, true);
  assert.equal(limiter.size, 2);
  // The busy key kept its state: 1.5 tokens now.
  assert.equal(limiter.take("busy").ok, true);
  assert.deepEqual(limiter.take("busy"), { ok: false, retryAfterMs: 50 });
});

Deno.test("rate limiter: bad settings are refused", () => {
  assert.throws(() => new RateLimiter({ ratePerSecond: 0, burst: 1 }), /the rate is 0 per second/);
  assert.throws(() => new RateLimiter({ ratePerSecond: 1, burst: 0 }), /the burst is 0/);
  assert.throws(
    () => new RateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 0 }),
    /maxKeys is 0/,
  );
});
