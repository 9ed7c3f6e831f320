/** scripts/system_deps.ts: what `deno task test` installs, how, or why it stops. */

import assert from "node:assert/strict";
import {
  ensureSystemDeps,
  onPath,
  planInstall,
  type Probes,
  type Requirement,
  requirementsFor,
} from "../scripts/system_deps.ts";

/** A machine that lacks `missing`; everything else about it as given. */
function machine(
  missing: string[],
  options: { root?: boolean; sudo?: boolean; aptGet?: boolean; pip?: boolean; go?: string } = {},
): Probes & { installed: Set<string> } {
  const installed = new Set<string>();
  return {
    installed,
    has: (r: Requirement) => Promise.resolve(!missing.includes(r.name) || installed.has(r.name)),
    root: options.root ?? true,
    sudo: () => Promise.resolve(options.sudo ?? false),
    aptGet: () => Promise.resolve(options.aptGet ?? true),
    pip: () => Promise.resolve(options.pip ?? false),
    go: () => Promise.resolve(options.go),
  };
}

const suite = requirementsFor("suite");
const faults = requirementsFor("faults");

Deno.test("requirementsFor: the fault suite needs node and grpcio on top of the suite's", () => {
  const names = (rs: Requirement[]) => rs.map((r) => r.name);
  assert.deepEqual(names(suite), [
    "java",
    "mvn",
    "chromium",
    "postgresql",
    "kcat",
    "openssl",
    "protoc",
    "grpcurl",
    "promtool",
  ]);
  assert.deepEqual(names(faults), [...names(suite), "node", "grpcio"]);
});

Deno.test("planInstall: nothing missing, nothing to do", async () => {
  assert.deepEqual(await planInstall(faults, machine([])), { kind: "ok" });
});

Deno.test("planInstall: as root, apt-get installs the missing packages", async () => {
  const plan = await planInstall(suite, machine(["kcat", "protoc", "java"]));
  assert.equal(plan.kind, "install");
  assert.ok(plan.kind === "install");
  assert.deepEqual(plan.steps.map((s) => s.argv), [
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "default-jre-headless", "kcat", "protobuf-compiler"],
  ]);
  assert.match(plan.steps[1]!.why, /java, kcat, protoc/);
});

Deno.test("planInstall: not root, sudo without a password: the same through sudo", async () => {
  const plan = await planInstall(suite, machine(["chromium"], { root: false, sudo: true }));
  assert.ok(plan.kind === "install");
  assert.deepEqual(plan.steps.map((s) => s.argv), [
    ["sudo", "apt-get", "update"],
    ["sudo", "apt-get", "install", "-y", "chromium"],
  ]);
});

Deno.test("planInstall: grpcio with pip when pip may install, else Debian's package", async () => {
  const withPip = await planInstall(faults, machine(["grpcio", "openssl"], { pip: true }));
  assert.ok(withPip.kind === "install");
  assert.deepEqual(withPip.steps.map((s) => s.argv), [
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "openssl"],
    ["python3", "-m", "pip", "install", "grpcio"],
  ]);
  // pip alone needs neither root nor sudo.
  const pipOnly = await planInstall(faults, machine(["grpcio"], { root: false, pip: true }));
  assert.ok(pipOnly.kind === "install");
  assert.deepEqual(pipOnly.steps.map((s) => s.argv), [[
    "python3",
    "-m",
    "pip",
    "install",
    "grpcio",
  ]]);
  // Debian's own Python refuses pip (externally managed): its package instead.
  const managed = await planInstall(faults, machine(["grpcio"], { pip: false }));
  assert.ok(managed.kind === "install");
  assert.deepEqual(managed.steps.map((s) => s.argv), [
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "python3-grpcio"],
  ]);
});

