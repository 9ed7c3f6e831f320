/**
 * Connection limits under attack, on both ports of a real gateway over real sockets: slow
 * bodies, trickled headers, idle connections, connection floods over the caps, too many calls
 * from one address, and thousands of calls on one HTTP/2 connection. Each test states the
 * attack and what the gateway must do, and meanwhile two bystanders keep chatting: bob on native
 * gRPC, carol on gRPC-Web (the page's transport), each seeing the other's messages during and
 * after the attack. What the gateway closed is summed up in WARN lines, never an ERROR.
 *
 * Attackers come from 127.0.0.2 and up (every 127/8 address is this machine's loopback), so the
 * per-address limits meet them and not the bystanders on 127.0.0.1; every attack loop ends by
 * itself.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import type { Config } from "../core/config.ts";
import { memoryLogger } from "../core/logger.ts";
import { connectUser, newClient, startSystem, type System, waitFor } from "./helpers.ts";
import { protobufTs } from "./protobuf_ts.ts";

const { BroadcastClient, Message } = await protobufTs();
import {
  encodeRequest,
  underAttack as attackedWhile,
  type WebBystanders,
  webBystanders,
} from "./attack_support.ts";

/** Short limits, so each attack is over in seconds. */
const LIMITS: Partial<Config> = {
  headersTimeoutMs: 1000,
  bodyTimeoutMs: 1500,
  idleTimeoutMs: 2000,
  limitsReportIntervalMs: 1000,
  maxConnections: 5000,
  maxConnectionsPerAddress: 400,
  maxCallsPerAddress: 1000,
  maxStreamsPerConnection: 50,
};

/** Bob on native gRPC, carol on gRPC-Web over plain HTTP. */
async function bystanders(system: System): Promise<WebBystanders> {
  const carol = new BroadcastClient(
    new GrpcWebFetchTransport({
      baseUrl: `http://127.0.0.1:${system.gateways[0]!.httpPort}`,
      format: "binary",
    }),
  );
  return await webBystanders(system, connectUser(system.address(), "bob"), carol);
}

/**
 * Starts a gateway with `config`, bob and carol; runs `body`; then checks that the bystanders'
 * streams are still open and that nothing was logged as an error. Returns the WARN lines.
 */
async function withGateway(
  config: Partial<Config>,
  body: (system: System, b: WebBystanders) => Promise<void>,
): Promise<string[]> {
  const logger = memoryLogger("warn");
  const system = await startSystem({ logger, config: { ...LIMITS, ...config } });
  let b: WebBystanders | undefined;
  try {
    b = await bystanders(system);
    await body(system, b);
    assert.equal(b.bob.ended, undefined, "bob's stream is still open");
    await b.exchange("at the end");
    // Every call was matched to its connection (the guard's hooks into node:http and grpc-js).
    const stats = system.gateways[0]!.connectionStats();
    assert.equal(stats.http!.unmatchedCalls, 0, "HTTP calls without their connection");
    assert.equal(stats.grpc!.unmatchedCalls, 0, "gRPC calls without their connection");
  } finally {
    await system.stop();
    await b?.close();
  }
  const errors = logger.lines.filter((l) => / ERROR /.test(l));
  assert.deepEqual(errors, [], "nothing logged as an error");
  return logger.lines;
}

/** The bystanders' exchange starts once the attack's connections are on their way. */
const underAttack = <T>(b: WebBystanders, name: string, attack: () => Promise<T>) =>
  attackedWhile(b, name, attack, 300);

/** The counts of the summary lines about `port`, added up by reason. */
function summed(lines: string[], port: "HTTP" | "gRPC"): Record<string, number> {
  const out: Record<string, number> = {};
  const pattern = new RegExp(
    `WARN  Closed (\\d+) ${port} connections that broke the limits in the last \\d+ s: (.*)$`,
  );
  for (const line of lines) {
    const m = pattern.exec(line);
    if (!m) continue;
    let total = 0;
    // The reasons, without the logger's fields (" server=...") and the refused calls ("; ...").
    const reasons = m[2]!.replace(/ \w+=\S+/g, "").split("; ")[0]!;
    for (const part of reasons.split(", ")) {
      const [, n, reason] = /^(\d+) (.+)$/.exec(part)!;
      out[reason!] = (out[reason!] ?? 0) + Number(n);
      total += Number(n);
    }
    assert.equal(total, Number(m[1]), line);
  }
  return out;
}

// ---- Attack clients: raw sockets from other loopback addresses ----

