// deno-lint-ignore-file no-console
/**
 * Tells per-stream memory from per-connection memory: opens N idle streams to a running gateway
 * over C connections and holds them; compare the gateway's VmRSS before and after for C = 10 and
 * C = N (docs/benchmarks.md, "Where the time and memory go").
 *
 * ```sh
 * deno run -A bench/idle_probe.ts 127.0.0.1:8081 2000 10
 * ```
 */

import { ChatClient } from "../client/chat_client.ts";

const [server, streamsArg, connectionsArg] = Deno.args;
const streams = Number(streamsArg);
const connections = Number(connectionsArg);
if (!server || !(streams > 0) || !(connections > 0)) {
  console.error("usage: idle_probe.ts <host:port> <streams> <connections>");
  Deno.exit(2);
}
const clients = Array.from(
  { length: connections },
  () => new ChatClient(server, undefined, { "grpc.use_local_subchannel_pool": 1 }),
);
let open = 0;
for (let i = 0; i < streams; i++) {
  const stream = clients[i % connections]!.stream(`idle-${i}`, () => {}, () => {});
  stream.call.on("metadata", () => open++);
  // Give the gateway room to answer: a burst of thousands of opens only measures queueing.
  if (i % 200 === 199) await new Promise((r) => setTimeout(r, 50));
}
while (open < streams) await new Promise((r) => setTimeout(r, 100));
console.log(`open ${open} streams over ${connections} connections; Ctrl-C to close them`);
await new Promise(() => {});