Deno.test("planInstall: no root and no sudo: one message with everything and one command", async () => {
  const plan = await planInstall(
    faults,
    machine(["java", "postgresql", "grpcio"], { root: false, sudo: false, pip: true }),
  );
  assert.ok(plan.kind === "stop");
  assert.deepEqual(plan.missing.map((r) => r.name), ["java", "postgresql", "grpcio"]);
  const lines = plan.message.split("\n");
  assert.equal(lines[0], "Cannot run the tests: this machine lacks");
  assert.match(lines[1]!, /^ {2}java +runs the Kafka brokers/);
  assert.match(lines[2]!, /^ {2}postgresql +the PostgreSQL store tests/);
  assert.match(lines[3]!, /^ {2}grpcio +the Python gRPC client/);
  assert.equal(
    lines.at(-1),
    "  sudo apt-get update && sudo apt-get install -y default-jre-headless postgresql && " +
      "python3 -m pip install grpcio",
  );
});

Deno.test("planInstall: no apt-get: says so and still names the Debian command", async () => {
  const plan = await planInstall(suite, machine(["kcat"], { aptGet: false }));
  assert.ok(plan.kind === "stop");
  assert.match(plan.message, /no apt-get here/);
  assert.match(plan.message, /sudo apt-get install -y kcat$/);
});

Deno.test("ensureSystemDeps: prints what it installs and why, runs it, checks again", async () => {
  const probes = machine(["kcat", "openssl"]);
  const ran: string[][] = [];
  const lines: string[] = [];
  await ensureSystemDeps("suite", {
    probes,
    log: (line) => lines.push(line),
    run: (argv) => {
      ran.push(argv);
      if (argv.includes("install")) ["kcat", "openssl"].forEach((n) => probes.installed.add(n));
      return Promise.resolve(0);
    },
  });
  assert.deepEqual(ran, [["apt-get", "update"], ["apt-get", "install", "-y", "kcat", "openssl"]]);
  const text = lines.join("\n");
  assert.match(text, /lacks; installing them:\n {2}kcat +reads topics/);
  assert.match(text, /\$ apt-get install -y kcat openssl {4}# kcat, openssl/);
  assert.match(text, /Installed in/);
});

Deno.test("ensureSystemDeps: a failed install or a program still missing fails loudly", async () => {
  await assert.rejects(
    ensureSystemDeps("suite", {
      probes: machine(["kcat"]),
      log: () => {},
      run: (argv) => Promise.resolve(argv.includes("install") ? 100 : 0),
    }),
    /apt-get install -y kcat exited with 100/,
  );
  await assert.rejects(
    ensureSystemDeps("suite", {
      probes: machine(["kcat"]),
      log: () => {},
      run: () => Promise.resolve(0),
    }),
    /still missing after the install\n {2}kcat/,
  );
  await assert.rejects(
    ensureSystemDeps("suite", {
      probes: machine(["kcat"], { root: false }),
      log: () => {},
      run: () => Promise.reject(new Error("must not run")),
    }),
    /this machine lacks/,
  );
});

Deno.test("onPath finds executables on the PATH only", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/tool`, "#!/bin/sh\n", { mode: 0o755 });
    Deno.writeTextFileSync(`${dir}/data`, "", { mode: 0o644 });
    assert.equal(onPath("tool", `/nonexistent:${dir}`), true);
    assert.equal(onPath("data", dir), false);
    assert.equal(onPath("tool", "/nonexistent"), false);
    assert.equal(onPath(`${dir}/tool`, ""), true);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("planInstall: grpcurl is installed with go install into .tmp/bin, or the plan says Go is needed", async () => {
  const plan = await planInstall(suite, machine(["grpcurl"], { go: "/usr/local/go/bin/go" }));
  assert.ok(plan.kind === "install");
  assert.equal(plan.steps.length, 1);
  const argv = plan.steps[0]!.argv;
  assert.equal(argv[0], "env");
  assert.match(argv[1]!, /^GOBIN=.*\/\.tmp\/bin$/);
  assert.deepEqual(argv.slice(2), [
    "/usr/local/go/bin/go",
    "install",
    "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3",
  ]);
  const stop = await planInstall(suite, machine(["grpcurl"]));
  assert.ok(stop.kind === "stop");
  assert.match(stop.message, /Go is needed to install grpcurl/);
  assert.match(
    stop.message,
    /go install github\.com\/fullstorydev\/grpcurl\/cmd\/grpcurl@v1\.9\.3/,
  );
});
