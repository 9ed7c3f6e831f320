/**
 * MAX_CONNECTION_AGE_MS: a gRPC connection gets a GOAWAY between 0.9 and 1.1 times the age after
 * it came, through its generation's injector (server/connection_age.ts), and open streams go on.
 */

import assert from "node:assert/strict";
import http2 from "node:http2";
import { type Duplex, PassThrough } from "node:stream";
import { AgedConnections, type ConnectionInjector } from "../server/connection_age.ts";
import { connectUser, startSystem, waitFor } from "./helpers.ts";

class FakeInjector implements ConnectionInjector {
  readonly connections: Duplex[] = [];
  destroyed = false;
  injectConnection(connection: Duplex): void {
    this.connections.push(connection);
  }
  destroy(): void {
    this.destroyed = true;
  }
}

Deno.test("a generation is closed once its first connection is the age old; a new one starts every tenth of it", () => {
  let now = 0;
  const injectors: FakeInjector[] = [];
  const aged = new AgedConnections(
    () => {
      const injector = new FakeInjector();
      injectors.push(injector);
      return injector;
    },
    1000,
    () => now,
  );
  try {
    aged.inject(new PassThrough());
    now = 99;
    aged.inject(new PassThrough());
    now = 100;
    aged.inject(new PassThrough());
    assert.deepEqual(injectors.map((i) => i.connections.length), [2, 1]);
    now = 999;
    aged.check();
    assert.deepEqual(injectors.map((i) => i.destroyed), [false, false]);
    now = 1000;
    aged.check();
    assert.deepEqual(injectors.map((i) => i.destroyed), [true, false]);
    // A connection coming now joins the newest generation, which is younger than a tenth.
    now = 1050;
    aged.inject(new PassThrough());
    assert.equal(injectors.length, 3, "the newest was 950 ms old: a new generation");
    now = 1100;
    aged.check();
    assert.deepEqual(injectors.map((i) => i.destroyed), [true, true, false]);
    assert.equal(aged.generations, 1);
  } finally {
    aged.stop();
  }
});

Deno.test("MAX_CONNECTION_AGE_MS: an old connection gets a GOAWAY and its open stream goes on", async () => {
  const system = await startSystem({ config: { maxConnectionAgeMs: 600 } });
  const reader = connectUser(system.address(), "reader");
  const writer = connectUser(system.address(), "writer");
  const session = http2.connect(`http://${system.address()}`);
  try {
    const opened = performance.now();
    const goaway = new Promise<number>((resolve) => {
      session.on("goaway", () => resolve(performance.now() - opened));
      session.on("error", () => {});
    });
    await waitFor(() => system.processor.registry.online().length === 2, 5000, "both online");
    const after = await goaway;
    assert.ok(after >= 500 && after < 2000, `GOAWAY ${Math.round(after)} ms after connecting`);
    await writer.client.send("writer", "after the GOAWAY");
    await waitFor(() => reader.contents().includes("after the GOAWAY"), 5000, "the message");
    assert.equal(reader.ended, undefined, "the reader's stream is still open");
  } finally {
    session.destroy();
    reader.close();
    writer.close();
    await system.stop();
  }
});
