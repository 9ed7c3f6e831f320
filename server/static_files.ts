/**
 * Serves the built web page (`deno task build` writes it to web/dist) on the
 * gateway's HTTP port: GET and HEAD of `/` and of the files in the build.
 * Anything else answers `undefined`, so that the other routes run.
 */

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".webmanifest": "application/manifest+json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
};

/** The page may load only what this origin serves: no CDN, no inline script. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export const NOT_BUILT_HINT = "Web page not built: run `deno task build`\n";

function extension(path: string): string {
  const slash = path.lastIndexOf("/");
  const dot = path.lastIndexOf(".");
  return dot > slash ? path.slice(dot).toLowerCase() : "";
}

/**
 * The file path below the root that `pathname` names, or undefined when it
 * names nothing servable (hidden files, `..`, encoded slashes, bad escapes).
 */
export function safeRelativePath(pathname: string): string | undefined {
  if (pathname === "/" || pathname === "") return "index.html";
  const segments: string[] = [];
  for (const raw of pathname.split("/").slice(1)) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (segment === "" || segment.startsWith(".")) return undefined;
    if (/[\\/\0:]/.test(segment)) return undefined;
    segments.push(segment);
  }
  return segments.join("/");
}

/**
 * A handler for the files in `dir`. A name that is not there answers
 * `undefined`; when `dir` has no index.html, `/` answers a plain-text hint.
 */
export function createStaticHandler(
  dir: string | URL,
): (request: Request) => Promise<Response | undefined> {
  const root = (dir instanceof URL ? decodeURIComponent(dir.pathname) : dir).replace(/\/+$/, "");

  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") return undefined;
    const { pathname } = new URL(request.url);
    const relative = safeRelativePath(pathname);
    if (relative === undefined) return undefined;
    const type = CONTENT_TYPES[extension(relative)];
    if (type === undefined) return undefined;

    const path = `${root}/${relative}`;
    let file: Deno.FileInfo;
    try {
      // Follow links, then make sure the file is still inside the build.
      const realRoot = await Deno.realPath(root);
      const realFile = await Deno.realPath(path);
      if (!realFile.startsWith(`${realRoot}/`)) return undefined;
      file = await Deno.stat(realFile);
      if (!file.isFile) return undefined;
    } catch {
      return pathname === "/" ? notBuilt() : undefined;
    }

    const etag = `W/"${file.size.toString(36)}-${(file.mtime?.getTime() ?? 0).toString(36)}"`;
    const headers = new Headers({
      "content-type": type,
      // The names carry no content hash: the browser may keep a copy but asks first (cheap: 304).
      "cache-control": "no-cache",
      etag,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    });
    if (type.startsWith("text/html")) {
      headers.set("content-security-policy", CONTENT_SECURITY_POLICY);
    }
    const inm = request.headers.get("if-none-match");
    if (inm && inm.split(",").some((t) => t.trim() === etag || t.trim() === "*")) {
      return new Response(null, { status: 304, headers });
    }
    if (file.mtime) headers.set("last-modified", file.mtime.toUTCString());
    headers.set("content-length", String(file.size));
    if (request.method === "HEAD") return new Response(null, { status: 200, headers });
    let body: Uint8Array;
    try {
      body = await Deno.readFile(path);
    } catch {
      return undefined;
    }
    headers.set("content-length", String(body.byteLength));
    return new Response(body as Uint8Array<ArrayBuffer>, { status: 200, headers });
  };
}

function notBuilt(): Response {
  return new Response(NOT_BUILT_HINT, {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}
