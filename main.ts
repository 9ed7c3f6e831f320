/**
 * The gateway. With `BUS=memory` (the default, `deno task start`) it also runs
 * the processor in the same process; with `BUS=kafka` (`deno task server`) it
 * is one of many gateways on a Kafka cluster.
 */

import { describeConfig, loadConfig } from "./core/config.ts";
import { createLogger } from "./core/logger.ts";
import { guardUnhandled, onShutdownSignal, startOrExit } from "./core/shutdown.ts";
import { openBus } from "./bus/open_bus.ts";
import { createGateway } from "./server/gateway.ts";
import { createProcessor } from "./processor/processor.ts";
import { openStore } from "./store/open_store.ts";
import { measuredStore } from "./store/measured_store.ts";
import { createMetrics } from "./core/metrics.ts";
import { createAuth, loadAuthSecret } from "./server/auth.ts";
import { checkDenoRelease } from "./core/runtime_guard.ts";

export async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  guardUnhandled(logger);
  logger.info(`Starting gateway ${config.serverId}`, { config: describeConfig(config) });
  const unsafe = checkDenoRelease(Deno.version.deno, config.allowUnsafeDeno);
  if (unsafe) logger.warn(unsafe);
  // One registry: in embedded mode the processor's metrics are served on the gateway's HTTP port.
  const metrics = createMetrics(config.metrics);
  const bus = openBus(config, logger, () => Deno.exit(1), metrics);
  const embedded = config.bus === "memory";
  const store = measuredStore(await openStore(config, logger), metrics);
  const auth = createAuth({
    mode: config.auth,
    secret: await loadAuthSecret(config, logger),
    store,
    logger,
    tokenTtlSeconds: config.tokenTtlSeconds,
    limits: config,
  });
  if (config.auth === "off") {
    logger.warn("AUTH=off: anyone can connect and send as any user id (classic mode)");
  }
  const processor = embedded
    ? createProcessor({
      bus,
      store,
      logger: logger.with({ component: "processor" }),
      config,
      metrics,
    })
    : undefined;
  const gateway = createGateway({ config, bus, store, auth, logger, metrics });
  await bus.start();
  await processor?.start();
  await gateway.start();
  if (embedded) {
    logger.info(
      `Embedded mode: gateway and processor in one process on the memory bus. Chat with: deno task client <name> --server ${config.grpcHost}:${gateway.grpcPort}${
        config.tlsCertFile ? ` --ca ${config.tlsCertFile}` : ""
      }`,
    );
  }
  onShutdownSignal(
    async () => {
      await gateway.stop();
      await processor?.stop();
      await bus.close();
      await store?.close();
    },
    logger,
    config.shutdownTimeoutMs,
  );
}

if (import.meta.main) await startOrExit("gateway", main);
