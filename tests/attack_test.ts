/**
 * Limits under attack, against an in-process gateway: one client opening streams as fast as it
 * can, one sending as fast as it can, oversized metadata, huge messages and garbage protobuf.
 * Each attack gets its clear status, and meanwhile two bystanders, bob and carol, keep chatting:
 * every message they exchange during and after the attacks arrives.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { memoryLogger } from "../core/logger.ts";
import {
  type Bystanders,
  bystanders,
  rawCall,
  status,
  statusOf,
  underAttack,
} from "./attack_support.ts";
import { newClient, startSystem, type System, waitFor } from "./helpers.ts";

async function withSystem(run: (system: System, b: Bystanders) => Promise<void>): Promise<void> {
  const logger = memoryLogger("error");
  // Default limits: 10 streams per user, 5 messages a second in bursts of 20, 64 KiB messages.
  const system = await startSystem({ logger });
  try {
    const b = await bystanders(system, "off");
    await run(system, b);
    assert.equal(b.bob.ended, undefined, "bob's stream is still open");
    assert.equal(b.carol.ended, undefined, "carol's stream is still open");
    assert.deepEqual(logger.lines, [], "nothing logged as an error");
  } finally {
    await system.stop();
  }
}

Deno.test("one client opening streams as fast as it can gets RESOURCE_EXHAUSTED past the limit; others keep chatting", async () => {
  await withSystem(async (system, b) => {
    const mallory = newClient(system.address());
    const ends: (grpc.ServiceError | undefined)[] = [];
    let ended = 0;
    const streams = await underAttack(b, "stream flood", async () => {
      const streams = Array.from(
        { length: 40 },
        () =>
          mallory.stream("mallory", () => {}, (err) => {
            ends.push(err);
            ended++;
          }),
      );
      // 10 open, 30 refused.
      await waitFor(() => ended >= 30, 10_000, "30 streams refused");
      return streams;
    });
    assert.equal(ends.length, 30);
    for (const err of ends) {
      assert.equal(err?.code, status.RESOURCE_EXHAUSTED, String(err?.details));
      assert.equal(
        err?.details,
        "Cannot open stream: mallory has 10 streams open on this server, the limit is 10",
      );
    }
    assert.equal(system.gateways[0]!.hub.countOf("mallory"), 10);
    for (const s of streams) s.cancel();
    await waitFor(() => system.gateways[0]!.hub.countOf("mallory") === 0, 5000, "mallory gone");
    // Her streams closed, she may open one again.
    mallory.stream("mallory", () => {}, () => {});
    await waitFor(() => system.gateways[0]!.hub.countOf("mallory") === 1, 5000, "a new stream");
  });
});

Deno.test("one client sending as fast as it can is rate limited with RESOURCE_EXHAUSTED; others keep chatting", async () => {
  await withSystem(async (system, b) => {
    const mallory = newClient(system.address());
    const results = await underAttack(
      b,
      "send flood",
      () =>
        Promise.all(
          Array.from({ length: 200 }, (_, i) => statusOf(mallory.send("mallory", `spam ${i}`))),
        ),
    );
    const ok = results.filter((r) => r.code === status.OK).length;
    const limited = results.filter((r) => r.code === status.RESOURCE_EXHAUSTED);
    assert.equal(ok + limited.length, 200, "every send is either accepted or rate limited");
    assert.ok(ok >= 20, `the burst of 20 is accepted (${ok})`);
    assert.ok(limited.length > 0, "the flood is limited");
    for (const r of limited) {
      assert.match(
        r.details,
        /^Cannot send message: the rate limit is 5 messages per second \(bursts of 20\); retry in \d+\.\d s$/,
      );
    }
    // What was accepted was stored and delivered: nothing half-written.
    await waitFor(
      () => b.bob.contents().filter((c) => c.startsWith("spam ")).length === ok,
      5000,
      "the accepted spam delivered",
    );
  });
});

Deno.test("oversized metadata, huge messages and garbage protobuf each get a clear status; others keep chatting", async () => {
  await withSystem(async (system, b) => {
    // Her own connection, as an attacker has: grpc-js would otherwise share one HTTP/2
    // connection among all clients of a target in this process, bystanders included.
    const own = { "grpc.use_local_subchannel_pool": 1 };
    const raw = new grpc.Client(system.address(), grpc.credentials.createInsecure(), own);
    const mallory = newClient(system.address(), grpc.credentials.createInsecure(), own);
    const channels = [raw];
    try {
      // Over MAX_MESSAGE_BYTES: the service's own limit.
      const big = await underAttack(
        b,
        "big message",
        () => statusOf(mallory.send("mallory", "x".repeat(70_000))),
      );
      assert.equal(big.code, status.INVALID_ARGUMENT);
      assert.equal(big.details, "Cannot send message: content is 70000 bytes, the limit is 65536");

      // Over grpc-js's 4 MiB receive limit: refused before it is decoded.
      const huge = await underAttack(
        b,
        "huge message",
        () => statusOf(mallory.send("mallory", "x".repeat(5 * 1024 * 1024))),
      );
      assert.equal(huge.code, status.RESOURCE_EXHAUSTED);
      assert.match(huge.details, /^Received message larger than max \(\d+ vs 4194304\)$/);

      // Garbage and deeply nested protobuf: start-group tags (field 15) nested 100000 deep, a length
      // prefix of 2^63, a submessage nested in itself.
      const nested: number[] = [];
      for (let i = 0; i < 2000; i++) nested.unshift(0x0a, ...varint(nested.length)); // field 1
      for (
        const [what, bytes] of [
          ["nested groups", new Uint8Array(100_000).fill(0x7b)],
          ["a huge length", Uint8Array.from([0x12, ...varint(2n ** 63n)])],
          ["nested messages", Uint8Array.from(nested)],
          ["connect nested", Uint8Array.from(nested)],
        ] as const
      ) {
        const method = what === "connect nested" ? "CreateStream" : "BroadcastMessage";
        const answer = await underAttack(b, what, () => rawCall(raw, method, bytes));
        assert.equal(answer.code, status.INVALID_ARGUMENT, `${what}: ${answer.details}`);
        // Bytes that happen to decode read as a request with empty fields, refused as such.
        assert.match(answer.details, /^Cannot (read request|send message|open stream): /, what);
        // deno-lint-ignore no-console
        console.log(`  ${what}: ${status[answer.code]} ${answer.details}`);
      }

      // Oversized metadata: 1 MiB in one value, and 4000 entries.
      const oneBig = new grpc.Metadata();
      oneBig.set("x-junk", "a".repeat(1024 * 1024));
      const many = new grpc.Metadata();
      for (let i = 0; i < 4000; i++) many.set(`x-junk-${i}`, "v".repeat(64));
      for (const [what, metadata] of [["1 MiB value", oneBig], ["4000 entries", many]] as const) {
        const answer = await underAttack(
          b,
          what,
          () => {
            // A connection of its own: a refused header block can end the whole connection.
            const fresh = new grpc.Client(system.address(), grpc.credentials.createInsecure(), own);
            channels.push(fresh);
            return rawCall(fresh, "ListRooms", new Uint8Array(), metadata);
          },
        );
        // Either the call is served as usual (the metadata means nothing to this service: in
        // classic mode ListRooms without a token is UNAUTHENTICATED), or HTTP/2 refuses the
        // headers before grpc-js sees a call: a stream reset (Deno's HPACK decoder refuses a
        // 1 MiB header with COMPRESSION_ERROR), which the client library reports as INTERNAL
        // "Received RST_STREAM", or ENHANCE_YOUR_CALM, reported as RESOURCE_EXHAUSTED. No
        // status of the gateway's can be sent then; what matters is that it survives, and that
        // bob and carol, on their own connection, go on chatting.
        const reset = answer.code === status.INTERNAL &&
          /^Received RST_STREAM with code \d+/.test(answer.details);
        assert.ok(
          reset || [status.UNAUTHENTICATED, status.RESOURCE_EXHAUSTED].includes(answer.code),
          `${what}: ${status[answer.code]} ${answer.details}`,
        );
        assert.notEqual(answer.details.trim(), "");
        // deno-lint-ignore no-console
        console.log(`  ${what}: ${status[answer.code]} ${answer.details}`);
      }
    } finally {
      for (const channel of channels) channel.close();
    }
  });
});

function varint(n: number | bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return out;
}
