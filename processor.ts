/**
 * The Message Processor on Kafka: consumer group `chatting-processor-group`.
 * Several may run at once; they share the partitions. Its metrics are served at
 * `http://HTTP_HOST:METRICS_PORT/metrics` (it has no other HTTP port).
 */

import { describeConfig, loadConfig } from "./core/config.ts";
import { describeError } from "./core/errors.ts";
import { createLogger } from "./core/logger.ts";
import { guardUnhandled, onShutdownSignal, startOrExit } from "./core/shutdown.ts";
import { openBus } from "./bus/open_bus.ts";
import { createProcessor } from "./processor/processor.ts";
import { openStore } from "./store/open_store.ts";
import { measuredStore } from "./store/measured_store.ts";
import { createMetrics, type MetricsServer, serveMetrics } from "./core/metrics.ts";

export async function main(): Promise<void> {
  const config = { ...loadConfig(), bus: "kafka" as const };
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  guardUnhandled(logger);
  logger.info("Starting Message Processor", { config: describeConfig(config) });
  const metrics = createMetrics(config.metrics);
  const bus = openBus(config, logger, () => Deno.exit(1), metrics);
  const store = measuredStore(await openStore(config, logger), metrics);
  const processor = createProcessor({ bus, store, logger, config, metrics });
  let metricsServer: MetricsServer | undefined;
  if (metrics.enabled) {
    // Processing matters more than its metrics: a taken port is reported (and the scrape
    // target shows down), the processor runs on.
    metricsServer = await serveMetrics(metrics, config.httpHost, config.metricsPort).catch(
      (err) => {
        logger.error(`${describeError(err)}; running without /metrics`);
        return undefined;
      },
    );
    if (metricsServer) {
      logger.info("Serving metrics", {
        url: `http://${config.httpHost}:${metricsServer.port}/metrics`,
      });
    }
  }
  await bus.start();
  await processor.start();
  onShutdownSignal(
    async () => {
      await processor.stop();
      await metricsServer?.close();
      await bus.close();
      await store.close();
    },
    logger,
    config.shutdownTimeoutMs,
  );
}

if (import.meta.main) await startOrExit("processor", main);
