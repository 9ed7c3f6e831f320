/**
 * The Kafka deployment for the page and terminal tests (tests/processes.ts `kafkaDeployment`),
 * every part its own process: the processor and two gateways (A and B) on the test cluster,
 * with sign-in on, sharing one store and one token secret (a token from gateway A works on
 * gateway B). The store is either PostgreSQL (a database of its own on the test server, dropped
 * at the end) or SQLite (a file in a temporary folder), so that each test runs on both.
 */

import postgres from "postgres";
import { databaseUrl, kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, type Service, stopAll } from "./processes.ts";
import type { GatewayProcess } from "../scripts/processes.ts";
import { openStore } from "../store/open_store.ts";
import { silentLogger } from "../core/logger.ts";
import { loadConfig } from "../core/config.ts";

// The cluster first, for the test files that use this: its start is not counted against their
// first test.
await kafkaBrokers();

/** Everything crosses Kafka through the processor: allow for a slow machine. */
export const SLOW_MS = 60_000;

export type StoreKind = "PostgreSQL" | "SQLite";
export const STORES: readonly StoreKind[] = ["PostgreSQL", "SQLite"];

export interface WebDeployment {
  a: GatewayProcess;
  b: GatewayProcess;
  /** Every process, to add more (a terminal client) and have them stopped too. */
  services: Service[];
  /** The texts of `room`'s messages as the store holds them, oldest first. */
  stored(room: string): Promise<string[]>;
  stop(): Promise<void>;
}

interface Storage {
  /** What the processes are told. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

/** Where the processes keep their data, and how to clean it away. */
async function storage(kind: StoreKind): Promise<Storage> {
  if (kind === "SQLite") {
    const dir = await Deno.makeTempDir({ prefix: "chat-web-kafka-" });
    return {
      env: { DATABASE_PATH: `${dir}/chat.db`, DATABASE_URL: "" },
      drop: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
    };
  }
  const server = await databaseUrl();
  const name = `chat_web_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } catch (err) {
    await admin.end({ timeout: 5 });
    throw err;
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    env: { DATABASE_URL: url.href },
    drop: async () => {
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}

/** Starts the processor and gateways A and B on a new store of `kind`; ready when it returns. */
export async function startWebDeployment(kind: StoreKind): Promise<WebDeployment> {
  const store = await storage(kind);
  const services: Service[] = [];
  const stop = async () => {
    await stopAll(services);
    await store.drop();
  };
  try {
    const deployment = kafkaDeployment({ auth: "on", store: store.env });
    services.push(deployment.processor());
    const a = deployment.gateway("gateway-a");
    const b = deployment.gateway("gateway-b");
    services.push(a.service, b.service);
    await Promise.all([a.ready(SLOW_MS), b.ready(SLOW_MS)]);
    // Each process says which store it opened: the test runs on the one it names.
    const opened = new RegExp(`Opened the ${kind} store`);
    await Promise.all(services.map((s) => s.waitForLine(opened, SLOW_MS)));
    return {
      a,
      b,
      services,
      async stored(room) {
        const reader = await openStore(loadConfig(store.env), silentLogger);
        try {
          return (await reader.since(room, 0, 1000)).map((m) => m.content);
        } finally {
          await reader.close();
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
