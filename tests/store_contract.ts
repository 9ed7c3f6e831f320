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
import { setTimeout as sleep } from "node:timers/promises";
import { ChatError, type ErrorCode } from "../core/errors.ts";
import type { ChatMessage } from "../core/types.ts";
import { type Account, type Room, type Store, UNREAD_COUNT_MAX } from "../store/store.ts";

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

/** An account as sign-up hands it to the store. */
export function newAccount(id: string, overrides: Partial<Account> = {}): Account {
  counter++;
  return {
    id,
    displayName: `Account ${counter}`,
    passwordHash: `$argon2id$v=19$m=65536,t=3,p=4$salt${counter}$hash${counter}`,
    createdAt: new Date(Date.UTC(2024, 0, 2, 0, 0, 0, counter)).toISOString(),
    ...overrides,
  };
}

/** A room record, public unless `direct`. */
export function newRoom(id: string, overrides: Partial<Room> = {}): Room {
  counter++;
  return {
    id,
    direct: false,
    createdBy: `user-${counter % 7}`,
    createdAt: new Date(Date.UTC(2024, 0, 3, 0, 0, 0, counter)).toISOString(),
    ...overrides,
  };
}

/**
 * Suffixes in code point order (the order the store sorts ids in): upper case before lower case
 * (a locale collation would put "C" after "b"), and U+FF21 before an astral emoji (JavaScript's
 * default sort, by UTF-16 code unit, would put it after). No two differ only by case: those
 * would be one account or room.
 */
const SORTED_SUFFIXES = ["C", "a", "b", "é", "\uff21", "😀"];

