/** protocol/names.ts: the rules every name follows, and the case-less key of accounts and rooms. */

import assert from "node:assert/strict";
import {
  characters,
  directRoomId,
  directRoomMembers,
  nameKey,
  nameProblem,
  roomNameProblem,
  storableProblem,
  usernameProblem,
} from "../protocol/names.ts";

Deno.test("a name is refused for control, separator and bidirectional characters, naming the one", () => {
  const cases: [string, string][] = [
    ["a\u0000b", "a NUL character (U+0000)"],
    ["a\nb", "a control character (U+000A)"],
    ["a\u007fb", "a control character (U+007F)"],
    ["a\u0085b", "a control character (U+0085)"],
    ["a\u2028b", "a line separator (U+2028)"],
    ["\u202eecila", "a bidirectional control character (U+202E)"],
    ["a\u202ab", "a bidirectional control character (U+202A)"],
    ["a\u2066b", "a bidirectional control character (U+2066)"],
    ["a\u2069b", "a bidirectional control character (U+2069)"],
    ["a\u200fb", "a bidirectional control character (U+200F)"],
    ["a\u061cb", "a bidirectional control character (U+061C)"],
  ];
  for (const [name, holds] of cases) {
    assert.equal(
      nameProblem("the display name", name, 64),
      `the display name holds ${holds}, which no name may hold`,
      JSON.stringify(name),
    );
  }
  assert.equal(
    nameProblem("the display name", "a\ud800b", 64),
    "the display name is not well-formed Unicode (it holds an unpaired surrogate)",
  );
});

Deno.test("a name has a length in characters, and may be anything else a person writes", () => {
  assert.equal(nameProblem("the room name", "", 64), "the room name is empty");
  assert.equal(nameProblem("the room name", "  ", 64), "the room name is empty");
  assert.equal(nameProblem("x", "é".repeat(64), 64), undefined, "64 characters, 128 bytes");
  assert.equal(nameProblem("x", "😀".repeat(65), 64), "x is 65 characters, the limit is 64");
  assert.equal(characters("😀é"), 2);
  for (const fine of ["Zoë 🦊", "עברית", "مرحبا", "日本語", "Ann O'Neil", "a\u200db"]) {
    assert.equal(nameProblem("the display name", fine, 64), undefined, fine);
  }
});

Deno.test("usernames and room names: their patterns, and one key for every spelling", () => {
  assert.equal(usernameProblem("alice.b_c-9"), undefined);
  assert.match(usernameProblem("x y")!, /may only hold letters, digits/);
  assert.equal(usernameProblem("a".repeat(33)), "the username is 33 characters, the limit is 32");
  assert.equal(roomNameProblem("book-club"), undefined);
  assert.match(roomNameProblem("-club")!, /must start with a letter or digit/);
  assert.equal(
    roomNameProblem("x".repeat(11), 10),
    "the room name is 11 characters, the limit is 10",
  );
  assert.equal(nameKey("ALICE"), nameKey("alice"));
  assert.equal(nameKey("Book-Club"), "book-club");
  assert.notEqual(nameKey("alice"), nameKey("alice2"));
});

Deno.test("content: only what a store cannot keep exactly is refused", () => {
  assert.equal(storableProblem("the content", "tabs\tnewlines\n\u202e 😀"), undefined);
  assert.equal(
    storableProblem("the content", "a\u0000"),
    "the content holds a NUL character (U+0000)",
  );
  assert.match(storableProblem("the content", "\udc00")!, /unpaired surrogate/);
});

Deno.test("direct room ids: the same from both sides, and back to the two users", () => {
  assert.equal(directRoomId("bob", "Alice"), "dm:Alice:bob");
  assert.equal(directRoomId("Alice", "bob"), "dm:Alice:bob");
  assert.deepEqual(directRoomMembers("dm:Alice:bob"), ["Alice", "bob"]);
  assert.equal(directRoomMembers("book-club"), undefined);
  assert.equal(directRoomMembers("dm:a:b:c"), undefined);
  assert.equal(directRoomMembers("dm::b"), undefined);
});
