// deno-lint-ignore-file no-console
// Connection churn as an ordinary Node.js @grpc/grpc-js application makes it: every round makes a
// new client (its own HTTP/2 connection), does one thing on it and then calls `client.close()`,
// which sends GOAWAY. Run with Node, not Deno: the point is a client the project did not write.
//
//   node tests/faults/clients/grpc_js_churn.mjs <host:port> <rounds> <concurrency> \
//     <unary|stream|mixed> [user-prefix]
//
// - unary: ListOnline.
// - stream: CreateStream as `<user-prefix>-<round>`; once the response headers came (the gateway
//   sends them when the stream is registered), ListOnline on the same connection while the stream
//   is open, then the stream is cancelled.
// - mixed: even rounds unary, odd rounds stream.
//
// A distinct user-prefix per run makes every streaming user new to the gateway, so that state kept
// per user who ever connected shows as growth.
//
// Prints `churned {"rounds":..,"ok":..,"failed":..,"errors":{..}}` and exits 0; a round whose call
// fails is counted, not fatal (the scenario decides what is acceptable).
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [server, roundsArg = "1000", concurrencyArg = "10", mode = "mixed", prefix = "churn-node"] =
  process.argv.slice(2);
const rounds = Number(roundsArg);
const concurrency = Number(concurrencyArg);
if (
  !server || !(rounds >= 0) || !(concurrency >= 1) || !["unary", "stream", "mixed"].includes(mode)
) {
  console.error(
    "usage: grpc_js_churn.mjs <host:port> <rounds> <concurrency> <unary|stream|mixed> [user-prefix]",
  );
  process.exit(2);
}

const protoDir = fileURLToPath(new URL("../../../proto/", import.meta.url));
const definition = protoLoader.loadSync("chat.proto", { includeDirs: [protoDir], keepCase: true });
const { Broadcast } = grpc.loadPackageDefinition(definition).chat;

const DEADLINE_MS = 10_000;
const errors = {};
let ok = 0, failed = 0;
const fail = (why) => {
  failed++;
  errors[why] = (errors[why] ?? 0) + 1;
};
// With AUTH=on an anonymous call is refused, which still exercises the connection.
const accepted = (error) => !error || error.code === grpc.status.UNAUTHENTICATED;

function listOnline(client) {
  return new Promise((resolve) => {
    client.ListOnline({}, { deadline: Date.now() + DEADLINE_MS }, (error) => resolve(error));
  });
}

async function unary(client) {
  const error = await listOnline(client);
  if (accepted(error)) ok++;
  else fail(`ListOnline ${error.code}`);
}

function stream(client, i) {
  return new Promise((resolve) => {
    const call = client.CreateStream({ user: { id: `${prefix}-${i}` }, active: true });
    let settled = false;
    const done = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (why) fail(why);
      else ok++;
      call.cancel();
      resolve();
    };
    const timer = setTimeout(() => done("stream: no headers in 10 s"), DEADLINE_MS);
    call.on("metadata", async () => {
      const error = await listOnline(client);
      done(accepted(error) ? undefined : `ListOnline beside a stream ${error.code}`);
    });
    call.on("data", () => {});
    call.on("error", (error) => {
      if (settled && error.code === grpc.status.CANCELLED) return;
      done(accepted(error) ? undefined : `CreateStream ${error.code}`);
    });
  });
}

let next = 0;
async function worker() {
  while (next < rounds) {
    const i = next++;
    // A local subchannel pool: grpc-js would otherwise share one connection among clients of the
    // same target, and there would be no churn.
    const client = new Broadcast(server, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    try {
      const kind = mode === "mixed" ? (i % 2 === 0 ? "unary" : "stream") : mode;
      if (kind === "unary") await unary(client);
      else await stream(client, i);
    } catch (error) {
      fail(String(error?.name ?? error));
    } finally {
      client.close();
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
console.log(`churned ${JSON.stringify({ rounds, ok, failed, errors })}`);
