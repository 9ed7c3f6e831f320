/** Graceful shutdown: run the given steps once on SIGINT or SIGTERM, under a time limit. */

import { describeError } from "./errors.ts";
import type { Logger } from "./logger.ts";

export function onShutdownSignal(
  stop: () => Promise<void>,
  logger: Logger,
  timeoutMs: number,
): void {
  let stopping = false;
  const handler = (signal: Deno.Signal) => {
    if (stopping) return;
    stopping = true;
    logger.info(`Received ${signal}: shutting down`);
    const timer = setTimeout(() => {
      logger.error("Shutdown took too long; exiting");
      Deno.exit(1);
    }, timeoutMs);
    stop().then(
      () => {
        clearTimeout(timer);
        Deno.exit(0);
      },
      (err) => {
        logger.error("Shutdown failed", { error: describeError(err) });
        Deno.exit(1);
      },
    );
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => handler(signal));
  }
}

/** Logs unhandled rejections instead of dying, so one missed catch never takes a server down. */
export function guardUnhandled(logger: Logger): void {
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    logger.error("Unhandled promise rejection", { error: describeError(event.reason) });
  });
}
