/**
 * Poison on the real three-broker cluster: garbage produced to `chatting` by an independent
 * Kafka client (kafkajs, straight to the topic), next to a valid message. The processor process
 * must copy the garbage, bytes exact, to `chat-dead-letters` and go on delivering.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Kafka, logLevel } from "kafkajs";
import { TOPICS } from "../bus/kafka/topics.ts";
import { decodeDeadLetter } from "../bus/kafka/records.ts";
import { connectUser, waitFor } from "./helpers.ts";
import { kafkaBrokers } from "./fixtures.ts";
import { kafkaDeployment, stopAll } from "./processes.ts";
import { processorsHolding } from "./faults/harness.ts";

const brokers = await kafkaBrokers();

/** The dead letters on the topic, read from the start by kcat, another independent client. */
async function deadLetters() {
  const out = await new Deno.Command("kcat", {
    args: [
      "-C",
      "-b",
      brokers.split(",")[0]!,
      "-t",
      TOPICS.deadLetters.name,
      "-o",
      "beginning",
      "-e",
      "-q",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) return []; // the topic may not exist until a processor created it
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(decodeDeadLetter);
}

Deno.test("garbage on `chatting` goes to `chat-dead-letters` with its exact bytes; the valid message next to it is delivered", async () => {
  const deployment = kafkaDeployment();
  const processor = deployment.processor("processor", { KAFKA_CLIENT_ID: "processor" });
  const gateway = deployment.gateway("dead-letter");
  const kafka = new Kafka({
    clientId: "dead-letter-test",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer();
  const users: ReturnType<typeof connectUser>[] = [];
  try {
    await gateway.ready();
    await processorsHolding(["processor"]);
    const alice = connectUser(gateway.grpc, "alice");
    users.push(alice);
    // Until one message makes the round trip: alice's stream is open and the processor has
    // its partitions (a message sent before her stream opened is never shown to her).
    let warmUps = 0;
    await waitFor(
      async () => {
        await alice.client.send("alice", `warm-up ${++warmUps}`).catch(() => {});
        const deadline = Date.now() + 2000;
        while (Date.now() < deadline && !alice.contents().some((c) => c.startsWith("warm-up"))) {
          await new Promise((r) => setTimeout(r, 50));
        }
        return alice.contents().some((c) => c.startsWith("warm-up"));
      },
      90_000,
      "a first message to make the round trip",
    );

    // Not UTF-8, not JSON, and unique to this run, on the partition of room "general".
    const marker = crypto.randomUUID();
    const garbage = Buffer.concat([
      Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28]),
      Buffer.from(marker),
    ]);
    const wrongShape = JSON.stringify({ id: 42, content: ["no"], marker });
    await producer.connect();
    await producer.send({
      topic: TOPICS.chatting.name,
      acks: -1,
      messages: [{ key: "general", value: garbage }, { key: "general", value: wrongShape }],
    });
    await alice.client.send("alice", "after the garbage");
    await waitFor(
      () => alice.contents().includes("after the garbage"),
      60_000,
      "the valid message after the garbage",
    );

    let letters: Awaited<ReturnType<typeof deadLetters>> = [];
    await waitFor(
      async () => {
        letters = (await deadLetters()).filter((d) =>
          Buffer.from(d.value).includes(Buffer.from(marker))
        );
        return letters.length === 2;
      },
      60_000,
      "both poisoned records on the dead-letter topic",
    );
    const [bytes, shape] = letters;
    assert.deepEqual(Buffer.from(bytes!.value), garbage, "the original bytes, exactly");
    assert.equal(bytes!.topic, TOPICS.chatting.name);
    assert.equal(bytes!.key, "general");
    assert.match(bytes!.reason, /^Cannot read chat message record: not JSON/);
    assert.equal(new TextDecoder().decode(shape!.value), wrongShape);
    assert.match(shape!.reason, /^Cannot read chat message record: "(user_)?id" must be a string$/);
    assert.equal(Number(shape!.offset), Number(bytes!.offset) + 1, "consecutive offsets");
  } finally {
    for (const u of users) u.close();
    await producer.disconnect().catch(() => {});
    await stopAll([gateway.service, processor]);
  }
});
