/**
 * Transport security of the HTTPS port (the gRPC-Web bridge, the whole API), attacked over real
 * TLS connections: with TLS_CLIENT_CA_FILE it asks for a client certificate like the gRPC port,
 * so SignIn and BroadcastMessage without one get no connection (HTTP/1.1 and HTTP/2); its
 * responses carry Strict-Transport-Security; and one HTTP/2 connection carries at most
 * MAX_STREAMS_PER_CONNECTION calls at once. Meanwhile two bystanders keep chatting: bob on
 * native gRPC, carol on gRPC-Web over HTTPS.
 */

import assert from "node:assert/strict";
import tls from "node:tls";
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { ChatClient, tlsCredentials } from "../client/chat_client.ts";
import type { Config } from "../core/config.ts";
import { memoryLogger } from "../core/logger.ts";
import { type Pem, selfSigned, withTempDir } from "./certs.ts";
import { connectUser, newClient, startSystem, type System, waitFor } from "./helpers.ts";
import { protobufTs, type WebBroadcastClient } from "./protobuf_ts.ts";
import { type WebBystanders, webBystanders } from "./attack_support.ts";

const { BroadcastClient, Connect, Message } = await protobufTs();

const PASSWORD = "a long enough password";

/** A gRPC-Web client over HTTPS through `client` (an HTTP client with its certificates). */
function webClient(system: System, client: Deno.HttpClient, token?: string): WebBroadcastClient {
  return new BroadcastClient(
    new GrpcWebFetchTransport({
      baseUrl: `https://localhost:${system.gateways[0]!.httpPort}`,
      format: "binary",
      fetch: (input, init) => fetch(input, { ...init, client }),
      ...(token ? { meta: { authorization: `Bearer ${token}` } } : {}),
    }),
  );
}

/**
 * Bob on native gRPC, carol on gRPC-Web over HTTPS, both signed in when `auth` is on; closing
 * them closes carol's HTTPS client too.
 */
async function bystanders(
  system: System,
  server: Pem,
  identity: Pem | undefined,
  auth: boolean,
): Promise<WebBystanders> {
  const bobClient = newClient(system.address(), tlsCredentials(server.cert, identity));
  if (auth) await bobClient.signIn("bob", PASSWORD);
  const bob = connectUser(system.address(), "bob", { client: bobClient });
  const http = Deno.createHttpClient({
    caCerts: [server.cert],
    ...(identity ? { cert: identity.cert, key: identity.key } : {}),
  });
  let token: string | undefined;
  if (auth) {
    const signedIn = await webClient(system, http).signIn({
      username: "carol",
      password: PASSWORD,
      displayName: "",
    });
    token = signedIn.response.token;
  }
  const b = await webBystanders(system, bob, webClient(system, http, token));
  return {
    ...b,
    async close() {
      await b.close();
      http.close();
    },
  };
}

async function withTlsGateway(
  config: (server: Pem, dir: string) => Promise<Partial<Config>> | Partial<Config>,
  options: { identity?: boolean; auth?: boolean },
  body: (
    system: System,
    b: WebBystanders,
    pems: { server: Pem; client?: Pem; dir: string },
  ) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const server = await selfSigned(dir, "server", "localhost");
    const client = options.identity ? await selfSigned(dir, "client", "carol") : undefined;
    const logger = memoryLogger("error");
    const system = await startSystem({
      logger,
      config: {
        tlsCertFile: server.certFile,
        tlsKeyFile: server.keyFile,
        ...(client ? { tlsClientCaFile: client.certFile } : {}),
        ...(options.auth ? { auth: "on" as const } : {}),
        ...await config(server, dir),
      },
    });
    let b: WebBystanders | undefined;
    try {
      b = await bystanders(system, server, client, options.auth ?? false);
      await b.exchange("before");
      await body(system, b, { server, client, dir });
      await b.exchange("after");
      assert.equal(b.bob.ended, undefined, "bob's stream is still open");
      // Every call, over TLS and HTTP/2 too, was matched to its connection.
      const stats = system.gateways[0]!.connectionStats();
      assert.equal(stats.http!.unmatchedCalls, 0, "HTTPS calls without their connection");
      assert.equal(stats.grpc!.unmatchedCalls, 0, "gRPC calls without their connection");
    } finally {
      await system.stop();
      await b?.close();
    }
    assert.deepEqual(logger.lines, [], "nothing logged as an error");
  });
}

