/** Shared test helpers: bounded waiting, and a whole chat system in one process. */

import { type Config, loadConfig } from "../core/config.ts";
import { type Logger, silentLogger } from "../core/logger.ts";
import type { Bus } from "../bus/bus.ts";
import { MemoryBus } from "../bus/memory_bus.ts";
import { createGateway, type Gateway } from "../server/gateway.ts";
import { createProcessor, type Processor } from "../processor/processor.ts";
import { MemoryStore } from "../store/memory_store.ts";
import { createAuth } from "../server/auth.ts";
import type { Store } from "../store/store.ts";
import { type ServiceError, status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { ChatClient, type Message, type StreamOptions } from "../client/chat_client.ts";

const openClients = new Set<ChatClient>();

/**
 * A client for a test, which closes it when done with it. One a test leaves open is closed by
 * `closeClients`, as a program's exit would close it.
 */
export function newClient(...args: ConstructorParameters<typeof ChatClient>): ChatClient {
  const client = new ChatClient(...args);
  openClients.add(client);
  return client;
}

/** Closes the clients that tests opened with `newClient` (closing one twice does nothing). */
export function closeClients(): void {
  for (const client of openClients) client.close();
  openClients.clear();
}

/** Waits until `predicate` is true, polling; fails with `what` after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A configuration for in-process tests: ports 0, short timers, classic (AUTH=off) unless asked. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return {
    ...loadConfig({}),
    auth: "off",
    grpcPort: 0,
    httpPort: 0,
    heartbeatIntervalMs: 200,
    heartbeatTimeoutMs: 1000,
    shutdownTimeoutMs: 2000,
    ...overrides,
  };
}

export interface System {
  bus: Bus;
  store: Store;
  processor: Processor;
  gateways: Gateway[];
  /** `host:port` of gateway `i`'s gRPC port. */
  address(i?: number): string;
  /** Starts one more gateway on the same bus and store. */
  addGateway(config?: Partial<Config>): Promise<Gateway>;
  stop(): Promise<void>;
}

/** Starts a processor and `gateways` gateways on one memory bus. */
export async function startSystem(
  options: { gateways?: number; config?: Partial<Config>; logger?: Logger; bus?: Bus } = {},
): Promise<System> {
  const logger = options.logger ?? silentLogger;
  const bus = options.bus ?? new MemoryBus({ logger, retryDelayMs: 20 });
  const store = new MemoryStore();
  const base = testConfig(options.config);
  const processor = createProcessor({ bus, store, logger, config: base });
  const auth = createAuth({
    mode: base.auth,
    secret: crypto.getRandomValues(new Uint8Array(32)),
    store,
    logger,
    tokenTtlSeconds: base.tokenTtlSeconds,
  });
  const gateway = (config: Partial<Config>) =>
    createGateway({ config: { ...base, ...config }, bus, store, auth, logger });
  const gateways = Array.from(
    { length: options.gateways ?? 1 },
    (_, i) => gateway({ serverId: `${base.serverId}-gw${i}` }),
  );
  await bus.start();
  await processor.start();
  for (const g of gateways) await g.start();
  return {
    bus,
    store,
    processor,
    gateways,
    address: (i = 0) => `127.0.0.1:${gateways[i]!.grpcPort}`,
    async addGateway(config = {}) {
      const g = gateway({ serverId: `${base.serverId}-gw${gateways.length}`, ...config });
      gateways.push(g);
      await g.start();
      return g;
    },
    async stop() {
      // Servers stop whatever their clients are doing, as in production; clients a test left
      // open are closed afterwards, as its process would on exit.
      try {
        for (const g of gateways) await g.stop();
        await processor.stop();
        await bus.close();
        await store.close();
      } finally {
        closeClients();
      }
    },
  };
}

/** A test user: a client with an open stream that records what it receives. */
export interface TestUser {
  client: ChatClient;
  received: Message[];
  ended: { error?: ServiceError } | undefined;
  /** Content of received chat messages (not presence events), in order. */
  contents(): string[];
  close(): void;
}

export function connectUser(
  address: string,
  userId: string,
  options: StreamOptions & { client?: ChatClient } = {},
): TestUser {
  const client = options.client ?? newClient(address);
  const user: TestUser = {
    client,
    received: [],
    ended: undefined,
    contents: () => user.received.filter((m) => m.content !== "").map((m) => m.content),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
  const stream = client.stream(userId, (m) => user.received.push(m), (error) => {
    user.ended = { error };
  }, options);
  return user;
}

/** The password the tests sign in with. */
export const TEST_PASSWORD = "correct horse battery";

/**
 * `name` signed in on gateway `gateway` of `system` (the first sign-in creates the account), with a
 * stream open (`presenceEvents` by default), once the processor has them online.
 */
export async function signedInUser(
  system: System,
  name: string,
  { gateway = 0, presenceEvents = true }: { gateway?: number; presenceEvents?: boolean } = {},
): Promise<TestUser> {
  const client = newClient(system.address(gateway));
  await client.signIn(name, TEST_PASSWORD);
  const user = connectUser(system.address(gateway), name, { client, presenceEvents });
  await waitFor(
    () => system.processor.registry.presenceOf(name, "").online,
    5000,
    `${name} online`,
  );
  return user;
}

/** For `assert.rejects`: a gRPC error of status `code` whose details match `pattern`. */
export const refused =
  (code: number, pattern: RegExp) => (err: { code: number; details: string }) => {
    assert.equal(
      err.code,
      code,
      `${status[code]} expected, got ${status[err.code]}: ${err.details}`,
    );
    assert.match(err.details, pattern);
    return true;
  };
