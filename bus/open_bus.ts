/** Picks the bus adapter the configuration asks for. */

import type { KafkaConfig } from "kafkajs";
import type { Config } from "../core/config.ts";
import { readSettingFile } from "../core/settings.ts";
import type { Logger } from "../core/logger.ts";
import type { Metrics } from "../core/metrics.ts";
import type { Bus } from "./bus.ts";
import { KafkaBus } from "./kafka/kafka_bus.ts";
import { MemoryBus } from "./memory_bus.ts";

export interface KafkaSecurity {
  ssl?: Exclude<KafkaConfig["ssl"], boolean>;
  sasl?: Extract<KafkaConfig["sasl"], { mechanism: "plain" | "scram-sha-256" | "scram-sha-512" }>;
}

/**
 * The kafkajs `ssl` and `sasl` options of `config` (the `KAFKA_SSL*` and `KAFKA_SASL_*`
 * settings); the PEM files are read with `readFile`. Neither is set when not configured.
 */
export function kafkaSecurity(
  config: Pick<
    Config,
    | "kafkaSsl"
    | "kafkaSslCaFile"
    | "kafkaSslCertFile"
    | "kafkaSslKeyFile"
    | "kafkaSslRejectUnauthorized"
    | "kafkaSaslMechanism"
    | "kafkaSaslUsername"
    | "kafkaSaslPassword"
  >,
  readFile: (path: string) => string = Deno.readTextFileSync,
): KafkaSecurity {
  const security: KafkaSecurity = {};
  if (config.kafkaSsl) {
    const ssl: NonNullable<KafkaSecurity["ssl"]> = {
      rejectUnauthorized: config.kafkaSslRejectUnauthorized,
    };
    if (config.kafkaSslCaFile) {
      ssl.ca = [readSettingFile("KAFKA_SSL_CA_FILE", config.kafkaSslCaFile, readFile)];
    }
    if (config.kafkaSslCertFile && config.kafkaSslKeyFile) {
      ssl.cert = readSettingFile("KAFKA_SSL_CERT_FILE", config.kafkaSslCertFile, readFile);
      ssl.key = readSettingFile("KAFKA_SSL_KEY_FILE", config.kafkaSslKeyFile, readFile);
    }
    security.ssl = ssl;
  }
  if (config.kafkaSaslMechanism) {
    security.sasl = {
      mechanism: config.kafkaSaslMechanism,
      username: config.kafkaSaslUsername ?? "",
      password: config.kafkaSaslPassword ?? "",
    } as NonNullable<KafkaSecurity["sasl"]>;
  }
  return security;
}

/**
 * The bus `config` asks for. `onFatal` is called when the Kafka cluster can never honour a
 * setting (see `KafkaBusOptions.onFatal`); the entry points exit on it. Kafka counts its produce
 * requests and consumer lag into `metrics`.
 */
export function openBus(
  config: Config,
  logger: Logger,
  onFatal?: (error: Error) => void,
  metrics?: Metrics,
): Bus {
  if (config.bus === "kafka") {
    const { ssl, sasl } = kafkaSecurity(config);
    if (sasl && !ssl) {
      logger.warn(
        "KAFKA_SASL_MECHANISM without KAFKA_SSL=true: Kafka traffic (with plain, the password too) is unencrypted",
      );
    }
    return KafkaBus.connect({
      brokers: config.kafkaBrokers,
      clientId: config.kafkaClientId,
      logEpoch: config.kafkaLogEpoch,
      logger: logger.with({ component: "kafka" }),
      replication: {
        replicationFactor: config.kafkaReplicationFactor,
        minInsyncReplicas: config.kafkaMinInsyncReplicas,
      },
      ...(onFatal ? { onFatal } : {}),
      ...(metrics ? { metrics } : {}),
      ...(ssl ? { ssl } : {}),
      ...(sasl ? { sasl } : {}),
    });
  }
  return new MemoryBus({ logger });
}
