/** core/logger.ts: one call is one line, whatever the message and the fields hold. */

import assert from "node:assert/strict";
import { escapeLogText, memoryLogger } from "../core/logger.ts";

Deno.test("a value with a newline cannot forge a log line", () => {
  const logger = memoryLogger();
  const forged = "mallory\n2030-01-01T00:00:00.000Z INFO  Account created user=admin";
  logger.info(`User ${forged} connected to server gw`, { user: forged, n: 1 });
  assert.equal(logger.lines.length, 1);
  const [line] = logger.lines as [string];
  assert.doesNotMatch(line, /\n/);
  assert.match(line, /INFO {2}User mallory\\n2030-01-01T00:00:00\.000Z INFO {2}Account created/);
  assert.match(
    line,
    / user="mallory\\n2030-01-01T00:00:00\.000Z INFO {2}Account created user=admin"/,
  );
  assert.match(line, / n=1$/);
});

Deno.test("controls, separators and bidirectional overrides are escaped in messages and fields", () => {
  const logger = memoryLogger();
  const nasty = "a\r\u0000\u0085\u2028\u2029\u202e\u2066b";
  logger.warn(nasty, { plain: "ok", nasty, nested: { v: nasty }, error: new Error(nasty) });
  const [line] = logger.lines as [string];
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
  const escaped = "a\\r\\u0000\\u0085\\u2028\\u2029\\u202e\\u2066b";
  assert.ok(line.includes(` WARN  ${escaped} `), line);
  assert.ok(line.includes(` plain=ok `), line);
  assert.ok(line.includes(` nasty="${escaped}"`), line);
  assert.ok(line.includes(` nested={"v":"${escaped}"}`), line);
  assert.ok(line.includes(` error="${escaped}"`), line);
  assert.equal(escapeLogText("plain text, tabs\tand all"), "plain text, tabs\\tand all");
});
