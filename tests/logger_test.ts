/** core/logger.ts: one call is one line, whatever the message and the fields hold. */

import assert from "node:assert/strict";
import { createLogger, escapeLogText, memoryLogger } from "../core/logger.ts";

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

Deno.test("LOG_FORMAT=json: one object per line with time, level, message and the fields", () => {
  const memory = memoryLogger("debug", "json");
  const logger = memory.with({ component: "processor" });
  const before = Date.now();
  logger.info("Message stored", {
    room: "general",
    sequence: 42n,
    ok: true,
    error: new Error("x"),
  });
  logger.debug("PostgreSQL notice", { message: "a field named message", time: 1 });
  assert.equal(memory.lines.length, 2);
  const [stored, notice] = memory.lines.map((line) => JSON.parse(line));
  assert.equal(stored.level, "info");
  assert.equal(stored.message, "Message stored");
  assert.ok(Date.parse(stored.time) >= before - 1 && stored.time.endsWith("Z"), stored.time);
  assert.deepEqual(stored.fields, {
    component: "processor",
    room: "general",
    sequence: "42",
    ok: true,
    error: "x",
  });
  // A field cannot overwrite the record's own keys.
  assert.equal(notice.level, "debug");
  assert.equal(notice.message, "PostgreSQL notice");
  assert.deepEqual(notice.fields, {
    component: "processor",
    message: "a field named message",
    time: 1,
  });
});

Deno.test("LOG_FORMAT=json: hostile messages and fields stay one line and parse back as they were", () => {
  const logger = memoryLogger("debug", "json");
  const forged =
    'mallory\n{"time":"2030-01-01T00:00:00.000Z","level":"info","message":"Account created"}';
  const nasty = 'a\r\u0000\u0085\u2028\u2029\u202e\u2066"\\b';
  logger.warn(forged, { user: forged, nasty, nested: { [nasty]: [nasty] } });
  assert.equal(logger.lines.length, 1);
  const [line] = logger.lines as [string];
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
  const record = JSON.parse(line);
  assert.equal(record.message, forged);
  assert.deepEqual(record.fields, { user: forged, nasty, nested: { [nasty]: [nasty] } });
});

Deno.test("the text format stays the default", () => {
  const lines: string[] = [];
  createLogger({ sink: (_level, line) => lines.push(line) }).info("User alice connected", { n: 1 });
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}User alice connected n=1$/);
});
