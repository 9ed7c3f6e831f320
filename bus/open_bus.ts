/** Picks the bus adapter the configuration asks for. */

import { ALL_TOPICS, type Config } from "../core/config.ts";
import type { Logger } from "../core/logger.ts";
import type { Bus } from "./bus.ts";
import { KafkaBus } from "./kafka_bus.ts";
import { MemoryBus } from "./memory_bus.ts";

export function openBus(config: Config, logger: Logger): Bus {
  if (config.bus === "kafka") {
    return new KafkaBus({
      brokers: config.kafkaBrokers,
      clientId: config.kafkaClientId,
      topics: ALL_TOPICS,
      logger: logger.with({ component: "kafka" }),
    });
  }
  return new MemoryBus({ topics: ALL_TOPICS, logger });
}
