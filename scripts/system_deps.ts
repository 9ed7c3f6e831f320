// deno-lint-ignore-file no-console
/**
 * The programs outside Deno that the tests need (Java, Maven, Chromium, PostgreSQL, kcat,
 * openssl, protoc, grpcurl, promtool, and Node.js and Python's grpcio for the fault suite), and installing the
 * missing ones, so that `deno task test` works on a fresh machine by itself. scripts/test.ts
 * calls {@linkcode ensureSystemDeps} first; .ci/run runs this file before the steps that need
 * them:
 *
 * ```sh
 * deno run -A scripts/system_deps.ts            # install what the test suite lacks
 * deno run -A scripts/system_deps.ts --faults   # ... and what the fault suite needs too
 * deno run -A scripts/system_deps.ts --check    # only say what is missing (exit 1 if anything)
 * ```
 *
 * Missing Debian packages are installed with apt-get when running as root, or with sudo when it
 * works without a password; Python modules with pip when the Python on the PATH lets pip install
 * (not Debian's own, which is "externally managed": then its Debian package); Go programs with
 * `go install` into .tmp/bin ({@linkcode GO_BIN_DIR}), where the tests look for them. Otherwise it stops
 * with one message that lists everything missing and the one command that installs it all.
 * The decision ({@linkcode planInstall}) takes the probes as arguments, for the unit test.
 */

import { fileURLToPath } from "node:url";
import { isExecutable } from "./files.ts";

/** Which runs need a requirement: every test run, or the fault suite (tests/faults) only. */
export type Scope = "suite" | "faults";

export interface Requirement {
  /** What is missing, as the user knows it: "java", "kcat", "grpcio". */
  name: string;
  /** Why the tests need it. */
  why: string;
  /** The Debian packages that provide it. */
  apt: string[];
  /** For a Python module: the pip package, used instead of `apt` when pip may install. */
  pip?: string;
  /** For a Go program: `module/path/cmd@version`, installed with `go install` into GO_BIN_DIR. */
  go?: string;
  scope: Scope;
}

export const REQUIREMENTS: readonly Requirement[] = [
  {
    name: "java",
    why: "runs the Kafka brokers (kafka/cluster.ts)",
    apt: ["default-jre-headless"],
    scope: "suite",
  },
  {
    name: "mvn",
    why: "fetches the Kafka jars from Maven Central into kafka/.jars (once)",
    apt: ["maven"],
    scope: "suite",
  },
  {
    name: "chromium",
    why: "runs the web page in the browser tests (tests/browser.ts)",
    apt: ["chromium"],
    scope: "suite",
  },
  {
    name: "postgresql",
    why: "the PostgreSQL store tests' throwaway server (scripts/postgres.ts)",
    apt: ["postgresql"],
    scope: "suite",
  },
  {
    name: "kcat",
    why: "reads topics as an independent Kafka client in the Kafka and fault tests",
    apt: ["kcat"],
    scope: "suite",
  },
  {
    name: "openssl",
    why: "makes the self-signed certificates of tests/tls_test.ts",
    apt: ["openssl"],
    scope: "suite",
  },
  {
    name: "protoc",
    why: "checks protocol/gen against proto/chat.proto; generates the protobuf-ts test client",
    apt: ["protobuf-compiler"],
    scope: "suite",
  },
  {
    name: "grpcurl",
    why: "calls the gateway from reflection alone, as its users do (tests/grpcurl_test.ts)",
    apt: [],
    go: "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3",
    scope: "suite",
  },
  {
    name: "promtool",
    why: "Prometheus's own check of the /metrics exposition (tests/metrics_kafka_test.ts)",
    apt: [],
    // Prometheus 3.x's Go module versions are v0.3xx (v0.316.0 is Prometheus 3.16.0).
    go: "github.com/prometheus/prometheus/cmd/promtool@v0.316.0",
    scope: "suite",
  },
  {
    name: "node",
    why: "runs a fault scenario's grpc-js client (tests/faults/clients/grpc_js_churn.mjs)",
    apt: ["nodejs"],
    scope: "faults",
  },
  {
    name: "grpcio",
    why: "the Python gRPC client of a fault scenario (python3 -c 'import grpc')",
    apt: ["python3-grpcio"],
    pip: "grpcio",
    scope: "faults",
  },
];

/** The requirements of a run: the suite's, plus the fault suite's for `faults`. */
export function requirementsFor(scope: Scope): Requirement[] {
  return REQUIREMENTS.filter((r) => r.scope === "suite" || scope === "faults");
}