interface Attacker {
  socket: net.Socket;
  /** When it connected, and when the server closed it (Date.now()). */
  opened: number;
  closed: Promise<number>;
  /** What the server sent before it closed it. */
  received: () => string;
}

/**
 * Opens `count` TCP connections to `port`, spread over 127.0.0.`first`, the next address, ...
 * (`perAddress` each).
 */
async function connectMany(
  port: number,
  count: number,
  perAddress: number,
  first = 2,
): Promise<Attacker[]> {
  const out: Attacker[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) => {
      const localAddress = `127.0.0.${first + Math.floor((i + j) / perAddress)}`;
      return new Promise<Attacker>((resolve, reject) => {
        const socket = net.connect({ host: "127.0.0.1", port, localAddress });
        let data = "";
        const closed = new Promise<number>((r) => socket.once("close", () => r(Date.now())));
        socket.on("data", (chunk: Buffer) => data += chunk.toString("latin1"));
        socket.on("error", () => {});
        socket.once(
          "connect",
          () => resolve({ socket, opened: Date.now(), closed, received: () => data }),
        );
        socket.once("error", reject);
      });
    });
    out.push(...await Promise.all(batch));
  }
  return out;
}

/** Writes `chunk` every `everyMs` until the socket closes or `maxMs` passed (a bounded loop). */
async function trickle(socket: net.Socket, chunk: string, everyMs: number, maxMs = 10_000) {
  const end = Date.now() + maxMs;
  while (!socket.destroyed && Date.now() < end) {
    socket.write(chunk);
    await sleep(everyMs);
  }
}

/** Asserts every attacker was closed between `min` and `max` ms after `from(attacker)`. */
async function assertClosedWithin(
  attackers: Attacker[],
  from: (a: Attacker) => number,
  min: number,
  max: number,
  what: string,
) {
  const times = await Promise.all(attackers.map(async (a) => (await a.closed) - from(a)));
  const early = times.filter((t) => t < min).length;
  const late = times.filter((t) => t > max).length;
  assert.equal(early, 0, `${what}: ${early} closed before ${min} ms`);
  assert.equal(late, 0, `${what}: ${late} closed after ${max} ms (slowest ${Math.max(...times)})`);
  // deno-lint-ignore no-console
  console.log(
    `  ${what}: ${attackers.length} closed after ${Math.min(...times)}-${Math.max(...times)} ms`,
  );
}

const SLOW_POST = "POST /chat.Broadcast/BroadcastMessage HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
  "Content-Type: application/grpc-web+proto\r\n";

// ---- The HTTP port ----

Deno.test("HTTP port: 1,000 slow-body connections are closed at BODY_TIMEOUT_MS, quietly; others keep chatting", async () => {
  const lines = await withGateway({}, async (system, b) => {
    const port = system.gateways[0]!.httpPort;
    await underAttack(b, "slow bodies", async () => {
      // The attack: headers promising 100 kB, then one byte every 400 ms.
      const attackers = await connectMany(port, 1000, 250);
      const sentHeaders = new Map<Attacker, number>();
      for (const a of attackers) {
        a.socket.write(`${SLOW_POST}Content-Length: 100000\r\n\r\n`);
        sentHeaders.set(a, Date.now());
        trickle(a.socket, "x", 400);
      }
      // Expected: each is closed once its body took BODY_TIMEOUT_MS (1.5 s), with no answer.
      await assertClosedWithin(attackers, (a) => sentHeaders.get(a)!, 1400, 4000, "slow bodies");
      assert.equal(attackers.filter((a) => a.received() !== "").length, 0, "nothing answered");
    });
    await sleep(1200);
    assert.equal(system.gateways[0]!.connectionStats().http!.closed["slow body"], 1000);
  });
  assert.equal(summed(lines, "HTTP")["slow body"], 1000, lines.join("\n"));
});

Deno.test("HTTP port: 1,000 header-trickle and 500 silent connections are closed at HEADERS_TIMEOUT_MS; others keep chatting", async () => {
  const lines = await withGateway({}, async (system, b) => {
    const port = system.gateways[0]!.httpPort;
    await underAttack(b, "slow headers", async () => {
      // The attacks: a request line, then one header line every 300 ms; and nothing at all.
      const trickling = await connectMany(port, 1000, 250);
      for (const a of trickling) {
        a.socket.write(SLOW_POST);
        trickle(a.socket, "X-Padding: 1\r\n", 300);
      }
      const silent = await connectMany(port, 500, 250, 10);
      // Expected: each is closed HEADERS_TIMEOUT_MS (1 s) after it connected, with no answer.
      await assertClosedWithin(trickling, (a) => a.opened, 900, 3500, "header trickle");
      await assertClosedWithin(silent, (a) => a.opened, 900, 3500, "silent");
      const answered = [...trickling, ...silent].filter((a) => a.received() !== "").length;
      assert.equal(answered, 0, "nothing answered");
    });
    await sleep(1200);
  });
  const closed = summed(lines, "HTTP");
  assert.equal(closed["slow headers"], 1000, lines.join("\n"));
  assert.equal(closed["idle"], 500, lines.join("\n"));
});

