/**
 * The system's processes for integration and fault tests: scripts/processes.ts with the test
 * cluster's brokers filled in, and every output line echoed when TEST_ECHO=1.
 */

import {
  type Deployment,
  type DeploymentOptions,
  kafkaDeployment as deploy,
  type Service,
  spawn as spawnProcess,
  type SpawnOptions,
} from "../scripts/processes.ts";
import { kafkaBrokersSync } from "./fixtures.ts";

export { type Deployment, freePort, type Service, stopAll } from "../scripts/processes.ts";

const echo = Deno.env.get("TEST_ECHO") === "1";

/**
 * The brokers of the test cluster, for synchronous callers such as {@linkcode kafkaDeployment}:
 * KAFKA_BROKERS, or the local cluster that tests/fixtures.ts holds for this test process (it
 * blocks until the cluster is up unless a test file already did `await kafkaBrokers()` from
 * there, which is what test files should do).
 */
export function kafkaBrokers(): string {
  return kafkaBrokersSync();
}

/** Starts `deno run -A <entry> [...args]` in the checkout's root. */
export function spawn(name: string, entry: string, options: SpawnOptions = {}): Service {
  return spawnProcess(name, entry, { echo, ...options });
}

/** A Kafka deployment on the test cluster (scripts/processes.ts `kafkaDeployment`). */
export function kafkaDeployment(
  options: Omit<DeploymentOptions, "brokers" | "echo"> = {},
): Deployment {
  return deploy({ brokers: kafkaBrokers(), echo, ...options });
}
