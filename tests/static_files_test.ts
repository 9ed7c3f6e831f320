/** server/static_files.ts without sockets: the handler called with requests. */

import assert from "node:assert/strict";
import { createStaticHandler, NOT_BUILT_HINT, safeRelativePath } from "../server/static_files.ts";

async function withBuild(fn: (dir: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "chat-static-" });
  const dir = `${root}/dist`;
  await Deno.mkdir(`${dir}/assets`, { recursive: true });
  await Deno.writeTextFile(`${dir}/index.html`, "<!doctype html><title>Chat</title>");
  await Deno.writeTextFile(`${dir}/app.js`, "console.log('hi');");
  await Deno.writeTextFile(`${dir}/styles.css`, "body{}");
  await Deno.writeTextFile(`${dir}/assets/logo.svg`, "<svg/>");
  await Deno.writeTextFile(`${dir}/.env`, "SECRET=1");
  await Deno.writeTextFile(`${root}/secret.txt`, "outside the build");
  await Deno.writeTextFile(`${root}/outside.js`, "outside the build");
  await Deno.symlink(`${root}/outside.js`, `${dir}/link.js`);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const get = (path: string, init?: RequestInit) => new Request(`http://localhost${path}`, init);

Deno.test("serves / as index.html and the assets with their content types", async () => {
  await withBuild(async (dir) => {
    const handler = createStaticHandler(dir);
    const index = (await handler(get("/")))!;
    assert.equal(index.status, 200);
    assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(await index.text(), "<!doctype html><title>Chat</title>");
    assert.match(index.headers.get("content-security-policy")!, /default-src 'self'/);
    assert.equal(index.headers.get("cache-control"), "no-cache");
    assert.equal(index.headers.get("x-content-type-options"), "nosniff");

    const cases = [
      ["/app.js", "text/javascript; charset=utf-8", "console.log('hi');"],
      ["/styles.css", "text/css; charset=utf-8", "body{}"],
      ["/assets/logo.svg", "image/svg+xml", "<svg/>"],
      ["/index.html", "text/html; charset=utf-8", "<!doctype html><title>Chat</title>"],
    ] as const;
    for (const [path, type, body] of cases) {
      const res = (await handler(get(path)))!;
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-type"), type, path);
      assert.equal(res.headers.get("content-length"), String(body.length), path);
      assert.equal(await res.text(), body, path);
    }
  });
});

Deno.test("HEAD answers the headers without a body; a matching ETag gets 304", async () => {
  await withBuild(async (dir) => {
    const handler = createStaticHandler(dir);
    const head = (await handler(get("/app.js", { method: "HEAD" })))!;
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    assert.equal(head.headers.get("content-length"), "18");
    const etag = head.headers.get("etag")!;
    assert.match(etag, /^W\/".+"$/);
    const again = (await handler(get("/app.js", { headers: { "if-none-match": etag } })))!;
    assert.equal(again.status, 304);
    assert.equal(again.body, null);
  });
});

Deno.test("what is not a servable file in the build answers undefined, for the other routes", async () => {
  await withBuild(async (dir) => {
    const handler = createStaticHandler(dir);
    const refused = [
      "/missing.js",
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/assets/..%2f..%2fsecret.txt",
      "/..%5csecret.txt",
      "/.env",
      "/assets/",
      "/assets",
      "/link.js", // a symlink that leads out of the build
      "/app.js%00.html",
      "/%E0%A4%A",
      "/healthz",
      "/readyz",
    ];
    for (const path of refused) assert.equal(await handler(get(path)), undefined, path);
    // Other methods are not for this handler (the gRPC-Web bridge takes POST).
    assert.equal(await handler(get("/", { method: "POST", body: "x" })), undefined);
    assert.equal(await handler(get("/chat.Broadcast/ListOnline", { method: "POST" })), undefined);
  });
});

Deno.test("without a build, / answers a plain-text hint", async () => {
  const root = await Deno.makeTempDir({ prefix: "chat-static-" });
  try {
    const handler = createStaticHandler(`${root}/dist`);
    const res = (await handler(get("/")))!;
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(await res.text(), NOT_BUILT_HINT);
    assert.match(NOT_BUILT_HINT, /Web page not built: run `deno task build`/);
    assert.equal(await handler(get("/app.js")), undefined);
    // An empty build directory is the same.
    await Deno.mkdir(`${root}/dist`);
    assert.equal(await (await handler(get("/")))!.text(), NOT_BUILT_HINT);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("takes a file URL too, as the gateway passes it", async () => {
  await withBuild(async (dir) => {
    const handler = createStaticHandler(new URL(`file://${dir}/`));
    assert.equal((await handler(get("/")))!.status, 200);
  });
});

Deno.test("safeRelativePath maps URL paths to names inside the build", () => {
  assert.equal(safeRelativePath("/"), "index.html");
  assert.equal(safeRelativePath("/app.js"), "app.js");
  assert.equal(safeRelativePath("/a/b.css"), "a/b.css");
  assert.equal(safeRelativePath("/my%20file.css"), "my file.css");
  for (
    const bad of ["/../x", "/a/../x", "/%2e%2e/x", "/a%2fb", "/a%5cb", "/.git/config", "/a//b"]
  ) {
    assert.equal(safeRelativePath(bad), undefined, bad);
  }
});
