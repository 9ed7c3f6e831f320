/**
 * gRPC-Web on the HTTP port (server/web_api.ts) over real HTTP: a client we did not write
 * (@protobuf-ts/grpcweb-transport with the client protobuf-ts generates at test time, binary and
 * text), raw fetch for bad input, CORS, cancellation, slow clients and keep-alives.
 * tests/connect_test.ts holds @connectrpc/connect-web's clients and the Connect protocol.
 */

import { setTimeout as sleep } from "node:timers/promises";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { RpcError } from "@protobuf-ts/runtime-rpc";
import { isKeepAlive } from "../client/core/wire.ts";
import { silentLogger } from "../core/logger.ts";
import { ConnectSchema, MessageSchema, OnlineUsersSchema } from "../protocol/gen/chat_pb.ts";
import { createWebApi } from "../server/web_api.ts";
import { isPlainGrpcWebCall } from "../server/web_wire.ts";
import { abortableFetch } from "./abortable_fetch.ts";
import { connectUser, startSystem, type System, waitFor } from "./helpers.ts";
import { protobufTs, type WebBroadcastClient, type WebMessage } from "./protobuf_ts.ts";

const { BroadcastClient, Connect, Message } = await protobufTs();

function httpBase(system: System, i = 0): string {
  return `http://127.0.0.1:${system.gateways[i]!.httpPort}`;
}

function webClient(system: System, format: "binary" | "text", i = 0): WebBroadcastClient {
  return new BroadcastClient(
    new GrpcWebFetchTransport({ baseUrl: httpBase(system, i), format, fetch: abortableFetch() }),
  );
}

