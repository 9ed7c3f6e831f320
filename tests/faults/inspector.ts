/**
 * Looks into the JavaScript heap of a Deno process started with `--inspect=127.0.0.1:<port>`,
 * over the V8 inspector protocol: a full garbage collection, the heap and RSS figures after it,
 * and heap snapshots. The gateway needs no test-only code for this; the churn scenarios use it
 * to judge retained JavaScript objects rather than RSS, which the allocator and V8's heap sizing
 * move on their own.
 */

export interface MemoryFigures {
  /** V8 heap in use after a full collection, bytes. */
  heapUsed: number;
  /** V8 heap reserved, bytes. */
  heapTotal: number;
  /** Memory outside the V8 heap that JS objects hold (ArrayBuffers and the like), bytes. */
  external: number;
  /** Resident set size, bytes. */
  rss: number;
}

export interface Inspector {
  /** Runs a full, compacting garbage collection. */
  collectGarbage(): Promise<void>;
  /** `Deno.memoryUsage()` of the process right after two full collections. */
  memoryAfterGc(): Promise<MemoryFigures>;
  /** Evaluates `expression` in the process's main realm and returns its value (JSON-able). */
  evaluate<T>(expression: string): Promise<T>;
  /** A heap snapshot as JSON text (taking one collects garbage first). */
  takeHeapSnapshot(): Promise<string>;
  /** Writes a heap snapshot (`.heapsnapshot`, for Chrome DevTools or `heap_snapshot.ts`). */
  writeHeapSnapshot(path: string): Promise<void>;
  close(): void;
}

interface Reply {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/** Connects to the inspector listening on `127.0.0.1:port` (waits up to `timeoutMs` for it). */
export async function connectInspector(port: number, timeoutMs = 30_000): Promise<Inspector> {
  const deadline = Date.now() + timeoutMs;
  let url: string | undefined;
  while (url === undefined) {
    try {
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
        webSocketDebuggerUrl: string;
      }[];
      url = targets[0]?.webSocketDebuggerUrl;
    } catch {
      // Not listening yet.
    }
    if (url === undefined) {
      if (Date.now() > deadline) throw new Error(`no inspector on 127.0.0.1:${port}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = (e) => reject(new Error(`inspector socket: ${(e as ErrorEvent).message}`));
  });
  let nextId = 1;
  const waiting = new Map<number, { resolve(r: Reply): void; reject(e: Error): void }>();
  const listeners = new Map<string, (params: Record<string, unknown>) => void>();
  socket.onmessage = (event) => {
    const reply = JSON.parse(event.data as string) as Reply;
    if (reply.id !== undefined) {
      const w = waiting.get(reply.id);
      waiting.delete(reply.id);
      if (reply.error) w?.reject(new Error(`inspector: ${reply.error.message}`));
      else w?.resolve(reply);
    } else if (reply.method) {
      listeners.get(reply.method)?.(reply.params ?? {});
    }
  };
  socket.onclose = () => {
    for (const w of waiting.values()) w.reject(new Error("inspector socket closed"));
    waiting.clear();
  };
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Reply>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  const evaluate = async <T>(expression: string): Promise<T> => {
    const reply = await call("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    const result = reply.result as { result: { value: T }; exceptionDetails?: { text: string } };
    if (result.exceptionDetails) throw new Error(`evaluate: ${result.exceptionDetails.text}`);
    return result.result.value;
  };
  const collectGarbage = async () => {
    await call("HeapProfiler.collectGarbage");
  };
  return {
    collectGarbage,
    evaluate,
    async memoryAfterGc() {
      // The second collection frees what finalizers and weak callbacks of the first let go.
      await collectGarbage();
      await collectGarbage();
      return await evaluate<MemoryFigures>(
        "(({ heapUsed, heapTotal, external, rss }) => ({ heapUsed, heapTotal, external, rss }))(Deno.memoryUsage())",
      );
    },
    async takeHeapSnapshot() {
      const chunks: string[] = [];
      listeners.set("HeapProfiler.addHeapSnapshotChunk", (params) => {
        chunks.push(params.chunk as string);
      });
      try {
        await call("HeapProfiler.enable");
        // The reply comes after the last chunk.
        await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      } finally {
        listeners.delete("HeapProfiler.addHeapSnapshotChunk");
      }
      return chunks.join("");
    },
    async writeHeapSnapshot(path) {
      const file = await Deno.open(path, { write: true, create: true, truncate: true });
      // A stream writer queues the chunks in order and writes each one whole.
      const writer = file.writable.getWriter();
      const encoder = new TextEncoder();
      listeners.set("HeapProfiler.addHeapSnapshotChunk", (params) => {
        writer.write(encoder.encode(params.chunk as string)).catch(() => {});
      });
      try {
        await call("HeapProfiler.enable");
        await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      } finally {
        listeners.delete("HeapProfiler.addHeapSnapshotChunk");
        await writer.close();
      }
    },
    close() {
      socket.close();
    },
  };
}
