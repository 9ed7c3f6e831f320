/**
 * Encryption end to end: a gateway with TLS_CERT_FILE / TLS_KEY_FILE serves gRPC over TLS and
 * the web port over HTTPS. The tests make a self-signed certificate for 127.0.0.1 and
 * localhost with the `openssl` command, and connect through it: native gRPC clients, fetch,
 * the gRPC-Web transport of the web page, and the terminal client process with `--ca`.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { ChatClient, tlsCredentials } from "../client/chat_client.ts";
import {
  connectUser,
  newClient,
  startSystem,
  type System,
  type TestUser,
  waitFor,
} from "./helpers.ts";
import { spawn, stopAll } from "./processes.ts";
import { type Pem, selfSigned } from "./certs.ts";
import { protobufTs } from "./protobuf_ts.ts";

const { BroadcastClient, Message } = await protobufTs();

/** A temporary directory with a server certificate, removed after `body`. */
async function withCertificate(body: (server: Pem, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "chat-tls-" });
  try {
    await body(await selfSigned(dir, "server", "localhost"), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function startTlsSystem(server: Pem, clientCaFile?: string): Promise<System> {
  return startSystem({
    config: {
      tlsCertFile: server.certFile,
      tlsKeyFile: server.keyFile,
      ...(clientCaFile ? { tlsClientCaFile: clientCaFile } : {}),
    },
  });
}

/** The gRPC status code a call ended with (undefined when it succeeded). */
async function codeOf(call: Promise<unknown>): Promise<number | undefined> {
  try {
    await call;
    return undefined;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
}

Deno.test("gRPC over TLS: clients trusting the certificate chat; others cannot connect", async () => {
  await withCertificate(async (server, dir) => {
    const system = await startTlsSystem(server);
    const port = system.gateways[0]!.grpcPort;
    const users: TestUser[] = [];
    const others: ChatClient[] = [];
    try {
      // The standard credentials, by host name; and ours, by IP address.
      const alice = connectUser(`localhost:${port}`, "alice", {
        client: newClient(
          `localhost:${port}`,
          grpc.credentials.createSsl(Buffer.from(server.cert)),
        ),
      });
      users.push(alice);
      const bob = connectUser(`127.0.0.1:${port}`, "bob", {
        client: newClient(`127.0.0.1:${port}`, tlsCredentials(server.cert)),
      });
      users.push(bob);
      await waitFor(
        async () => (await alice.client.listOnline()).length === 2,
        10_000,
        "alice and bob online",
      );
      await alice.client.send("alice", "secret hello");
      await bob.client.send("bob", "secret reply");
      for (const user of [alice, bob]) {
        await waitFor(
          () => user.contents().join("|") === "secret hello|secret reply",
          10_000,
          "both messages at both users",
        );
      }

      // A plaintext client, and one that trusts another certificate, get no connection.
      const plain = newClient(`127.0.0.1:${port}`);
      others.push(plain);
      assert.equal(await codeOf(plain.listOnline()), grpc.status.UNAVAILABLE);
      const stranger = await selfSigned(dir, "stranger", "localhost");
      const wrong = newClient(`127.0.0.1:${port}`, tlsCredentials(stranger.cert));
      others.push(wrong);
      assert.equal(await codeOf(wrong.listOnline()), grpc.status.UNAVAILABLE);
      // Nor do the system's roots trust a self-signed certificate.
      const roots = newClient(`127.0.0.1:${port}`, tlsCredentials());
      others.push(roots);
      assert.equal(await codeOf(roots.listOnline()), grpc.status.UNAVAILABLE);
    } finally {
      for (const u of users) u.close();
      for (const c of others) c.close();
      await system.stop();
    }
  });
});

Deno.test("HTTPS: /healthz and a gRPC-Web call through the certificate", async () => {
  await withCertificate(async (server) => {
    const system = await startTlsSystem(server);
    const port = system.gateways[0]!.httpPort;
    const client = Deno.createHttpClient({ caCerts: [server.cert] });
    const native = connectUser(system.address(), "nate", {
      client: newClient(system.address(), tlsCredentials(server.cert)),
    });
    try {
      const health = await fetch(`https://127.0.0.1:${port}/healthz`, { client });
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: "ok" });
      const byName = await fetch(`https://localhost:${port}/healthz`, { client });
      assert.equal(byName.status, 200);
      await byName.body?.cancel();

      // Plain HTTP is not served on the HTTPS port, and an untrusting client refuses it.
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
      await assert.rejects(fetch(`https://127.0.0.1:${port}/healthz`));

      // The web page's transport, over HTTPS.
      const web = new BroadcastClient(
        new GrpcWebFetchTransport({
          baseUrl: `https://127.0.0.1:${port}`,
          format: "binary",
          fetch: (input, init) => fetch(input, { ...init, client }),
        }),
      );
      await waitFor(
        async () => (await native.client.listOnline()).some((u) => u.id === "nate"),
        10_000,
        "nate online",
      );
      const sent = await web.broadcastMessage(
        Message.create({ id: "web-alice", content: "hello from https" }),
      );
      assert.equal(sent.status.code, "OK");
      await waitFor(
        () => native.contents().includes("hello from https"),
        10_000,
        "the gRPC-Web message at the native client",
      );
      const online = await web.listOnline({ room: "" });
      assert.ok(online.response.users.some((u) => u.id === "nate"));
    } finally {
      native.close();
      client.close();
      await system.stop();
    }
  });
});

Deno.test("mutual TLS: with TLS_CLIENT_CA_FILE only clients with a signed certificate get in", async () => {
  await withCertificate(async (server, dir) => {
    const identity = await selfSigned(dir, "client", "alice");
    const system = await startTlsSystem(server, identity.certFile);
    const address = system.address();
    const clients: ChatClient[] = [];
    try {
      const anonymous = newClient(address, tlsCredentials(server.cert));
      clients.push(anonymous);
      assert.equal(await codeOf(anonymous.listOnline()), grpc.status.UNAVAILABLE);
      const signed = newClient(address, tlsCredentials(server.cert, identity));
      clients.push(signed);
      assert.deepEqual(await signed.listOnline(), []);
    } finally {
      for (const c of clients) c.close();
      await system.stop();
    }
  });
});

Deno.test("a gateway with only one of certificate and key, or an unreadable one, does not start", async () => {
  await withCertificate(async (server, dir) => {
    await assert.rejects(
      startSystem({ config: { tlsCertFile: server.certFile } }),
      /TLS_CERT_FILE is set but TLS_KEY_FILE is not/,
    );
    await assert.rejects(
      startSystem({ config: { tlsCertFile: `${dir}/missing.pem`, tlsKeyFile: server.keyFile } }),
      /TLS_CERT_FILE is ".*missing\.pem", which cannot be read/,
    );
    await assert.rejects(
      startSystem({ config: { tlsCertFile: server.keyFile, tlsKeyFile: server.keyFile } }),
      /TLS_CERT_FILE is ".*", which holds no PEM certificate/,
    );
  });
});

Deno.test("the terminal client process connects with --ca", async () => {
  await withCertificate(async (server) => {
    const system = await startTlsSystem(server);
    const alice = connectUser(system.address(), "alice", {
      client: newClient(system.address(), tlsCredentials(server.cert)),
    });
    const carol = spawn("client", "client/main.ts", {
      args: ["carol", "--server", system.address(), "--ca", server.certFile],
      env: { CHAT_SERVER: "", CHAT_TLS_CA: "", CHAT_PASSWORD: "carols-long-password" },
      stdin: true,
    });
    try {
      // Generous: starting a deno process is slow on a busy machine.
      await carol.waitForLine(/^Connected to server as user: carol$/, 60_000);
      await carol.write("hello over TLS\n");
      await waitFor(
        () => alice.contents().includes("hello over TLS"),
        15_000,
        "carol's message at alice",
      );
      await carol.closeStdin();
      assert.equal((await carol.exit()).code, 0, carol.output.join("\n"));
    } finally {
      await stopAll([carol]);
      alice.close();
      await system.stop();
    }
  });
});
