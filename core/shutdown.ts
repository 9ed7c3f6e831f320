/** Graceful shutdown: run the given steps once on SIGINT or SIGTERM, under a time limit. */

import { describeError } from "./errors.ts";
import { createLogger, type Logger } from "./logger.ts";

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

/**
 * Runs a service's start-up. If it fails (a setting, the database, a refused runtime), says what
 * failed and exits with status 1: a supervisor must see a failed start, never exit 0. The error
 * is caught here rather than left to the runtime because `guardUnhandled` keeps rejections from
 * ending the process.
 */
export async function startOrExit(
  service: string,
  start: () => Promise<void>,
  logger: Logger = createLogger(),
): Promise<void> {
  try {
    await start();
  } catch (error) {
    logger.error(`Cannot start the ${service}: ${describeError(error)}`);
    Deno.exit(1);
  }
}
