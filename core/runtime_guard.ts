/**
 * Deno releases known to crash a gateway, and the start-up check that refuses them.
 *
 * A gateway serves HTTP/2 to clients it does not control. Deno 2.9.4 to 2.9.6 abort the whole
 * process inside nghttp2 (`find_stream_on_goaway_func: Assertion 'stream->closed_next == NULL'`,
 * exit 134 or 139) when a client sends GOAWAY on a session, which every grpc-js client does when
 * it is closed (denoland/deno#36788). One ordinary client could take every user on the gateway
 * down, so such a gateway must not start unless its operator says so.
 */

/** The release the project pins and tests (`.ci/run`, the README's install line). */
export const PINNED_DENO_RELEASE = "2.9.3";

export interface BadRelease {
  readonly version: string;
  readonly problem: string;
  readonly upstream: string;
}

const GOAWAY_ABORT = {
  problem:
    "aborts the process inside nghttp2 when a client closes its HTTP/2 connection (GOAWAY), " +
    "so any client that closes its channel can take the gateway down",
  upstream: "https://github.com/denoland/deno/issues/36788",
};

/** Every release known to crash a gateway: the one list the check and its test read. */
export const BAD_DENO_RELEASES: readonly BadRelease[] = ["2.9.4", "2.9.5", "2.9.6"].map(
  (version) => ({ version, ...GOAWAY_ABORT }),
);

/** The known problem of `version`, if it is on the list. */
export function knownBadRelease(version: string): BadRelease | undefined {
  return BAD_DENO_RELEASES.find((bad) => bad.version === version);
}

/** What to say about a bad release: the problem, the upstream issue, the release to install. */
export function describeBadRelease(bad: BadRelease): string {
  return `Deno ${bad.version} ${bad.problem} (${bad.upstream}). ` +
    `Install Deno ${PINNED_DENO_RELEASE} (npm install -g deno@${PINNED_DENO_RELEASE}), ` +
    `or set ALLOW_UNSAFE_DENO=true to start anyway`;
}

/**
 * Refuses (throws) on a release known to crash a gateway unless `allowUnsafe`; returns a warning
 * to log when it was allowed anyway, else undefined.
 */
export function checkDenoRelease(version: string, allowUnsafe: boolean): string | undefined {
  const bad = knownBadRelease(version);
  if (!bad) return undefined;
  if (!allowUnsafe) throw new Error(describeBadRelease(bad));
  return `ALLOW_UNSAFE_DENO=true: starting on Deno ${bad.version}, which ${bad.problem} (${bad.upstream})`;
}