/** What the machine is like; injected, so that the decision can be tested. */
export interface Probes {
  /** Whether the requirement is met already. */
  has(requirement: Requirement): Promise<boolean>;
  /** Whether this process runs as root. */
  root: boolean;
  /** Whether `sudo` works without a password (`sudo -n true`). */
  sudo(): Promise<boolean>;
  /** Whether apt-get is there (a Debian or Ubuntu machine). */
  aptGet(): Promise<boolean>;
  /** Whether `python3 -m pip install` may install into the Python on the PATH. */
  pip(): Promise<boolean>;
  /** The `go` command, if Go is installed. */
  go?(): Promise<string | undefined>;
}

/** One command of the install, with why it runs. */
export interface Step {
  argv: string[];
  why: string;
}

export type Plan =
  /** Nothing is missing. */
  | { kind: "ok" }
  /** Run these, in order. */
  | { kind: "install"; missing: Requirement[]; steps: Step[] }
  /** Cannot install: print `message` (what is missing and the command to install it). */
  | { kind: "stop"; missing: Requirement[]; message: string };

function describe(missing: readonly Requirement[]): string {
  const width = Math.max(...missing.map((r) => r.name.length));
  return missing.map((r) => `  ${r.name.padEnd(width)}  ${r.why}`).join("\n");
}

function shellLine(steps: readonly Step[]): string {
  return steps.map((s) => s.argv.join(" ")).join(" && ");
}

/** Decides how to get `required` onto this machine: nothing to do, what to run, or stop. */
export async function planInstall(
  required: readonly Requirement[],
  probes: Probes,
): Promise<Plan> {
  const missing: Requirement[] = [];
  for (const r of required) if (!await probes.has(r)) missing.push(r);
  if (missing.length === 0) return { kind: "ok" };

  const pip = missing.some((r) => r.pip) && await probes.pip();
  const byGo = missing.filter((r) => r.go);
  const byPip = missing.filter((r) => r.pip && pip);
  const byApt = missing.filter((r) => !r.go && !(r.pip && pip));
  const go = byGo.length > 0 ? await probes.go?.() : undefined;
  if (byGo.length > 0 && go === undefined) {
    return {
      kind: "stop",
      missing,
      message: `Cannot run the tests: this machine lacks\n${describe(missing)}\n` +
        `Go is needed to install ${byGo.map((r) => r.name).join(", ")}: install Go, then run\n  ` +
        byGo.map((r) => `GOBIN=${GO_BIN_DIR} go install ${r.go}`).join(" && "),
    };
  }
  const goSteps: Step[] = byGo.map((r) => ({
    argv: ["env", `GOBIN=${GO_BIN_DIR}`, go!, "install", r.go!],
    why: r.name,
  }));
  const packages = [...new Set(byApt.flatMap((r) => r.apt))];
  const pipPackages = byPip.map((r) => r.pip!);

  const aptGet = packages.length > 0 && await probes.aptGet();
  const sudo = packages.length > 0 && !probes.root && await probes.sudo();
  const aptSteps = (prefix: string[]): Step[] => [
    { argv: [...prefix, "apt-get", "update"], why: "the package lists" },
    {
      argv: [...prefix, "apt-get", "install", "-y", ...packages],
      why: byApt.map((r) => r.name).join(", "),
    },
  ];
  const pipSteps: Step[] = pipPackages.length === 0 ? [] : [{
    argv: ["python3", "-m", "pip", "install", ...pipPackages],
    why: byPip.map((r) => r.name).join(", "),
  }];

  if (packages.length === 0 || (aptGet && (probes.root || sudo))) {
    const prefix = probes.root ? [] : ["sudo"];
    return {
      kind: "install",
      missing,
      steps: [...(packages.length > 0 ? aptSteps(prefix) : []), ...pipSteps, ...goSteps],
    };
  }
  const command = shellLine([...aptSteps(["sudo"]), ...pipSteps, ...goSteps]);
  const how = aptGet
    ? `Install them with:\n  ${command}`
    : `Install them with your system's package manager; on Debian or Ubuntu:\n  ${command}`;
  const why = aptGet ? " (not root, and sudo needs a password)" : " (no apt-get here)";
  return {
    kind: "stop",
    missing,
    message: `Cannot run the tests: this machine lacks\n${describe(missing)}\n` +
      `They cannot be installed from here${why}. ${how}`,
  };
}

// ---------------------------------------------------------------------------------------------
// The real probes

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/+$/, "");

/** Where `go install` puts the Go programs the tests need: ignored by git, found by the tests. */
export const GO_BIN_DIR = `${ROOT}/.tmp/bin`;

/** The path of Go program `name` for the tests: in GO_BIN_DIR, else on the PATH; undefined if neither. */
export function goProgram(name: string): string | undefined {
  const local = `${GO_BIN_DIR}/${name}`;
  if (isExecutable(local)) return local;
  return onPath(name) ? name : undefined;
}

/** Whether `name` is an executable on the PATH (or is an executable path). */
export function onPath(name: string, path = Deno.env.get("PATH") ?? ""): boolean {
  if (name.includes("/")) return isExecutable(name);
  return path.split(":").filter(Boolean).some((dir) => isExecutable(`${dir}/${name}`));
}

