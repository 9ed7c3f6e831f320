/**
 * The gateway refuses Deno releases known to crash it when a client closes its connection
 * (core/runtime_guard.ts), names the problem, the upstream issue and the release to install,
 * and the project pins one release everywhere it names one.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  BAD_DENO_RELEASES,
  checkDenoRelease,
  knownBadRelease,
  PINNED_DENO_RELEASE,
} from "../core/runtime_guard.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

Deno.test("2.9.4 to 2.9.6 are refused; the releases around them are not", () => {
  assert.deepEqual(BAD_DENO_RELEASES.map((b) => b.version), ["2.9.4", "2.9.5", "2.9.6"]);
  for (const good of ["2.9.3", "2.9.2", "2.8.3", "2.9.7", "2.10.0"]) {
    assert.equal(knownBadRelease(good), undefined, good);
    assert.equal(checkDenoRelease(good, false), undefined, good);
  }
  assert.throws(
    () => checkDenoRelease("2.9.6", false),
    (error: Error) => {
      assert.match(error.message, /Deno 2\.9\.6 aborts the process inside nghttp2/);
      assert.match(error.message, /denoland\/deno\/issues\/36788/);
      assert.match(error.message, /npm install -g deno@2\.9\.3/);
      assert.match(error.message, /ALLOW_UNSAFE_DENO=true/);
      return true;
    },
  );
  assert.match(
    checkDenoRelease("2.9.5", true)!,
    /ALLOW_UNSAFE_DENO=true: starting on Deno 2\.9\.5/,
  );
});

Deno.test("the pinned release is not a bad one, and is the one this suite runs on", () => {
  assert.equal(knownBadRelease(PINNED_DENO_RELEASE), undefined);
  assert.equal(knownBadRelease(Deno.version.deno), undefined, "the tests run on a bad release");
  assert.equal(Deno.version.deno, PINNED_DENO_RELEASE, "the tests run on the pinned release");
});

Deno.test("CI, the README and the docs name the pinned release", async () => {
  const ci = await Deno.readTextFile(`${ROOT}.ci/run`);
  assert.match(ci, new RegExp(`DENO_VERSION="${PINNED_DENO_RELEASE.replaceAll(".", "\\.")}"`));
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  assert.ok(readme.includes(`npm install -g deno@${PINNED_DENO_RELEASE}`), "README install line");
  for (const file of [".ci/run", "README.md", "docs/reliability.md", "docs/benchmarks.md"]) {
    const text = await Deno.readTextFile(`${ROOT}${file}`);
    const named = [...text.matchAll(/deno@(\d+\.\d+\.\d+|\d+)\b/g)].map((m) => m[1]);
    for (const version of named) {
      assert.equal(version, PINNED_DENO_RELEASE, `${file} installs deno@${version}`);
    }
  }
});

/** A real Deno 2.9.6 from npm, kept between runs under .tmp (one download of ~40 MB). */
async function badDeno(): Promise<string> {
  const prefix = `${ROOT}.tmp/deno-releases/2.9.6`;
  const installed = `${prefix}/node_modules/.bin/deno`;
  try {
    await Deno.stat(installed);
    return installed;
  } catch { /* not there yet */ }
  await Deno.mkdir(prefix, { recursive: true });
  const npm = await new Deno.Command("npm", {
    args: ["install", "--prefix", prefix, "--no-save", "--no-audit", "--no-fund", "deno@2.9.6"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(
    npm.code,
    0,
    `npm install deno@2.9.6 failed:\n${new TextDecoder().decode(npm.stderr)}`,
  );
  return installed;
}

Deno.test("a gateway started on Deno 2.9.6 refuses to start, exits 1, and says why", async () => {
  const deno = await badDeno();
  const dir = await Deno.makeTempDir();
  try {
    const run = (env: Record<string, string>) =>
      new Deno.Command(deno, {
        args: ["run", "-A", "--no-lock", `${ROOT}main.ts`],
        cwd: ROOT,
        env: {
          GRPC_PORT: "0",
          HTTP_PORT: "0",
          DATABASE_PATH: `${dir}/chat.db`,
          AUTH_SECRET_FILE: `${dir}/secret`,
          ...env,
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      });
    const refused = await run({}).output();
    const log = new TextDecoder().decode(refused.stderr);
    assert.equal(refused.code, 1, log);
    assert.match(log, /Cannot start the gateway: Deno 2\.9\.6 aborts the process inside nghttp2/);
    assert.match(log, /issues\/36788/);
    assert.match(log, /npm install -g deno@2\.9\.3/);
    assert.doesNotMatch(log, /Gateway listening/);

    // The override starts it, with a warning; the gateway is then stopped like any other.
    const child = run({ ALLOW_UNSAFE_DENO: "true" }).spawn();
    const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    const deadline = Date.now() + 30_000;
    while (!/Gateway listening/.test(seen) && Date.now() < deadline) {
      const { value, done } = await lines.read();
      if (done) break;
      seen += value;
    }
    child.kill("SIGTERM");
    await child.status;
    await lines.cancel();
    await child.stdout.cancel();
    assert.match(seen, /WARN {2}ALLOW_UNSAFE_DENO=true: starting on Deno 2\.9\.6/);
    assert.match(seen, /Gateway listening/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