function frame(flag: number, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flag;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

interface Frame {
  flag: number;
  data: Uint8Array;
}

/** Decodes a text-mode body: padded base64 chunks, one per frame. */
function fromBase64Chunks(body: Uint8Array): Uint8Array {
  const chunks = new TextDecoder().decode(body).split(/(?<==)(?=[^=])/);
  return new Uint8Array(chunks.flatMap((c) => [...Uint8Array.fromBase64(c)]));
}

/** Splits a binary gRPC-Web body into frames; fails on a partial frame. */
function parseFrames(body: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  let at = 0;
  while (at < body.length) {
    assert.ok(body.length - at >= 5, "partial frame header");
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    assert.ok(body.length - at - 5 >= length, "partial frame");
    frames.push({ flag: body[at]!, data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return frames;
}

function trailers(f: Frame): Record<string, string> {
  assert.equal(f.flag, 0x80);
  const out: Record<string, string> = {};
  for (const line of new TextDecoder().decode(f.data).split("\r\n")) {
    if (!line) continue;
    const i = line.indexOf(":");
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** A raw POST to the bridge; the body is read completely. */
async function post(
  system: System,
  method: string,
  body: BodyInit | null,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
  const response = await fetch(`${httpBase(system)}/chat.Broadcast/${method}`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", ...headers },
    body,
  });
  return {
    status: response.status,
    headers: response.headers,
    body: new Uint8Array(await response.arrayBuffer()),
  };
}

/**
 * Asserts a gRPC error before any message: HTTP 200, the status in the headers (trailers-only) or
 * in the body's one trailers frame.
 */
function assertGrpcError(
  response: { status: number; headers: Headers; body: Uint8Array },
  code: number,
  message: RegExp | string,
): void {
  assert.equal(response.status, 200);
  let status = response.headers.get("grpc-status");
  let encoded = response.headers.get("grpc-message");
  if (status === null) {
    const text = response.headers.get("content-type")?.startsWith("application/grpc-web-text");
    const frames = parseFrames(
      text ? fromBase64Chunks(response.body) : response.body,
    );
    assert.equal(frames.length, 1, "only a trailers frame");
    const end = trailers(frames[0]!);
    status = end["grpc-status"] ?? null;
    encoded = end["grpc-message"] ?? null;
  }
  assert.equal(status, String(code));
  const details = decodeURIComponent(encoded ?? "");
  if (typeof message === "string") assert.equal(details, message);
  else assert.match(details, message);
}

const connectBytes = (userId: string) =>
  toBinary(ConnectSchema, create(ConnectSchema, { user: { id: userId } }));
const messageBytes = (userId: string, content: string) =>
  toBinary(MessageSchema, create(MessageSchema, { id: userId, content }));
const decodeStreamMessage = (bytes: Uint8Array) => fromBinary(MessageSchema, bytes);

async function rpcError(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RpcError, `expected an RpcError, got ${err}`);
    return err;
  }
  assert.fail("expected the call to fail");
}

Deno.test("a standard gRPC-Web client sends, lists and streams, in binary and in text mode", async () => {
  const system = await startSystem({ gateways: 2 });
  const native = connectUser(system.address(1), "nate");
  const streams: { close(): void }[] = [];
  try {
    for (const format of ["binary", "text"] as const) {
      const client = webClient(system, format);
      const abort = new AbortController();
      const got: WebMessage[] = [];
      const call = client.createStream(
        Connect.create({ user: { id: `web-${format}`, displayName: `Web ${format}` } }),
        { abort: abort.signal },
      );
      call.responses.onMessage((m) => got.push(m));
      // Completes (with CANCELLED) when aborted at the end.
      const done = call.status.catch(() => {});
      streams.push({
        close: () => abort.abort(),
      });
      await call.headers;
      await waitFor(
        () => system.processor.registry.online().some((p) => p.userId === `web-${format}`),
        5000,
        `web-${format} online`,
      );

      // Messages from a native client on another gateway reach the gRPC-Web stream.
      const before = got.length;
      for (let i = 1; i <= 3; i++) await native.client.send("nate", `${format} ${i}`);
      await waitFor(() => got.length >= before + 3, 5000, `three messages on the ${format} stream`);
      assert.deepEqual(got.slice(before).map((m) => m.content), [
        `${format} 1`,
        `${format} 2`,
        `${format} 3`,
      ]);
      assert.equal(got[before]!.id, "nate");
      assert.equal(got[before]!.room, "general");
      assert.ok(got[before]!.seq > 0);
      assert.ok(got[before]!.timestamp!.seconds > 0);

      // And what the web client sends reaches the native one.
      const sent = await client.broadcastMessage(
        Message.create({ id: `web-${format}`, content: `from the ${format} page` }),
      );
      assert.equal(sent.status.code, "OK");
      assert.deepEqual(sent.response, {});
      await waitFor(() => native.contents().includes(`from the ${format} page`));

      const online = await client.listOnline({ room: "" });
      assert.ok(online.response.users.some((u) => u.id === `web-${format}`));
      assert.deepEqual(online.response.users.find((u) => u.id === "nate"), {
        id: "nate",
        displayName: "nate",
      });
      abort.abort();
      await waitFor(
        () => !system.processor.registry.online().some((p) => p.userId === `web-${format}`),
        5000,
        `web-${format} offline once its stream is cancelled`,
      );
      await done;
    }
  } finally {
    for (const s of streams) s.close();
    native.close();
    await system.stop();
  }
});

Deno.test("errors reach a standard gRPC-Web client as RpcError with code and message", async () => {
  const system = await startSystem();
  try {
    for (const format of ["binary", "text"] as const) {
      const client = webClient(system, format);
      const empty = await rpcError(
        client.broadcastMessage(Message.create({ id: "ann", content: "  " })).response,
      );
      assert.equal(empty.code, "INVALID_ARGUMENT");
      assert.equal(empty.message, "Cannot send message: the content is empty");

      const tooBig = await rpcError(
        client.broadcastMessage(Message.create({ id: "ann", content: "x".repeat(65537) }))
          .response,
      );
      assert.equal(tooBig.code, "INVALID_ARGUMENT");
      assert.equal(
        tooBig.message,
        "Cannot send message: content is 65537 bytes, the limit is 65536",
      );
      // Exactly at the limit passes, even base64-encoded in text mode.
      await client.broadcastMessage(Message.create({ id: "ann", content: "y".repeat(65536) }));

      const noUser = client.createStream(Connect.create({ user: { id: "" } }));
      const streamErr = await rpcError(noUser.status);
      assert.equal(streamErr.code, "INVALID_ARGUMENT");
      assert.equal(streamErr.message, "Cannot open stream: the user id is empty");
      assert.equal(system.gateways[0]!.hub.size, 0);
    }
  } finally {
    await system.stop();
  }
});

Deno.test("a gateway shutting down ends gRPC-Web streams with UNAVAILABLE in the trailers", async () => {
  const system = await startSystem();
  const call = webClient(system, "text").createStream(Connect.create({ user: { id: "sam" } }));
  const status = rpcError(call.status);
  await call.headers;
  await waitFor(() => system.gateways[0]!.hub.size === 1);
  await system.stop();
  const err = await status;
  assert.equal(err.code, "UNAVAILABLE");
  assert.equal(err.message, "Stream closed: the server is shutting down; reconnect");
});

Deno.test("a cancelled gRPC-Web stream closes on the server and the user goes offline", async () => {
  const system = await startSystem();
  try {
    for (const format of ["binary", "text"] as const) {
      const abort = new AbortController();
      const call = webClient(system, format).createStream(
        Connect.create({ user: { id: "carl" } }),
        { abort: abort.signal },
      );
      const status = rpcError(call.status);
      await call.headers;
      await waitFor(() => system.gateways[0]!.hub.size === 1, 5000, "stream open");
      await waitFor(
        () => system.processor.registry.presenceOf("carl", "").online,
        5000,
        "carl online",
      );
      abort.abort();
      assert.equal((await status).code, "CANCELLED");
      await waitFor(() => system.gateways[0]!.hub.size === 0, 5000, "stream closed on the server");
      await waitFor(
        () => !system.processor.registry.presenceOf("carl", "").online,
        5000,
        "carl offline",
      );
    }
  } finally {
    await system.stop();
  }
});

Deno.test("bad requests get the right HTTP or gRPC status, never a crash or a hung call", async () => {
  const system = await startSystem();
  try {
    const valid = frame(0, messageBytes("ann", "hi"));

    const unknown = await post(system, "DeleteEverything", valid);
    assertGrpcError(
      unknown,
      12,
      "Cannot call chat.Broadcast/DeleteEverything: the service has no such method",
    );
    assert.equal(unknown.headers.get("content-type"), "application/grpc-web+proto");

    // application/json is the Connect protocol: a gRPC-Web frame is no JSON.
    const json = await post(system, "BroadcastMessage", valid, {
      "content-type": "application/json",
    });
    assert.equal(json.status, 400);
    assert.equal(JSON.parse(new TextDecoder().decode(json.body)).code, "invalid_argument");
    for (const type of ["text/plain", "application/grpc", "application/xml"]) {
      const wrongType = await post(system, "BroadcastMessage", valid, { "content-type": type });
      assert.equal(wrongType.status, 415, type);
    }
    const noType = await fetch(`${httpBase(system)}/chat.Broadcast/ListOnline`, {
      method: "POST",
      body: frame(0, new Uint8Array(0)),
    });
    assert.equal(noType.status, 415);
    await noType.body?.cancel();

    for (const method of ["GET", "PUT", "DELETE"]) {
      const response = await fetch(`${httpBase(system)}/chat.Broadcast/ListOnline`, { method });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "POST, OPTIONS");
      await response.body?.cancel();
    }

    const truncated = new Uint8Array([0, 0, 0, 0, 100, 1, 2, 3]);
    assertGrpcError(
      await post(system, "BroadcastMessage", truncated),
      3,
      /incomplete envelope/,
    );
    assertGrpcError(
      await post(system, "BroadcastMessage", new Uint8Array(0)),
      12,
      /missing input message/,
    );
    assertGrpcError(
      await post(system, "BroadcastMessage", new Uint8Array([0, 0])),
      3,
      /./,
    );
    assertGrpcError(
      await post(system, "BroadcastMessage", new Uint8Array([...valid, 9, 9])),
      3,
      /./,
    );
    assertGrpcError(
      await post(system, "BroadcastMessage", frame(1, messageBytes("ann", "hi"))),
      12,
      "Cannot read request: compressed messages are not supported",
    );

    // Field 1, length-delimited, says 100 bytes: not a chat.Message.
    const garbage = frame(0, new Uint8Array([0x0a, 100, 1, 2, 3]));
    assertGrpcError(
      await post(system, "BroadcastMessage", garbage),
      3,
      /^Cannot read request: the message is not a valid chat\.Message/,
    );
    assertGrpcError(
      await post(system, "CreateStream", frame(0, new Uint8Array([0xff, 0xff, 0xff]))),
      3,
      /^Cannot read request: the message is not a valid chat\.Connect/,
    );
    assert.equal(system.gateways[0]!.hub.size, 0);

    const text = { "content-type": "application/grpc-web-text" };
    assertGrpcError(
      await post(system, "BroadcastMessage", "not*base64!", text),
      3,
      "Cannot read request: the body is not valid base64",
    );
    // Several padded base64 chunks are one body.
    const bytes = frame(0, messageBytes("ann", "in two chunks"));
    const chunked = bytes.subarray(0, 4).toBase64() + bytes.subarray(4).toBase64();
    const ok = await post(system, "BroadcastMessage", chunked, text);
    assert.equal(ok.headers.get("content-type"), "application/grpc-web-text");
    const frames = parseFrames(fromBase64Chunks(ok.body));
    assert.deepEqual(frames.map((f) => f.flag), [0x00, 0x80]);
    assert.deepEqual(trailers(frames[1]!), { "grpc-status": "0" });

    // Over the limit, declared up front: refused without reading it.
    const huge = new Uint8Array(1024 * 1024);
    assertGrpcError(
      await post(system, "BroadcastMessage", huge),
      8,
      "Cannot read request: the body is 1048576 bytes, the limit is 262144",
    );
    // Over the limit, streamed with no length: refused once the limit is passed.
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 4 * 1024 * 1024) return controller.close();
        sent += 64 * 1024;
        controller.enqueue(new Uint8Array(64 * 1024));
      },
    });
    let streamedStatus: string | null = "no response";
    try {
      const streamed = await post(system, "BroadcastMessage", endless);
      assertGrpcError(
        streamed,
        8,
        "Cannot read request: the body is more than 262144 bytes, the limit is 262144",
      );
      streamedStatus = "8";
    } catch {
      // The server may close the connection while the client is still sending.
      streamedStatus = "8";
    }
    assert.equal(streamedStatus, "8");
    // In process, where nothing buffers in between: reading stops right after the limit.
    let pulled = 0;
    const handler = createWebApi(system.gateways[0]!.service, {
      logger: silentLogger,
      allowedOrigins: [],
      maxRequestBytes: 100_000,
    });
    const inProcess = (await handler(
      new Request("http://in-process/chat.Broadcast/BroadcastMessage", {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: new ReadableStream<Uint8Array>({
          pull(controller) {
            pulled += 10_000;
            controller.enqueue(new Uint8Array(10_000));
          },
        }),
      }),
    ))!;
    assertGrpcError(
      {
        status: inProcess.status,
        headers: inProcess.headers,
        body: new Uint8Array(await inProcess.arrayBuffer()),
      },
      8,
      "Cannot read request: the body is more than 100000 bytes, the limit is 100000",
    );
    assert.ok(pulled <= 120_000, `read ${pulled} bytes of an endless body`);

    // The gateway still serves.
    const after = await post(system, "BroadcastMessage", valid);
    assert.deepEqual(parseFrames(after.body).map((f) => f.flag), [0x00, 0x80]);
    assert.equal((await fetch(`${httpBase(system)}/healthz`).then((r) => r.json())).status, "ok");
  } finally {
    await system.stop();
  }
});