async function succeeds(cmd: string, args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false; // not installed
  }
}

/** Whether `req` is met on this machine. */
async function has(req: Requirement): Promise<boolean> {
  switch (req.name) {
    case "java":
      return onPath("java");
    case "mvn": {
      // Maven only fetches the jars: a checkout that has them needs no Maven.
      const { jarsComplete } = await import("../kafka/jars.ts");
      return onPath("mvn") || await jarsComplete();
    }
    case "chromium":
      return isExecutable(Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium");
    case "postgresql": {
      const { findBinDir } = await import("./postgres_binaries.ts");
      try {
        findBinDir();
        return true;
      } catch {
        return false;
      }
    }
    case "protoc":
      return onPath(Deno.env.get("PROTOC") || "protoc");
    case "grpcio":
      return await succeeds("python3", ["-c", "import grpc"]);
    case "grpcurl":
    case "promtool":
      return goProgram(req.name) !== undefined;
    default:
      return onPath(req.name);
  }
}

/** pip may install when it is there and the Python is not marked externally managed (PEP 668). */
async function pipMayInstall(): Promise<boolean> {
  const script = "import os, sys, sysconfig\n" +
    "managed = os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))\n" +
    "in_venv = sys.prefix != sys.base_prefix\n" +
    "import pip\n" +
    "sys.exit(1 if managed and not in_venv else 0)";
  return await succeeds("python3", ["-c", script]);
}

export const realProbes: Probes = {
  has,
  root: Deno.uid() === 0,
  sudo: () => succeeds("sudo", ["-n", "true"]),
  aptGet: () => Promise.resolve(onPath("apt-get")),
  pip: pipMayInstall,
  // Go's tarball puts it in /usr/local/go, often not on the PATH of a non-login shell.
  go: () =>
    Promise.resolve(
      onPath("go")
        ? "go"
        : isExecutable("/usr/local/go/bin/go")
        ? "/usr/local/go/bin/go"
        : undefined,
    ),
};

// ---------------------------------------------------------------------------------------------
// Installing

export interface EnsureOptions {
  probes?: Probes;
  /** Runs one command, output to the terminal; returns its exit code. */
  run?: (argv: string[]) => Promise<number>;
  log?: (line: string) => void;
}

async function runInherited(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  const { code } = await new Deno.Command(cmd!, {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
    env: { DEBIAN_FRONTEND: "noninteractive" },
  }).spawn().status;
  return code;
}

/**
 * Makes sure the requirements of `scope` are met: installs what is missing (printing what and
 * why), or throws one error that says what is missing and how to install it.
 */
export async function ensureSystemDeps(scope: Scope, options: EnsureOptions = {}): Promise<void> {
  const probes = options.probes ?? realProbes;
  const run = options.run ?? runInherited;
  const log = options.log ?? ((line: string) => console.log(line));
  const required = requirementsFor(scope);
  const plan = await planInstall(required, probes);
  if (plan.kind === "ok") return;
  if (plan.kind === "stop") throw new Error(plan.message);

  const started = performance.now();
  log(`The tests need programs this machine lacks; installing them:\n${describe(plan.missing)}`);
  for (const step of plan.steps) {
    log(`$ ${step.argv.join(" ")}    # ${step.why}`);
    const code = await run(step.argv);
    if (code !== 0) {
      throw new Error(
        `Cannot install what the tests need: ${step.argv.join(" ")} exited with ${code}`,
      );
    }
  }
  const still: Requirement[] = [];
  for (const r of plan.missing) if (!await probes.has(r)) still.push(r);
  if (still.length > 0) {
    throw new Error(
      `Cannot run the tests: still missing after the install\n${describe(still)}\n` +
        `(installed with: ${shellLine(plan.steps)})`,
    );
  }
  log(`Installed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

if (import.meta.main) {
  const flags = new Set(Deno.args);
  const unknown = [...flags].filter((f) => f !== "--faults" && f !== "--check");
  if (unknown.length > 0) {
    console.error("Usage: deno run -A scripts/system_deps.ts [--faults] [--check]");
    Deno.exit(2);
  }
  const scope: Scope = flags.has("--faults") ? "faults" : "suite";
  try {
    if (flags.has("--check")) {
      const plan = await planInstall(requirementsFor(scope), realProbes);
      if (plan.kind !== "ok") {
        console.log(
          plan.kind === "stop"
            ? plan.message
            : `Missing:\n${describe(plan.missing)}\nInstall with: ${shellLine(plan.steps)}`,
        );
        Deno.exit(1);
      }
    } else {
      await ensureSystemDeps(scope);
    }
    console.log(
      `Everything the ${scope === "faults" ? "fault suite" : "test suite"} needs is here`,
    );
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
