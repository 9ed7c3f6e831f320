/** Test certificates: self-signed ones made with the `openssl` command in a temporary folder. */

export interface Pem {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

/**
 * A self-signed certificate (and its key) for `cn`, valid for localhost and 127.0.0.1, usable by
 * a server and a client. Not a CA certificate: Deno's TLS (rustls) refuses one as a server's own.
 */
export async function selfSigned(dir: string, name: string, cn: string): Promise<Pem> {
  const certFile = `${dir}/${name}.pem`;
  const keyFile = `${dir}/${name}-key.pem`;
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        `/CN=${cn}`,
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "keyUsage=critical,digitalSignature",
        "-addext",
        "extendedKeyUsage=serverAuth,clientAuth",
        "-keyout",
        keyFile,
        "-out",
        certFile,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    throw new Error(`Cannot run openssl (apt-get install openssl): ${err}`);
  }
  if (!output.success) {
    throw new Error(`openssl failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return {
    certFile,
    keyFile,
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
  };
}

/** A temporary folder, removed after `body`. */
export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "chat-certs-" });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