Deno.test("only a plain binary gRPC-Web POST of one message, no deadline, skips Connect", () => {
  const payload = new Uint8Array([10, 1, 120]);
  const body = frame(0, payload);
  const plain = (
    over: { method?: string; type?: string; headers?: Record<string, string>; body?: Uint8Array },
  ) =>
    isPlainGrpcWebCall(
      over.method ?? "POST",
      over.type ?? "application/grpc-web+proto",
      new Headers(over.headers),
      over.body ?? body,
      payload,
    );
  assert.equal(plain({}), true);
  assert.equal(plain({ type: "application/grpc-web" }), true);
  assert.equal(plain({ headers: { "grpc-encoding": "identity" } }), true);
  assert.equal(plain({ method: "GET" }), false);
  for (
    const type of ["application/grpc-web-text", "application/grpc-web+json", "application/proto"]
  ) {
    assert.equal(plain({ type }), false, type);
  }
  assert.equal(plain({ headers: { "grpc-timeout": "1S" } }), false, "a deadline");
  assert.equal(plain({ headers: { "grpc-encoding": "gzip" } }), false, "compression declared");
  assert.equal(plain({ body: frame(1, payload) }), false, "a compressed envelope");
  assert.equal(plain({ body: new Uint8Array([...body, 0]) }), false, "bytes after the message");
  assert.equal(plain({ body: new Uint8Array([...body, ...body]) }), false, "two messages");
});

