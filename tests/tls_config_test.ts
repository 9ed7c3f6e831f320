/** The encryption settings: TLS_* (gateway), KAFKA_SSL_* / KAFKA_SASL_* (Kafka client), --tls/--ca (terminal client). */

import assert from "node:assert/strict";
import { describeConfig, loadConfig, readTlsFiles } from "../core/config.ts";
import { kafkaSecurity } from "../bus/open_bus.ts";
import { parseArguments } from "../client/arguments.ts";

const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

/** A fake file system for the readers. */
function files(contents: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = contents[path];
    if (text === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
    return text;
  };
}

Deno.test("TLS is off by default; certificate and key are set both or neither", () => {
  const c = loadConfig({});
  assert.equal(c.tlsCertFile, undefined);
  assert.equal(c.tlsKeyFile, undefined);
  assert.equal(c.tlsClientCaFile, undefined);
  assert.equal(readTlsFiles(c), undefined);

  const both = loadConfig({
    TLS_CERT_FILE: "/etc/chat/cert.pem",
    TLS_KEY_FILE: "/etc/chat/key.pem",
  });
  assert.equal(both.tlsCertFile, "/etc/chat/cert.pem");
  assert.equal(both.tlsKeyFile, "/etc/chat/key.pem");

  assert.throws(
    () => loadConfig({ TLS_CERT_FILE: "/etc/chat/cert.pem" }),
    /TLS_CERT_FILE is set but TLS_KEY_FILE is not; set both or neither/,
  );
  assert.throws(
    () => loadConfig({ TLS_KEY_FILE: "/etc/chat/key.pem" }),
    /TLS_KEY_FILE is set but TLS_CERT_FILE is not; set both or neither/,
  );
  assert.throws(
    () => loadConfig({ TLS_CLIENT_CA_FILE: "/etc/chat/ca.pem" }),
    /TLS_CLIENT_CA_FILE is set but needs TLS_CERT_FILE and TLS_KEY_FILE/,
  );
});

Deno.test("readTlsFiles reads the PEM files and names the setting of one it cannot use", () => {
  const read = files({ "/c.pem": CERT, "/k.pem": KEY, "/ca.pem": CERT, "/junk": "hello" });
  const config = { tlsCertFile: "/c.pem", tlsKeyFile: "/k.pem", tlsClientCaFile: undefined };
  assert.deepEqual(readTlsFiles(config, read), { cert: CERT, key: KEY });
  assert.deepEqual(readTlsFiles({ ...config, tlsClientCaFile: "/ca.pem" }, read), {
    cert: CERT,
    key: KEY,
    clientCa: CERT,
  });
  assert.throws(
    () => readTlsFiles({ ...config, tlsKeyFile: "/gone.pem" }, read),
    /TLS_KEY_FILE is "\/gone\.pem", which cannot be read \(No such file: \/gone\.pem\)/,
  );
  assert.throws(
    () => readTlsFiles({ ...config, tlsCertFile: "/junk" }, read),
    /TLS_CERT_FILE is "\/junk", which holds no PEM certificate/,
  );
  assert.throws(
    () => readTlsFiles({ ...config, tlsKeyFile: "/c.pem" }, read),
    /TLS_KEY_FILE is "\/c\.pem", which holds no PEM private key/,
  );
  // Settings given in code (tests, overrides) are held to the same rule.
  assert.throws(
    () => readTlsFiles({ ...config, tlsKeyFile: undefined }, read),
    /TLS_CERT_FILE is set but TLS_KEY_FILE is not/,
  );
  assert.throws(
    () =>
      readTlsFiles({ tlsCertFile: undefined, tlsKeyFile: undefined, tlsClientCaFile: "/ca.pem" }),
    /TLS_CLIENT_CA_FILE is set but needs TLS_CERT_FILE/,
  );
});

Deno.test("Kafka security settings: defaults, parsing and the rules between them", () => {
  const c = loadConfig({});
  assert.equal(c.kafkaSsl, false);
  assert.equal(c.kafkaSslRejectUnauthorized, true);
  assert.equal(c.kafkaSaslMechanism, undefined);
  assert.deepEqual(kafkaSecurity(c), {});

  const full = loadConfig({
    KAFKA_SSL: "true",
    KAFKA_SSL_CA_FILE: "/ca.pem",
    KAFKA_SSL_CERT_FILE: "/c.pem",
    KAFKA_SSL_KEY_FILE: "/k.pem",
    KAFKA_SSL_REJECT_UNAUTHORIZED: "false",
    KAFKA_SASL_MECHANISM: "scram-sha-512",
    KAFKA_SASL_USERNAME: "chat",
    KAFKA_SASL_PASSWORD: "hunter2-is-not-a-password",
  });
  assert.equal(full.kafkaSsl, true);
  assert.equal(full.kafkaSslRejectUnauthorized, false);
  assert.equal(full.kafkaSaslMechanism, "scram-sha-512");

  assert.throws(
    () => loadConfig({ KAFKA_SSL: "yes" }),
    /KAFKA_SSL is "yes", expected true or false/,
  );
  assert.throws(
    () => loadConfig({ KAFKA_SSL_CA_FILE: "/ca.pem" }),
    /KAFKA_SSL_CA_FILE is set but needs KAFKA_SSL=true/,
  );
  assert.throws(
    () => loadConfig({ KAFKA_SSL: "true", KAFKA_SSL_CERT_FILE: "/c.pem" }),
    /KAFKA_SSL_CERT_FILE is set but KAFKA_SSL_KEY_FILE is not/,
  );
  assert.throws(
    () => loadConfig({ KAFKA_SASL_MECHANISM: "gssapi" }),
    /KAFKA_SASL_MECHANISM is "gssapi", expected one of plain, scram-sha-256, scram-sha-512/,
  );
  assert.throws(
    () => loadConfig({ KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: "chat" }),
    /KAFKA_SASL_MECHANISM is set but KAFKA_SASL_PASSWORD is not/,
  );
  assert.throws(
    () => loadConfig({ KAFKA_SASL_USERNAME: "chat", KAFKA_SASL_PASSWORD: "x" }),
    /KAFKA_SASL_USERNAME is set but needs KAFKA_SASL_MECHANISM/,
  );
});

