/** Picks the store adapter from the configuration: PostgreSQL when a URL is set, else SQLite. */

import type { Config } from "../core/config.ts";
import type { Logger } from "../core/logger.ts";
import type { Store } from "./store.ts";
import { PostgresStore, redactUrl } from "./postgres_store.ts";
import { SqliteStore } from "./sqlite_store.ts";

/** Opens the store: PostgreSQL at `databaseUrl` when it is set, otherwise SQLite at `databasePath`. */
export async function openStore(
  config: Pick<Config, "databasePath" | "databaseUrl">,
  logger: Logger,
): Promise<Store> {
  if (config.databaseUrl) {
    const store = await PostgresStore.open(config.databaseUrl, {
      logger: logger.with({ store: "postgres" }),
    });
    logger.info("Opened the PostgreSQL store", { url: redactUrl(config.databaseUrl) });
    return store;
  }
  const store = await SqliteStore.open(config.databasePath, {
    logger: logger.with({ store: "sqlite" }),
  });
  logger.info("Opened the SQLite store", { path: config.databasePath });
  return store;
}