Deno.test("a plain binary call answered past Connect gets Connect's answer, byte for byte", async () => {
  // server/web_api.ts answers a POST in binary gRPC-Web with one uncompressed message and no
  // deadline itself; a `grpc-timeout` header sends the same call through Connect.
  const system = await startSystem({ config: { corsOrigins: ["https://chat.example.com"] } });
  // Someone online, so the list's answer is a message with content, not an empty one.
  const ann = connectUser(system.address(), "ann", { displayName: "Ann" });
  try {
    await waitFor(() => system.processor.registry.presenceOf("ann", "").online, 5000, "ann online");
    const send = (id: string, content: string) =>
      frame(
        0,
        toBinary(MessageSchema, create(MessageSchema, { id: "ann", content, messageId: id })),
      );
    const online = frame(0, new Uint8Array(0));
    const cases: [string, string, Uint8Array<ArrayBuffer>, Record<string, string>][] = [
      ["sent", "BroadcastMessage", send("", "hi"), {}],
      ["sent, with parameters", "BroadcastMessage", send("", "hi"), {
        "content-type": "application/grpc-web; charset=utf-8",
      }],
      ["sent, from an allowed origin", "BroadcastMessage", send("", "hi"), {
        origin: "https://chat.example.com",
      }],
      ["sent, from another origin", "BroadcastMessage", send("", "hi"), {
        origin: "https://evil.example",
      }],
      ["refused: empty", "BroadcastMessage", send("", ""), { origin: "https://chat.example.com" }],
      ["refused: bad id", "BroadcastMessage", send("x".repeat(200), "hi"), {}],
      ["a list", "ListOnline", online, {}],
    ];
    for (const [name, method, body, headers] of cases) {
      const direct = await post(system, method, body, headers);
      const viaConnect = await post(system, method, body, { ...headers, "grpc-timeout": "10S" });
      assert.equal(direct.status, viaConnect.status, name);
      const shown = (h: Headers) =>
        [...h].filter(([k]) => !["date", "content-length"].includes(k)).join("\n");
      assert.equal(shown(direct.headers), shown(viaConnect.headers), name);
      assert.deepEqual(direct.body, viaConnect.body, name);
      if (name.startsWith("refused")) assertGrpcError(direct, 3, /^Cannot send message: /);
      if (name === "a list") {
        const [data] = parseFrames(direct.body);
        assert.deepEqual(
          fromBinary(OnlineUsersSchema, data!.data).users.map((u) => u.displayName),
          ["Ann"],
        );
      }
    }
    // Each of the four sends above went out twice: once on each path.
    await waitFor(
      async () => (await system.store.history({ room: "general", limit: 100 })).length === 8,
      5000,
      "eight messages stored",
    );
  } finally {
    ann.close();
    await system.stop();
  }
});

