/**
 * `deno task gen:proto`: generates web/gen/ (the `chat` message types and the
 * `BroadcastClient` for the page) from proto/chat.proto with protoc and the
 * protobuf-ts plugin (@protobuf-ts/plugin, run under Deno by protoc_gen_ts.ts).
 *
 * protoc comes from the system (`apt-get install protobuf-compiler`; PROTOC
 * overrides the path). The plugin's output is kept as it is except for two
 * things Deno needs: relative imports get their `.ts` extension, and each file
 * starts with a note and `deno-fmt-ignore-file` / `deno-lint-ignore-file`.
 *
 * tests/grpc_web_test.ts generates into a temporary folder and fails when
 * web/gen differs: run this task after changing the proto.
 */

import { dirname, join, relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

const ROOT = fromFileUrl(new URL("../../", import.meta.url));
export const PROTO_FILE = "proto/chat.proto";
export const GEN_DIR = join(ROOT, "web/gen");
/**
 * 64-bit fields as JavaScript numbers; reflection-based code (small bundles); `@ts-nocheck`,
 * since the plugin's code predates `noUncheckedIndexedAccess` and `noImplicitOverride` (its
 * types still reach the code that imports it).
 */
export const PLUGIN_OPTIONS = "long_type_number,optimize_code_size,ts_nocheck";

const HEADER = [
  `// Generated from ${PROTO_FILE} by \`deno task gen:proto\` (protoc + @protobuf-ts/plugin).`,
  "// Do not edit: change the proto and run the task again.",
  "// deno-fmt-ignore-file",
  "// deno-lint-ignore-file",
  "",
].join("\n");

/** Adds `.ts` to the plugin's extensionless relative imports (`from "./chat"`). */
export function addImportExtensions(source: string): string {
  return source.replace(
    /(\bfrom\s+["'])(\.{1,2}\/[^"']+?)(["'])/g,
    (whole, before: string, path: string, after: string) =>
      path.endsWith(".ts") ? whole : `${before}${path}.ts${after}`,
  );
}

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await listFiles(path, base));
    else if (entry.isFile) out.push(relative(base, path));
  }
  return out.sort();
}

/**
 * Runs protoc with the plugin and returns the files it generates, by path
 * relative to the output folder, already post-processed. Writes nothing.
 */
export async function generate(): Promise<Map<string, string>> {
  const work = await Deno.makeTempDir({ prefix: "chat-gen-proto-" });
  try {
    // protoc wants an executable plugin: a two-line script that starts this Deno on the launcher.
    const plugin = join(work, "protoc-gen-ts");
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    await Deno.writeTextFile(
      plugin,
      `#!/bin/sh\nexec ${quote(Deno.execPath())} run --quiet --allow-read --allow-env --config ${
        quote(join(ROOT, "deno.json"))
      } ${quote(fromFileUrl(new URL("./protoc_gen_ts.ts", import.meta.url)))}\n`,
    );
    await Deno.chmod(plugin, 0o755);
    const out = join(work, "out");
    await Deno.mkdir(out);
    const protoc = Deno.env.get("PROTOC") || "protoc";
    let result: Deno.CommandOutput;
    try {
      result = await new Deno.Command(protoc, {
        args: [
          `--plugin=protoc-gen-ts=${plugin}`,
          `--ts_out=${out}`,
          `--ts_opt=${PLUGIN_OPTIONS}`,
          "-I",
          join(ROOT, "proto"),
          join(ROOT, PROTO_FILE),
        ],
        cwd: ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(
          `Cannot generate web/gen: ${protoc} is not installed (apt-get install protobuf-compiler, or set PROTOC)`,
        );
      }
      throw err;
    }
    if (!result.success) {
      const text = new TextDecoder().decode(result.stderr).trim();
      throw new Error(`Cannot generate web/gen: protoc exited with ${result.code}: ${text}`);
    }
    const files = new Map<string, string>();
    for (const path of await listFiles(out)) {
      const source = await Deno.readTextFile(join(out, path));
      files.set(path, HEADER + addImportExtensions(source));
    }
    if (files.size === 0) throw new Error("Cannot generate web/gen: protoc generated nothing");
    return files;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** The files now in `dir` (relative paths), or an empty map when it does not exist. */
export async function readTree(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  try {
    for (const path of await listFiles(dir)) {
      files.set(path, await Deno.readTextFile(join(dir, path)));
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return files;
}

/** Replaces `dir` with the generated files. */
export async function writeTree(dir: string, files: Map<string, string>): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  for (const [path, text] of files) {
    const target = join(dir, path);
    await Deno.mkdir(dirname(target), { recursive: true });
    await Deno.writeTextFile(target, text);
  }
}

if (import.meta.main) {
  const files = await generate();
  await writeTree(GEN_DIR, files);
  const names = [...files.keys()].map((p) => `web/gen/${p}`).join(", ");
  // deno-lint-ignore no-console
  console.log(`Generated ${names} from ${PROTO_FILE}`);
}
