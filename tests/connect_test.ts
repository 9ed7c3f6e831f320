/**
 * The browser API as @connectrpc/connect-web's clients and curl use it: gRPC-Web and the Connect
 * protocol, binary and JSON, unary calls and the message stream, with the same statuses and
 * messages as native gRPC; and hostile requests on the HTTP port (oversized, badly framed, bad
 * JSON, wrong content types) answered with the protocol's status, never a crash or a hang.
 */

import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { Broadcast, MessageSchema } from "../protocol/gen/chat_pb.ts";
import { abortableFetch } from "./abortable_fetch.ts";
import { connectUser, newClient, startSystem, type System, waitFor } from "./helpers.ts";

function baseUrl(system: System): string {
  return `http://127.0.0.1:${system.gateways[0]!.httpPort}`;
}

type Options = { baseUrl: string; useBinaryFormat: boolean; fetch: typeof fetch };
const TRANSPORTS: [string, (options: Options) => Transport][] = [
  ["gRPC-Web binary", (o) => createGrpcWebTransport({ ...o, useBinaryFormat: true })],
  ["gRPC-Web JSON", (o) => createGrpcWebTransport({ ...o, useBinaryFormat: false })],
  ["Connect binary", (o) => createConnectTransport({ ...o, useBinaryFormat: true })],
  ["Connect JSON", (o) => createConnectTransport({ ...o, useBinaryFormat: false })],
];

for (const [name, transport] of TRANSPORTS) {
  Deno.test(`${name}: connect-web signs in, streams, sends and lists`, async () => {
    const system = await startSystem({ config: { auth: "on" } });
    const nate = newClient(system.address());
    await nate.signIn("nate", "a long password");
    const native = connectUser(system.address(), "nate", { client: nate });
    const abort = new AbortController();
    // Connections of this test's own, as a page has: closed at the end, as a closed tab's are.
    const http = Deno.createHttpClient({});
    try {
      const client = createClient(
        Broadcast,
        transport({
          baseUrl: baseUrl(system),
          useBinaryFormat: true,
          fetch: abortableFetch((input, init) => fetch(input, { ...init, client: http })),
        }),
      );
      const signedIn = await client.signIn({ username: "webby", password: "a long password" });
      assert.equal(signedIn.user?.id, "webby");
      const headers = { authorization: `Bearer ${signedIn.token}` };

      const got: string[] = [];
      const stream = (async () => {
        for await (
          const m of client.createStream({ user: { id: "webby" } }, {
            headers,
            signal: abort.signal,
          })
        ) got.push(m.content);
      })().catch((err) => {
        if (!abort.signal.aborted) throw err;
      });
      await waitFor(() => system.gateways[0]!.hub.size === 2, 5000, "the web stream");

      await client.broadcastMessage({ content: `hello over ${name}` }, { headers });
      await waitFor(() => native.contents().includes(`hello over ${name}`), 5000, "native gets it");
      await waitFor(() => got.includes(`hello over ${name}`), 5000, "the web stream gets it");

      const online = await client.listOnline({ room: "general" }, { headers });
      assert.deepEqual(online.users.map((u) => u.id).sort(), ["nate", "webby"]);
      const page = await client.history({ room: "general", limit: 10 }, { headers });
      assert.equal(page.messages.at(-1)?.content, `hello over ${name}`);
      assert.ok(page.messages.at(-1)!.seq > 0n);

      const err = await client.broadcastMessage({ content: "" }, { headers }).then(
        () => assert.fail("an empty message was taken"),
        (e) => ConnectError.from(e),
      );
      assert.equal(err.code, Code.InvalidArgument);
      assert.equal(err.rawMessage, "Cannot send message: the content is empty");
      const unauthenticated = await client.listRooms({}).then(
        () => assert.fail("listed rooms without a token"),
        (e) => ConnectError.from(e),
      );
      assert.equal(unauthenticated.code, Code.Unauthenticated);

      // Aborting ends the call on the client, and the server lets the stream go.
      abort.abort();
      await stream;
      await waitFor(() => system.gateways[0]!.hub.size === 1, 5000, "the web stream closed");
    } finally {
      abort.abort();
      http.close();
      native.close();
      await system.stop();
    }
  });
}