Deno.test("CORS: same-origin by default, listed origins allowed, others refused at pre-flight", async () => {
  const system = await startSystem({ config: { corsOrigins: ["https://chat.example.com"] } });
  const url = `${httpBase(system)}/chat.Broadcast/ListOnline`;
  const body = frame(0, new Uint8Array(0));
  try {
    const allowed = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", origin: "https://chat.example.com" },
      body,
    });
    await allowed.arrayBuffer();
    assert.equal(allowed.headers.get("access-control-allow-origin"), "https://chat.example.com");
    assert.equal(allowed.headers.get("vary"), "Origin");
    assert.match(
      allowed.headers.get("access-control-expose-headers")!,
      /grpc-status, grpc-message/i,
    );

    const foreign = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", origin: "https://evil.example" },
      body,
    });
    await foreign.arrayBuffer();
    assert.equal(foreign.headers.get("access-control-allow-origin"), null);

    const preflight = await fetch(url, {
      method: "OPTIONS",
      headers: {
        origin: "https://chat.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web,x-user-agent",
      },
    });
    await preflight.body?.cancel();
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "https://chat.example.com");
    assert.equal(preflight.headers.get("access-control-allow-methods"), "POST");
    const allowHeaders = preflight.headers.get("access-control-allow-headers")!.split(/,\s*/);
    for (
      const h of ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization"]
    ) {
      assert.ok(allowHeaders.includes(h), h);
    }
    assert.ok(Number(preflight.headers.get("access-control-max-age")) > 0);

    // The server's own origin (a browser sends it no pre-flight, but a proxy or tool may): as
    // for an allowed origin.
    const own = await fetch(url, {
      method: "OPTIONS",
      headers: { origin: httpBase(system), "access-control-request-method": "POST" },
    });
    await own.body?.cancel();
    assert.equal(own.status, 204);
    assert.equal(own.headers.get("access-control-allow-origin"), httpBase(system));

    const refused = await fetch(url, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    await refused.body?.cancel();
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get("access-control-allow-origin"), null);

    // Not for the bridge: left to the other routes.
    const other = await fetch(`${httpBase(system)}/somewhere`, { method: "OPTIONS" });
    await other.body?.cancel();
    assert.equal(other.status, 404);
  } finally {
    await system.stop();
  }
});

