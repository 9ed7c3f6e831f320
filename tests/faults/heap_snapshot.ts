// deno-lint-ignore-file no-console
/**
 * Reads V8 heap snapshots (from `inspector.ts` or Chrome DevTools) to find what a process keeps:
 *
 * - `summarize`: object count and shallow size per constructor. With two snapshots, the CLI
 *   prints what changed between them, largest first: a leak shows as a type whose count grows
 *   with the connections or streams served in between.
 * - `reachableWithout`: the heap reachable from the GC roots without passing through objects of
 *   some classes. The churn scenarios use it to leave out what Deno 2.9.3's `node:http2` keeps of
 *   every closed session (see `memory.ts`), and judge the rest.
 *
 *   deno run -A tests/faults/heap_snapshot.ts <before.heapsnapshot> [after.heapsnapshot] [top]
 *   deno run -A tests/faults/heap_snapshot.ts --without=Http2Session <a.heapsnapshot> [b.heapsnapshot]
 */

export interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export interface TypeFigures {
  count: number;
  bytes: number;
}

/** The snapshot's flat arrays, indexed. */
class Graph {
  readonly width: number;
  readonly count: number;
  readonly #typeAt: number;
  readonly #nameAt: number;
  readonly #sizeAt: number;
  readonly #edgeWidth: number;
  readonly #toAt: number;
  readonly #edgeTypeAt: number;
  readonly #weak: number;
  /** Index into `edges` of each node's first edge (and one past the last node's). */
  readonly #firstEdge: Uint32Array;

  constructor(readonly s: Snapshot) {
    const meta = s.snapshot.meta;
    this.width = meta.node_fields.length;
    this.count = s.nodes.length / this.width;
    this.#typeAt = meta.node_fields.indexOf("type");
    this.#nameAt = meta.node_fields.indexOf("name");
    this.#sizeAt = meta.node_fields.indexOf("self_size");
    this.#edgeWidth = meta.edge_fields.length;
    this.#toAt = meta.edge_fields.indexOf("to_node");
    this.#edgeTypeAt = meta.edge_fields.indexOf("type");
    this.#weak = meta.edge_types[0].indexOf("weak");
    const edgeCountAt = meta.node_fields.indexOf("edge_count");
    this.#firstEdge = new Uint32Array(this.count + 1);
    for (let i = 0, e = 0; i < this.count; i++) {
      this.#firstEdge[i] = e;
      e += s.nodes[i * this.width + edgeCountAt]! * this.#edgeWidth;
      this.#firstEdge[i + 1] = e;
    }
  }

  type(i: number): string {
    return this.s.snapshot.meta.node_types[0][this.s.nodes[i * this.width + this.#typeAt]!]!;
  }

  name(i: number): string {
    return this.s.strings[this.s.nodes[i * this.width + this.#nameAt]!]!;
  }

  size(i: number): number {
    return this.s.nodes[i * this.width + this.#sizeAt]!;
  }

  /** Nodes `i` holds strongly (weak edges do not keep anything alive). */
  *children(i: number): Generator<number> {
    for (let e = this.#firstEdge[i]!; e < this.#firstEdge[i + 1]!; e += this.#edgeWidth) {
      if (this.s.edges[e + this.#edgeTypeAt] === this.#weak) continue;
      yield this.s.edges[e + this.#toAt]! / this.width;
    }
  }

  /** `type:name` with the name left out where it is a value (strings, code, numbers). */
  key(i: number): string {
    const type = this.type(i);
    const byValue = ["string", "concatenated string", "sliced string", "code", "number"];
    return `${type}:${byValue.includes(type) ? "" : this.name(i).slice(0, 80)}`;
  }
}

function add(into: Map<string, TypeFigures>, key: string, bytes: number): void {
  const figures = into.get(key) ?? { count: 0, bytes: 0 };
  figures.count++;
  figures.bytes += bytes;
  into.set(key, figures);
}

/** Count and shallow size per `type:name` (the constructor's name for objects). */
export function summarize(snapshot: Snapshot): Map<string, TypeFigures> {
  const graph = new Graph(snapshot);
  const byType = new Map<string, TypeFigures>();
  for (let i = 0; i < graph.count; i++) add(byType, graph.key(i), graph.size(i));
  return byType;
}

export interface Reachable {
  /** Shallow sizes of everything reachable, summed. */
  bytes: number;
  objects: number;
  /** How many objects of the excluded classes were met (not counted, and not gone through). */
  excluded: number;
  byType: Map<string, TypeFigures>;
}

/**
 * What the GC roots hold without going through an object (type `object`) whose class is in
 * `classes`: neither those objects nor what only they hold is counted.
 */
export function reachableWithout(snapshot: Snapshot, classes: readonly string[]): Reachable {
  const graph = new Graph(snapshot);
  const cut = new Set(classes);
  const seen = new Uint8Array(graph.count);
  const queue = [0]; // node 0 is the synthetic root
  seen[0] = 1;
  const byType = new Map<string, TypeFigures>();
  let bytes = 0, excluded = 0;
  for (let head = 0; head < queue.length; head++) {
    const i = queue[head]!;
    if (graph.type(i) === "object" && cut.has(graph.name(i))) {
      excluded++;
      continue;
    }
    bytes += graph.size(i);
    add(byType, graph.key(i), graph.size(i));
    for (const child of graph.children(i)) {
      if (seen[child]) continue;
      seen[child] = 1;
      queue.push(child);
    }
  }
  return { bytes, objects: queue.length, excluded, byType };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;

function printChange(
  before: Map<string, TypeFigures>,
  after: Map<string, TypeFigures>,
  top: number,
) {
  const keys = new Set([...before.keys(), ...after.keys()]);
  const rows = [...keys].map((key) => {
    const a = before.get(key) ?? { count: 0, bytes: 0 };
    const b = after.get(key) ?? { count: 0, bytes: 0 };
    return { key, count: b.count - a.count, bytes: b.bytes - a.bytes, now: b.count };
  }).sort((a, b) => Math.abs(b.bytes) - Math.abs(a.bytes)).slice(0, top);
  for (const r of rows) {
    console.log(
      `${(r.bytes >= 0 ? "+" : "") + kib(r.bytes)} `.padStart(12) +
        `${(r.count >= 0 ? "+" : "") + r.count} (now ${r.now}) ${r.key}`,
    );
  }
}

if (import.meta.main) {
  const without = Deno.args.find((a) => a.startsWith("--without="))?.slice("--without=".length);
  const [first, second, topArg] = Deno.args.filter((a) => !a.startsWith("--"));
  if (!first) {
    console.error(
      "usage: heap_snapshot.ts [--without=Class,...] <before.heapsnapshot> [after.heapsnapshot] [top]",
    );
    Deno.exit(2);
  }
  const top = Number(topArg ?? 30);
  const load = async (path: string) => {
    const snapshot = JSON.parse(await Deno.readTextFile(path)) as Snapshot;
    if (!without) return summarize(snapshot);
    const r = reachableWithout(snapshot, without.split(","));
    console.log(`${path}: ${r.objects} objects, ${kib(r.bytes)} without ${r.excluded} ${without}`);
    return r.byType;
  };
  const before = await load(first);
  if (!second) {
    const rows = [...before].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top);
    for (const [key, f] of rows) console.log(`${kib(f.bytes).padStart(10)} ${f.count} ${key}`);
  } else {
    printChange(before, await load(second), top);
  }
}
