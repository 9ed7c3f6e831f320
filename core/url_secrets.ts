/**
 * Showing a URL that may hold secrets (a database URL with a password in its user-info or its
 * query) in logs and error messages: the URL masked, and a driver's error text scrubbed of them.
 */

/** What a URL that does not parse is shown as: it could be anything, a password included. */
export const UNPARSEABLE_URL = "<unparseable URL, not shown>";

/** Query parameters whose value is a secret (`password`, `sslpassword`, `pass`, `pwd`, tokens). */
const SECRET_PARAMETER = /pass|pwd|secret|token|credential/i;

/**
 * `url` with its secrets replaced by `***`, for logs and error messages: the password of its
 * user-info, and the value of every query parameter whose name says it is a secret. A password
 * holding an unencoded `@` still counts as one: the user-info ends at the LAST `@` before the
 * host (as WHATWG URL parsing has it), so no tail of it shows. A URL that does not parse, or
 * whose password cannot be told apart from the rest ({@linkcode UNPARSEABLE_URL}), is not shown
 * at all.
 */
export function maskUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return UNPARSEABLE_URL;
  }
  // Without `//` there is no user-info to find the password in ("postgres:chat:pw@db" is all
  // path). An `@` past the authority (which ends at the first `/`, `?` or `#`) means a password
  // holding one of those unencoded: "postgres://chat:2024/pw@db" parses as host "chat", port
  // 2024, and its path would show the rest of the password.
  if (!url.slice(parsed.protocol.length).startsWith("//")) return UNPARSEABLE_URL;
  if ((parsed.pathname + parsed.search + parsed.hash).includes("@")) return UNPARSEABLE_URL;
  let text = parsed.protocol + "//";
  if (parsed.username !== "" || parsed.password !== "") {
    text += parsed.username + (parsed.password === "" ? "" : ":***") + "@";
  }
  text += parsed.host + parsed.pathname;
  if (parsed.search !== "") {
    // Parameters as written (not re-encoded), each secret one's value masked.
    text += "?" + parsed.search.slice(1).split("&").map((pair) => {
      const eq = pair.indexOf("=");
      const name = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replaceAll("+", " "));
      } catch {
        // A malformed escape: judge the name as written.
      }
      return eq >= 0 && SECRET_PARAMETER.test(decoded) ? `${name}=***` : pair;
    }).join("&");
  }
  // A fragment means nothing to a database driver; whatever it holds is not shown.
  if (parsed.hash !== "") text += "#***";
  return text;
}

/**
 * `text` (an error message about `url`, from a driver) with `url` shown masked and anything that
 * may be one of its secrets replaced by `***`: the password (as written and decoded, and, for a
 * URL that does not parse, everything between the user name and the last `@`) and the values of
 * secret query parameters. Secrets shorter than 4 characters are left, or every "a" would go.
 */
export function scrubUrlSecrets(text: string, url: string): string {
  const secrets = new Set<string>();
  const add = (value: string) => {
    secrets.add(value);
    try {
      secrets.add(decodeURIComponent(value));
    } catch {
      // Not percent-encoded text: as written only.
    }
  };
  const authority = url.indexOf("//");
  const at = url.lastIndexOf("@");
  if (authority >= 0 && at > authority) {
    const userInfo = url.slice(authority + 2, at);
    const colon = userInfo.indexOf(":");
    if (colon >= 0) add(userInfo.slice(colon + 1));
  }
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") add(parsed.password);
    for (const [name, value] of parsed.searchParams) {
      if (SECRET_PARAMETER.test(name) && value !== "") add(value);
    }
  } catch {
    // Unparseable: the user-info above is all that can be found.
  }
  let out = text.replaceAll(url, maskUrl(url));
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret.length >= 4) out = out.replaceAll(secret, "***");
  }
  return out;
}
