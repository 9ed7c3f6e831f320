/** protocol/: the generated code is what proto/chat.proto makes now. */

import assert from "node:assert/strict";
import { GEN_DIR, generate, readTree } from "../protocol/tools/generate.ts";

Deno.test("protocol/gen is what `deno task gen:proto` makes from proto/chat.proto now", async () => {
  const fresh = await generate();
  const committed = await readTree(GEN_DIR);
  assert.deepEqual(
    [...committed.keys()],
    [...fresh.keys()],
    "protocol/gen has other files than protoc generates: run `deno task gen:proto`",
  );
  for (const [path, text] of fresh) {
    assert.ok(
      committed.get(path) === text,
      `protocol/gen/${path} is stale (proto/chat.proto changed): run \`deno task gen:proto\``,
    );
  }
});
