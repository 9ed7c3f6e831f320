// deno-lint-ignore-file no-console
/**
 * Connection churn at the HTTP/2 frame level, written by hand so that nothing of an HTTP/2
 * library decides what goes on the wire: each round opens a TCP connection, sends the client
 * preface and an empty SETTINGS frame, acknowledges the server's SETTINGS, then sends GOAWAY
 * (last stream 0, NO_ERROR) on the idle session, which never had a stream, and closes. Even
 * rounds close right after the GOAWAY; odd rounds first wait (at most 2 s) for the server to
 * close its side, as a polite peer would.
 *
 *   deno run -A tests/faults/clients/h2_goaway_churn.ts <host:port> <rounds> <concurrency>
 *
 * Prints `churned {"rounds":..,"ok":..,"failed":..,"serverClosed":..,"errors":{..}}` and exits 0;
 * a round is ok when the server's SETTINGS came and the GOAWAY was written.
 */

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const SETTINGS = 0x4;
const GOAWAY = 0x7;
const ACK = 0x1;

/** One HTTP/2 frame: 9-byte header (length, type, flags, stream id) and its payload. */
function frame(type: number, flags: number, payload: Uint8Array = new Uint8Array()): Uint8Array {
  const bytes = new Uint8Array(9 + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, payload.length << 8); // 24-bit length, then the type byte overwritten below
  bytes[3] = type;
  bytes[4] = flags;
  view.setUint32(5, 0); // stream 0: connection-level frames
  bytes.set(payload, 9);
  return bytes;
}

/** GOAWAY payload: last stream id 0 (none was opened), error code NO_ERROR. */
const goaway = frame(GOAWAY, 0, new Uint8Array(8));
const hello = new Uint8Array([...PREFACE, ...frame(SETTINGS, 0)]);
const settingsAck = frame(SETTINGS, ACK);

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** Reads frames until the server's own SETTINGS (not an ack) has come; false on EOF. */
async function awaitServerSettings(conn: Deno.Conn): Promise<boolean> {
  let buffered = new Uint8Array();
  const chunk = new Uint8Array(16 * 1024);
  while (true) {
    while (buffered.length >= 9) {
      const length = (buffered[0]! << 16) | (buffered[1]! << 8) | buffered[2]!;
      if (buffered.length < 9 + length) break;
      const [type, flags] = [buffered[3]!, buffered[4]!];
      buffered = buffered.slice(9 + length);
      if (type === SETTINGS && (flags & ACK) === 0) return true;
    }
    const n = await conn.read(chunk);
    if (n === null) return false;
    buffered = new Uint8Array([...buffered, ...chunk.subarray(0, n)]);
  }
}

/** Reads and discards until the server closes; false when it did not within `ms`. */
async function awaitServerClose(conn: Deno.Conn, ms: number): Promise<boolean> {
  const chunk = new Uint8Array(16 * 1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  const drained = (async () => {
    while ((await conn.read(chunk)) !== null) { /* discard */ }
    return true;
  })().catch(() => true);
  try {
    return await Promise.race([drained, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

if (import.meta.main) {
  const [server, roundsArg = "1000", concurrencyArg = "10"] = Deno.args;
  const [hostname, portText] = (server ?? "").split(":");
  if (!hostname || !portText) {
    console.error("usage: h2_goaway_churn.ts <host:port> <rounds> <concurrency>");
    Deno.exit(2);
  }
  const rounds = Number(roundsArg);
  const concurrency = Number(concurrencyArg);
  const errors: Record<string, number> = {};
  let ok = 0, failed = 0, serverClosed = 0;
  const fail = (why: string) => {
    failed++;
    errors[why] = (errors[why] ?? 0) + 1;
  };

  const round = async (i: number) => {
    let conn: Deno.Conn | undefined;
    try {
      conn = await Deno.connect({ hostname, port: Number(portText) });
      await writeAll(conn, hello);
      if (!(await awaitServerSettings(conn))) return fail("closed before its SETTINGS");
      await writeAll(conn, settingsAck);
      await writeAll(conn, goaway);
      ok++;
      if (i % 2 === 1 && await awaitServerClose(conn, 2000)) serverClosed++;
    } catch (err) {
      fail(err instanceof Error ? err.name : String(err));
    } finally {
      try {
        conn?.close();
      } catch {
        // The server closed it first.
      }
    }
  };

  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < rounds) await round(next++);
  }));
  console.log(`churned ${JSON.stringify({ rounds, ok, failed, serverClosed, errors })}`);
}
