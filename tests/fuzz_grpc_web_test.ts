/**
 * Hostile input at the browser API (server/web_api.ts) over real HTTP, as property tests: random
 * bodies, valid frames with bytes flipped, cut, lengths and flags wrong, text mode with broken
 * base64, Connect unary bodies of any bytes, random content types and method paths, for every
 * method. Every answer must be a well-formed gRPC-Web response (a status in the trailers or the
 * headers), a Connect error (its HTTP status and a JSON `code` and `message`), or HTTP 405 or 415,
 * never INTERNAL or UNKNOWN, and the gateway must go on serving.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { memoryLogger } from "../core/logger.ts";
import { encodeRequest, METHODS as DESCRIPTORS } from "./attack_support.ts";
import { connectUser, startSystem, type System, waitFor } from "./helpers.ts";
import { fuzzParameters } from "./fuzz_seed.ts";

const GRPC = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  UNAUTHENTICATED: 16,
} as const;
/** What a client may be told about its own bad request; UNIMPLEMENTED for a method that is not. */
const CLIENT_ERRORS = new Set<number>(Object.values(GRPC).filter((c) => c > GRPC.CANCELLED));
const GRPC_WEB_TYPES = [
  "application/grpc-web",
  "application/grpc-web+proto",
  "application/grpc-web-text",
  "application/grpc-web-text+proto",
];
/** Connect unary: the body is the message itself, errors are JSON with an HTTP status. */
const CONNECT_TYPES = ["application/proto", "application/json"];
const CONTENT_TYPES = [...GRPC_WEB_TYPES, ...CONNECT_TYPES];
/** Connect's error codes that a client may be told about its own bad request. */
const CONNECT_CLIENT_ERRORS = new Set([
  "invalid_argument",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "out_of_range",
  "unimplemented",
  "unauthenticated",
]);
const METHODS = [...DESCRIPTORS.keys()];
const SAMPLES: Record<string, object> = {
  CreateStream: { user: { id: "fuzzer", displayName: "Fuzzer" } },
  BroadcastMessage: { id: "fuzzer", content: "hello", room: "general" },
  ListOnline: { room: "general" },
  SignIn: { username: "fuzzer", password: "short", displayName: "F" },
  CreateRoom: { room: "fuzz-room" },
  JoinRoom: { room: "fuzz-room" },
  LeaveRoom: { room: "fuzz-room" },
  ListRooms: { all: true, query: "fuzz", limit: 10 },
  OpenDirect: { userId: "bob" },
  History: { room: "general", beforeSeq: 5, limit: 10 },
  SetTyping: { room: "general", typing: true },
  MarkRead: { room: "general", seq: 1 },
  EditMessage: { room: "general", seq: 1, content: "edited" },
  DeleteMessage: { room: "general", seq: 1 },
  React: { room: "general", seq: 1, emoji: "👍" },
  SetTopic: { room: "fuzz-room", topic: "Fuzzing, all day" },
  Block: { userId: "bob", blocked: true },
  ListBlocked: {},
};

function frame(
  flag: number,
  payload: Uint8Array,
  length = payload.length,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flag;
  new DataView(out.buffer).setUint32(1, length >>> 0);
  out.set(payload, 5);
  return out;
}

/** A method's valid request frame, broken in one of the ways a bad client or proxy breaks it. */
function brokenFrame(method: string): fc.Arbitrary<Uint8Array> {
  const message = encodeRequest(method, SAMPLES[method]!);
  const valid = frame(0, message);
  return fc.oneof(
    fc.constant(valid),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 })
      .map((flips) => {
        const bytes = valid.slice();
        for (const [at, mask] of flips) bytes[at % bytes.length]! ^= mask;
        return bytes;
      }),
    fc.nat().map((n) => valid.subarray(0, n % valid.length)),
    fc.integer({ min: 0, max: 0xffffffff }).map((length) => frame(0, message, length)),
    fc.integer({ min: 1, max: 255 }).map((flag) => frame(flag, message)),
    fc.uint8Array({ minLength: 1, maxLength: 20 }).map((tail) =>
      Uint8Array.from([...valid, ...tail])
    ),
    fc.uint8Array({ maxLength: 60 }).map((payload) => frame(0, payload)),
    fc.constant(Uint8Array.from([...valid, ...frame(0x80, new TextEncoder().encode("x: y\r\n"))])),
  );
}

/** A body as sent in text mode: base64, sometimes with characters that are not base64. */
const textBody = (bytes: Uint8Array) =>
  fc.oneof(
    fc.constant(bytes.toBase64()),
    fc.tuple(fc.nat(), fc.constantFrom("*", "=", " ", "\u00e9", "-", "_", "==", "\n")).map(
      ([at, junk]) => {
        const text = bytes.toBase64();
        const i = at % (text.length + 1);
        return text.slice(0, i) + junk + text.slice(i);
      },
    ),
    fc.nat().map((n) => bytes.toBase64().slice(0, n % (bytes.toBase64().length + 1))),
    fc.string({ maxLength: 40 }),
  );

