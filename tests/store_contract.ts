/**
 * The contract every {@linkcode Store} adapter must pass; each adapter's test file calls
 * {@linkcode storeContract} once.
 *
 * `open` must give a new handle on one and the same database on every call (two handles
 * open at once must see each other's writes, and a handle opened after another was closed must
 * see what it stored). Every test uses its own room names (with a per-run suffix), so the tests
 * may share that database, and a database left over from an earlier run does no harm.
 */

import assert from "node:assert/strict";
import type { ChatMessage } from "../core/types.ts";
import type { Store } from "../store/store.ts";

const RUN = crypto.randomUUID().slice(0, 8);

/** A room name no other test (or run) uses. */
function roomName(label: string): string {
  return `${label}-${RUN}`;
}

let counter = 0;

/** A message as the gateway hands it to the store: seq 0, a fresh id. */
export function newMessage(room: string, overrides: Partial<ChatMessage> = {}): ChatMessage {
  counter++;
  return {
    id: crypto.randomUUID(),
    userId: `user-${counter % 7}`,
    displayName: `User ${counter % 7}`,
    content: `message ${counter}`,
    timestamp: new Date(Date.UTC(2024, 0, 1, 0, 0, 0, counter)).toISOString(),
    room,
    seq: 0,
    ...overrides,
  };
}

/** Opens a store, runs `body`, and closes the store whatever happens. */
async function withStore(open: () => Promise<Store>, body: (store: Store) => Promise<void>) {
  const store = await open();
  try {
    await body(store);
  } finally {
    await store.close();
  }
}

/** Appends `count` messages to `room` one after another; returns what the store returned. */
async function appendMany(store: Store, room: string, count: number): Promise<ChatMessage[]> {
  const stored: ChatMessage[] = [];
  for (let i = 0; i < count; i++) stored.push(await store.append(newMessage(room)));
  return stored;
}

