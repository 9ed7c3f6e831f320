/**
 * The terminal's transport (client/grpc_transport.ts) against a real gateway, for what the fake
 * transport of the session tests cannot show: the calls reach the server with every argument.
 */

import assert from "node:assert/strict";
import { ChatClient } from "../client/chat_client.ts";
import type { HistoryPage } from "../client/core/model.ts";
import { grpcTransport } from "../client/grpc_transport.ts";
import { startSystem } from "./helpers.ts";

Deno.test("history pages: the newest, then the older ones before a position", async () => {
  const system = await startSystem({ config: { auth: "on" } });
  const client = new ChatClient(system.address());
  try {
    await client.signIn("ann", "a long password");
    for (let i = 1; i <= 5; i++) {
      await system.store.append({
        id: `m${i}`,
        userId: "ann",
        displayName: "Ann",
        content: `message ${i}`,
        timestamp: new Date().toISOString(),
        room: "general",
        seq: 0,
      });
    }
    const transport = grpcTransport(client);
    const seqs = (page: HistoryPage) => page.messages.map((m) => m.seq);
    const newest = await transport.history("general", 2);
    assert.deepEqual(seqs(newest), [4, 5]);
    assert.equal(newest.more, true);
    const older = await transport.history("general", 2, undefined, 4);
    assert.deepEqual(seqs(older), [2, 3], "the two before seq 4");
    const first = await transport.history("general", 2, undefined, 2);
    assert.deepEqual(seqs(first), [1]);
    assert.equal(first.more, false, "the start of the room");
  } finally {
    client.close();
    await system.stop();
  }
});
