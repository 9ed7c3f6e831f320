/**
 * The browser path's scenarios: the embedded gateway's HTTP port, loaded over binary gRPC-Web
 * (bench/web_load.ts), against its floor, a minimal `Deno.serve` fan-out server
 * (bench/web_floor.ts) under the same load from the same clients, in the same run.
 *
 * - `web-fanout`: the closed-loop fan-out of bench/scenarios.ts (`fanoutCost`) over gRPC-Web, the
 *   gateway, the floor and the same floor on node:http taking turns, each run in a fresh process:
 *   each server's CPU time per delivery, then an open-loop phase at a rate all keep up with, for
 *   latency;
 * - `web-idle`: resident memory per idle gRPC-Web stream (one connection each), gateway and floor.
 */

import {
  compareCost,
  costEntry,
  type CostRun,
  type CostSpec,
  type Entry,
  fanoutCost,
  idleComparison,
  type IdleSpec,
  type LatencyPhase,
} from "./scenarios.ts";
import { round } from "./stats.ts";
import { startEmbedded, startWebFloor, startWebNodeFloor, type SystemUnderTest } from "./system.ts";
import type { Say } from "./workload.ts";

export interface WebFanoutSpec extends CostSpec {
  latencyAt: LatencyPhase;
}

/** `start`'s system as the browser sees it: the load speaks gRPC-Web to its HTTP ports. */
function browserPath(start: () => Promise<SystemUnderTest>): () => Promise<SystemUnderTest> {
  return async () => {
    const system = await start();
    return { ...system, addresses: system.httpUrls };
  };
}

const SERVERS = {
  gateway: { start: browserPath(() => startEmbedded()), process: "embedded" },
  "web-floor": { start: browserPath(startWebFloor), process: "web-floor" },
  "web-node-floor": { start: browserPath(startWebNodeFloor), process: "web-node-floor" },
} as const;

/**
 * The gateway's browser path against the Deno.serve floor, and the same floor on node:http beside
 * them: CPU per delivery, and latency (the node:http floor's CPU only).
 */
export async function runWebFanout(spec: WebFanoutSpec, say: Say): Promise<Entry[]> {
  const c = await compareCost(
    spec.pairs,
    ["gateway", "web-floor", "web-node-floor"] as const,
    (server) =>
      fanoutCost(
        SERVERS[server].start,
        SERVERS[server].process,
        server,
        // The latency phase compares the gateway with the floor the target names.
        server === "web-node-floor" ? { ...spec, latencyAt: undefined } : spec,
        say,
      ),
  );
  const gateway = c.usPerDelivery("gateway");
  const floor = c.usPerDelivery("web-floor");
  const nodeFloor = c.usPerDelivery("web-node-floor");
  /** The open-loop phase of `server`'s last run. */
  const openLoop = (server: string) =>
    c.runs.findLast((r: CostRun) => r.setting === server)?.open_loop;
  const light = { gateway: openLoop("gateway"), floor: openLoop("web-floor") };
  return [{
    ...costEntry("web-fanout", spec, c.deliveriesPerSecond("gateway"), {
      cpu_us_per_delivery_gateway: round(gateway, 3),
      cpu_us_per_delivery_floor: round(floor, 3),
      ratio: round(gateway / floor, 3),
      deliveries_per_s_floor: c.deliveriesPerSecond("web-floor"),
      cpu_us_per_delivery_node_floor: round(nodeFloor, 3),
      deliveries_per_s_node_floor: c.deliveriesPerSecond("web-node-floor"),
      latency_rate: spec.latencyAt.rate,
      floor_e2e_ms: light.floor?.e2e_ms ?? null,
      runs: c.runs,
    }),
    // The table's latency columns: the gateway's, in the open-loop phase.
    rate: spec.latencyAt.rate,
    seconds: spec.latencyAt.seconds,
    e2e_ms: light.gateway?.e2e_ms ?? null,
    lost: (light.gateway?.lost ?? 0) + (light.floor?.lost ?? 0),
    duplicated: (light.gateway?.duplicated ?? 0) + (light.floor?.duplicated ?? 0),
  }];
}

/** Resident memory per idle gRPC-Web stream: the gateway's, and the Deno.serve floor's. */
export function runWebIdle(spec: IdleSpec, say: Say): Promise<Entry[]> {
  return idleComparison("web-idle", SERVERS.gateway.start, SERVERS["web-floor"], spec, say);
}
