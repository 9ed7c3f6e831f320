/** Server reflection and the standard health service, as grpcurl and Postman use them. */

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath as healthProto } from "grpc-health-check";
import { startSystem } from "./helpers.ts";

const require = createRequire(import.meta.url);
const reflectionProto = join(
  dirname(require.resolve("@grpc/reflection")),
  "../proto/grpc/reflection/v1/reflection.proto",
);

function load(path: string) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(path, { keepCase: true, enums: String }));
}

type Ctor = new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client;

Deno.test("reflection lists chat.Broadcast and describes its file, so grpcurl can call it", async () => {
  const system = await startSystem();
  const pkg = load(reflectionProto) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: Ctor } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(
    system.address(),
    grpc.credentials.createInsecure(),
  );
  try {
    const ask = (request: object) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        // deno-lint-ignore no-explicit-any
        const call = (client as any).ServerReflectionInfo();
        call.on("data", (response: Record<string, unknown>) => {
          resolve(response);
          call.end();
        });
        call.on("error", reject);
        call.write(request);
      });
    const listed = await ask({ list_services: "" }) as {
      list_services_response: { service: { name: string }[] };
    };
    const names = listed.list_services_response.service.map((s) => s.name);
    assert.ok(names.includes("chat.Broadcast"), names.join());
    assert.ok(names.includes("grpc.health.v1.Health"), names.join());
    const described = await ask({ file_containing_symbol: "chat.Broadcast" }) as {
      file_descriptor_response: { file_descriptor_proto: Uint8Array[] };
    };
    const text = new TextDecoder().decode(
      described.file_descriptor_response.file_descriptor_proto[0],
    );
    for (const method of ["CreateStream", "BroadcastMessage", "SignIn", "History"]) {
      assert.ok(text.includes(method), `${method} is described`);
    }
  } finally {
    client.close();
    await system.stop();
  }
});

Deno.test("grpc.health.v1.Health answers SERVING for the chat service", async () => {
  const system = await startSystem();
  const pkg = load(healthProto) as unknown as { grpc: { health: { v1: { Health: Ctor } } } };
  const client = new pkg.grpc.health.v1.Health(system.address(), grpc.credentials.createInsecure());
  try {
    const check = (service: string) =>
      new Promise<{ status: string }>((resolve, reject) =>
        // deno-lint-ignore no-explicit-any
        (client as any).Check(
          { service },
          (err: Error | null, res: { status: string }) => err ? reject(err) : resolve(res),
        )
      );
    assert.equal((await check("chat.Broadcast")).status, "SERVING");
    assert.equal((await check("")).status, "SERVING");
  } finally {
    client.close();
    await system.stop();
  }
});
