/**
 * CORS as a browser does it, in Chromium (playwright-core, /usr/bin/chromium): pages on other
 * local ports call the gateway's gRPC-Web API cross-origin, with the headers gRPC-Web and
 * Connect clients send (content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization).
 *
 * - A page on an origin listed in CORS_ORIGINS: the browser sends a pre-flight, the gateway
 *   answers it, and SignIn, BroadcastMessage and an error's grpc-status/grpc-message (exposed
 *   headers) all reach the page.
 * - A page on any other origin: the pre-flight is refused, the browser blocks the call, and the
 *   gateway never sees it; a "simple" cross-site POST that needs no pre-flight sends nothing.
 * - A page on the gateway's own origin: no pre-flight at all, the call just works.
 *
 * A counting TCP relay in front of the HTTP port sees what the browser really sends. Meanwhile
 * two bystanders (bob on native gRPC, carol on gRPC-Web) keep chatting.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import net from "node:net";
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  MessageSchema,
  SignInRequestSchema,
  SignInResponseSchema,
} from "../protocol/gen/chat_pb.ts";
import { memoryLogger } from "../core/logger.ts";
import { openBrowser, type TestBrowser } from "./browser.ts";
import { connectUser, newClient, startSystem, type TestUser, waitFor } from "./helpers.ts";
import { protobufTs } from "./protobuf_ts.ts";

const { BroadcastClient, Connect, Message } = await protobufTs();

const PASSWORD = "a long enough password";
const GRPC_WEB_HEADERS = {
  "content-type": "application/grpc-web+proto",
  "x-grpc-web": "1",
  "x-user-agent": "grpc-web-javascript/0.1",
  "grpc-timeout": "10S",
};

/** A tiny page server on its own port: another origin. */
function pageServer(): { origin: string; close(): Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("<!doctype html><title>another site</title><p>hello</p>", {
        headers: { "content-type": "text/html; charset=utf-8" },
      }),
  );
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}

