/** The terminal client's command line: what it accepts, its defaults, and its usage text. */

export const DEFAULT_SERVER = "127.0.0.1:8081";

export interface CliOptions {
  userId: string;
  /** Gateways to use, in order: a lost connection moves on to the next one. */
  servers: string[];
  displayName?: string;
  /** A file whose first line is the password. */
  passwordFile?: string;
  /** Connect with TLS (`--tls`); `caFile` (`--ca`, `$CHAT_TLS_CA`): trust this CA, else the system's roots. */
  tls?: { caFile?: string };
}

export const USAGE =
  'Usage: deno task client <user> [--server host:port[,host:port...]] [--name "Display Name"] [--password-file <file>]\n' +
  `  --server         the gateway's gRPC address, or several separated by commas: a lost\n` +
  `                   connection moves on to the next (default: $CHAT_SERVER, else ${DEFAULT_SERVER})\n` +
  "  --name           the name shown to others (default: the user id)\n" +
  "  --password-file  read the password from the first line of <file>\n" +
  "  --tls            connect with TLS, checking the server's certificate against the system's roots\n" +
  "  --ca <file>      connect with TLS, trusting this CA or self-signed certificate (PEM;\n" +
  "                   default: $CHAT_TLS_CA)\n" +
  "The password comes from --password-file, else $CHAT_PASSWORD, else it is asked for on the\n" +
  "terminal (when stdin is not a terminal, its first line is the password). The first sign-in\n" +
  "of a new user name creates the account.";

/** `a:1, b:2` → `["a:1", "b:2"]`; undefined when nothing is named. */
function serverList(value: string | undefined): string[] | undefined {
  const servers = (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return servers.length > 0 ? servers : undefined;
}

/** Parses the command line; `help` for -h/--help, `error` for a usage mistake. */
export function parseArguments(
  args: string[],
  env: Record<string, string | undefined> = {},
): CliOptions | { help: true } | { error: string } {
  let userId: string | undefined;
  let server: string | undefined;
  let displayName: string | undefined;
  let passwordFile: string | undefined;
  let tls = false;
  let caFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const next = args[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    try {
      if (flag === "-h" || flag === "--help") return { help: true };
      if (flag === "--server" || flag === "-s") server = value();
      else if (flag === "--name" || flag === "-n") displayName = value();
      else if (flag === "--password-file") passwordFile = value();
      else if (flag === "--tls" && inline !== undefined) return { error: "--tls takes no value" };
      else if (flag === "--tls") tls = true;
      else if (flag === "--ca") caFile = value();
      else if (flag.startsWith("-") && flag !== "-") return { error: `unknown option ${flag}` };
      else if (userId === undefined) userId = arg;
      else return { error: `unexpected argument "${arg}"` };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }
  if (userId === undefined) return { error: "the user id is missing" };
  if (userId.trim() === "") return { error: "the user id is empty" };
  const servers = serverList(server) ?? serverList(env.CHAT_SERVER) ?? [DEFAULT_SERVER];
  caFile = caFile?.trim() || env.CHAT_TLS_CA?.trim() || undefined;
  return {
    userId,
    servers,
    ...(displayName !== undefined ? { displayName } : {}),
    ...(passwordFile !== undefined ? { passwordFile } : {}),
    ...(tls || caFile !== undefined ? { tls: caFile !== undefined ? { caFile } : {} } : {}),
  };
}