interface Case {
  path: string;
  method: string;
  contentType: string;
  body: Uint8Array | string;
}

const webCase: fc.Arbitrary<Case> = fc.record({
  method: fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...METHODS) },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  ),
  contentType: fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
    { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES).map((t) => `${t}; charset=utf-8`) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  ),
}).chain(({ method, contentType }) => {
  const known = DESCRIPTORS.has(method);
  const binary = known
    ? fc.oneof(
      { weight: 4, arbitrary: brokenFrame(method) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }) },
    )
    : fc.uint8Array({ maxLength: 40 });
  const text = contentType.startsWith("application/grpc-web-text");
  const unary = CONNECT_TYPES.includes(contentType) && known;
  const connectBody = fc.oneof(
    fc.constant(known ? encodeRequest(method, SAMPLES[method]!) : new Uint8Array(0)),
    fc.uint8Array({ maxLength: 60 }),
    fc.constantFrom(`{"room": 5}`, `{"nope": 1}`, "{", `{"user": {"id": "fuzzer"}}`),
  );
  return fc.record({
    path: fc.constant(`/chat.Broadcast/${encodeURIComponent(method)}`),
    method: fc.constant(method),
    contentType: fc.constant(contentType),
    body: unary ? connectBody : text ? binary.chain(textBody) : binary,
  });
});

interface Frame {
  flag: number;
  data: Uint8Array;
}

function parseFrames(body: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  for (let at = 0; at < body.length;) {
    assert.ok(body.length - at >= 5, "a partial frame header in the response");
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    assert.ok(body.length - at - 5 >= length, "a partial frame in the response");
    frames.push({ flag: body[at]!, data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return frames;
}

/** Decodes a text-mode body: padded base64 chunks, one per frame. */
function fromBase64Chunks(body: Uint8Array): Uint8Array<ArrayBuffer> {
  const chunks = new TextDecoder().decode(body).split(/(?<==)(?=[^=])/);
  return new Uint8Array(chunks.flatMap((c) => [...Uint8Array.fromBase64(c)]));
}

function trailerFields(data: Uint8Array): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of new TextDecoder().decode(data).split("\r\n")) {
    if (!line) continue;
    const i = line.indexOf(":");
    fields.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return fields;
}

function assertStatus(what: string, code: string | undefined, message: string | null | undefined) {
  assert.ok(code !== undefined && /^\d+$/.test(code), `${what}: grpc-status is ${code}`);
  const n = Number(code);
  if (n === GRPC.OK) return;
  const details = decodeURIComponent(message ?? "");
  assert.ok(CLIENT_ERRORS.has(n), `${what}: grpc-status ${n}: ${details}`);
  assert.ok(details.trim() !== "", `${what}: grpc-status ${n} without a message`);
}

/** Sends one case and checks the answer is well formed; returns once any stream it opened is closed. */
async function check(system: System, c: Case): Promise<void> {
  const hub = system.gateways[0]!.hub;
  const before = hub.size;
  const what = `${c.method} (${c.contentType})`;
  const response = await fetch(`http://127.0.0.1:${system.gateways[0]!.httpPort}${c.path}`, {
    method: "POST",
    headers: { "content-type": c.contentType },
    body: typeof c.body === "string" ? c.body : c.body.slice(),
  });
  const type = c.contentType.split(";")[0]!.trim().toLowerCase();
  if (CONNECT_TYPES.includes(type) && response.status !== 415) {
    // A Connect unary answer: 200 with the response, or an error as JSON.
    const text = await response.text();
    if (response.status === 200) return;
    const error = JSON.parse(text) as { code: string; message: string };
    assert.ok(CONNECT_CLIENT_ERRORS.has(error.code), `${what}: HTTP ${response.status}: ${text}`);
    assert.ok(error.message?.trim(), `${what}: ${error.code} without a message`);
    return;
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    // The documented HTTP error: only for a content type the API does not speak (Connect takes
    // parameters only on its JSON types).
    assert.equal(response.status, 415, `${what}: HTTP ${response.status}`);
    // A stream is no Connect unary call: it takes application/connect+json or +proto.
    assert.ok(
      !CONTENT_TYPES.includes(type) || /^application\/proto;/.test(c.contentType) ||
        (c.method === "CreateStream" && CONNECT_TYPES.includes(type)),
      what,
    );
    return;
  }
  const headerStatus = response.headers.get("grpc-status");
  if (headerStatus !== null) {
    // Trailers-only: the status in the headers and nothing in the body.
    const body = new Uint8Array(await response.arrayBuffer());
    assert.equal(body.length, 0, `${what}: a trailers-only answer has an empty body`);
    assertStatus(what, headerStatus, response.headers.get("grpc-message"));
    return;
  }
  let body: Uint8Array<ArrayBuffer>;
  if (c.method === "CreateStream") {
    // Either the stream opened (headers, then nothing until a message) or it was refused (a body
    // that is one trailers frame, and its end).
    const reader = response.body!.getReader();
    const chunks: Uint8Array[] = [];
    const ended = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return true;
        chunks.push(value);
      }
    })().catch(() => true);
    const opened = await Promise.race([
      ended.then(() => false),
      waitFor(() => hub.size > before, 5000, `${what}: the stream in the hub or its status`)
        .then(() => true),
    ]);
    if (opened) {
      // The client leaves, and the server must notice.
      await reader.cancel();
      await waitFor(() => hub.size === before, 5000, `${what}: the stream to close`);
      return;
    }
    body = new Uint8Array(chunks.flatMap((c) => [...c]));
  } else {
    body = new Uint8Array(await response.arrayBuffer());
  }
  if (response.headers.get("content-type")?.startsWith("application/grpc-web-text")) {
    body = fromBase64Chunks(body);
  }
  const frames = parseFrames(body);
  const last = frames.at(-1);
  assert.ok(last && last.flag === 0x80, `${what}: the body ends with a trailers frame`);
  assert.ok(frames.slice(0, -1).every((f) => f.flag === 0), `${what}: data frames before it`);
  const trailers = trailerFields(last.data);
  assertStatus(what, trailers.get("grpc-status"), trailers.get("grpc-message"));
}