Deno.test("HTTP port: a keep-alive connection is reused, and closed after IDLE_TIMEOUT_MS without a request", async () => {
  await withGateway({}, async (system) => {
    const [a] = await connectMany(system.gateways[0]!.httpPort, 1, 1);
    const request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    a!.socket.write(request);
    await waitFor(() => a!.received().includes('{"status":"ok"}'), 2000, "the first answer");
    // The same connection serves a second request (keep-alive works on injected connections).
    a!.socket.write(request);
    await waitFor(
      () => a!.received().split('{"status":"ok"}').length === 3,
      2000,
      "the second answer on the same connection",
    );
    assert.match(a!.received(), /Keep-Alive: timeout=2/i);
    const answered = Date.now();
    const closed = await a!.closed;
    const after = closed - answered;
    assert.ok(after >= 1800 && after <= 3500, `closed ${after} ms after the last answer`);
    assert.equal(system.gateways[0]!.connectionStats().http!.closed.idle, 1);
  });
});

Deno.test("HTTP port: connection floods stay within MAX_CONNECTIONS and MAX_CONNECTIONS_PER_ADDRESS; a bystander's new connection still gets in", async () => {
  const lines = await withGateway({
    maxConnections: 100,
    maxConnectionsPerAddress: 40,
    // Long enough that the flood's connections are still open when the caps meet them.
    headersTimeoutMs: 5000,
  }, async (system, b) => {
    const gateway = system.gateways[0]!;
    let most = 0;
    const watching = setInterval(() => {
      most = Math.max(most, gateway.connectionStats().http!.open);
    }, 5);
    try {
      await underAttack(b, "connection flood", async () => {
        // The attack: 5 addresses open 60 silent connections each (300 in all).
        const flood = await connectMany(gateway.httpPort, 300, 60);
        // Expected: never more than 100 open; each address holds at most 40; the oldest silent
        // ones made room for newer ones, the bystanders' (serving a call) were never touched.
        await waitFor(
          () => flood.filter((a) => !a.socket.destroyed).length <= 100,
          3000,
          "the flood cut to the cap",
        );
        for (let i = 0; i < 5; i++) {
          const mine = flood.slice(i * 60, i * 60 + 60).filter((a) => !a.socket.destroyed);
          assert.ok(mine.length <= 40, `127.0.0.${2 + i} holds ${mine.length}`);
        }
        // A bystander's brand-new connection (a fresh HTTP client) while the port is full: it
        // takes the place of a silent one.
        const fresh = Deno.createHttpClient({});
        try {
          const web = new BroadcastClient(
            new GrpcWebFetchTransport({
              baseUrl: `http://127.0.0.1:${gateway.httpPort}`,
              format: "binary",
              fetch: (input, init) => fetch(input, { ...init, client: fresh }),
            }),
          );
          const sent = await web.broadcastMessage(
            Message.create({ id: "carol", content: "carol: on a new connection" }),
          );
          assert.equal(sent.status.code, "OK");
          await waitFor(
            () => b.bob.contents().includes("carol: on a new connection"),
            5000,
            "carol's message from a new connection",
          );
        } finally {
          fresh.close();
        }
        for (const a of flood) a.socket.destroy();
      });
    } finally {
      clearInterval(watching);
    }
    assert.ok(most <= 100, `at most ${most} connections open at once`);
    const closed = gateway.connectionStats().http!.closed;
    assert.ok((closed["replaced at the per-address cap"] ?? 0) >= 100, JSON.stringify(closed));
    assert.ok((closed["replaced at the connection cap"] ?? 0) >= 100, JSON.stringify(closed));
  });
  const closed = summed(lines, "HTTP");
  assert.ok((closed["replaced at the per-address cap"] ?? 0) >= 100, lines.join("\n"));
});

