# One image for both roles of the chat service on Kafka. The command chooses the role:
#
#   docker build -t chat .
#   docker run chat                    # gateway (main.ts): gRPC 8081, HTTP (page, gRPC-Web, /healthz, /readyz, /metrics) 8080
#   docker run chat processor.ts       # Message Processor, /metrics on METRICS_PORT (9464)
#
# Settings are the environment variables of the README's table; set BUS=kafka and KAFKA_BROKERS
# for a gateway of a Kafka deployment (without them a gateway runs embedded, on the memory bus).
# compose.yaml's `full` profile and ops/kubernetes/ run it; tests/ops_test.ts checks them against
# this file and core/config.ts.

# The page is bundled here, with the development dependencies it needs; only web/dist goes on.
FROM denoland/deno:2.9.3 AS page
WORKDIR /build
COPY . .
RUN deno install --frozen && deno task build

FROM denoland/deno:2.9.3
# The image's own non-root user owns the app, its dependencies and its data: nothing runs as root.
WORKDIR /app
RUN chown deno:deno /app
USER deno
COPY --chown=deno:deno deno.json deno.lock main.ts processor.ts ./
COPY --chown=deno:deno bus bus
COPY --chown=deno:deno core core
COPY --chown=deno:deno processor processor
COPY --chown=deno:deno proto proto
COPY --chown=deno:deno protocol protocol
COPY --chown=deno:deno server server
COPY --chown=deno:deno store store
# Only the packages the two entry points import (no bundler, browser driver or test tools), at
# the versions deno.lock pins.
RUN deno install --frozen --entrypoint main.ts processor.ts
COPY --from=page --chown=deno:deno /build/web/dist web/dist
# Listen on every interface of the container (the defaults, 127.0.0.1, suit a laptop); the
# SQLite file and the generated token secret of a single gateway go to /app/data.
ENV GRPC_HOST=0.0.0.0 \
    HTTP_HOST=0.0.0.0 \
    DATABASE_PATH=/app/data/chat.db \
    AUTH_SECRET_FILE=/app/data/auth-secret
RUN mkdir data
VOLUME /app/data
EXPOSE 8080 8081 9464
# The gateway's liveness. A processor serves no /healthz: compose.yaml and the Kubernetes
# manifests check its /metrics on METRICS_PORT instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:' + (Deno.env.get('HTTP_PORT') || '8080') + '/healthz'); Deno.exit(r.ok ? 0 : 1)"]
ENTRYPOINT ["deno", "run", "--allow-all", "--frozen"]
CMD ["main.ts"]
