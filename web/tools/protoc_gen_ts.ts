/**
 * The protobuf-ts protoc plugin (`protoc-gen-ts`) under Deno: protoc starts it
 * with the code generator request on stdin. `gen_proto.ts` runs protoc with it.
 */

import { ProtobuftsPlugin } from "@protobuf-ts/plugin/build/protobufts-plugin.js";
import pkg from "@protobuf-ts/plugin/package.json" with { type: "json" };

await new ProtobuftsPlugin(pkg.version).run();