/** A gRPC-Web call over HTTP/1.1 from `localAddress`; resolves with its response headers once they arrive. */
/**
 * A raw gRPC-Web call on a connection of its own. `status` is the gRPC status of a call that
 * ended (trailers-only, or a body that is one trailers frame), undefined while it goes on.
 */
function webCall(
  port: number,
  method: string,
  body: Uint8Array,
  localAddress: string,
): Promise<{
  status: number;
  headers: http.IncomingHttpHeaders;
  request: http.ClientRequest;
  grpcStatus(): Promise<{ code?: string; message?: string }>;
}> {
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: `/chat.Broadcast/${method}`,
      localAddress,
      agent: false,
      headers: { "content-type": "application/grpc-web+proto", "content-length": body.length },
    }, (res) => {
      const chunks: Buffer[] = [];
      const ended = new Promise<void>((done) => res.on("end", done));
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", () => {});
      const grpcStatus = async () => {
        if (res.headers["grpc-status"] !== undefined) {
          return {
            code: String(res.headers["grpc-status"]),
            message: decodeURIComponent(String(res.headers["grpc-message"] ?? "")),
          };
        }
        const over = await Promise.race([ended.then(() => true), sleep(500).then(() => false)]);
        if (!over) return {};
        const text = Buffer.concat(chunks).subarray(5).toString();
        const field = (name: string) => text.match(new RegExp(`^${name}:\\s*(.*?)\\r?$`, "m"))?.[1];
        return {
          code: field("grpc-status"),
          message: decodeURIComponent(field("grpc-message") ?? ""),
        };
      };
      resolve({ status: res.statusCode!, headers: res.headers, request, grpcStatus });
    });
    request.on("error", reject);
    request.end(Buffer.from(body));
  });
}

function grpcWebFrame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** Opens a gRPC-Web stream for `user` from `localAddress`, each on its own HTTP/1.1 connection. */
function webStream(port: number, user: string, localAddress: string) {
  const connect = encodeRequest("CreateStream", {
    user: { id: user, displayName: "" },
  });
  return webCall(port, "CreateStream", grpcWebFrame(connect), localAddress);
}

Deno.test("HTTP port: calls over MAX_CALLS_PER_ADDRESS get RESOURCE_EXHAUSTED; others keep chatting", async () => {
  await withGateway({ maxCallsPerAddress: 20 }, async (system, b) => {
    const port = system.gateways[0]!.httpPort;
    const opened: { request: http.ClientRequest }[] = [];
    try {
      const answers = await underAttack(b, "stream flood", async () => {
        // The attack: 50 streams at once from 127.0.0.2, each under its own user id (AUTH=off),
        // each on its own HTTP/1.1 connection.
        const calls = await Promise.all(
          Array.from({ length: 50 }, (_, i) => webStream(port, `mallory-${i}`, "127.0.0.2")),
        );
        opened.push(...calls);
        return calls;
      });
      // Expected: 20 open, 30 refused with RESOURCE_EXHAUSTED and the reason.
      const statuses = await Promise.all(answers.map((a) => a.grpcStatus()));
      const refused = statuses.filter((s) => s.code === "8");
      assert.equal(refused.length, 30);
      for (const r of refused) {
        assert.equal(
          r.message,
          "Cannot start the call: 127.0.0.2 has 20 calls open on this server, the limit is 20",
        );
      }
      assert.equal(
        system.gateways[0]!.hub.streams().filter((s) => s.userId.startsWith("mallory-")).length,
        20,
      );
      assert.equal(system.gateways[0]!.connectionStats().http!.refusedCalls, 30);
    } finally {
      for (const o of opened) o.request.destroy();
    }
    await waitFor(
      () => system.gateways[0]!.hub.streams().every((s) => !s.userId.startsWith("mallory-")),
      5000,
      "mallory's streams closed",
    );
  });
});

Deno.test("HTTP port: past MAX_CONNECTIONS_PER_ADDRESS, with every connection serving a call, a new connection is refused at once; others keep chatting", async () => {
  await withGateway({ maxConnectionsPerAddress: 10 }, async (system, b) => {
    const port = system.gateways[0]!.httpPort;
    const opened: { request: http.ClientRequest }[] = [];
    try {
      await underAttack(b, "connections past the cap", async () => {
        // The attack: 10 streams from 127.0.0.3 (its cap), then one more connection.
        opened.push(
          ...await Promise.all(
            Array.from({ length: 10 }, (_, i) => webStream(port, `mallory-${i}`, "127.0.0.3")),
          ),
        );
        const [extra] = await connectMany(port, 1, 1, 3);
        // Expected: nothing to make room with (all 10 serve a call), so it is refused at once.
        const at = await extra!.closed;
        assert.ok(at - extra!.opened < 500, `refused after ${at - extra!.opened} ms`);
      });
      const closed = system.gateways[0]!.connectionStats().http!.closed;
      assert.equal(closed["refused at the per-address cap"], 1, JSON.stringify(closed));
      assert.equal(
        system.gateways[0]!.hub.streams().filter((s) => s.userId.startsWith("mallory-")).length,
        10,
        "the streams are untouched",
      );
    } finally {
      for (const o of opened) o.request.destroy();
    }
  });
});