Deno.test("mutual TLS on the HTTPS port: SignIn and BroadcastMessage without a client certificate get no connection, over HTTP/1.1 and HTTP/2; with one they work; bystanders keep chatting", async () => {
  await withTlsGateway(() => ({}), { identity: true, auth: true }, async (system, b, pems) => {
    const stranger = await selfSigned(pems.dir, "stranger", "mallory");
    // The attack: gRPC-Web SignIn, then BroadcastMessage, over HTTPS with no client certificate,
    // and with a certificate the client CA did not sign; each over HTTP/1.1 and HTTP/2.
    for (const version of ["HTTP/1.1", "HTTP/2"] as const) {
      const protocol = version === "HTTP/2" ? { http1: false } : { http2: false };
      for (
        const [who, identity] of [["no certificate", undefined], [
          "a stranger's",
          stranger,
        ]] as const
      ) {
        const http = Deno.createHttpClient({
          caCerts: [pems.server.cert],
          ...protocol,
          ...(identity ? { cert: identity.cert, key: identity.key } : {}),
        });
        try {
          const web = webClient(system, http);
          // Expected: no TLS session, so no call: the client sees a failed connection.
          await assert.rejects(
            web.signIn({ username: "mallory", password: PASSWORD, displayName: "" }).response,
            (err: Error) => /fetch failed|error sending request|certificate/i.test(err.message),
            `${version}, ${who}: SignIn`,
          );
          await assert.rejects(
            web.broadcastMessage(Message.create({ id: "mallory", content: "spoofed" })).response,
            (err: Error) => /fetch failed|error sending request|certificate/i.test(err.message),
            `${version}, ${who}: BroadcastMessage`,
          );
        } finally {
          http.close();
        }
      }
      await b.exchange(`after the ${version} attack`);
      // A client with a signed certificate signs in and sends, over the same protocol.
      const http = Deno.createHttpClient({
        caCerts: [pems.server.cert],
        ...protocol,
        cert: pems.client!.cert,
        key: pems.client!.key,
      });
      try {
        const signedIn = await webClient(system, http).signIn({
          username: "dave",
          password: PASSWORD,
          displayName: "",
        });
        const sent = await webClient(system, http, signedIn.response.token).broadcastMessage(
          Message.create({ content: `dave over ${version}` }),
        );
        assert.equal(sent.status.code, "OK");
        await waitFor(() => b.bob.contents().includes(`dave over ${version}`));
      } finally {
        http.close();
      }
    }
    assert.ok(!b.bob.contents().includes("spoofed"));

    // The TLS handshake itself ends without a certificate: the server asks for one.
    const refused = await new Promise<string>((resolve) => {
      const socket = tls.connect({
        host: "127.0.0.1",
        port: system.gateways[0]!.httpPort,
        ca: pems.server.cert,
        servername: "localhost",
      });
      socket.on("error", (err) => resolve(err.message));
      socket.on("secureConnect", () => {
        socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
      });
      socket.on("data", () => resolve("answered"));
      socket.on("close", () => resolve("closed"));
    });
    assert.notEqual(refused, "answered");
  });
});

Deno.test("HSTS: every HTTPS response carries Strict-Transport-Security (HSTS_MAX_AGE_SECONDS, 0: none); plain HTTP never does", async () => {
  await withTlsGateway(() => ({}), {}, async (system, _b, pems) => {
    const port = system.gateways[0]!.httpPort;
    for (const protocol of [{ http2: false }, { http1: false }]) {
      const http = Deno.createHttpClient({ caCerts: [pems.server.cert], ...protocol });
      try {
        for (
          const [path, init] of [
            ["/healthz", {}],
            ["/nothing-here", {}],
            ["/chat.Broadcast/ListOnline", {
              method: "POST",
              headers: { "content-type": "application/grpc-web+proto" },
              body: new Uint8Array(5),
            }],
          ] as const
        ) {
          const res = await fetch(`https://localhost:${port}${path}`, { ...init, client: http });
          await res.body?.cancel();
          assert.equal(
            res.headers.get("strict-transport-security"),
            "max-age=31536000",
            `${path} over ${JSON.stringify(protocol)}`,
          );
        }
      } finally {
        http.close();
      }
    }
  });
  await withTlsGateway(() => ({ hstsMaxAgeSeconds: 0 }), {}, async (system, _b, pems) => {
    const http = Deno.createHttpClient({ caCerts: [pems.server.cert] });
    try {
      const res = await fetch(`https://localhost:${system.gateways[0]!.httpPort}/healthz`, {
        client: http,
      });
      await res.body?.cancel();
      assert.equal(res.headers.get("strict-transport-security"), null);
    } finally {
      http.close();
    }
  });
  const plain = await startSystem();
  try {
    const res = await fetch(`http://127.0.0.1:${plain.gateways[0]!.httpPort}/healthz`);
    await res.body?.cancel();
    assert.equal(res.headers.get("strict-transport-security"), null);
  } finally {
    await plain.stop();
  }
});

Deno.test("HTTPS over HTTP/2: 2,000 gRPC-Web streams on one connection run at most MAX_STREAMS_PER_CONNECTION at once; bystanders keep chatting", async () => {
  await withTlsGateway(() => ({ maxStreamsPerConnection: 50 }), {}, async (system, b, pems) => {
    const gateway = system.gateways[0]!;
    // The attack: one HTTP/2 connection (an HTTP client of its own), 2,000 CreateStream calls
    // under 2,000 user ids (AUTH=off), all at once.
    const http = Deno.createHttpClient({ caCerts: [pems.server.cert], http1: false });
    const web = webClient(system, http);
    const calls = Array.from({ length: 2000 }, (_, i) => {
      const call = web.createStream(Connect.create({ user: { id: `mallory-${i}` } }));
      call.status.catch(() => {});
      call.headers.catch(() => {});
      return call;
    });
    const mallory = () => gateway.hub.streams().filter((s) => s.userId.startsWith("mallory-"));
    await waitFor(() => mallory().length === 50, 15_000, "50 of mallory's streams open");
    await b.exchange("during the stream flood");
    // Expected: the connection's SETTINGS_MAX_CONCURRENT_STREAMS (50) holds the rest back.
    assert.equal(mallory().length, 50);
    assert.equal(calls.length, 2000);
    http.close();
  });
});

Deno.test("a native client without a certificate still cannot reach the gRPC port under mutual TLS", async () => {
  await withTlsGateway(() => ({}), { identity: true }, async (system, _b, pems) => {
    const anonymous = new ChatClient(system.address(), tlsCredentials(pems.server.cert));
    try {
      await assert.rejects(anonymous.listOnline());
    } finally {
      anonymous.close();
    }
  });
});
