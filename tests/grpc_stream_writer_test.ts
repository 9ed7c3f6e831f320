/**
 * server/grpc_stream_writer.ts on a real grpc-js server and client: the writer finds the call's
 * HTTP/2 stream under this grpc-js (with and without an interceptor, as the gateway has), and
 * messages written many at once arrive whole and in order, as separate messages, with the status
 * after them.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { StreamWriter } from "../server/grpc_stream_writer.ts";

const passThrough = (bytes: Buffer) => bytes;
const METHOD: grpc.MethodDefinition<Buffer, Buffer> = {
  path: "/test.Writer/Stream",
  requestStream: false,
  responseStream: true,
  requestSerialize: passThrough,
  requestDeserialize: passThrough,
  responseSerialize: passThrough,
  responseDeserialize: passThrough,
};

/** A message of `size` bytes that says its index. */
function message(index: number, size: number): Uint8Array {
  const out = new Uint8Array(size).fill(120);
  new TextEncoder().encodeInto(`${index}:`, out);
  return out;
}

async function run(
  options: grpc.ServerOptions,
  serve: (writer: StreamWriter) => void,
  callOptions: grpc.CallOptions = {},
) {
  const server = new grpc.Server(options);
  let direct: boolean | undefined;
  server.addService({ Stream: METHOD }, {
    Stream: (call: grpc.ServerWritableStream<Buffer, Uint8Array>) => {
      const writer = new StreamWriter(call);
      direct = writer.direct;
      serve(writer);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (err, p) => err ? reject(err) : resolve(p),
    )
  );
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const call = client.makeServerStreamRequest(
      METHOD.path,
      passThrough,
      passThrough,
      Buffer.alloc(0),
      new grpc.Metadata(),
      callOptions,
    );
    const got: string[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on("data", (b: Buffer) => got.push(new TextDecoder().decode(b)));
      call.on("status", resolve);
      call.on("error", () => {});
    });
    return { direct, got, status };
  } finally {
    client.close();
    server.forceShutdown();
  }
}

const noopInterceptor: grpc.ServerInterceptor = (_method, call) =>
  new grpc.ServerInterceptingCall(call, { start: (next) => next({}) });

const SERVERS: [string, grpc.ServerOptions][] = [
  ["no", {}],
  ["an", { interceptors: [noopInterceptor] }],
];

for (const [name, options] of SERVERS) {
  Deno.test(`with ${name} interceptor: a burst arrives whole, in order, status last`, async () => {
    const sizes = [8, 100, 70_000];
    let pendingAfterBurst = -1;
    const { direct, got, status } = await run(options, (writer) => {
      writer.sendHeaders();
      for (let i = 0; i < 300; i++) writer.write(message(i, sizes[i % sizes.length]!));
      pendingAfterBurst = writer.pending();
      const drained = setInterval(() => {
        if (writer.pending() > 0) return;
        clearInterval(drained);
        writer.fail({ code: grpc.status.RESOURCE_EXHAUSTED, details: "done" });
      }, 5);
    });
    assert.equal(direct, true, "the writer reaches the HTTP/2 stream under this grpc-js");
    assert.equal(pendingAfterBurst, 300, "the burst waits behind the first write");
    assert.equal(got.length, 300);
    got.forEach((text, i) => {
      assert.equal(text.length, sizes[i % sizes.length]);
      assert.ok(text.startsWith(`${i}:`), `message ${i} starts ${text.slice(0, 8)}`);
    });
    assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(status.details, "done");
  });
}

Deno.test("the same message written twice arrives twice", async () => {
  const shared = message(7, 50);
  const { got } = await run({}, (writer) => {
    writer.write(shared);
    writer.write(shared);
    setTimeout(() => writer.fail({ code: grpc.status.OK, details: "" }), 50);
  });
  assert.deepEqual(got.map((t) => t.slice(0, 2)), ["7:", "7:"]);
});

Deno.test("writes after grpc-js ended the call (its deadline passed) are dropped quietly", async () => {
  let writes = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => done = resolve);
  const { got, status } = await run({}, (writer) => {
    const timer = setInterval(() => {
      writer.write(message(writes++, 20));
      if (writes === 40) {
        clearInterval(timer);
        done();
      }
    }, 10);
  }, { deadline: Date.now() + 150 });
  await finished;
  assert.equal(status.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(got.length > 0 && got.length < 40, `${got.length} of 40 arrived before the deadline`);
});
