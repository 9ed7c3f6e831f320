// deno-lint-ignore-file no-console
/**
 * Misbehaving stream clients for the fault scenarios, each in its own process:
 *
 * - `churn <server> <perSecond> <seconds> <holdMs> [userPrefix]`: opens a stream `perSecond`
 *   times a second for `seconds`, each on its own connection, held `holdMs`, cancelled, and its
 *   client closed; prints `churned {"opened":..,"failed":..}` and exits.
 * - `stall <server> <user>`: opens a stream and stops reading it; prints `open`, then waits.
 * - `read <server> <user>`: opens a stream and reads it; prints `open`, then waits.
 */

import { ChatClient } from "../../client/chat_client.ts";

function openStream(
  client: ChatClient,
  user: string,
  onEnd: (error?: Error) => void,
): { opened: Promise<void>; cancel(): void; pause(): void } {
  const stream = client.stream(user, () => {}, onEnd);
  const opened = new Promise<void>((resolve, reject) => {
    stream.call.on("metadata", () => resolve());
    stream.call.on("error", reject);
  });
  return {
    opened,
    cancel: () => stream.cancel(),
    // grpc-js reads the HTTP/2 stream only while the call flows: paused, flow control makes the
    // gateway's writes queue up.
    pause: () => stream.call.pause(),
  };
}

/**
 * Streams open and close as short-lived client programs make them: each comes with its own client
 * (its own connection), which is closed (GOAWAY) once the stream was cancelled. Users are named
 * `<userPrefix>-<i>`: a prefix new to the gateway makes every user new to it.
 */
async function churn(
  server: string,
  perSecond: number,
  seconds: number,
  holdMs: number,
  userPrefix: string,
) {
  let opened = 0, failed = 0;
  const running = new Set<Promise<void>>();
  const start = performance.now();
  for (let i = 0; i < perSecond * seconds; i++) {
    const wait = start + (i * 1000) / perSecond - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const one = (async () => {
      // A local subchannel pool: grpc-js would otherwise share one connection among clients.
      const client = new ChatClient(server, undefined, { "grpc.use_local_subchannel_pool": 1 });
      const s = openStream(client, `${userPrefix}-${i}`, () => {});
      try {
        await s.opened;
        opened++;
        await new Promise((r) => setTimeout(r, holdMs));
      } catch {
        failed++;
      } finally {
        s.cancel();
        client.close();
      }
    })();
    running.add(one);
    one.finally(() => running.delete(one));
  }
  await Promise.all(running);
  console.log(`churned ${JSON.stringify({ opened, failed })}`);
}

async function hold(server: string, user: string, read: boolean) {
  const client = new ChatClient(server, undefined, { "grpc.use_local_subchannel_pool": 1 });
  const s = openStream(client, user, (error) => {
    console.log(`ended ${error?.message ?? "without an error"}`);
  });
  await s.opened;
  if (!read) s.pause();
  console.log("open");
  await new Promise(() => {});
}

if (import.meta.main) {
  const [mode, server, ...rest] = Deno.args;
  if (mode === "churn") {
    await churn(server!, Number(rest[0]), Number(rest[1]), Number(rest[2]), rest[3] ?? "churn");
    Deno.exit(0);
  } else if (mode === "stall" || mode === "read") {
    await hold(server!, rest[0]!, mode === "read");
  } else {
    console.error("usage: stream_clients.ts churn|stall|read <server> ...");
    Deno.exit(2);
  }
}
