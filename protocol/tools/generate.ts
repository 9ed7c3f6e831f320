/**
 * `deno task gen:proto`: generates protocol/gen/ (the `chat` message types, their codecs and the
 * `chat.Broadcast` service descriptor, for the server, the clients, the page and the bench) from
 * proto/chat.proto with protoc and the protobuf-es plugin (@bufbuild/protoc-gen-es, run under Deno
 * by protoc_gen_es.ts).
 *
 * protoc comes from the system (`apt-get install protobuf-compiler`; PROTOC overrides the path).
 * The plugin's output is kept as it is but for a header that says where it comes from and turns
 * off `deno fmt` and `deno lint` for it.
 *
 * tests/protocol_test.ts generates into a temporary folder and fails when protocol/gen differs:
 * run this task after changing the proto.
 */

import { dirname, join, relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

const ROOT = fromFileUrl(new URL("../../", import.meta.url));
export const PROTO_FILE = "proto/chat.proto";
export const GEN_DIR = join(ROOT, "protocol/gen");
/** TypeScript with `.ts` imports, as Deno resolves them. */
export const PLUGIN_OPTIONS = "target=ts,import_extension=ts";

const HEADER = [
  `// Generated from ${PROTO_FILE} by \`deno task gen:proto\` (protoc + @bufbuild/protoc-gen-es).`,
  "// Do not edit: change the proto and run the task again.",
  "// deno-fmt-ignore-file",
  "// deno-lint-ignore-file",
  "",
].join("\n");

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
    const plugin = join(work, "protoc-gen-es");
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    await Deno.writeTextFile(
      plugin,
      `#!/bin/sh\nexec ${quote(Deno.execPath())} run --quiet --allow-read --allow-env --config ${
        quote(join(ROOT, "deno.json"))
      } ${quote(fromFileUrl(new URL("./protoc_gen_es.ts", import.meta.url)))}\n`,
    );
    await Deno.chmod(plugin, 0o755);
    const out = join(work, "out");
    await Deno.mkdir(out);
    const protoc = Deno.env.get("PROTOC") || "protoc";
    let result: Deno.CommandOutput;
    try {
      result = await new Deno.Command(protoc, {
        args: [
          `--plugin=protoc-gen-es=${plugin}`,
          `--es_out=${out}`,
          `--es_opt=${PLUGIN_OPTIONS}`,
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
          `Cannot generate protocol/gen: ${protoc} is not installed (apt-get install protobuf-compiler, or set PROTOC)`,
        );
      }
      throw err;
    }
    if (!result.success) {
      const text = new TextDecoder().decode(result.stderr).trim();
      throw new Error(`Cannot generate protocol/gen: protoc exited with ${result.code}: ${text}`);
    }
    const files = new Map<string, string>();
    for (const path of await listFiles(out)) {
      const source = await Deno.readTextFile(join(out, path));
      files.set(path, HEADER + source);
    }
    if (files.size === 0) throw new Error("Cannot generate protocol/gen: protoc generated nothing");
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
  const names = [...files.keys()].map((p) => `protocol/gen/${p}`).join(", ");
  // deno-lint-ignore no-console
  console.log(`Generated ${names} from ${PROTO_FILE}`);
}