Deno.test("a slow gRPC-Web client is cut with RESOURCE_EXHAUSTED in the trailers", async () => {
  const system = await startSystem({ config: { streamQueueLimit: 3 } });
  const gateway = system.gateways[0]!;
  // In process, nothing reads the body until the test does: the client is "slow".
  const handler = createWebApi(gateway.service, {
    logger: silentLogger,
    allowedOrigins: [],
  });
  try {
    const response = (await handler(
      new Request("http://in-process/chat.Broadcast/CreateStream", {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: frame(0, connectBytes("slow")),
      }),
    ))!;
    assert.equal(response.status, 200);
    await waitFor(() => gateway.hub.size === 1);
    const sender = connectUser(system.address(), "fast");
    try {
      // Connect's pipeline takes a few messages off the queue before it waits for the client.
      for (let i = 1; i <= 20; i++) await sender.client.send("fast", `m${i}`);
      await waitFor(() => sender.contents().length === 20);
    } finally {
      sender.close();
    }
    await waitFor(() => gateway.hub.size === 0, 5000, "the slow stream cut");
    const frames = parseFrames(new Uint8Array(await response.arrayBuffer()));
    const data = frames.filter((f) => f.flag === 0);
    const contents = data.map((f) => decodeStreamMessage(f.data).content);
    assert.ok(contents.length >= 3 && contents.length < 20, contents.join());
    assert.deepEqual(contents, contents.map((_, i) => `m${i + 1}`), "in order, none skipped");
    const end = trailers(frames.at(-1)!);
    assert.equal(end["grpc-status"], "8");
    assert.match(decodeURIComponent(end["grpc-message"]!), /the client is 3 messages behind/);
  } finally {
    await system.stop();
  }
});

