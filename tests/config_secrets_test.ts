/**
 * Secrets in DATABASE_URL never reach a log: the start-up banner masks the user-info password
 * (also one holding an unencoded `@`), password-like query parameters, and never prints a URL
 * it cannot parse. A gateway and a processor whose database cannot be reached exit 1 saying
 * which database failed, without the password.
 */

import assert from "node:assert/strict";
import { describeConfig, loadConfig } from "../core/config.ts";
import { maskUrl, scrubUrlSecrets, UNPARSEABLE_URL } from "../core/url_secrets.ts";
import { freePort } from "../scripts/processes.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("maskUrl: the user-info password", () => {
  assert.equal(maskUrl("postgres://chat:s3cret@db:5432/chat"), "postgres://chat:***@db:5432/chat");
  assert.equal(maskUrl("postgres://:s3cret@db/chat"), "postgres://:***@db/chat");
  assert.equal(maskUrl("postgres://chat@db/chat"), "postgres://chat@db/chat");
  assert.equal(maskUrl("postgres://db/chat"), "postgres://db/chat");
  assert.equal(
    maskUrl("postgresql://u:p%40ss@[::1]:5432/chat"),
    "postgresql://u:***@[::1]:5432/chat",
  );
  // An Azure-style user name holding an encoded `@`.
  assert.equal(maskUrl("postgres://user%40srv:pw@db/chat"), "postgres://user%40srv:***@db/chat");
});

Deno.test("maskUrl: an unencoded @ in the password: the user-info ends at the LAST @", () => {
  for (
    const url of [
      "postgres://chat:p@ss@db/chat",
      "postgres://chat:p@ss@w0rd@db:5432/chat",
      "postgres://chat:@tail-SECRET@db/chat",
    ]
  ) {
    const masked = maskUrl(url);
    assert.match(masked, /^postgres:\/\/chat:\*\*\*@db(:5432)?\/chat$/, url);
    assert.doesNotMatch(masked, /ss|w0rd|SECRET/, url);
  }
});

Deno.test("maskUrl: password-like query parameters", () => {
  assert.equal(
    maskUrl("postgres://chat:pw@db/chat?sslmode=require&password=qp&sslpassword=kp&pass=x"),
    "postgres://chat:***@db/chat?sslmode=require&password=***&sslpassword=***&pass=***",
  );
  assert.equal(
    maskUrl("postgres://db/chat?user=chat&PassWord=y&p%61ssword=z&pwd=w&auth_token=t"),
    "postgres://db/chat?user=chat&PassWord=***&p%61ssword=***&pwd=***&auth_token=***",
  );
  assert.equal(
    maskUrl("postgres:///chat?host=/var/run/postgresql&password=x"),
    "postgres:///chat?host=/var/run/postgresql&password=***",
  );
  assert.equal(maskUrl("postgres://u:p@db/chat#fragment"), "postgres://u:***@db/chat#***");
});

Deno.test("maskUrl: a URL that does not parse, or whose password cannot be told apart, is not shown", () => {
  for (
    const url of [
      "host=db user=chat password=s3cret", // a libpq keyword string
      "postgres://chat:pa/ss@db/chat", // `/` ends the host: "chat:pa" has no valid port
      "postgres://chat:pa?ss@db/chat",
      "postgres://chat:pa#ss@db/chat",
      "postgres://chat:2024/s3cret@db/chat", // parses, as host "chat" port 2024: the rest is a path
      "postgres://chat:123?s3cret@db/chat",
      "postgres:chat:s3cret@db", // no `//`: no user-info to find
      "not a url at all s3cret",
    ]
  ) {
    assert.equal(maskUrl(url), UNPARSEABLE_URL, url);
  }
  assert.equal(UNPARSEABLE_URL, "<unparseable URL, not shown>");
});