/** Runs curl with `args`; returns the HTTP status and the body. */
async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { code, stdout, stderr } = await new Deno.Command("curl", {
    args: ["-sS", "-w", "\n%{http_code}", ...args],
    stdin: "null",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const out = new TextDecoder().decode(stdout);
  const cut = out.lastIndexOf("\n");
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

const json = (url: string, body: string, type = "application/json") =>
  curl(["-H", `Content-Type: ${type}`, "-d", body, url]);

Deno.test("curl: Connect JSON calls, and a bad request's error JSON", async () => {
  const system = await startSystem();
  const alice = connectUser(system.address(), "alice");
  try {
    const base = `${baseUrl(system)}/chat.Broadcast`;
    await waitFor(() => system.gateways[0]!.hub.size === 1);
    const online = await json(`${base}/ListOnline`, `{"room":"general"}`);
    assert.equal(online.status, 200);
    assert.deepEqual(JSON.parse(online.body), {
      users: [{ id: "alice", displayName: "alice" }],
    });
    const sent = await json(`${base}/BroadcastMessage`, `{"id":"bob","content":"from curl"}`);
    assert.equal(sent.status, 200);
    assert.deepEqual(JSON.parse(sent.body), {});
    await waitFor(() => alice.contents().includes("from curl"));

    const empty = await json(`${base}/BroadcastMessage`, `{"id":"bob","content":""}`);
    assert.equal(empty.status, 400);
    assert.deepEqual(JSON.parse(empty.body), {
      code: "invalid_argument",
      message: "Cannot send message: the content is empty",
    });
    const far = await json(
      `${base}/History`,
      `{"room":"general","beforeSeq":"18446744073709551615"}`,
    );
    assert.equal(far.status, 400);
    assert.deepEqual(JSON.parse(far.body), {
      code: "invalid_argument",
      message:
        "Cannot read history: before_seq is 18446744073709551615, the largest sequence number is 9007199254740991",
    });
  } finally {
    alice.close();
    await system.stop();
  }
});

Deno.test("hostile requests on the HTTP port get the protocol's status and a message", async () => {
  const system = await startSystem();
  try {
    const base = `${baseUrl(system)}/chat.Broadcast`;
    const errorOf = (body: string) => JSON.parse(body) as { code: string; message: string };

    // Not JSON, JSON of the wrong shape, a field the message does not have.
    for (const body of ["{", "[]", `{"content": 5}`, `{"nope": 1}`]) {
      const answer = await json(`${base}/BroadcastMessage`, body);
      assert.equal(answer.status, 400, body);
      assert.equal(errorOf(answer.body).code, "invalid_argument", body);
      assert.ok(errorOf(answer.body).message, body);
    }
    // Binary that is no chat.Message: a string field whose length runs past the end.
    const garbageAnswer = await fetch(`${base}/BroadcastMessage`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: new Uint8Array([0x0a, 0x05, 0x61]),
    });
    const garbage = { status: garbageAnswer.status, body: await garbageAnswer.text() };
    assert.equal(garbage.status, 400);
    assert.match(
      errorOf(garbage.body).message,
      /^Cannot read request: the message is not a valid chat\.Message \(/,
    );

    // Over the size limit (256 KiB): refused before it is parsed.
    const big = JSON.stringify({ id: "bob", content: "x".repeat(300_000) });
    const tooBig = await fetch(`${base}/BroadcastMessage`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: big,
    });
    assert.equal(tooBig.status, 429);
    assert.deepEqual(await tooBig.json(), {
      code: "resource_exhausted",
      message: `Cannot read request: the body is ${big.length} bytes, the limit is 262144`,
    });

    // Wrong content types and methods.
    for (const type of ["text/plain", "application/xml", "application/grpc"]) {
      const answer = await json(`${base}/ListOnline`, "{}", type);
      assert.equal(answer.status, 415, type);
    }
    const get = await curl([`${base}/ListOnline`]);
    assert.equal(get.status, 405);
    const unknown = await json(`${base}/DeleteEverything`, "{}");
    assert.equal(unknown.status, 501);
    assert.deepEqual(errorOf(unknown.body), {
      code: "unimplemented",
      message: "Cannot call chat.Broadcast/DeleteEverything: the service has no such method",
    });

    // A Connect stream with a broken envelope, and with a compressed one.
    for (const body of [new Uint8Array([0, 0, 0, 0, 100, 1]), new Uint8Array([1, 0, 0, 0, 0])]) {
      const answer = await fetch(`${base}/CreateStream`, {
        method: "POST",
        headers: { "content-type": "application/connect+proto" },
        body,
      });
      assert.equal(answer.status, 200);
      const bytes = new Uint8Array(await answer.arrayBuffer());
      assert.equal(bytes[0], 0x02, "an end-of-stream envelope");
      const end = JSON.parse(new TextDecoder().decode(bytes.subarray(5)));
      assert.ok(["invalid_argument", "unimplemented"].includes(end.error.code), end.error.code);
      assert.ok(end.error.message);
    }
    assert.equal(system.gateways[0]!.hub.size, 0);

    // Still serving.
    const ok = await fetch(`${base}/BroadcastMessage`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: toBinary(MessageSchema, create(MessageSchema, { id: "bob", content: "still here" })),
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await system.stop();
  }
});
