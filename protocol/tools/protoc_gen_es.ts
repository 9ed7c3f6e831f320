/**
 * The protobuf-es protoc plugin (`protoc-gen-es`) under Deno: protoc starts it with the code
 * generator request on stdin. `generate.ts` runs protoc with it.
 */

import { runNodeJs } from "@bufbuild/protoplugin";
import { protocGenEs } from "@bufbuild/protoc-gen-es/dist/cjs/src/protoc-gen-es-plugin.js";

runNodeJs(protocGenEs);
