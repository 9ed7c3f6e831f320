/**
 * The Message Processor on Kafka: consumer group `chatting-processor-group`.
 * Several may run at once; they share the partitions.
 */

import { describeConfig, loadConfig } from "./core/config.ts";
import { createLogger } from "./core/logger.ts";
import { guardUnhandled, onShutdownSignal, startOrExit } from "./core/shutdown.ts";
import { openBus } from "./bus/open_bus.ts";
import { createProcessor } from "./processor/processor.ts";
import { openStore } from "./store/open_store.ts";

export async function main(): Promise<void> {
  const config = { ...loadConfig(), bus: "kafka" as const };
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  guardUnhandled(logger);
  logger.info("Starting Message Processor", { config: describeConfig(config) });
  const bus = openBus(config, logger, () => Deno.exit(1));
  const store = await openStore(config, logger);
  const processor = createProcessor({ bus, store, logger, config });
  await bus.start();
  await processor.start();
  onShutdownSignal(
    async () => {
      await processor.stop();
      await bus.close();
      await store.close();
    },
    logger,
    config.shutdownTimeoutMs,
  );
}

if (import.meta.main) await startOrExit("processor", main);