Deno.test("kafkaSecurity builds kafkajs's ssl and sasl options", () => {
  const read = files({ "/ca.pem": CERT, "/c.pem": CERT, "/k.pem": KEY });
  assert.deepEqual(kafkaSecurity(loadConfig({ KAFKA_SSL: "true" }), read), {
    ssl: { rejectUnauthorized: true },
  });
  assert.deepEqual(
    kafkaSecurity(
      loadConfig({
        KAFKA_SSL: "true",
        KAFKA_SSL_CA_FILE: "/ca.pem",
        KAFKA_SSL_CERT_FILE: "/c.pem",
        KAFKA_SSL_KEY_FILE: "/k.pem",
        KAFKA_SSL_REJECT_UNAUTHORIZED: "false",
        KAFKA_SASL_MECHANISM: "plain",
        KAFKA_SASL_USERNAME: "chat",
        KAFKA_SASL_PASSWORD: "pw",
      }),
      read,
    ),
    {
      ssl: { rejectUnauthorized: false, ca: [CERT], cert: CERT, key: KEY },
      sasl: { mechanism: "plain", username: "chat", password: "pw" },
    },
  );
  // SASL without TLS (SASL_PLAINTEXT) is allowed.
  assert.deepEqual(
    kafkaSecurity(
      loadConfig({
        KAFKA_SASL_MECHANISM: "scram-sha-256",
        KAFKA_SASL_USERNAME: "chat",
        KAFKA_SASL_PASSWORD: "pw",
      }),
      read,
    ),
    { sasl: { mechanism: "scram-sha-256", username: "chat", password: "pw" } },
  );
  assert.throws(
    () => kafkaSecurity(loadConfig({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: "/gone" }), read),
    /KAFKA_SSL_CA_FILE is "\/gone", which cannot be read/,
  );
});

Deno.test("describeConfig never prints the Kafka password", () => {
  const text = describeConfig(
    loadConfig({
      KAFKA_SASL_MECHANISM: "plain",
      KAFKA_SASL_USERNAME: "chat",
      KAFKA_SASL_PASSWORD: "very-secret-kafka-password",
      TLS_CERT_FILE: "/c.pem",
      TLS_KEY_FILE: "/k.pem",
    }),
  );
  assert.ok(!text.includes("very-secret-kafka-password"), text);
  assert.match(text, /(^| )kafkaSaslPassword=\*\*\*( |$)/);
  assert.match(text, /(^| )kafkaSaslUsername=chat( |$)/);
  assert.match(text, /(^| )tlsCertFile=\/c\.pem( |$)/);
  assert.match(describeConfig(loadConfig({})), /(^| )kafkaSaslPassword=undefined( |$)/);
});

Deno.test("the terminal client's --tls, --ca and $CHAT_TLS_CA", () => {
  const server = "h:1";
  assert.equal("tls" in (parseArguments(["alice", "--server", server]) as object), false);
  assert.deepEqual(parseArguments(["alice", "--server", server, "--tls"]), {
    userId: "alice",
    servers: [server],
    tls: {},
  });
  assert.deepEqual(parseArguments(["alice", "--server", server, "--ca", "/ca.pem"]), {
    userId: "alice",
    servers: [server],
    tls: { caFile: "/ca.pem" },
  });
  assert.deepEqual(parseArguments(["alice", "--server", server, "--ca=/ca.pem", "--tls"]), {
    userId: "alice",
    servers: [server],
    tls: { caFile: "/ca.pem" },
  });
  assert.deepEqual(parseArguments(["alice", "--server", server], { CHAT_TLS_CA: "/env.pem" }), {
    userId: "alice",
    servers: [server],
    tls: { caFile: "/env.pem" },
  });
  assert.deepEqual(
    parseArguments(["alice", "--server", server, "--ca", "/flag.pem"], { CHAT_TLS_CA: "/env.pem" }),
    { userId: "alice", servers: [server], tls: { caFile: "/flag.pem" } },
  );
  assert.deepEqual(parseArguments(["alice", "--ca"]), { error: "--ca needs a value" });
  assert.deepEqual(parseArguments(["alice", "--tls=yes"]), { error: "--tls takes no value" });
});
