/** The Kafka JSON contract: field names of the original design, additive fields, clear errors. */

import assert from "node:assert/strict";
import {
  decodeChatMessage,
  decodeConnectionEvent,
  decodeDelivery,
  encodeChatMessage,
  encodeConnectionEvent,
  encodeDelivery,
  RecordError,
} from "../bus/kafka/records.ts";

Deno.test("chatting records keep the original fields and names", () => {
  const json = JSON.parse(encodeChatMessage({
    id: "m-1",
    userId: "alice",
    displayName: "Alice",
    content: "Hello World!",
    timestamp: "2026-11-26T15:04:05.000Z",
    room: "general",
    seq: 0,
  }));
  assert.deepEqual(json, {
    id: "m-1",
    content: "Hello World!",
    timestamp: "2026-11-26T15:04:05.000Z",
    user_id: "alice",
    room: "general",
    display_name: "Alice",
  });
});

Deno.test("a record from an original producer (no additive fields) is read with defaults", () => {
  const m = decodeChatMessage(
    '{"id":"x","content":"hi","timestamp":"2026-11-26T15:04:05Z","user_id":"bob"}',
  );
  assert.deepEqual(m, {
    id: "x",
    content: "hi",
    timestamp: "2026-11-26T15:04:05Z",
    userId: "bob",
    room: "general",
    displayName: "bob",
    seq: 0,
  });
  const e = decodeConnectionEvent(
    '{"user_id":"bob","server_id":"gw","connected":true,"timestamp":"2026-11-26T15:04:05Z"}',
  );
  assert.equal(e.streamId, "gw/bob");
  assert.equal(e.displayName, "bob");
});

Deno.test("user-connections records keep the original fields", () => {
  const json = JSON.parse(encodeConnectionEvent({
    userId: "alice",
    serverId: "grpc-server-a",
    connected: false,
    timestamp: "2026-11-26T15:04:05.000Z",
    displayName: "Alice",
    streamId: "s-1",
  }));
  assert.equal(json.user_id, "alice");
  assert.equal(json.server_id, "grpc-server-a");
  assert.equal(json.connected, false);
  assert.equal(json.timestamp, "2026-11-26T15:04:05.000Z");
});

Deno.test("deliveries round-trip", () => {
  // Messages are not deliveries: gateways read them from the room logs. An older processor's
  // message delivery is a record no gateway reads (skipped as unreadable).
  assert.throws(
    () =>
      decodeDelivery(JSON.stringify({
        type: "message",
        message: { id: "m", user_id: "u", content: "c", timestamp: "t", room: "r", seq: 4 },
      })),
    RecordError,
  );
  assert.deepEqual(decodeDelivery(encodeDelivery({ type: "gateway-dead", serverId: "gw" })), {
    type: "gateway-dead",
    serverId: "gw",
  });
  const read = { room: "dm:ann:bob", userId: "ann", displayName: "Ann", seq: 7 };
  const readRecord = encodeDelivery({ type: "read", read });
  assert.deepEqual(JSON.parse(readRecord), {
    type: "read",
    room: "dm:ann:bob",
    user_id: "ann",
    display_name: "Ann",
    seq: 7,
  });
  assert.deepEqual(decodeDelivery(readRecord), { type: "read", read });
  assert.throws(
    () => decodeDelivery('{"type":"read","room":"r","user_id":"a","seq":-1}'),
    /"seq" must be a whole number/,
  );
  assert.throws(() => decodeDelivery('{"type":"read","room":"","user_id":"a"}'), /"room" is empty/);
  const block = { userId: "ann", blockedId: "ben", blocked: true };
  const blockRecord = encodeDelivery({ type: "block", block });
  assert.deepEqual(JSON.parse(blockRecord), {
    type: "block",
    user_id: "ann",
    blocked_id: "ben",
    blocked: true,
  });
  assert.deepEqual(decodeDelivery(blockRecord), { type: "block", block });
  assert.throws(
    () => decodeDelivery('{"type":"block","user_id":"ann","blocked_id":"","blocked":true}'),
    /"blocked_id" is empty/,
  );
  assert.throws(
    () => decodeDelivery('{"type":"block","user_id":"ann","blocked_id":"ben","blocked":1}'),
    /"blocked" must be true or false/,
  );
});

Deno.test("unreadable records fail with a RecordError that says what is wrong", () => {
  assert.throws(() => decodeChatMessage("nope"), RecordError);
  assert.throws(() => decodeChatMessage("[]"), /expected a JSON object/);
  assert.throws(() => decodeChatMessage('{"id":1,"user_id":"a"}'), /"id" must be a string/);
  assert.throws(
    () =>
      decodeConnectionEvent('{"user_id":"a","server_id":"b","connected":"yes","timestamp":"t"}'),
    /"connected" must be true or false/,
  );
  assert.throws(() => decodeDelivery('{"type":"party"}'), /unknown type "party"/);
});

Deno.test("mentions travel as an additive field, only when there are some, and are checked", () => {
  const message = {
    id: "m-2",
    userId: "alice",
    displayName: "Alice",
    content: "@ben @carol look",
    timestamp: "2026-11-26T15:04:05.000Z",
    room: "team",
    seq: 4,
    mentions: ["ben", "carol"],
  };
  const text = encodeChatMessage(message);
  assert.deepEqual(JSON.parse(text).mentions, ["ben", "carol"]);
  assert.deepEqual(decodeChatMessage(text), message);
  assert.ok(!("mentions" in JSON.parse(encodeChatMessage({ ...message, mentions: [] }))));
  const record = (mentions: unknown) =>
    JSON.stringify({ id: "m", user_id: "a", content: "", timestamp: "t", mentions });
  assert.ok(!("mentions" in decodeChatMessage(record([]))));
  for (const bad of ["ben", [1], [""], ["x".repeat(129)], Array(21).fill("ben")]) {
    assert.throws(() => decodeChatMessage(record(bad)), /"mentions" must be at most 20 user ids/);
  }
});