Deno.test("a gRPC-Web client that stops reading on the HTTP port is cut with RESOURCE_EXHAUSTED after what it was sent", async () => {
  const system = await startSystem({
    config: { streamQueueLimit: 20, rateLimitPerSecond: 100_000, rateLimitBurst: 100_000 },
  });
  const gateway = system.gateways[0]!;
  const abort = new AbortController();
  try {
    // Not read until the stream was cut: the socket's buffers fill, then the stream's queue.
    const response = await abortableFetch()(`${httpBase(system)}/chat.Broadcast/CreateStream`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: frame(0, connectBytes("stalled")),
      signal: abort.signal,
    });
    assert.equal(response.status, 200);
    await waitFor(() => gateway.hub.size === 1);
    const sender = connectUser(system.address(), "fast");
    const big = "x".repeat(60_000);
    let sent = 0;
    try {
      while (gateway.hub.countOf("stalled") === 1 && sent < 2000) {
        await sender.client.send("fast", `${++sent}:${big}`);
      }
    } finally {
      sender.close();
    }
    assert.equal(gateway.hub.countOf("stalled"), 0, `cut after ${sent} messages`);
    const frames = parseFrames(new Uint8Array(await response.arrayBuffer()));
    const contents = frames.filter((f) => f.flag === 0)
      .map((f) => decodeStreamMessage(f.data).content.split(":")[0]);
    assert.ok(contents.length > 20 && contents.length < sent, `${contents.length} of ${sent}`);
    assert.deepEqual(contents, contents.map((_, i) => String(i + 1)), "in order, none skipped");
    const end = trailers(frames.at(-1)!);
    assert.equal(end["grpc-status"], "8");
    assert.match(decodeURIComponent(end["grpc-message"]!), /the client is 20 messages behind/);
  } finally {
    abort.abort();
    await system.stop();
  }
});

Deno.test("keep-alives go only to streams that ask for them, and only when idle", async () => {
  const system = await startSystem();
  const gateway = system.gateways[0]!;
  const handler = createWebApi(gateway.service, {
    logger: silentLogger,
    allowedOrigins: [],
    keepAliveMs: 50,
  });
  const open = async (user: string, headers: Record<string, string>) => {
    const response = (await handler(
      new Request("http://in-process/chat.Broadcast/CreateStream", {
        method: "POST",
        headers: { "content-type": "application/grpc-web-text", ...headers },
        body: frame(0, connectBytes(user)).toBase64(),
      }),
    ))!;
    const reader = response.body!.getReader();
    const chunks: Uint8Array[] = [];
    (async () => {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
      }
    })().catch(() => {});
    return { chunks, close: () => reader.cancel() };
  };
  const plain = await open("plain", {});
  const asked = await open("asked", { "x-chat-keepalive": "1" });
  try {
    await sleep(300);
    assert.equal(plain.chunks.length, 0, "a standard client gets nothing on an idle stream");
    assert.ok(asked.chunks.length >= 2, `keep-alives sent: ${asked.chunks.length}`);
    for (const chunk of asked.chunks) {
      // Each chunk is one padded base64 text of one empty data frame.
      const frames = parseFrames(Uint8Array.fromBase64(new TextDecoder().decode(chunk)));
      assert.deepEqual(frames, [{ flag: 0, data: new Uint8Array(0) }]);
      assert.equal(isKeepAlive(decodeStreamMessage(frames[0]!.data)), true);
    }
  } finally {
    await plain.close();
    await asked.close();
    await waitFor(() => gateway.hub.size === 0);
    await system.stop();
  }
});
