/** Picks the store adapter from the configuration: PostgreSQL when a URL is set, else SQLite. */

import type { Config } from "../core/config.ts";
import { scrubUrlSecrets, UNPARSEABLE_URL } from "../core/url_secrets.ts";
import { describeError } from "../core/errors.ts";
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
    const url = config.databaseUrl;
    try {
      new URL(url);
    } catch {
      // The driver's own message would quote the whole URL, password and all.
      throw new Error(
        `Cannot open the PostgreSQL store: DATABASE_URL is not a valid URL (${UNPARSEABLE_URL}); percent-encode the special characters of its password ("/" "?" "#" "@" as %2F %3F %23 %40)`,
      );
    }
    let store: PostgresStore;
    try {
      store = await PostgresStore.open(url, { logger: logger.with({ store: "postgres" }) });
    } catch (err) {
      // A driver's message may quote the URL or part of it.
      throw new Error(scrubUrlSecrets(describeError(err), url));
    }
    logger.info("Opened the PostgreSQL store", { url: redactUrl(url) });
    return store;
  }
  const store = await SqliteStore.open(config.databasePath, {
    logger: logger.with({ store: "sqlite" }),
  });
  logger.info("Opened the SQLite store", { path: config.databasePath });
  return store;
}