/** A TCP relay to `port` that counts the requests passing through it, by method and path. */
async function countingRelay(port: number) {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    client.on("data", (chunk: Buffer) => {
      for (
        const m of chunk.toString("latin1").matchAll(
          /(?:^|\r\n)(OPTIONS|POST|GET) (\/chat\.Broadcast\/\S+) HTTP/g,
        )
      ) {
        seen.push(`${m[1]} ${m[2]}`);
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    /** The API requests seen, as "METHOD /path" (the browser's favicon and pages left out). */
    seen,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface PageAnswer {
  error?: string;
  status?: number;
  grpcStatus?: string | null;
  grpcMessage?: string | null;
  body?: number[];
}

/** Runs a gRPC-Web call from the page, as the page's own script would (fetch, CORS mode). */
function callFromPage(
  browser: TestBrowser,
  url: string,
  headers: Record<string, string>,
  message: Uint8Array,
): Promise<PageAnswer> {
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  // A string: the tests are type-checked without the DOM library.
  return browser.page.evaluate<PageAnswer>(`(async () => {
    try {
      const res = await fetch(${JSON.stringify(url)}, {
        method: "POST",
        headers: ${JSON.stringify(headers)},
        body: new Uint8Array(${JSON.stringify([...frame])}),
      });
      const body = [...new Uint8Array(await res.arrayBuffer())];
      return {
        status: res.status,
        grpcStatus: res.headers.get("grpc-status"),
        grpcMessage: res.headers.get("grpc-message"),
        body,
      };
    } catch (err) {
      return { error: String(err) };
    }
  })()`);
}

/** The frames of a gRPC-Web body: data frames' bytes and the trailers' text. */
function frames(body: number[]): { data: Uint8Array[]; trailers: string } {
  const bytes = Uint8Array.from(body);
  const data: Uint8Array[] = [];
  let trailers = "";
  let at = 0;
  while (at + 5 <= bytes.length) {
    const length = new DataView(bytes.buffer, at + 1, 4).getUint32(0);
    const payload = bytes.subarray(at + 5, at + 5 + length);
    if (bytes[at] === 0x80) trailers += new TextDecoder().decode(payload);
    else data.push(payload);
    at += 5 + length;
  }
  return { data, trailers };
}

Deno.test({
  name:
    "CORS in Chromium: a page on an allowed origin calls the API cross-origin; one on another origin is blocked before the gateway sees the call; same-origin needs no pre-flight",
  // Playwright keeps a pipe and timers to Chromium open between steps.
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const allowedSite = pageServer();
  const otherSite = pageServer();
  const logger = memoryLogger("error");
  const system = await startSystem({
    logger,
    config: { auth: "on", corsOrigins: [allowedSite.origin] },
  });
  const gateway = system.gateways[0]!;
  const relay = await countingRelay(gateway.httpPort);
  const api = (method: string) => `${relay.url}/chat.Broadcast/${method}`;
  let browser: TestBrowser | undefined;
  let bob: TestUser | undefined;
  let stopped = false;
  try {
    // Bystanders: bob (native) and carol (gRPC-Web from Deno), both signed in.
    const bobClient = newClient(system.address());
    await bobClient.signIn("bob", PASSWORD);
    const bobAgain = connectUser(system.address(), "bob", { client: bobClient });
    bob = bobAgain;
    const carolWeb = new BroadcastClient(
      new GrpcWebFetchTransport({
        baseUrl: `http://127.0.0.1:${gateway.httpPort}`,
        format: "binary",
      }),
    );
    const carolToken =
      (await carolWeb.signIn({ username: "carol", password: PASSWORD, displayName: "" }))
        .response.token;
    const carol = new BroadcastClient(
      new GrpcWebFetchTransport({
        baseUrl: `http://127.0.0.1:${gateway.httpPort}`,
        format: "binary",
        meta: { authorization: `Bearer ${carolToken}` },
      }),
    );
    const carolGot: string[] = [];
    const carolStream = carol.createStream(Connect.create({ user: { id: "carol" } }));
    carolStream.responses.onMessage((m) => {
      if (m.content) carolGot.push(m.content);
    });
    const carolDone = carolStream.status.catch(() => {});
    await carolStream.headers;
    await waitFor(() => gateway.hub.size >= 2, 5000, "bob's and carol's streams");
    const exchange = async (label: string) => {
      await bobAgain.client.send("bob", `bob: ${label}`);
      const sent = await carol.broadcastMessage(Message.create({ content: `carol: ${label}` }));
      assert.equal(sent.status.code, "OK");
      await waitFor(
        () => carolGot.includes(`bob: ${label}`) && bobAgain.contents().includes(`carol: ${label}`),
        5000,
        `bob and carol to exchange "${label}"`,
      );
    };

    browser = await openBrowser();

    // 1. A page on the allowed origin: pre-flight answered, then the calls go through.
    await browser.page.goto(allowedSite.origin);
    const before = relay.seen.length;
    const signIn = await callFromPage(
      browser,
      api("SignIn"),
      GRPC_WEB_HEADERS,
      toBinary(
        SignInRequestSchema,
        create(SignInRequestSchema, { username: "erin", password: PASSWORD }),
      ),
    );
    assert.equal(signIn.error, undefined, JSON.stringify(signIn));
    const signInFrames = frames(signIn.body!);
    assert.match(signInFrames.trailers, /grpc-status: 0/);
    const token = fromBinary(SignInResponseSchema, signInFrames.data[0]!).token;
    const withToken = { ...GRPC_WEB_HEADERS, authorization: `Bearer ${token}` };
    const sent = await callFromPage(
      browser,
      api("BroadcastMessage"),
      withToken,
      toBinary(MessageSchema, create(MessageSchema, { content: "hello from another origin" })),
    );
    assert.equal(sent.error, undefined, JSON.stringify(sent));
    assert.match(frames(sent.body!).trailers, /grpc-status: 0/);
    await waitFor(() => bobAgain.contents().includes("hello from another origin"));
    // An error answer: its status, in the exposed headers or the body's trailers, is readable by
    // the page.
    const denied = await callFromPage(
      browser,
      api("BroadcastMessage"),
      withToken,
      toBinary(MessageSchema, create(MessageSchema, { content: "x", room: "no-such-room" })),
    );
    assert.equal(denied.error, undefined, JSON.stringify(denied));
    const trailers = frames(denied.body!).trailers;
    const deniedStatus = denied.grpcStatus ?? trailers.match(/grpc-status: (\d+)/)?.[1];
    const deniedMessage = denied.grpcMessage ?? trailers.match(/grpc-message: (.*)/)?.[1];
    assert.ok(deniedStatus !== undefined && deniedStatus !== "0", JSON.stringify(denied));
    assert.match(decodeURIComponent(deniedMessage ?? ""), /no-such-room/);
    const allowedTraffic = relay.seen.slice(before);
    assert.ok(
      allowedTraffic.includes("OPTIONS /chat.Broadcast/BroadcastMessage"),
      `a pre-flight was sent: ${allowedTraffic.join(", ")}`,
    );
    await exchange("after the allowed origin");

    // 2. A page on another origin: the pre-flight is refused, the call never leaves the browser.
    await browser.page.goto(otherSite.origin);
    const beforeOther = relay.seen.length;
    const blocked = await callFromPage(
      browser,
      api("BroadcastMessage"),
      withToken,
      toBinary(MessageSchema, create(MessageSchema, { content: "from a site that may not" })),
    );
    assert.match(blocked.error ?? "", /TypeError|Failed to fetch/, JSON.stringify(blocked));
    const otherTraffic = relay.seen.slice(beforeOther);
    assert.deepEqual(otherTraffic, ["OPTIONS /chat.Broadcast/BroadcastMessage"]);
    // A cross-site POST that needs no pre-flight (a "simple" request, as a form sends) is
    // answered 415 and publishes nothing.
    const simple = await browser.page.evaluate<string>(`(async () => {
      await fetch(${JSON.stringify(api("BroadcastMessage"))}, {
        method: "POST",
        mode: "no-cors",
        headers: { "content-type": "text/plain" },
        body: "from a form",
      });
      return "sent";
    })()`);
    assert.equal(simple, "sent");
    await exchange("after the other origin");
    assert.ok(!bobAgain.contents().some((c) => /may not|from a form/.test(c)));

    // 3. A page on the gateway's own origin (through the relay): no pre-flight.
    await browser.page.goto(`${relay.url}/healthz`);
    const beforeOwn = relay.seen.length;
    const own = await callFromPage(
      browser,
      api("BroadcastMessage"),
      withToken,
      toBinary(MessageSchema, create(MessageSchema, { content: "hello from the same origin" })),
    );
    assert.equal(own.error, undefined, JSON.stringify(own));
    assert.match(frames(own.body!).trailers, /grpc-status: 0/);
    assert.deepEqual(relay.seen.slice(beforeOwn), ["POST /chat.Broadcast/BroadcastMessage"]);
    await waitFor(() => bobAgain.contents().includes("hello from the same origin"));
    await exchange("at the end");

    await browser.close();
    browser = undefined;
    stopped = true;
    await system.stop();
    await carolDone;
    assert.equal(bobAgain.ended?.error?.code, 14, "bob's stream lasted until the shutdown");
  } finally {
    bob?.close();
    await browser?.close();
    await relay.close();
    if (!stopped) await system.stop();
    await allowedSite.close();
    await otherSite.close();
  }
  assert.deepEqual(logger.lines, [], "nothing logged as an error");
});