// ---- The gRPC port ----

/** The HTTP/2 connection preface and an empty SETTINGS frame. */
const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

Deno.test("gRPC port: silent, slow-preface and slow-body connections are closed at their deadlines, quietly; others keep chatting", async () => {
  const lines = await withGateway({}, async (system, b) => {
    const port = system.gateways[0]!.grpcPort;
    await underAttack(b, "slow gRPC clients", async () => {
      // The attacks: 500 connections that send nothing; 300 that send the HTTP/2 preface one
      // byte every 200 ms; 200 HTTP/2 clients that open a BroadcastMessage call promising a
      // 1000-byte message and send one byte of it every 300 ms.
      const silent = await connectMany(port, 500, 250);
      const slowPreface = await connectMany(port, 300, 150);
      for (const a of slowPreface) {
        (async () => {
          for (const ch of H2_PREFACE) {
            if (a.socket.destroyed) return;
            a.socket.write(ch);
            await sleep(200);
          }
        })();
      }
      const slowBody = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const session = http2.connect(`http://127.0.0.1:${port}`, {
          createConnection: () =>
            net.connect({ host: "127.0.0.1", port, localAddress: `127.0.0.${10 + (i % 2)}` }),
        });
        session.on("error", () => {});
        const closed = new Promise<number>((r) => session.once("close", () => r(Date.now())));
        const stream = session.request({
          ":method": "POST",
          ":path": "/chat.Broadcast/BroadcastMessage",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("error", () => {});
        stream.on("data", () => {});
        await new Promise((r) => stream.once("ready", r));
        const started = Date.now();
        stream.write(Buffer.from([0, 0, 0, 0x03, 0xe8]));
        (async () => {
          const end = Date.now() + 10_000;
          while (!stream.destroyed && !session.destroyed && Date.now() < end) {
            stream.write(Buffer.from([0x78]));
            await sleep(300);
          }
        })();
        return { started, closed, session };
      }));
      // Expected: silent and slow-preface ones closed HEADERS_TIMEOUT_MS (1 s) after they
      // connected; slow bodies BODY_TIMEOUT_MS (1.5 s) after their call started.
      await assertClosedWithin(silent, (a) => a.opened, 900, 3500, "silent");
      await assertClosedWithin(slowPreface, (a) => a.opened, 900, 3500, "slow preface");
      const times = await Promise.all(slowBody.map(async (s) => (await s.closed) - s.started));
      assert.ok(
        times.every((t) => t >= 1400 && t <= 4000),
        `slow bodies closed after ${Math.min(...times)}-${Math.max(...times)} ms`,
      );
      for (const s of slowBody) s.session.destroy();
    });
    await sleep(1200);
    const stats = system.gateways[0]!.connectionStats().grpc!;
    assert.equal(stats.unmatchedCalls, 0, "every call was matched to its connection");
  });
  const closed = summed(lines, "gRPC");
  assert.equal(closed["idle"], 500, lines.join("\n"));
  assert.equal(closed["slow headers"], 300, lines.join("\n"));
  assert.equal(closed["slow body"], 200, lines.join("\n"));
});

