/**
 * The deployment files (compose.yaml, the Dockerfile, ops/) as tests/compose_test.ts and
 * tests/ops_test.ts read them, and the application's settings they are checked against: the
 * environment variables core/config.ts reads, recorded while it reads one (so no list of names
 * is copied here by hand), and the configuration an environment yields.
 */

import { parse } from "yaml";
import { loadConfig } from "../core/config.ts";

export const ROOT = new URL("../", import.meta.url);

export const readText = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));

/** The names of every environment variable loadConfig reads. */
export function settingNames(): Set<string> {
  const read = new Set<string>();
  loadConfig(
    new Proxy({}, {
      get(_target, name) {
        if (typeof name === "string") read.add(name);
        return undefined;
      },
    }),
  );
  return read;
}

export type Scalar = string | number | boolean;

export interface ComposeService {
  image?: string;
  build?: string | { context: string };
  hostname?: string;
  profiles?: string[];
  command?: string[];
  ports?: string[];
  environment?: Record<string, Scalar>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  stop_grace_period?: string;
}

export function readCompose(): { services: Record<string, ComposeService> } {
  return parse(readText("compose.yaml"), { merge: true });
}

/** One instruction of the Dockerfile: `FROM`, `ENV`, ... and the rest of its line(s). */
export interface Instruction {
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
export function readDockerfile(): Instruction[] {
  const lines = readText("Dockerfile").split("\n").filter((l) => !/^\s*#/.test(l));
  return lines.join("\n").replace(/\\\n/g, " ").split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(" ") };
    });
}

/** The environment the final stage of the Dockerfile sets (`ENV K=V ...`). */
export function imageEnv(instructions: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of finalStage(instructions).filter((i) => i.keyword === "ENV")) {
    for (const pair of args.split(/\s+/)) {
      const at = pair.indexOf("=");
      if (at > 0) env[pair.slice(0, at)] = pair.slice(at + 1);
    }
  }
  return env;
}

/** What the process in a compose service of the image reads: the image's ENV, then the service's. */
export function serviceEnv(
  service: ComposeService,
  instructions: Instruction[],
): Record<string, string> {
  const own = Object.entries(service.environment ?? {}).map(([k, v]) => [k, String(v)]);
  return { ...imageEnv(instructions), ...Object.fromEntries(own) };
}

/** The instructions after the last `FROM`: the image that runs. */
export function finalStage(instructions: Instruction[]): Instruction[] {
  const last = instructions.findLastIndex((i) => i.keyword === "FROM");
  return instructions.slice(last);
}

/** `["a", "b"]` of an exec-form instruction (`CMD`, `ENTRYPOINT`, `HEALTHCHECK ... CMD`). */
export function execForm(args: string): string[] {
  return JSON.parse(args.slice(args.indexOf("[")));
}

/**
 * The URL a health check's `deno eval` fetches, and the setting its port comes from when it reads
 * one (`'http://127.0.0.1:' + (Deno.env.get('HTTP_PORT') || '8080') + '/healthz'`).
 */
export function fetchedUrl(code: string): { url: URL; portSetting?: string } {
  const match = code.match(
    /fetch\('(http:\/\/[^']+)'(?: \+ \(Deno\.env\.get\('(\w+)'\) \|\| '(\d+)'\) \+ '([^']+)')?\)/,
  );
  if (!match) throw new Error(`Cannot read the health check: no fetch of a URL in "${code}"`);
  const [, start, portSetting, port, path] = match;
  return portSetting
    ? { url: new URL(`${start}${port}${path}`), portSetting }
    : { url: new URL(start!) };
}