const seqs = (messages: readonly ChatMessage[]) => messages.map((m) => m.seq);
const range = (from: number, to: number) =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** Registers the contract's tests for the adapter `name`. */
export function storeContract(name: string, open: () => Promise<Store>): void {
  const test = (title: string, fn: () => Promise<void>) =>
    Deno.test({ name: `${name}: ${title}`, fn });

  test("seq starts at 1 per room and increments without gaps", async () => {
    await withStore(open, async (store) => {
      const room = roomName("seq");
      for (let i = 1; i <= 12; i++) {
        const message = newMessage(room);
        const stored = await store.append(message);
        assert.deepEqual(stored, { ...message, seq: i }, "append returns the message with its seq");
      }
      assert.deepEqual(seqs(await store.since(room, 0, 100)), range(1, 12));
    });
  });

  test("rooms are independent", async () => {
    await withStore(open, async (store) => {
      const a = roomName("independent-a");
      const b = roomName("independent-b");
      const stored: ChatMessage[] = [];
      for (let i = 0; i < 6; i++) {
        stored.push(await store.append(newMessage(a)));
        stored.push(await store.append(newMessage(b)));
        if (i % 2 === 0) stored.push(await store.append(newMessage(b)));
      }
      const inA = stored.filter((m) => m.room === a);
      const inB = stored.filter((m) => m.room === b);
      assert.deepEqual(seqs(inA), range(1, 6));
      assert.deepEqual(seqs(inB), range(1, 9));
      assert.deepEqual(await store.since(a, 0, 100), inA);
      assert.deepEqual(await store.since(b, 0, 100), inB);
      assert.deepEqual(await store.history({ room: roomName("independent-empty"), limit: 10 }), []);
      assert.deepEqual(await store.since(roomName("independent-empty"), 0, 10), []);
    });
  });

  test("append is idempotent by message id", async () => {
    await withStore(open, async (store) => {
      const room = roomName("idempotent");
      const [first] = await appendMany(store, room, 1);
      const message = newMessage(room);
      const stored = await store.append(message);
      assert.equal(stored.seq, 2);

      const again = await store.append(message);
      assert.deepEqual(again, stored, "the same id again returns the first stored copy");
      const changed = await store.append({ ...message, content: "changed", seq: 99 });
      assert.deepEqual(changed, stored, "even when the rest of the message differs");
      const elsewhere = await store.append({ ...message, room: roomName("idempotent-other") });
      assert.deepEqual(elsewhere, stored, "even when it names another room");
      assert.deepEqual(await store.since(roomName("idempotent-other"), 0, 10), []);

      assert.deepEqual(await store.since(room, 0, 100), [first, stored], "nothing was added");
      const next = await store.append(newMessage(room));
      assert.equal(next.seq, 3, "a repeated id uses up no sequence number");
    });
  });

  test("history is newest first, with limit and beforeSeq pagination", async () => {
    await withStore(open, async (store) => {
      const room = roomName("history");
      const stored = await appendMany(store, room, 23);
      const newestFirst = [...stored].reverse();

      assert.deepEqual(await store.history({ room, limit: 5 }), newestFirst.slice(0, 5));
      assert.deepEqual(await store.history({ room, limit: 100 }), newestFirst);
      assert.deepEqual(await store.history({ room, limit: 0 }), []);
      assert.deepEqual(await store.history({ room, beforeSeq: 10, limit: 3 }), [
        stored[8],
        stored[7],
        stored[6],
      ]);
      assert.deepEqual(await store.history({ room, beforeSeq: 3, limit: 10 }), [
        stored[1],
        stored[0],
      ]);
      assert.deepEqual(await store.history({ room, beforeSeq: 1, limit: 10 }), []);
      assert.deepEqual(await store.history({ room, beforeSeq: 1000, limit: 2 }), [
        stored[22],
        stored[21],
      ]);

      // Paging backwards from the newest visits every message exactly once.
      for (const pageSize of [1, 4, 5, 23, 50]) {
        const seen: ChatMessage[] = [];
        let beforeSeq: number | undefined;
        for (let pages = 0; pages < 100; pages++) {
          const page = await store.history({ room, beforeSeq, limit: pageSize });
          if (page.length === 0) break;
          assert.ok(page.length <= pageSize, `a page holds at most ${pageSize}`);
          seen.push(...page);
          beforeSeq = page[page.length - 1]!.seq;
        }
        assert.deepEqual(seen, newestFirst, `pages of ${pageSize} cover everything once`);
      }
    });
  });

  test("since returns exactly the messages after a seq, oldest first, bounded by limit", async () => {
    await withStore(open, async (store) => {
      const room = roomName("since");
      const stored = await appendMany(store, room, 17);

      assert.deepEqual(await store.since(room, 0, 100), stored);
      assert.deepEqual(await store.since(room, 0, 4), stored.slice(0, 4));
      assert.deepEqual(await store.since(room, 10, 5), stored.slice(10, 15));
      assert.deepEqual(await store.since(room, 15, 5), stored.slice(15));
      assert.deepEqual(await store.since(room, 17, 5), []);
      assert.deepEqual(await store.since(room, 99, 5), []);
      assert.deepEqual(await store.since(room, 3, 0), []);

      // Catching up in pages visits every message exactly once, in order.
      const seen: ChatMessage[] = [];
      let after = 0;
      for (let pages = 0; pages < 100; pages++) {
        const page = await store.since(room, after, 4);
        if (page.length === 0) break;
        seen.push(...page);
        after = page[page.length - 1]!.seq;
      }
      assert.deepEqual(seen, stored);
    });
  });

  test("unicode and 64 KiB content round-trip exactly", async () => {
    await withStore(open, async (store) => {
      const room = roomName("unicode-房間-🏠");
      const samples = [
        "plain ascii",
        "héllo wörld — “quotes” ‘single’ … ½ €",
        "日本語のテキスト, 中文, 한국어",
        "עברית ومرحبا بالعالم", // right to left
        "emoji 😀 👩🏽‍💻 🏳️‍🌈 👨‍👩‍👧‍👦 🇯🇵", // astral, skin tone, ZWJ sequences, flags
        "combining: e\u0301 vs \u00e9, n\u0303, Å vs A\u030a", // not normalised
        "zero width\u200b\u200c\u200d, bom \ufeff, replacement \ufffd, max \u{10ffff}",
        "control chars \t\r\n\u0001\u001f\u007f and quotes ' \" ` \\ %_ $1 ? :name",
        "   leading and trailing spaces   ",
        "",
      ];
      const stored: ChatMessage[] = [];
      for (const content of samples) {
        const message = newMessage(room, {
          content,
          displayName: `Zoë 🦊 ${content.slice(0, 8)}`,
          userId: `ユーザー-${stored.length}`,
        });
        const result = await store.append(message);
        assert.deepEqual(result, { ...message, seq: stored.length + 1 });
        stored.push(result);
      }

      // 64 KiB of UTF-8: one-, two-, three- and four-byte characters.
      const unit = "a\u00e9\u4e2d\u{1f600}"; // 1 + 2 + 3 + 4 = 10 bytes
      let big = unit.repeat(Math.floor(65536 / 10));
      big += "x".repeat(65536 - new TextEncoder().encode(big).length);
      assert.equal(new TextEncoder().encode(big).length, 65536);
      const bigMessage = newMessage(room, { content: big });
      stored.push(await store.append(bigMessage));

      const read = await store.since(room, 0, 100);
      assert.deepEqual(read, stored);
      assert.equal(read[read.length - 1]!.content, big, "the 64 KiB content is intact");
      assert.deepEqual(await store.history({ room, limit: 100 }), [...stored].reverse());
    });
  });

  test("concurrent appends through two handles give 1..N with no duplicates or gaps", async () => {
    const first = await open();
    const second = await open();
    try {
      const stores = [first, second];
      const room = roomName("concurrent");
      const other = roomName("concurrent-other");
      const N = 50;
      const messages = Array.from({ length: N }, () => newMessage(room));
      const others = Array.from({ length: 20 }, () => newMessage(other));

      // Everything at once: both handles, two rooms, and every message of `room` twice (once
      // through each handle), so concurrent appends of the same id race too.
      const results = await Promise.all([
        ...messages.map((m, i) => stores[i % 2]!.append(m)),
        ...messages.map((m, i) => stores[(i + 1) % 2]!.append(m)),
        ...others.map((m, i) => stores[i % 2]!.append(m)),
      ]);
      const once = results.slice(0, N);
      const twice = results.slice(N, 2 * N);
      assert.deepEqual(twice, once, "both appends of one id return the same stored copy");
      assert.deepEqual(seqs(once).sort((a, b) => a - b), range(1, N));
      assert.deepEqual(
        seqs(results.slice(2 * N)).sort((a, b) => a - b),
        range(1, others.length),
      );

      for (const store of stores) {
        const all = await store.since(room, 0, 1000);
        assert.deepEqual(seqs(all), range(1, N), "stored: 1..N, each once");
        assert.equal(new Set(all.map((m) => m.id)).size, N);
        const byId = new Map(once.map((m) => [m.id, m]));
        for (const m of all) assert.deepEqual(m, byId.get(m.id));
        assert.deepEqual(seqs(await store.since(other, 0, 1000)), range(1, others.length));
      }
      // And afterwards the counter goes on from N.
      assert.equal((await second.append(newMessage(room))).seq, N + 1);
      assert.equal((await first.append(newMessage(room))).seq, N + 2);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  test("data survives close and reopen", async () => {
    const room = roomName("reopen");
    let stored: ChatMessage[] = [];
    await withStore(open, async (store) => {
      stored = await appendMany(store, room, 3);
    });
    await withStore(open, async (store) => {
      assert.deepEqual(await store.since(room, 0, 10), stored);
      assert.deepEqual(await store.append(stored[1]!), stored[1], "ids are remembered too");
      assert.equal((await store.append(newMessage(room))).seq, 4);
    });
  });
}