Deno.test("a message change travels on the deliveries topic and reads back the same", () => {
  const change = {
    room: "team",
    seq: 7,
    deleted: false,
    content: "fixed @ben",
    mentions: ["ben"],
    at: "2026-11-30T12:00:00.000Z",
    byUserId: "ann",
    byDisplayName: "Ann",
  };
  for (const c of [change, { ...change, deleted: true, content: "", mentions: undefined }]) {
    const { mentions, ...rest } = c;
    const expected = mentions ? c : rest;
    assert.deepEqual(decodeDelivery(encodeDelivery({ type: "message-change", change: c })), {
      type: "message-change",
      change: expected,
    });
  }
  assert.throws(
    () => decodeDelivery('{"type":"message-change","room":"r","seq":1,"deleted":false}'),
    /"by_user_id"/,
  );
});

Deno.test("a reaction travels on the deliveries topic and reads back the same", () => {
  const event = {
    room: "team",
    seq: 3,
    emoji: "👍🏽",
    userId: "ben",
    displayName: "Ben",
    added: true,
  };
  assert.deepEqual(decodeDelivery(encodeDelivery({ type: "reaction", event })), {
    type: "reaction",
    event,
  });
  assert.throws(
    () => decodeDelivery('{"type":"reaction","room":"r","seq":1,"user_id":"b","added":true}'),
    /"emoji"/,
  );
});

Deno.test("a room event says when the member created the room; older records read as joined", () => {
  const event = { room: "team", userId: "ann", displayName: "Ann", joined: true, created: true };
  const text = encodeDelivery({ type: "room-event", event });
  assert.equal(JSON.parse(text).created, true);
  assert.deepEqual(decodeDelivery(text), { type: "room-event", event });
  const { created: _, ...joined } = event;
  assert.ok(!("created" in JSON.parse(encodeDelivery({ type: "room-event", event: joined }))));
  assert.deepEqual(decodeDelivery(encodeDelivery({ type: "room-event", event: joined })), {
    type: "room-event",
    event: joined,
  });
});

Deno.test("a room event tells moderation actions in added fields; an unknown action is unreadable", () => {
  const event = {
    room: "team",
    userId: "cat",
    displayName: "Cat",
    joined: true,
    action: "muted" as const,
    actorId: "ann",
    actorName: "Ann",
    until: "2030-01-01T10:00:00.000Z",
    at: "2030-01-01T09:00:00.000Z",
  };
  const text = encodeDelivery({ type: "room-event", event });
  assert.deepEqual(Object.keys(JSON.parse(text)), [
    "type",
    "room",
    "user_id",
    "display_name",
    "joined",
    "action",
    "actor_id",
    "actor_display_name",
    "until",
    "at",
  ]);
  assert.deepEqual(decodeDelivery(text), { type: "room-event", event });
  const topic = { ...event, action: "topic" as const, detail: "", until: undefined };
  delete topic.until;
  assert.deepEqual(decodeDelivery(encodeDelivery({ type: "room-event", event: topic })), {
    type: "room-event",
    event: topic,
  });
  assert.throws(
    () => decodeDelivery(text.replace('"muted"', '"banned"')),
    /unknown room action "banned"/,
  );
  assert.throws(() => decodeDelivery(text.replace('"2030-01-01T10', '"never')), /"until"/);
});

Deno.test("a room action (an invitation, a change of access) keeps its actor and time; no membership", () => {
  const event = {
    room: "plans",
    userId: "ben",
    displayName: "Ben",
    joined: false,
    action: "invited" as const,
    actorId: "ann",
    actorName: "Ann",
    at: "2026-11-30T12:00:00.000Z",
  };
  const text = encodeDelivery({ type: "room-action", event });
  assert.equal(JSON.parse(text).detail, undefined, "no detail, no field");
  assert.deepEqual(decodeDelivery(text), { type: "room-action", event });
  const detailed = { ...event, action: "role" as const, detail: "moderator" };
  assert.deepEqual(decodeDelivery(encodeDelivery({ type: "room-action", event: detailed })), {
    type: "room-action",
    event: detailed,
  });
  const record = JSON.parse(text);
  for (const field of ["action", "actor_id", "at", "room", "user_id"]) {
    assert.throws(
      () => decodeDelivery(JSON.stringify({ ...record, [field]: "" })),
      RecordError,
      field,
    );
  }
  // A record that says it joined someone changes no membership all the same.
  assert.equal(
    (decodeDelivery(JSON.stringify({ ...record, joined: true })) as { event: { joined: boolean } })
      .event.joined,
    false,
  );
});

Deno.test("a change or reaction record with no time or position is unreadable, not retried forever", () => {
  const change = {
    type: "message-change",
    room: "r",
    seq: 3,
    deleted: false,
    content: "x",
    at: "2026-11-30T12:00:00.000Z",
    by_user_id: "ann",
  };
  assert.equal(decodeDelivery(JSON.stringify(change)).type, "message-change");
  assert.throws(
    () => decodeDelivery(JSON.stringify({ ...change, at: "yesterday" })),
    (err) => err instanceof RecordError && /"at" is not a time: yesterday/.test(err.message),
  );
  assert.throws(
    () => decodeDelivery(JSON.stringify({ ...change, seq: 0 })),
    /"seq" must be at least 1/,
  );
  const reaction = { type: "reaction", room: "r", emoji: "👍", user_id: "b", added: true };
  assert.throws(() => decodeDelivery(JSON.stringify(reaction)), /"seq" must be at least 1/);
});