/** Code point order, spelled out independently of the stores' own comparator. */
function byCodePoint(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

/** `SORTED_SUFFIXES` on a per-run prefix, shuffled, and the same ids sorted. */
function sortedIds(label: string): { shuffled: string[]; sorted: string[] } {
  const sorted = SORTED_SUFFIXES.map((suffix) => `${label}-${RUN}-${suffix}`);
  assert.deepEqual([...sorted].sort(byCodePoint), sorted);
  const shuffled = [sorted[3]!, sorted[5]!, sorted[0]!, sorted[4]!, sorted[2]!, sorted[1]!];
  return { shuffled, sorted };
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

/** Checks that `error` is a {@linkcode ChatError} with `code` whose message matches `text`. */
const refusedWith = (code: ErrorCode, text: RegExp) => (error: unknown) => {
  assert.ok(error instanceof ChatError, `a ChatError, not ${error}`);
  assert.equal(error.code, code);
  assert.match(error.message, text);
  return true;
};
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

  test("appendAll stores a run in order in one go, idempotent within it and with what was stored", async () => {
    await withStore(open, async (store) => {
      const a = roomName("run-a");
      const b = roomName("run-b");
      const [earlier] = await appendMany(store, a, 1);
      const [m1, m2, m3] = [newMessage(a), newMessage(b), newMessage(a)];
      const stored = await store.appendAll([m1!, m2!, earlier!, m3!, { ...m1!, content: "again" }]);
      assert.deepEqual(stored, [
        { ...m1!, seq: 2 },
        { ...m2!, seq: 1 },
        earlier,
        { ...m3!, seq: 3 },
        { ...m1!, seq: 2 },
      ]);
      assert.deepEqual(await store.since(a, 0, 10), [earlier, stored[0], stored[3]]);
      assert.deepEqual(await store.since(b, 0, 10), [stored[1]]);
      assert.deepEqual(await store.appendAll([]), []);
      assert.equal((await store.append(newMessage(a))).seq, 4, "no gap after the run");
    });
  });

  test("a message keeps whom it mentions, in order; one without mentions has none", async () => {
    await withStore(open, async (store) => {
      const room = roomName("mentions");
      const plain = newMessage(room);
      const named = newMessage(room, { content: "@Ben @ann hi", mentions: ["ben", "ann"] });
      const stored = await store.appendAll([plain, named]);
      assert.deepEqual(stored, [{ ...plain, seq: 1 }, { ...named, seq: 2 }]);
      assert.deepEqual(await store.since(room, 0, 10), stored);
      assert.deepEqual(await store.history({ room, limit: 10 }), [...stored].reverse());
      assert.ok(!("mentions" in (await store.since(room, 0, 1))[0]!));
      // A retry returns the first copy, with its mentions.
      assert.deepEqual(await store.append({ ...named, mentions: ["carol"] }), stored[1]);
    });
  });

  test("a message is edited and deleted in place; a deleted one keeps no text and stays deleted", async () => {
    await withStore(open, async (store) => {
      const room = roomName("changes");
      const [first, second] = await store.appendAll([
        newMessage(room, { content: "first @ann", mentions: ["ann"] }),
        newMessage(room, { content: "second" }),
      ]);
      assert.deepEqual(await store.message(room, 2), second);
      assert.equal(await store.message(room, 3), undefined);
      assert.equal(await store.message(roomName("changes-none"), 1), undefined);
      const change = {
        room,
        seq: 1,
        deleted: false,
        content: "first, edited @ben",
        mentions: ["ben"],
        at: "2026-11-30T12:00:00.000Z",
        byUserId: first!.userId,
        byDisplayName: first!.displayName,
      };
      const { mentions: _, ...bare } = first!;
      const edited = await store.changeMessage(change);
      assert.deepEqual(edited, {
        ...bare,
        content: "first, edited @ben",
        mentions: ["ben"],
        editedAt: "2026-11-30T12:00:00.000Z",
      });
      assert.deepEqual(await store.since(room, 0, 10), [edited, second]);
      assert.deepEqual(
        await store.changeMessage({ ...change, content: "no mentions now", mentions: [] }),
        { ...bare, content: "no mentions now", editedAt: change.at },
      );
      const deleted = await store.changeMessage({ ...change, deleted: true, content: "" });
      assert.deepEqual(deleted, { ...bare, content: "", deleted: true });
      assert.deepEqual(await store.history({ room, limit: 10 }), [second, deleted]);
      assert.deepEqual(await store.changeMessage(change), deleted, "an edit leaves it deleted");
      assert.deepEqual(await store.append(first!), deleted, "a retried send finds it deleted");
      assert.equal(await store.changeMessage({ ...change, seq: 9 }), undefined);
    });
  });

  test("reactions toggle per user and emoji, come with the messages in order, and go with a deletion", async () => {
    await withStore(open, async (store) => {
      const room = roomName("reactions");
      const [one, two, three] = await store.appendAll([
        newMessage(room),
        newMessage(room),
        newMessage(room),
      ]);
      assert.equal(await store.toggleReaction(room, 2, "ben", "👍"), true);
      assert.equal(await store.toggleReaction(room, 2, "ann", "🎉"), true);
      assert.equal(await store.toggleReaction(room, 2, "ann", "👍"), true);
      assert.equal(await store.toggleReaction(room, 3, "cat", "❤️"), true);
      assert.equal(await store.toggleReaction(room, 2, "ben", "👍"), false, "taken back");
      assert.equal(await store.toggleReaction(room, 2, "ben", "👍"), true, "and given again");
      assert.equal(await store.toggleReaction(room, 9, "ben", "👍"), undefined, "no message 9");
      // An emoji's place is that of its oldest reaction still there: ben took his 👍 back, so
      // ann's, after her 🎉, is the oldest.
      const reactions2 = [{ emoji: "🎉", users: ["ann"] }, { emoji: "👍", users: ["ann", "ben"] }];
      const expected = [one!, { ...two!, reactions: reactions2 }, {
        ...three!,
        reactions: [{ emoji: "❤️", users: ["cat"] }],
      }];
      assert.deepEqual(await store.since(room, 0, 10), expected);
      assert.deepEqual(await store.history({ room, limit: 10 }), [...expected].reverse());
      assert.deepEqual(await store.message(room, 2), expected[1]);
      assert.deepEqual(await store.since(room, 2, 10), [expected[2]], "only the range asked for");
      assert.equal(await store.toggleReaction(room, 3, "cat", "❤️"), false);
      assert.deepEqual(await store.message(room, 3), three, "no reactions left: none listed");

      await store.changeMessage({
        room,
        seq: 2,
        deleted: true,
        content: "",
        at: "2026-11-30T12:00:00.000Z",
        byUserId: two!.userId,
        byDisplayName: two!.displayName,
      });
      const { reactions: _, ...gone } = { ...two!, content: "", deleted: true };
      assert.deepEqual(await store.message(room, 2), gone, "a deletion takes its reactions");
      assert.equal(await store.toggleReaction(room, 2, "ben", "👍"), undefined);
    });
  });

  test("append is idempotent by sender and message id", async () => {
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

      // Another sender's message with the same id is another message, not a repeat: an id is
      // the sender's, and nobody can make someone else's message disappear by reusing its id.
      const clash = { ...message, userId: `${message.userId}-other`, content: "mine too" };
      const theirs = await store.append(clash);
      assert.deepEqual(theirs, { ...clash, seq: 4 }, "stored, with the next seq");
      assert.deepEqual(await store.append(clash), theirs, "and idempotent in turn");
      assert.deepEqual(await store.append(message), stored, "the first sender's copy stays");
      assert.deepEqual(await store.since(room, 0, 100), [first, stored, next, theirs]);
      assert.equal(await store.lastSeq(room), 4);
    });
  });

  test("concurrent appends of one message id by different senders store every message", async () => {
    const first = await open();
    const second = await open();
    try {
      const room = roomName("id-clash");
      const id = crypto.randomUUID();
      const senders = Array.from({ length: 8 }, (_, i) => `clash-sender-${i}`);
      const messages = senders.map((userId) => newMessage(room, { id, userId }));
      // Each sender's message twice, through each handle: retries race with the other senders.
      const results = await Promise.all([
        ...messages.map((m, i) => [first, second][i % 2]!.append(m)),
        ...messages.map((m, i) => [first, second][(i + 1) % 2]!.append(m)),
      ]);
      const once = results.slice(0, messages.length);
      assert.deepEqual(results.slice(messages.length), once, "each retry gets the first copy");
      assert.deepEqual(seqs(once).sort((a, b) => a - b), range(1, senders.length));
      const stored = await second.since(room, 0, 100);
      assert.deepEqual(stored.map((m) => m.userId).sort(), [...senders].sort());
      assert.ok(stored.every((m) => m.id === id));
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
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

  test("createAccount creates once and keeps the first account", async () => {
    await withStore(open, async (store) => {
      const id = roomName("account");
      assert.equal(await store.getAccount(id), undefined);
      const account = newAccount(id, { displayName: "Zoë 🦊 “quoted” 日本語" });
      assert.deepEqual(await store.createAccount(account), { account, created: true });
      assert.deepEqual(await store.getAccount(id), account);

      const again = await store.createAccount(newAccount(id, { displayName: "Impostor" }));
      assert.deepEqual(again, { account, created: false }, "the stored account, not the new one");
      assert.deepEqual(await store.getAccount(id), account, "nothing was overwritten");

      const other = newAccount(roomName("account-other"));
      assert.deepEqual(await store.createAccount(other), { account: other, created: true });
      assert.deepEqual(await store.getAccount(id), account);
      assert.equal(await store.getAccount(roomName("account-missing")), undefined);
    });
  });

  test("account ids compare without case and keep their owner's spelling", async () => {
    await withStore(open, async (store) => {
      const id = roomName("Account-Case");
      const account = newAccount(id);
      assert.deepEqual(await store.createAccount(account), { account, created: true });
      assert.deepEqual(await store.getAccount(id.toUpperCase()), account, "found in any case");
      assert.deepEqual(await store.getAccount(id.toLowerCase()), account);
      for (const spelling of [id.toUpperCase(), id.toLowerCase()]) {
        assert.deepEqual(
          await store.createAccount(newAccount(spelling, { displayName: "Impostor" })),
          { account, created: false },
          `${spelling} is the same account`,
        );
      }
      assert.deepEqual(await store.getAccount(id), account, "nothing was overwritten");
    });
  });

  test("concurrent createAccount of one id through two handles: exactly one created", async () => {
    const first = await open();
    const second = await open();
    try {
      const ids = Array.from({ length: 25 }, (_, i) => roomName(`account-race-${i}`));
      // Every id twice through each handle, in two spellings, each call with its own display name.
      const attempts = ids.flatMap((id) =>
        [first, second, first, second].map((store, i) => ({
          store,
          account: newAccount(i < 2 ? id : id.toUpperCase(), { displayName: `attempt ${i}` }),
        }))
      );
      const results = await Promise.all(
        attempts.map(({ store, account }) => store.createAccount(account)),
      );
      for (const [n, id] of ids.entries()) {
        const mine = results.slice(n * 4, n * 4 + 4);
        const winners = mine.filter((result) => result.created);
        assert.equal(winners.length, 1, `exactly one creation of ${id} reports created`);
        const winner = attempts[n * 4 + mine.indexOf(winners[0]!)]!.account;
        for (const result of mine) assert.deepEqual(result.account, winner, "all see the winner");
        assert.deepEqual(await first.getAccount(id), winner);
        assert.deepEqual(await second.getAccount(id), winner);
      }
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  test("createRoom creates once and keeps the first room; direct round-trips", async () => {
    await withStore(open, async (store) => {
      const id = roomName("room-房間-🏠");
      assert.equal(await store.getRoom(id), undefined);
      const room = newRoom(id);
      assert.deepEqual(await store.createRoom(room), { room, created: true });
      assert.deepEqual(await store.getRoom(id), room);
      const again = await store.createRoom(newRoom(id, { direct: true, createdBy: "someone" }));
      assert.deepEqual(again, { room, created: false });
      assert.deepEqual(await store.getRoom(id), room);

      const direct = newRoom(roomName("room-direct"), { direct: true });
      assert.deepEqual(await store.createRoom(direct), { room: direct, created: true });
      assert.deepEqual(await store.getRoom(direct.id), direct);
      assert.equal((await store.getRoom(direct.id))?.direct, true);
      assert.equal((await store.getRoom(id))?.direct, false);
      assert.equal(await store.getRoom(roomName("room-missing")), undefined);
    });
  });

  test("room ids compare without case and keep their creator's spelling", async () => {
    await withStore(open, async (store) => {
      const id = roomName("Book-Club");
      const room = newRoom(id);
      assert.deepEqual(await store.createRoom(room), { room, created: true });
      assert.deepEqual(await store.getRoom(id.toUpperCase()), room, "found in any case");
      assert.deepEqual(
        await store.createRoom(newRoom(id.toLowerCase(), { createdBy: "someone" })),
        { room, created: false },
        "another spelling is the same room",
      );
      assert.deepEqual((await store.listRooms(100_000)).filter((r) => r.id.startsWith("Book")), [
        room,
      ]);
    });
  });

  test("concurrent createRoom of one id through two handles: exactly one created", async () => {
    const first = await open();
    const second = await open();
    try {
      const ids = Array.from({ length: 15 }, (_, i) => roomName(`room-race-${i}`));
      const attempts = ids.flatMap((id) =>
        [first, second, second, first].map((store, i) => ({
          store,
          room: newRoom(id, { direct: i % 2 === 0, createdBy: `creator-${i}` }),
        }))
      );
      const results = await Promise.all(attempts.map(({ store, room }) => store.createRoom(room)));
      for (const [n, id] of ids.entries()) {
        const mine = results.slice(n * 4, n * 4 + 4);
        const winners = mine.filter((result) => result.created);
        assert.equal(winners.length, 1, `exactly one creation of ${id} reports created`);
        const winner = attempts[n * 4 + mine.indexOf(winners[0]!)]!.room;
        for (const result of mine) assert.deepEqual(result.room, winner);
        assert.deepEqual(await second.getRoom(id), winner);
      }
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  test("membership: add and remove are idempotent, members are sorted", async () => {
    await withStore(open, async (store) => {
      const room = roomName("members");
      await store.createRoom(newRoom(room));
      const { shuffled, sorted } = sortedIds("member");
      const [alice, bob] = sorted as [string, string];

      assert.deepEqual(await store.members(room), []);
      assert.equal(await store.isMember(room, alice), false);
      assert.equal(await store.addMember(room, alice), true);
      assert.equal(await store.addMember(room, alice), false, "already a member");
      assert.equal(await store.isMember(room, alice), true);
      assert.equal(await store.isMember(room, bob), false);
      assert.equal(await store.isMember(roomName("members-other"), alice), false);
      assert.deepEqual(await store.members(room), [alice]);

      for (const user of shuffled) await store.addMember(room, user);
      assert.deepEqual(await store.members(room), sorted, "sorted by code point");

      assert.equal(await store.removeMember(room, alice), true);
      assert.equal(await store.removeMember(room, alice), false, "no longer a member");
      assert.equal(await store.removeMember(room, roomName("never-joined")), false);
      assert.equal(await store.isMember(room, alice), false);
      assert.deepEqual(await store.members(room), sorted.slice(1));

      assert.equal(await store.addMember(room, alice), true, "a member who left can rejoin");
      assert.deepEqual(await store.members(room), sorted);
      for (const user of sorted) assert.equal(await store.removeMember(room, user), true);
      assert.deepEqual(await store.members(room), []);
    });
  });

  test("membership: concurrent adds of one member through two handles: exactly one true", async () => {
    const first = await open();
    const second = await open();
    try {
      const room = roomName("members-race");
      const users = Array.from({ length: 20 }, (_, i) => `racer-${i}`);
      const added = await Promise.all(
        users.flatMap((user) => [first.addMember(room, user), second.addMember(room, user)]),
      );
      for (const [i, user] of users.entries()) {
        assert.equal([added[2 * i], added[2 * i + 1]].filter(Boolean).length, 1, user);
      }
      assert.deepEqual(await second.members(room), [...users].sort());
      const removed = await Promise.all(
        users.flatMap((user) => [second.removeMember(room, user), first.removeMember(room, user)]),
      );
      assert.equal(removed.filter(Boolean).length, users.length, "each removed exactly once");
      assert.deepEqual(await first.members(room), []);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  test("roomsOf lists a user's created rooms sorted by id, and forgets a room they left", async () => {
    await withStore(open, async (store) => {
      const user = roomName("rooms-of-user");
      const other = roomName("rooms-of-other");
      const { shuffled, sorted } = sortedIds("rooms-of");
      const rooms = new Map<string, Room>();
      for (const [i, id] of shuffled.entries()) {
        const room = newRoom(id, { direct: i % 3 === 0 });
        rooms.set(id, room);
        await store.createRoom(room);
        await store.addMember(id, user);
      }
      await store.addMember(sorted[0]!, other);
      // A membership of a room that was never created is kept, but roomsOf lists rooms only.
      const uncreated = roomName("rooms-of-uncreated");
      assert.equal(await store.addMember(uncreated, user), true);
      assert.equal(await store.isMember(uncreated, user), true);

      assert.deepEqual(await store.roomsOf(user), sorted.map((id) => rooms.get(id)));
      assert.deepEqual(await store.roomsOf(other), [rooms.get(sorted[0]!)]);
      assert.deepEqual(await store.roomsOf(roomName("rooms-of-nobody")), []);

      assert.equal(await store.removeMember(sorted[2]!, user), true);
      assert.equal(await store.removeMember(sorted[0]!, user), true);
      assert.deepEqual(
        await store.roomsOf(user),
        [sorted[1]!, ...sorted.slice(3)].map((id) => rooms.get(id)),
        "the rooms left are gone",
      );
      assert.deepEqual(await store.roomsOf(other), [rooms.get(sorted[0]!)], "others keep theirs");
      assert.equal(await store.addMember(sorted[0]!, user), true);
      assert.deepEqual(
        await store.roomsOf(user),
        [sorted[0]!, sorted[1]!, ...sorted.slice(3)].map((id) => rooms.get(id)),
      );
    });
  });

  test("listRooms excludes direct rooms, sorts by id and respects limit", async () => {
    await withStore(open, async (store) => {
      const { shuffled, sorted } = sortedIds("list");
      const directs = new Set([sorted[1]!, sorted[4]!]);
      for (const id of shuffled) await store.createRoom(newRoom(id, { direct: directs.has(id) }));
      const expected = sorted.filter((id) => !directs.has(id));

      // Other tests' rooms share the database: look at ours, and at the whole list's shape.
      const all = await store.listRooms(100_000);
      assert.ok(all.every((room) => !room.direct), "no direct room is listed");
      const ids = all.map((room) => room.id);
      assert.deepEqual(ids.filter((id) => id.startsWith(`list-${RUN}-`)), expected);
      for (const id of expected) {
        assert.deepEqual(all.find((room) => room.id === id), {
          ...(await store.getRoom(id)),
        });
      }
      assert.equal(new Set(ids).size, ids.length, "each room once");
      assert.deepEqual([...ids].sort(byCodePoint), ids, "sorted by code point");

      for (const limit of [1, 2, 3, all.length, all.length + 5]) {
        assert.deepEqual(await store.listRooms(limit), all.slice(0, limit), `limit ${limit}`);
      }
      assert.deepEqual(await store.listRooms(0), []);
      assert.deepEqual(await store.listRooms(-3), []);
    });
  });

  test("setTopic keeps a topic on the room record; a new room has none", async () => {
    await withStore(open, async (store) => {
      const room = newRoom(roomName("Topical"));
      await store.createRoom(room);
      assert.equal((await store.getRoom(room.id))?.topic, undefined);
      const topic = "Books, 本 and 🏠 — 100% of _them_";
      assert.deepEqual(await store.setTopic(room.id, topic), { ...room, topic });
      assert.deepEqual(await store.getRoom(room.id.toLowerCase()), { ...room, topic });
      await store.addMember(room.id, "topic-reader");
      assert.deepEqual(await store.roomsOf("topic-reader"), [{ ...room, topic }]);
      assert.deepEqual(await store.setTopic(room.id, ""), room, "an empty topic takes it away");
      assert.deepEqual(await store.getRoom(room.id), room);
      assert.equal(await store.setTopic(roomName("no-such-room"), "x"), undefined);
      assert.equal(
        await store.setTopic(room.id.toUpperCase(), "x"),
        undefined,
        "only the stored spelling",
      );
    });
  });

  test("listRooms searches ids and topics without case, as a plain substring", async () => {
    await withStore(open, async (store) => {
      const [kitchen, garden, secret, other] = [
        newRoom(roomName("Kitchen")),
        newRoom(roomName("garden")),
        newRoom(roomName("zz-secret"), { direct: true }),
        newRoom(roomName("zz-other")),
      ];
      for (const room of [kitchen, garden, secret, other]) await store.createRoom(room);
      await store.setTopic(garden.id, "Recipes from the KITCHEN 🍲 and Ümlauts 50%_off");
      await store.setTopic(secret.id, "kitchen gossip");
      const ours = new Set([kitchen, garden, secret, other].map((r) => r.id));
      const ids = async (search: string, limit = 100_000) =>
        (await store.listRooms(limit, search)).map((r) => r.id).filter((id) => ours.has(id));
      assert.deepEqual(await ids(`kitchen-${RUN}`), [kitchen.id], "the id, any case");
      assert.deepEqual(await ids("kItChEn"), [kitchen.id, garden.id].sort(byCodePoint));
      assert.deepEqual(await ids("ümlauts"), [garden.id], "non-ASCII folds too");
      assert.deepEqual(await ids("🍲"), [garden.id]);
      assert.deepEqual(await ids("50%_"), [garden.id], "'%' and '_' are plain characters");
      assert.deepEqual(await ids("5%"), [], "'%' is no wildcard");
      assert.deepEqual(await ids("gossip"), [], "no direct room, whatever its topic");
      assert.deepEqual(await ids(RUN), [kitchen.id, garden.id, other.id].sort(byCodePoint));
      assert.deepEqual(
        (await store.listRooms(100_000, "recipes")).find((r) => r.id === garden.id),
        { ...garden, topic: "Recipes from the KITCHEN 🍲 and Ümlauts 50%_off" },
      );
      assert.equal((await store.listRooms(1, RUN)).length, 1, "the limit holds");
      assert.deepEqual(await store.listRooms(10, "\u0000"), []);
      assert.deepEqual(await store.listRooms(0, RUN), []);
    });
  });

  test("setInviteOnly keeps the room's access; listRooms shows an invite-only room to its members only", async () => {
    await withStore(open, async (store) => {
      const room = newRoom(roomName("Private"));
      const open_ = newRoom(roomName("private-open"));
      for (const r of [room, open_]) await store.createRoom(r);
      assert.equal((await store.getRoom(room.id))?.inviteOnly, undefined, "a new room is open");
      assert.deepEqual(await store.setInviteOnly(room.id, true), { ...room, inviteOnly: true });
      assert.deepEqual(await store.getRoom(room.id.toLowerCase()), { ...room, inviteOnly: true });
      await store.setTopic(room.id, "plans");
      assert.deepEqual(await store.getRoom(room.id), { ...room, inviteOnly: true, topic: "plans" });
      await store.addMember(room.id, "insider");
      assert.deepEqual(await store.roomsOf("insider"), [
        { ...room, inviteOnly: true, topic: "plans" },
      ]);
      const ids = async (viewer?: string) =>
        (await store.listRooms(100_000, `private`, viewer)).map((r) => r.id).filter((id) =>
          id.endsWith(RUN)
        );
      assert.deepEqual(await ids(), [open_.id], "nobody's: not listed");
      assert.deepEqual(await ids("outsider"), [open_.id]);
      assert.deepEqual(await ids("insider"), [room.id, open_.id].sort(byCodePoint));
      assert.deepEqual(await ids("INSIDER"), [open_.id], "memberships by the stored spelling");
      assert.deepEqual(await ids("nul\u0000"), [open_.id]);
      assert.deepEqual(
        (await store.listRooms(1, "private", "outsider")).map((r) => r.id),
        [open_.id],
        "the limit counts only listed rooms",
      );
      assert.deepEqual(await store.setInviteOnly(room.id, false), { ...room, topic: "plans" });
      assert.deepEqual(await ids("outsider"), [room.id, open_.id].sort(byCodePoint));
      assert.equal(await store.setInviteOnly(roomName("no-such-room"), true), undefined);
      assert.equal(await store.setInviteOnly(room.id.toUpperCase(), true), undefined);
    });
  });

  test("invitations: one per room and user, dropped once, listed newest first", async () => {
    await withStore(open, async (store) => {
      const [a, b, c] = ["invite-a", "invite-b", "invite-c"].map((id) => newRoom(roomName(id)));
      for (const r of [a!, b!, c!]) await store.createRoom(r);
      const guest = `guest-${RUN}`;
      const at = (ms: number) => new Date(Date.UTC(2024, 0, 4, 0, 0, 0, ms)).toISOString();
      const invite = (room: Room, userId: string, ms: number, invitedBy = "host") =>
        store.invite({ roomId: room.id, userId, invitedBy, invitedAt: at(ms) });
      assert.equal(await store.isInvited(a!.id, guest), false);
      assert.equal(await invite(a!, guest, 1), true);
      assert.equal(await invite(a!, guest, 9, "other"), false, "invited already");
      assert.equal(await invite(c!, guest, 3), true);
      assert.equal(await invite(b!, guest, 2), true);
      assert.equal(await invite(b!, "someone-else", 5), true);
      assert.equal(await store.isInvited(a!.id, guest), true);
      assert.equal(await store.isInvited(a!.id, guest.toUpperCase()), false);
      assert.equal(await store.invitationCount(b!.id), 2);
      assert.equal(await store.invitationCount(roomName("nobody-invited")), 0);
      assert.deepEqual(await store.invitationsOf(guest, 10), [c!, b!, a!], "newest first");
      assert.deepEqual(await store.invitationsOf(guest, 2), [c!, b!]);
      assert.deepEqual(await store.invitationsOf(guest, 0), []);
      await store.setInviteOnly(c!.id, true);
      assert.deepEqual((await store.invitationsOf(guest, 1))[0], { ...c!, inviteOnly: true });
      assert.equal(await store.uninvite(c!.id, guest), true);
      assert.equal(await store.uninvite(c!.id, guest), false, "used up");
      assert.equal(await store.isInvited(c!.id, guest), false);
      assert.deepEqual(await store.invitationsOf(guest, 10), [b!, a!]);
      assert.equal(await invite(c!, guest, 0), true, "invited again after");
      assert.deepEqual(await store.invitationsOf(guest, 10), [b!, a!, { ...c!, inviteOnly: true }]);
      // Only rooms that were created are listed.
      await store.invite({
        roomId: roomName("never-created"),
        userId: guest,
        invitedBy: "host",
        invitedAt: at(50),
      });
      assert.equal((await store.invitationsOf(guest, 10)).length, 3);
      assert.equal(await store.isInvited("nul\u0000", guest), false);
      assert.equal(await store.uninvite("nul\u0000", guest), false);
    });
  });

  test("memberCounts counts the members of many rooms in order", async () => {
    await withStore(open, async (store) => {
      const [a, b, empty] = ["count-a", "count-b", "count-empty"].map(roomName);
      await store.addMember(a!, "ann");
      await store.addMember(a!, "bob");
      await store.addMember(b!, "ann");
      await store.addMember(a!, "cat");
      await store.removeMember(a!, "cat");
      assert.deepEqual(await store.memberCounts([b!, empty!, a!, b!]), [1, 0, 2, 1]);
      assert.deepEqual(await store.memberCounts([]), []);
    });
  });

  test("lastSeq follows appends", async () => {
    await withStore(open, async (store) => {
      const room = roomName("last-seq");
      assert.equal(await store.lastSeq(room), 0);
      const stored = await appendMany(store, room, 5);
      assert.equal(await store.lastSeq(room), 5);
      await store.append(stored[2]!); // a repeated id adds nothing
      assert.equal(await store.lastSeq(room), 5);
      await store.append(newMessage(room));
      assert.equal(await store.lastSeq(room), 6);
      assert.equal(await store.lastSeq(roomName("last-seq-other")), 0, "per room");
      await store.createRoom(newRoom(roomName("last-seq-created")));
      assert.equal(await store.lastSeq(roomName("last-seq-created")), 0, "a new room is empty");
    });
  });

  test("data survives close and reopen", async () => {
    const room = roomName("reopen");
    const account = newAccount(roomName("reopen-account"));
    const record = newRoom(room);
    const direct = newRoom(roomName("reopen-direct"), { direct: true });
    let stored: ChatMessage[] = [];
    await withStore(open, async (store) => {
      stored = await appendMany(store, room, 3);
      await store.createAccount(account);
      await store.createRoom(record);
      await store.createRoom(direct);
      await store.addMember(room, account.id);
      await store.addMember(direct.id, account.id);
      await store.addMember(direct.id, "someone-else");
      await store.removeMember(direct.id, "someone-else");
    });
    await withStore(open, async (store) => {
      assert.deepEqual(await store.since(room, 0, 10), stored);
      assert.deepEqual(await store.append(stored[1]!), stored[1], "ids are remembered too");
      assert.equal((await store.append(newMessage(room))).seq, 4);
      assert.equal(await store.lastSeq(room), 4);
      assert.deepEqual(await store.getAccount(account.id), account);
      assert.equal((await store.createAccount(account)).created, false);
      assert.deepEqual(await store.getRoom(room), record);
      assert.deepEqual(await store.getRoom(direct.id), direct);
      assert.equal((await store.createRoom(direct)).created, false);
      assert.deepEqual(await store.members(room), [account.id]);
      assert.deepEqual(await store.members(direct.id), [account.id], "the removal too");
      const both = [record, direct].sort((a, b) => byCodePoint(a.id, b.id));
      assert.deepEqual(await store.roomsOf(account.id), both);
      assert.equal(await store.addMember(room, account.id), false);
    });
  });
  test("read positions move forward only, capped at the newest message, and survive a reopen", async () => {
    const room = roomName("read");
    const me = `reader-${RUN}`;
    await withStore(open, async (store) => {
      assert.equal(await store.markRead(room, me, 5), undefined, "an empty room: nothing to read");
      await appendMany(store, room, 4);
      assert.equal(await store.markRead(room, me, 2), 2);
      assert.equal(await store.markRead(room, me, 1), undefined, "never back");
      assert.equal(await store.markRead(room, me, 2), undefined, "not moved");
      assert.deepEqual(await store.readStates(me, [room]), [{
        room,
        readSeq: 2,
        unread: 2,
        mentions: 0,
      }]);
      assert.equal(await store.markRead(room, me, Number.MAX_SAFE_INTEGER), 4, "capped");
      assert.equal(await store.markRead(room, `other-${RUN}`, 3), 3, "per user");
    });
    await withStore(open, async (store) => {
      assert.deepEqual(await store.readStates(me, [room]), [{
        room,
        readSeq: 4,
        unread: 0,
        mentions: 0,
      }]);
      const other = roomName("read-other");
      await appendMany(store, other, 1);
      await store.markRead(other, me, 1);
      assert.deepEqual(await store.readPositions([room, roomName("read-none")]), [
        { room, userId: `other-${RUN}`, seq: 3 },
        { room, userId: me, seq: 4 },
      ], "by room, then user; only the rooms asked");
      assert.deepEqual(await store.readPositions([]), []);
    });
  });

  test("seen by: who read a message, without its sender, and in a room only members from before it", async () => {
    await withStore(open, async (store) => {
      const room = roomName("seen-by");
      const [sender, a, b, late] = ["s", "a", "b", "late"].map((n) => `${n}-seen-${RUN}`) as [
        string,
        string,
        string,
        string,
      ];
      for (const user of [sender, a, b]) await store.addMember(room, user);
      const now = () => new Date(Date.now() + 1).toISOString();
      await sleep(5);
      await store.append(newMessage(room, { userId: sender, timestamp: now() }));
      await store.append(newMessage(room, { userId: a, timestamp: now() }));
      await sleep(5);
      await store.addMember(room, late);
      await store.markRead(room, a, 2);
      await store.markRead(room, b, 1);
      await store.markRead(room, late, 2);
      await store.markRead(room, sender, 2);

      assert.deepEqual(await store.seenBy(room, 1, 10, true), { userIds: [a, b], count: 2 });
      assert.deepEqual(
        await store.seenBy(room, 2, 10, true),
        { userIds: [sender], count: 1 },
        "its sender never counts, nor a member who joined after it was sent",
      );
      assert.deepEqual(await store.seenBy(room, 1, 1, true), { userIds: [a], count: 2 });
      assert.deepEqual(
        await store.seenBy(room, 1, 10, false),
        { userIds: [a, b, late], count: 3 },
        "without membersOnly, every position at or past it",
      );
      assert.deepEqual(await store.seenBy(room, 3, 10, true), { userIds: [], count: 0 });
      await store.removeMember(room, b);
      assert.deepEqual(await store.seenBy(room, 1, 10, true), { userIds: [a], count: 1 });
    });
  });

  test("read states count others' messages after the position, for many rooms in order", async () => {
    await withStore(open, async (store) => {
      const me = `counter-${RUN}`;
      const [a, b, empty] = [roomName("unread-a"), roomName("unread-b"), roomName("unread-none")];
      await appendMany(store, a, 3);
      await store.append(newMessage(a, { userId: me }));
      await appendMany(store, a, 2);
      await appendMany(store, b, 2);
      await store.markRead(b, me, 1);
      assert.deepEqual(await store.readStates(me, [b, empty, a]), [
        { room: b, readSeq: 1, unread: 1, mentions: 0 },
        { room: empty, readSeq: 0, unread: 0, mentions: 0 },
        { room: a, readSeq: 0, unread: 5, mentions: 0 },
      ]);
      await store.markRead(a, me, 4);
      assert.deepEqual(await store.readStates(me, [a]), [{
        room: a,
        readSeq: 4,
        unread: 2,
        mentions: 0,
      }]);
      // Messages that mention me count apart too, after the position; my own never do.
      await store.appendAll([
        newMessage(a, { content: "@me", mentions: [me] }),
        newMessage(a, { content: "@others", mentions: [`x-${RUN}`] }),
        newMessage(a, { userId: me, content: "@me myself", mentions: [me] }),
      ]);
      assert.deepEqual(await store.readStates(me, [a]), [{
        room: a,
        readSeq: 4,
        unread: 4,
        mentions: 1,
      }]);
      await store.markRead(a, me, 7);
      assert.deepEqual(await store.readStates(me, [a]), [{
        room: a,
        readSeq: 7,
        unread: 1,
        mentions: 0,
      }]);
      assert.deepEqual(await store.readStates(me, []), []);
    });
  });

  test("an unread count looks at the newest UNREAD_COUNT_MAX messages only", async () => {
    await withStore(open, async (store) => {
      const room = roomName("unread-long");
      const run = Array.from({ length: UNREAD_COUNT_MAX + 5 }, () => newMessage(room));
      await store.appendAll(run);
      const me = `long-${RUN}`;
      assert.deepEqual(await store.readStates(me, [room]), [
        { room, readSeq: 0, unread: UNREAD_COUNT_MAX, mentions: 0 },
      ]);
      await store.markRead(room, me, 10);
      assert.equal((await store.readStates(me, [room]))[0]!.unread, UNREAD_COUNT_MAX - 5);
      await store.markRead(room, me, UNREAD_COUNT_MAX);
      assert.equal((await store.readStates(me, [room]))[0]!.unread, 5);
    });
  });

  test("given positions are kept, gaps and all, and every query works across the gaps", async () => {
    await withStore(open, async (store) => {
      const a = roomName("sparse-a");
      const b = roomName("sparse-b");
      const far = 1_000_000_000_000 + 3;
      const given = [
        newMessage(a, { seq: 5 }),
        newMessage(b, { seq: 2 }),
        newMessage(a, { seq: 9, content: "ninth" }),
        newMessage(a, { seq: far, content: "farthest sparseword" }),
        newMessage(b, { seq: 2 ** 53 - 2 }),
      ];
      const stored = await store.appendAll(given);
      assert.deepEqual(stored, given, "each kept at the position it came with");
      const [at5, , at9, atFar] = stored as [ChatMessage, ChatMessage, ChatMessage, ChatMessage];
      assert.deepEqual(await store.since(a, 0, 10), [at5, at9, atFar]);
      assert.deepEqual(await store.since(a, 5, 10), [at9, atFar]);
      assert.deepEqual(await store.since(a, 6, 1), [at9]);
      assert.deepEqual(await store.since(a, far, 10), []);
      assert.deepEqual(await store.history({ room: a, limit: 10 }), [atFar, at9, at5]);
      assert.deepEqual(await store.history({ room: a, beforeSeq: far, limit: 10 }), [at9, at5]);
      assert.deepEqual(await store.history({ room: a, beforeSeq: far, limit: 1 }), [at9]);
      assert.deepEqual(await store.history({ room: a, beforeSeq: 8, limit: 10 }), [at5]);
      assert.deepEqual(await store.history({ room: a, beforeSeq: 5, limit: 10 }), []);
      assert.deepEqual(await store.message(a, 9), at9);
      assert.deepEqual(await store.message(a, far), atFar);
      assert.equal(await store.message(a, 6), undefined, "a gap holds no message");
      assert.equal(await store.message(a, 3), undefined);
      assert.equal(await store.lastSeq(a), far);
      assert.equal(await store.lastSeq(b), 2 ** 53 - 2);

      const at = "2024-06-01T00:00:00.000Z";
      const edited = { ...at9, content: "ninth, edited", editedAt: at };
      const change = {
        room: a,
        seq: 9,
        deleted: false,
        content: "ninth, edited",
        at,
        byUserId: at9.userId,
        byDisplayName: at9.displayName,
      };
      assert.deepEqual(await store.changeMessage(change), edited);
      assert.equal(await store.changeMessage({ ...change, seq: 6 }), undefined);
      assert.equal(await store.toggleReaction(a, far, "ann", "👍"), true);
      assert.equal(await store.toggleReaction(a, 6, "ann", "👍"), undefined);
      const reacted = { ...atFar, reactions: [{ emoji: "👍", users: ["ann"] }] };
      assert.deepEqual(await store.message(a, far), reacted);
      assert.deepEqual(await store.history({ room: a, limit: 10 }), [reacted, edited, at5]);
      assert.deepEqual(
        (await store.search([a], "SparseWord", 10)).map((m) => m.seq),
        [far],
      );

      const reader = `sparse-reader-${RUN}`;
      assert.equal(await store.markRead(a, reader, 7), 7);
      assert.deepEqual(await store.readStates(reader, [a, b]), [
        { room: a, readSeq: 7, unread: 2, mentions: 0 },
        { room: b, readSeq: 0, unread: 2, mentions: 0 },
      ], "unread counts count messages, not positions");
      assert.equal(await store.markRead(a, reader, 2 ** 53 - 1), far, "clipped to the newest");
      assert.deepEqual(await store.readStates(reader, [a]), [
        { room: a, readSeq: far, unread: 0, mentions: 0 },
      ]);
      assert.deepEqual(await store.readPositions([a]), [{ room: a, userId: reader, seq: far }]);
      assert.deepEqual(await store.seenBy(a, 9, 10, false), { userIds: [reader], count: 1 });
      assert.deepEqual(await store.seenBy(a, 6, 10, false), { userIds: [], count: 0 });

      const next = await store.append(newMessage(a));
      assert.equal(next.seq, far + 1, "a message without a position goes after the newest");
      const last = await store.append(newMessage(b));
      assert.equal(last.seq, 2 ** 53 - 1, "the largest position round-trips exactly");
      assert.deepEqual(await store.message(b, 2 ** 53 - 1), last);
      assert.deepEqual(seqs(await store.since(b, 2, 10)), [2 ** 53 - 2, 2 ** 53 - 1]);
    });
  });

  test("a repeat returns the first stored copy whatever position it carries", async () => {
    await withStore(open, async (store) => {
      const room = roomName("sparse-repeat");
      const first = await store.append(newMessage(room, { seq: 10 }));
      assert.equal(first.seq, 10);
      for (const seq of [20, 10, 3, 0]) {
        assert.deepEqual(await store.append({ ...first, seq, content: "again" }), first);
      }
      const later = newMessage(room, { seq: 11 });
      assert.deepEqual(await store.appendAll([later, { ...first, seq: 4 }]), [later, first]);
      assert.deepEqual(await store.since(room, 0, 10), [first, later]);
    });
  });

  test("a position not after the room's newest is refused, and nothing of that call is stored", async () => {
    await withStore(open, async (store) => {
      const room = roomName("sparse-backwards");
      const other = roomName("sparse-backwards-other");
      const at40 = await store.append(newMessage(room, { seq: 40 }));
      const ahead = newMessage(room, { seq: 41 });
      const elsewhere = newMessage(other, { seq: 1 });
      const back = newMessage(room, { seq: 12 });
      await assert.rejects(
        store.appendAll([elsewhere, ahead, back]),
        refusedWith(
          "failed_precondition",
          new RegExp(
            `^Cannot store message ${back.id} in room ${room}: position 12 is not after the room's newest, 41; the room log went backwards`,
          ),
        ),
      );
      assert.deepEqual(await store.since(room, 0, 10), [at40], "nothing of the call is stored");
      assert.deepEqual(await store.since(other, 0, 10), []);
      const equal = newMessage(room, { seq: 40 });
      await assert.rejects(store.append(equal), refusedWith("failed_precondition", /newest, 40;/));
      await assert.rejects(
        store.appendAll([newMessage(room, { seq: 50 }), newMessage(room, { seq: 45 })]),
        refusedWith("failed_precondition", /position 45 is not after the room's newest, 50;/),
        "positions within one call increase per room too",
      );
      for (const seq of [-1, 1.5, 2 ** 53, Number.NaN]) {
        for (const message of [newMessage(room, { seq }), { ...at40, seq }]) {
          await assert.rejects(
            store.append(message),
            refusedWith("invalid_argument", /is not a whole number from 0 to 2\^53-1$/),
            "not a position, even on a repeat",
          );
        }
      }
      assert.equal(await store.lastSeq(room), 40);
      assert.deepEqual(await store.appendAll([elsewhere, ahead]), [elsewhere, ahead]);
      assert.equal((await store.append(newMessage(room))).seq, 42);
    });
  });

  test("an unread count looks at the newest UNREAD_COUNT_MAX messages, however far apart", async () => {
    await withStore(open, async (store) => {
      const room = roomName("unread-sparse");
      const run = Array.from(
        { length: UNREAD_COUNT_MAX + 5 },
        (_, i) => newMessage(room, { seq: 10 * (i + 1) }),
      );
      await store.appendAll(run);
      const me = `sparse-long-${RUN}`;
      assert.deepEqual(await store.readStates(me, [room]), [
        { room, readSeq: 0, unread: UNREAD_COUNT_MAX, mentions: 0 },
      ]);
      await store.markRead(room, me, 105);
      assert.equal((await store.readStates(me, [room]))[0]!.unread, UNREAD_COUNT_MAX - 5);
    });
  });

  test("search finds every word in any case, only in the rooms given, best first within limit", async () => {
    await withStore(open, async (store) => {
      const a = roomName("search-a");
      const b = roomName("search-b");
      const other = roomName("search-other");
      const word = `kiwi${RUN}`;
      const [hit] = await store.appendAll([
        newMessage(a, { content: `Ripe ${word.toUpperCase()} and Mango` }),
        newMessage(a, { content: `${word} only` }),
        newMessage(a, { content: "mango alone" }),
      ]);
      await store.append(newMessage(b, { content: `mango, ${word}!` }));
      await store.append(newMessage(other, { content: `${word} mango elsewhere` }));

      const both = await store.search([a, b], `MANGO ${word}`, 10);
      assert.deepEqual(both.map((m) => m.room).sort(), [a, b].sort());
      const inA = both.find((m) => m.room === a)!;
      assert.deepEqual({ ...inA, reactions: undefined }, { ...hit!, seq: 1, reactions: undefined });
      assert.equal((await store.search([a, b, other], word, 10)).length, 4);
      assert.equal((await store.search([a, b, other], word, 2)).length, 2);
      assert.deepEqual(await store.search([a], word, 0), []);
      assert.deepEqual(await store.search([], word, 10), []);
      assert.deepEqual(await store.search([roomName("search-none")], word, 10), []);
      // Only whole words: a part of one is not a word of it.
      assert.deepEqual(await store.search([a], word.slice(0, -1), 10), []);
    });
  });

  test("search finds an edited message by its new words, never a deleted one", async () => {
    await withStore(open, async (store) => {
      const room = roomName("search-edit");
      const old = `old${RUN}`;
      const fresh = `new${RUN}`;
      const gone = `gone${RUN}`;
      await store.appendAll([
        newMessage(room, { content: `the ${old} text` }),
        newMessage(room, { content: `secret ${gone}` }),
      ]);
      assert.equal((await store.search([room], old, 10)).length, 1);
      const at = new Date(Date.UTC(2024, 0, 4)).toISOString();
      const by = { byUserId: "user-0", byDisplayName: "User 0", at };
      await store.changeMessage({
        room,
        seq: 1,
        deleted: false,
        content: `the ${fresh} text`,
        ...by,
      });
      assert.deepEqual(await store.search([room], old, 10), []);
      const found = await store.search([room], fresh, 10);
      assert.deepEqual(found.map((m) => [m.seq, m.content, m.editedAt]), [
        [1, `the ${fresh} text`, at],
      ]);
      await store.changeMessage({ room, seq: 2, deleted: true, content: "", ...by });
      assert.deepEqual(await store.search([room], gone, 10), []);
      assert.deepEqual(await store.search([room], "secret", 10), []);
      // Editing a deleted message changes nothing, so it stays unfindable.
      await store.changeMessage({ room, seq: 2, deleted: false, content: `back ${gone}`, ...by });
      assert.deepEqual(await store.search([room], gone, 10), []);
    });
  });

  test("search reads hostile queries as plain words and never fails", async () => {
    await withStore(open, async (store) => {
      const room = roomName("search-hostile");
      const word = `plum${RUN}`;
      await store.append(newMessage(room, { content: `a ${word} near pear` }));
      const hostile = [
        `"${word}`,
        `${word}*`,
        `NEAR(${word} pear)`,
        `-${word}`,
        `${word}' OR 1=1 --`,
        `${word}"); DROP TABLE messages; --`,
        `${word} AND NOT pear`,
        `${word}:* & !pear`,
        `^${word}`,
        `{content}: ${word}`,
        `${word}\0`,
      ];
      for (const query of hostile) {
        const found = await store.search([room], query, 10);
        assert.ok(Array.isArray(found), query);
      }
      // The words of each are looked for, the operators are not.
      assert.equal((await store.search([room], `"${word}`, 10)).length, 1);
      assert.equal((await store.search([room], `NEAR(${word} pear)`, 10)).length, 1);
      assert.equal((await store.search([room], `-${word}`, 10)).length, 1);
      assert.equal((await store.search([room], `${word}' OR 1=1 --`, 10)).length, 0);
      for (const query of ["", "   ", "***", '"', "-", "(", "'", "\0"]) {
        assert.deepEqual(await store.search([room], query, 10), [], JSON.stringify(query));
      }
    });
  });

  test("blocking is stored per blocker, idempotent, listed sorted, and undone by unblocking", async () => {
    await withStore(open, async (store) => {
      const me = `blocker-${RUN}`;
      const { shuffled, sorted } = sortedIds("blocked");
      for (const id of shuffled) assert.equal(await store.setBlocked(me, id, true), true, id);
      assert.equal(await store.setBlocked(me, sorted[0]!, true), false, "blocked already");
      assert.deepEqual(await store.blockedBy(me), sorted);
      assert.equal(await store.isBlocked(me, sorted[1]!), true);
      assert.equal(await store.isBlocked(sorted[1]!, me), false, "blocking is one way");
      assert.deepEqual(await store.blockedBy(sorted[1]!), []);
      assert.equal(await store.setBlocked(me, sorted[1]!, false), true);
      assert.equal(await store.setBlocked(me, sorted[1]!, false), false, "not blocked any more");
      assert.equal(await store.isBlocked(me, sorted[1]!), false);
      assert.deepEqual(await store.blockedBy(me), sorted.filter((_, i) => i !== 1));
    });
    // Stored: another handle sees it.
    await withStore(open, async (store) => {
      assert.equal(await store.isBlocked(`blocker-${RUN}`, sortedIds("blocked").sorted[0]!), true);
    });
  });

  test("a reader's history, search and unread counts leave out the users they blocked", async () => {
    await withStore(open, async (store) => {
      const room = roomName("blocked-history");
      const me = `reader-${RUN}`;
      const pest = `pest-${RUN}`;
      const friend = `friend-${RUN}`;
      const word = `kiwi${RUN}`;
      const from = (userId: string, n: number) =>
        store.append(newMessage(room, { userId, content: `${word} ${n} @${me}`, mentions: [me] }));
      for (let n = 1; n <= 6; n++) await from(n % 2 === 0 ? pest : friend, n);
      await store.setBlocked(me, pest, true);
      // Full pages of what the reader sees: the blocked sender's messages do not take places.
      assert.deepEqual(seqs(await store.history({ room, limit: 2, reader: me })), [5, 3]);
      assert.deepEqual(
        seqs(await store.history({ room, beforeSeq: 3, limit: 2, reader: me })),
        [1],
      );
      assert.deepEqual(seqs(await store.history({ room, limit: 2 })), [6, 5], "no reader: all");
      assert.deepEqual(
        seqs(await store.history({ room, limit: 10, reader: friend })),
        [6, 5, 4, 3, 2, 1],
        "another reader sees them",
      );
      const found = await store.search([room], word, 10, me);
      assert.deepEqual(found.map((m) => m.seq).sort(), [1, 3, 5]);
      assert.equal((await store.search([room], word, 10)).length, 6);
      assert.deepEqual(await store.readStates(me, [room]), [{
        room,
        readSeq: 0,
        unread: 3,
        mentions: 3,
      }]);
      await store.setBlocked(me, pest, false);
      assert.deepEqual(await store.readStates(me, [room]), [{
        room,
        readSeq: 0,
        unread: 6,
        mentions: 6,
      }]);
      assert.equal((await store.history({ room, limit: 10, reader: me })).length, 6);
    });
  });

  test("roles, mutes and room events are kept per room, events read by time span", async () => {
    await withStore(open, async (store) => {
      const room = roomName("Moderated");
      const other = roomName("Moderated-other");
      assert.deepEqual(await store.moderators(room), []);
      assert.equal(await store.setRole(room, "ben", "moderator"), true);
      assert.equal(await store.setRole(room, "ben", "moderator"), false, "already one");
      assert.equal(await store.setRole(room, "Ämy", "moderator"), true);
      assert.equal(await store.setRole(room, "amy", "moderator"), true);
      assert.deepEqual(await store.moderators(room), ["amy", "ben", "Ämy"].sort());
      assert.deepEqual(await store.moderators(other), []);
      assert.equal(await store.setRole(room, "ben", "member"), true);
      assert.equal(await store.setRole(room, "ben", "member"), false, "not one any more");
      assert.deepEqual(await store.moderators(room), ["amy", "Ämy"].sort());

      assert.equal(await store.mutedUntil(room, "carl"), undefined);
      await store.setMute(room, "carl", "2030-01-01T10:00:00.000Z");
      await store.setMute(room, "carl", "2030-01-01T11:00:00.000Z");
      assert.equal(await store.mutedUntil(room, "carl"), "2030-01-01T11:00:00.000Z");
      assert.equal(await store.mutedUntil(other, "carl"), undefined);
      await store.setMute(room, "carl", undefined);
      await store.setMute(room, "carl", undefined);
      assert.equal(await store.mutedUntil(room, "carl"), undefined);

      const at = (minute: number) => new Date(Date.UTC(2025, 0, 1, 0, minute)).toISOString();
      const events = [
        { room, userId: "ann", displayName: "Ann", joined: true, created: true, at: at(1) },
        { room, userId: "ben", displayName: "Ben", joined: true, at: at(2) },
        {
          room,
          userId: "ben",
          displayName: "Ben",
          joined: true,
          action: "role" as const,
          actorId: "ann",
          actorName: "Ann",
          detail: "moderator",
          at: at(3),
        },
        {
          room,
          userId: "carl",
          displayName: "Carl 🐈",
          joined: true,
          action: "muted" as const,
          actorId: "ben",
          actorName: "Ben",
          until: at(30),
          at: at(4),
        },
        {
          room,
          userId: "carl",
          displayName: "Carl 🐈",
          joined: false,
          action: "removed" as const,
          actorId: "ann",
          actorName: "Ann",
          at: at(5),
        },
        { room, userId: "ben", displayName: "Ben", joined: false, at: at(5) },
        {
          room,
          userId: "ann",
          displayName: "Ann",
          joined: true,
          action: "topic" as const,
          actorId: "ann",
          actorName: "Ann",
          detail: "",
          at: at(6),
        },
      ];
      for (const event of events) await store.addRoomEvent(event);
      await store.addRoomEvent({ ...events[1]!, room: other });
      assert.deepEqual(await store.roomEvents(room, { limit: 100 }), events);
      assert.deepEqual(
        await store.roomEvents(room, { after: at(2), until: at(5), limit: 100 }),
        events.slice(2, 6),
        "after is left out, until kept; ties in the order kept",
      );
      assert.deepEqual(
        await store.roomEvents(room, { until: at(5), limit: 2 }),
        events.slice(4, 6),
        "the newest of the span",
      );
      assert.deepEqual(await store.roomEvents(room, { after: at(6), limit: 10 }), []);
      assert.deepEqual(await store.roomEvents(room, { limit: 0 }), []);
      assert.deepEqual(await store.roomEvents(other, { limit: 10 }), [{
        ...events[1]!,
        room: other,
      }]);
      // An invitation changes no membership, and reads back so.
      const invited = {
        room: roomName("Moderated-invited"),
        userId: "cat",
        displayName: "Cat",
        joined: false,
        action: "invited" as const,
        actorId: "ann",
        actorName: "Ann",
        at: at(7),
      };
      await store.addRoomEvent(invited);
      assert.deepEqual(await store.roomEvents(invited.room, { limit: 10 }), [invited]);
    });
  });
}