Deno.test("property: random and broken gRPC-Web requests get a well-formed answer with a clear status", async () => {
  const logger = memoryLogger("error");
  const system = await startSystem({
    logger,
    config: { rateLimitPerSecond: 1_000_000, rateLimitBurst: 1_000_000 },
  });
  try {
    await fc.assert(
      fc.asyncProperty(webCase, (c) => check(system, c)),
      fuzzParameters("gRPC-Web requests", 4000),
    );
    // Still serving: a message sent over gRPC-Web reaches a native stream.
    const alice = connectUser(system.address(), "alice");
    await waitFor(() => system.gateways[0]!.hub.size === 1, 5000, "alice's stream");
    const sent = await fetch(
      `http://127.0.0.1:${system.gateways[0]!.httpPort}/chat.Broadcast/BroadcastMessage`,
      {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: frame(0, encodeRequest("BroadcastMessage", { id: "bob", content: "still here" })),
      },
    );
    await sent.body?.cancel();
    assert.equal(sent.status, 200);
    await waitFor(() => alice.contents().includes("still here"), 5000, "the message after fuzzing");
    assert.deepEqual(logger.lines, [], "nothing logged as an error");
  } finally {
    await system.stop();
  }
});

Deno.test("property: random paths, HTTP methods and bodies under /chat.Broadcast/ get a documented answer", async () => {
  const system = await startSystem();
  const base = `http://127.0.0.1:${system.gateways[0]!.httpPort}/chat.Broadcast/`;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 30 }),
        fc.constantFrom("GET", "PUT", "DELETE", "PATCH", "POST"),
        fc.uint8Array({ maxLength: 50 }),
        async (path, method, body) => {
          const response = await fetch(base + encodeURIComponent(path).replaceAll("%2F", "/"), {
            method,
            headers: { "content-type": "application/grpc-web+proto" },
            body: method === "GET" ? undefined : body.slice(),
          });
          const bytes = new Uint8Array(await response.arrayBuffer());
          if (method !== "POST") {
            assert.equal(response.status, 405);
            assert.equal(response.headers.get("allow"), "POST, OPTIONS");
            return;
          }
          assert.equal(response.status, 200);
          const code = response.headers.get("grpc-status");
          if (code !== null) {
            assertStatus(path, code, response.headers.get("grpc-message"));
            return;
          }
          // The status is in the body's trailers frame; a method the service lacks is
          // UNIMPLEMENTED.
          const last = parseFrames(bytes).at(-1);
          assert.equal(last?.flag, 0x80);
          const trailers = trailerFields(last!.data);
          assertStatus(path, trailers.get("grpc-status"), trailers.get("grpc-message"));
          if (!DESCRIPTORS.has(path)) {
            assert.equal(trailers.get("grpc-status"), String(GRPC.UNIMPLEMENTED), path);
          }
        },
      ),
      fuzzParameters("gRPC-Web paths and methods", 500),
    );
  } finally {
    await system.stop();
  }
});