Deno.test("the start-up banner masks DATABASE_URL and shows nothing of an unparseable one", () => {
  const banner = (url: string) => describeConfig(loadConfig({ DATABASE_URL: url }));
  let text = banner("postgres://chat:s3cret@db:5432/chat?password=qpw&sslpassword=kpw");
  assert.match(
    text,
    / databaseUrl=postgres:\/\/chat:\*\*\*@db:5432\/chat\?password=\*\*\*&sslpassword=\*\*\* /,
  );
  assert.doesNotMatch(text, /s3cret|qpw|kpw/);
  text = banner("postgres://chat:hunt@r2-TAIL@db/chat");
  assert.match(text, / databaseUrl=postgres:\/\/chat:\*\*\*@db\/chat /);
  assert.doesNotMatch(text, /hunt|r2|TAIL/);
  text = banner("postgres://chat:pa/ss-TAIL@db/chat");
  assert.match(text, / databaseUrl=<unparseable URL, not shown> /);
  assert.doesNotMatch(text, /pa\/ss|TAIL/);
  assert.match(describeConfig(loadConfig({})), / databaseUrl=undefined /);
});

Deno.test("scrubUrlSecrets: a driver's message loses the URL and every secret in it", () => {
  const url = "postgres://chat:hunt@r2-TAIL@db/chat?sslpassword=KEYPASS";
  const message = `connect failed for ${url} (password hunt@r2-TAIL, key KEYPASS, hunt%40r2-TAIL)`;
  const scrubbed = scrubUrlSecrets(message, url);
  assert.doesNotMatch(scrubbed, /hunt|TAIL|KEYPASS/);
  assert.match(scrubbed, /postgres:\/\/chat:\*\*\*@db\/chat\?sslpassword=\*\*\*/);
  // Unparseable: everything between the user name and the last @ goes.
  const bad = "postgres://chat:pa/ss-TAIL@db/chat";
  assert.doesNotMatch(scrubUrlSecrets(`Invalid URL: '${bad}' and pa/ss-TAIL`, bad), /TAIL/);
});

/** Runs an entry point with `env` added; its exit code and all it printed. */
async function run(entry: string, env: Record<string, string>) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", entry],
    cwd: ROOT,
    env: {
      NO_COLOR: "1",
      GRPC_PORT: "0",
      HTTP_PORT: "0",
      AUTH_SECRET: "x".repeat(40),
      KAFKA_BROKERS: "127.0.0.1:1",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, text };
}

Deno.test("a gateway and a processor whose database cannot be reached exit 1, naming the database, never its password", async () => {
  const port = freePort(); // nothing listens there
  const cases = [
    {
      url: `postgres://chat:S3CRET-PW@127.0.0.1:${port}/chat?password=QUERY-PW&sslpassword=KEY-PW`,
      shown: `postgres://chat:***@127.0.0.1:${port}/chat?password=***&sslpassword=***`,
      secrets: /S3CRET|QUERY-PW|KEY-PW/,
      failure: /connect ECONNREFUSED 127\.0\.0\.1:\d+/,
    },
    {
      url: `postgres://chat:hunt@r2-TAIL@127.0.0.1:${port}/chat`,
      shown: `postgres://chat:***@127.0.0.1:${port}/chat`,
      secrets: /hunt|r2-TAIL/,
      failure: /connect ECONNREFUSED/,
    },
    {
      url: `postgres://chat:pa/ss-TAIL@127.0.0.1:${port}/chat`,
      shown: "<unparseable URL, not shown>",
      secrets: /pa\/ss|TAIL/,
      failure: /DATABASE_URL is not a valid URL/,
    },
  ];
  for (const c of cases) {
    for (const [service, entry] of [["gateway", "main.ts"], ["processor", "processor.ts"]]) {
      const { code, text } = await run(entry!, { DATABASE_URL: c.url });
      const what = `${service} with ${c.shown}:\n${text}`;
      assert.equal(code, 1, what);
      assert.doesNotMatch(text, c.secrets, what);
      assert.ok(text.includes(`databaseUrl=${c.shown} `), `banner: ${what}`);
      const error = text.split("\n").find((l) => l.includes(`ERROR Cannot start the ${service}:`));
      assert.ok(error, `the error line: ${what}`);
      assert.match(error, /PostgreSQL store/, what);
      assert.match(error, c.failure, what);
      if (!c.shown.startsWith("<")) assert.ok(error.includes(c.shown), what);
    }
  }
});
