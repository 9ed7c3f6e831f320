/**
 * The gateway's HTTP port: health and readiness now; the gRPC-Web bridge and
 * the web page mount here too.
 */

export type HttpHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo,
) => Response | Promise<Response>;

export interface HttpRoutes {
  /** Whether the gateway can take messages now, and if not, why. */
  readiness: () => { ready: boolean; reason?: string };
  /** Tried in order before the built-in routes; the first non-undefined response wins. */
  handlers?: ((
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ) => Response | undefined | Promise<Response | undefined>)[];
}

export function createHttpHandler(routes: HttpRoutes): HttpHandler {
  return async (request, info) => {
    for (const handler of routes.handlers ?? []) {
      const response = await handler(request, info);
      if (response) return response;
    }
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return Response.json({ status: "ok" });
    if (pathname === "/readyz") {
      const { ready, reason } = routes.readiness();
      return Response.json(ready ? { status: "ready" } : { status: "not ready", reason }, {
        status: ready ? 200 : 503,
      });
    }
    return new Response("Not found\n", { status: 404 });
  };
}