Deno.test("gRPC port: 2,000 calls on one HTTP/2 connection run at most MAX_STREAMS_PER_CONNECTION at once; others keep chatting", async () => {
  await withGateway({ maxStreamsPerConnection: 50 }, async (system, b) => {
    const gateway = system.gateways[0]!;
    // The attack: one connection of its own (not shared with the bystanders), 2,000 streams
    // under 2,000 user ids (AUTH=off), all at once.
    const mallory = newClient(system.address(), grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    const streams = await underAttack(b, "2,000 streams on one connection", async () => {
      const streams = Array.from(
        { length: 2000 },
        (_, i) => mallory.stream(`mallory-${i}`, () => {}, () => {}),
      );
      const malloryStreams = () =>
        gateway.hub.streams().filter((s) => s.userId.startsWith("mallory-")).length;
      await waitFor(() => malloryStreams() === 50, 10_000, "50 of mallory's streams open");
      await sleep(500);
      // Expected: the connection's SETTINGS_MAX_CONCURRENT_STREAMS (50) holds the rest back.
      assert.equal(malloryStreams(), 50);
      return streams;
    });
    for (const s of streams) s.cancel();
    mallory.close();
    await waitFor(
      () => gateway.hub.streams().every((s) => !s.userId.startsWith("mallory-")),
      10_000,
      "mallory's streams closed",
    );
  });
});

Deno.test("gRPC port: a client that ignores SETTINGS and opens 200 streams at once is refused past MAX_STREAMS_PER_CONNECTION; others keep chatting", async () => {
  await withGateway({ maxStreamsPerConnection: 50 }, async (system, b) => {
    const gateway = system.gateways[0]!;
    const [a] = await connectMany(gateway.grpcPort, 1, 1);
    const frames: { type: number; stream: number; code?: number }[] = [];
    let buffered = Buffer.alloc(0);
    a!.socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const type = buffered[3]!;
        const stream = buffered.readUInt32BE(5) & 0x7fffffff;
        frames.push({
          type,
          stream,
          ...(type === 3 ? { code: buffered.readUInt32BE(9) } : {}),
          ...(type === 7 ? { code: buffered.readUInt32BE(13) } : {}),
        });
        buffered = buffered.subarray(9 + length);
      }
    });
    let most = 0;
    await underAttack(b, "200 streams ignoring SETTINGS", async () => {
      // The attack: the preface, then 200 HEADERS frames (CreateStream calls, no body yet)
      // without waiting for the server's SETTINGS.
      a!.socket.write(H2_PREFACE);
      a!.socket.write(EMPTY_SETTINGS);
      for (let i = 0; i < 200; i++) {
        a!.socket.write(headersFrame(1 + 2 * i, "/chat.Broadcast/CreateStream"));
      }
      const watching = setInterval(() => {
        most = Math.max(most, gateway.connectionStats().grpc!.calls);
      }, 5);
      try {
        await a!.closed;
      } finally {
        clearInterval(watching);
      }
    });
    // Expected: never more than 50 of its calls open at once (plus bob's stream and a send);
    // the rest are refused (RST_STREAM REFUSED_STREAM) or the connection is ended (GOAWAY); and
    // the calls that got in, which never send their body, close the connection at
    // BODY_TIMEOUT_MS.
    assert.ok(most <= 50 + 2, `at most ${most} calls open at once`);
    const refused = frames.filter((f) => f.type === 3 && f.code === 7).length;
    const goaway = frames.find((f) => f.type === 7);
    // deno-lint-ignore no-console
    console.log(
      `  ${refused} streams refused${goaway ? `, GOAWAY with code ${goaway.code}` : ""}, ` +
        `at most ${most} calls open at once`,
    );
    assert.ok(refused >= 150 || goaway !== undefined, JSON.stringify(frames.slice(0, 10)));
  });
});

/** A HEADERS frame (END_HEADERS, no END_STREAM) opening a gRPC call on `stream`, HPACK literals only. */
function headersFrame(stream: number, path: string): Buffer {
  const literal = (name: string, value: string) => [
    0x00,
    name.length,
    ...Buffer.from(name),
    value.length,
    ...Buffer.from(value),
  ];
  const block = Buffer.from([
    0x83, // :method POST
    0x86, // :scheme http
    ...literal(":path", path),
    ...literal(":authority", "127.0.0.1"),
    ...literal("content-type", "application/grpc"),
    ...literal("te", "trailers"),
  ]);
  const header = Buffer.alloc(9);
  header.writeUIntBE(block.length, 0, 3);
  header[3] = 0x01; // HEADERS
  header[4] = 0x04; // END_HEADERS
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, block]);
}

Deno.test("gRPC port: a connection with no call gets a GOAWAY after IDLE_TIMEOUT_MS, and its client simply reconnects", async () => {
  await withGateway({}, async (system) => {
    const gateway = system.gateways[0]!;
    const client = newClient(system.address(), grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    assert.deepEqual((await client.listOnline()).map((u) => u.id).sort(), ["bob", "carol"]);
    await waitFor(
      () => (gateway.connectionStats().grpc!.closed.idle ?? 0) >= 1,
      5000,
      "the idle connection closed",
    );
    assert.deepEqual((await client.listOnline()).map((u) => u.id).sort(), ["bob", "carol"]);
    client.close();
  });
});
