/**
 * Byte helpers of our own: @std/bytes has them, but only on JSR, which this project cannot reach.
 */

/** `chunks` joined into one array, cut at `limit` bytes. */
export function concat(
  chunks: readonly Uint8Array[],
  limit = Number.POSITIVE_INFINITY,
): Uint8Array<ArrayBuffer> {
  const total = Math.min(limit, chunks.reduce((n, c) => n + c.length, 0));
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    if (at >= total) break;
    const part = c.subarray(0, total - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}
