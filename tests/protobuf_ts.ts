/**
 * A gRPC-Web client we did not write: the `chat.Broadcast` client that protoc and
 * @protobuf-ts/plugin generate from proto/chat.proto, generated at test time into a folder under
 * .tmp/ and loaded from there, for @protobuf-ts/grpcweb-transport. Only the parts the tests use
 * are typed here.
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type {
  RpcOptions,
  RpcTransport,
  ServerStreamingCall,
  UnaryCall,
} from "@protobuf-ts/runtime-rpc";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface WebMessage {
  id: string;
  content: string;
  room: string;
  seq: bigint;
  timestamp?: { seconds: bigint; nanos: number };
}

interface MessageType<T> {
  create(value?: object): T;
  fromBinary(bytes: Uint8Array): T;
}

export interface WebBroadcastClient {
  createStream(input: object, options?: RpcOptions): ServerStreamingCall<object, WebMessage>;
  broadcastMessage(input: object, options?: RpcOptions): UnaryCall<object, object>;
  listOnline(
    input: object,
    options?: RpcOptions,
  ): UnaryCall<object, { users: { id: string; displayName: string }[] }>;
  signIn(input: object, options?: RpcOptions): UnaryCall<object, { token: string }>;
}

export interface ProtobufTs {
  BroadcastClient: new (transport: RpcTransport) => WebBroadcastClient;
  Connect: MessageType<object>;
  Message: MessageType<WebMessage>;
}

/** Adds `.ts` to the plugin's extensionless relative imports (`from "./chat"`), for Deno. */
function addImportExtensions(source: string): string {
  return source.replace(
    /(\bfrom\s+["'])(\.{1,2}\/[^"']+?)(["'])/g,
    (whole, before: string, path: string, after: string) =>
      path.endsWith(".ts") ? whole : `${before}${path}.ts${after}`,
  );
}

let generated: Promise<ProtobufTs> | undefined;

/** Generates the client once per test process, and loads it. */
export function protobufTs(): Promise<ProtobufTs> {
  return generated ??= generate();
}

async function generate(): Promise<ProtobufTs> {
  await Deno.mkdir(join(ROOT, ".tmp"), { recursive: true });
  const work = await Deno.makeTempDir({ dir: join(ROOT, ".tmp"), prefix: "protobuf-ts-" });
  // protoc wants an executable plugin: a script that starts this Deno on @protobuf-ts/plugin.
  const runner = join(work, "protoc_gen_ts.ts");
  await Deno.writeTextFile(
    runner,
    `import { ProtobuftsPlugin } from "@protobuf-ts/plugin/build/protobufts-plugin.js";\n` +
      `import pkg from "@protobuf-ts/plugin/package.json" with { type: "json" };\n` +
      `await new ProtobuftsPlugin(pkg.version).run();\n`,
  );
  const plugin = join(work, "protoc-gen-ts");
  await Deno.writeTextFile(
    plugin,
    `#!/bin/sh\nexec '${Deno.execPath()}' run --quiet --allow-read --allow-env --config '${
      join(ROOT, "deno.json")
    }' '${runner}'\n`,
  );
  await Deno.chmod(plugin, 0o755);
  const out = join(work, "gen");
  await Deno.mkdir(out);
  const protoc = Deno.env.get("PROTOC") || "protoc";
  const result = await new Deno.Command(protoc, {
    args: [
      `--plugin=protoc-gen-ts=${plugin}`,
      `--ts_out=${out}`,
      "--ts_opt=optimize_code_size,ts_nocheck",
      "-I",
      join(ROOT, "proto"),
      join(ROOT, "proto/chat.proto"),
    ],
    stdin: "null",
  }).output();
  if (!result.success) {
    throw new Error(
      `Cannot generate the protobuf-ts client: ${protoc} exited with ${result.code}: ${
        new TextDecoder().decode(result.stderr)
      }`,
    );
  }
  for (const path of ["chat.ts", "chat.client.ts", "google/protobuf/timestamp.ts"]) {
    const file = join(out, path);
    await Deno.writeTextFile(file, addImportExtensions(await Deno.readTextFile(file)));
  }
  const types = await import(join(out, "chat.ts"));
  const client = await import(join(out, "chat.client.ts"));
  await Deno.remove(work, { recursive: true });
  return {
    BroadcastClient: client.BroadcastClient,
    Connect: types.Connect,
    Message: types.Message,
  };
}
