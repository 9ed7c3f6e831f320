/**
 * grpcurl against a gateway, from server reflection alone (no `-proto`), as its users call it:
 * listing and describing the service and its messages (chat.Message refers to
 * google.protobuf.Timestamp, which reflection must serve under its real name), unary calls with
 * JSON, a stream receiving a message, and the health check. grpcurl is installed by
 * scripts/system_deps.ts; without it these tests fail, they are not skipped.
 */

import assert from "node:assert/strict";
import { goProgram } from "../scripts/system_deps.ts";
import { startSystem, type System, waitFor } from "./helpers.ts";

function grpcurlPath(): string {
  const path = goProgram("grpcurl");
  if (!path) {
    throw new Error(
      "Cannot run the grpcurl tests: grpcurl is missing; install it with: deno run -A scripts/system_deps.ts",
    );
  }
  return path;
}

/**
 * Runs `grpcurl -plaintext [flags] [-d data] <gateway> args...`; returns its output, or throws its
 * error.
 */
async function grpcurl(
  system: System,
  args: string[],
  options: { data?: unknown; flags?: string[] } = {},
): Promise<string> {
  const data = options.data === undefined ? [] : ["-d", JSON.stringify(options.data)];
  const { code, stdout, stderr } = await new Deno.Command(grpcurlPath(), {
    args: ["-plaintext", ...options.flags ?? [], ...data, system.address(), ...args],
    stdin: "null",
  }).output();
  const out = new TextDecoder().decode(stdout);
  if (code !== 0) {
    throw new Error(
      `grpcurl ${args.join(" ")} exited with ${code}: ${new TextDecoder().decode(stderr)}`,
    );
  }
  return out;
}

Deno.test("grpcurl lists and describes chat.Broadcast from reflection alone", async () => {
  const system = await startSystem();
  try {
    const services = (await grpcurl(system, ["list"])).trim().split("\n");
    assert.ok(services.includes("chat.Broadcast"), services.join());
    assert.ok(services.includes("grpc.health.v1.Health"), services.join());
    const methods = (await grpcurl(system, ["list", "chat.Broadcast"])).trim().split("\n");
    for (const name of ["CreateStream", "BroadcastMessage", "SignIn", "History"]) {
      assert.ok(methods.includes(`chat.Broadcast.${name}`), methods.join());
    }
    const message = await grpcurl(system, ["describe", "chat.Message"]);
    assert.match(message, /\.google\.protobuf\.Timestamp timestamp = 3;/);
    assert.match(message, /uint64 seq = 6;/);
    assert.match(message, /string display_name = 7;/, "field names as in the .proto");
    const service = await grpcurl(system, ["describe", "chat.Broadcast"]);
    assert.match(
      service,
      /rpc CreateStream \( \.chat\.Connect \) returns \( stream \.chat\.Message \);/,
    );
  } finally {
    await system.stop();
  }
});

Deno.test("grpcurl calls SignIn and BroadcastMessage with JSON, and a CreateStream receives the message", async () => {
  const system = await startSystem();
  let stream: Deno.ChildProcess | undefined;
  try {
    const signedIn = JSON.parse(
      await grpcurl(system, ["chat.Broadcast/SignIn"], {
        data: {
          username: "alice",
          password: "a long password",
        },
      }),
    );
    assert.equal(signedIn.user.id, "alice");
    assert.equal(typeof signedIn.token, "string");
    assert.ok(!Number.isNaN(Date.parse(signedIn.expiresAt)), signedIn.expiresAt);
    const bearer = ["-H", `authorization: Bearer ${signedIn.token}`];

    stream = new Deno.Command(grpcurlPath(), {
      args: [
        "-plaintext",
        ...bearer,
        "-d",
        JSON.stringify({ user: { id: "alice" } }),
        "-max-time",
        "30",
        system.address(),
        "chat.Broadcast/CreateStream",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await waitFor(() => system.gateways[0]!.hub.size === 1, 10_000, "grpcurl's stream");

    const sent = await grpcurl(system, ["chat.Broadcast/BroadcastMessage"], {
      flags: bearer,
      data: {
        content: "hello from grpcurl",
      },
    });
    assert.equal(sent.trim(), "{}");

    let out = "";
    const decoder = new TextDecoder();
    const reader = stream.stdout.getReader();
    const deadline = Date.now() + 10_000;
    while (!out.includes("hello from grpcurl") && Date.now() < deadline) {
      const { done, value } = await reader.read();
      if (done) break;
      out += decoder.decode(value, { stream: true });
    }
    reader.releaseLock();
    assert.match(out, /"content": "hello from grpcurl"/);
    assert.match(out, /"seq": "1"/, "uint64 in JSON is a string");

    const online = JSON.parse(
      await grpcurl(system, ["chat.Broadcast/ListOnline"], {
        flags: bearer,
        data: { room: "general" },
      }),
    );
    assert.deepEqual(online.users.map((u: { id: string }) => u.id), ["alice"]);
  } finally {
    if (stream) {
      stream.kill();
      await stream.status;
      await stream.stderr.cancel();
      await stream.stdout.cancel().catch(() => {});
    }
    await system.stop();
  }
});

Deno.test("grpcurl gets a bad request's status and message", async () => {
  const system = await startSystem();
  try {
    await assert.rejects(
      grpcurl(system, ["chat.Broadcast/History"], {
        data: {
          room: "general",
          beforeSeq: "18446744073709551615",
        },
      }),
      /Code: InvalidArgument\s+Message: Cannot read history: before_seq is 18446744073709551615, the largest sequence number is 9007199254740991/,
    );
  } finally {
    await system.stop();
  }
});

Deno.test("grpcurl checks health: chat.Broadcast is SERVING", async () => {
  const system = await startSystem();
  try {
    const health = JSON.parse(
      await grpcurl(system, ["grpc.health.v1.Health/Check"], {
        data: { service: "chat.Broadcast" },
      }),
    );
    assert.deepEqual(health, { status: "SERVING" });
  } finally {
    await system.stop();
  }
});
