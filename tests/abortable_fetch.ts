/**
 * A `fetch` for in-process test clients whose aborts reach the server.
 *
 * Deno 2.9.3's fetch forgets an abort once the `Response` is unreachable and a garbage collection
 * has run: a client that keeps only the body's reader (as @protobuf-ts/grpcweb-transport and
 * @connectrpc/connect-web do) then aborts, and neither does its reader end nor does its
 * connection close, so the server keeps the stream and the user stays online
 * (tests/abortable_fetch_test.ts shows it). Browsers do not lose the abort, so the page needs no
 * help; a test client in this process does. Here the caller's own signal, which the caller keeps,
 * holds the listener that cancels the body, which closes the connection.
 */

export function abortableFetch(inner: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const signal = init?.signal ?? undefined;
    const response = await inner(input, init);
    if (!signal || !response.body) return response;
    const reader = response.body.getReader();
    let abort = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        abort = () => {
          controller.error(signal.reason);
          reader.cancel(signal.reason).catch(() => {});
        };
      },
      async pull(controller) {
        const { done, value } = await reader.read();
        if (signal.aborted) return; // Already errored by `abort`.
        if (done) {
          signal.removeEventListener("abort", abort);
          controller.close();
        } else controller.enqueue(value);
      },
      cancel(reason) {
        signal.removeEventListener("abort", abort);
        return reader.cancel(reason);
      },
    });
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}
