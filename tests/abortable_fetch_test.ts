/**
 * Why tests/abortable_fetch.ts exists, and that it works: Deno 2.9.3's fetch loses an abort once
 * the `Response` has been collected, and the wrapper does not. When the first test fails, Deno's
 * fetch keeps aborts by itself: drop the wrapper and this file.
 */

import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { setTimeout as sleep } from "node:timers/promises";
import { abortableFetch } from "./abortable_fetch.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

/** A server whose one response streams a byte every 100 ms until the client goes. */
function streamingServer() {
  const closed = Promise.withResolvers<void>();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
    let timer: ReturnType<typeof setInterval> | undefined;
    return new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(new Uint8Array([1]));
          timer = setInterval(() => c.enqueue(new Uint8Array([2])), 100);
        },
        cancel() {
          clearInterval(timer);
          closed.resolve();
        },
      }),
    );
  });
  return { url: `http://127.0.0.1:${server.addr.port}/`, closed: closed.promise, server };
}

/** Reads one chunk keeping only the reader (as gRPC-Web clients do), collects garbage, aborts. */
async function abortAfterCollection(fetcher: typeof fetch) {
  const { url, closed, server } = streamingServer();
  const abort = new AbortController();
  const reader = (await fetcher(url, { signal: abort.signal })).body!.getReader();
  await reader.read();
  gc();
  await sleep(10);
  gc();
  abort.abort();
  const within = (p: Promise<unknown>) =>
    Promise.race([p.then(() => true, () => true), sleep(1000).then(() => false)]);
  const readerEnded = await within((async () => {
    while (!(await reader.read()).done);
  })());
  const serverSawClose = await within(closed);
  await reader.cancel().catch(() => {});
  await server.shutdown();
  return { readerEnded, serverSawClose };
}

Deno.test("Deno's fetch loses an abort once the Response is collected (the reason for abortableFetch)", async () => {
  assert.deepEqual(await abortAfterCollection(fetch), {
    readerEnded: false,
    serverSawClose: false,
  });
});

Deno.test("abortableFetch keeps the abort: the reader ends and the server sees the connection close", async () => {
  assert.deepEqual(await abortAfterCollection(abortableFetch()), {
    readerEnded: true,
    serverSawClose: true,
  });
});
