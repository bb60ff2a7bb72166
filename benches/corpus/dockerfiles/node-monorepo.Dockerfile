# syntax=docker/dockerfile:1
# A pnpm monorepo: install once with a shared store cache, build the web
# app and the API, ship two targets from one Dockerfile.
ARG NODE_VERSION=20.17.0

FROM node:${NODE_VERSION}-bookworm-slim AS base
ENV PNPM_HOME=/pnpm \
    PATH=/pnpm:$PATH \
    NEXT_TELEMETRY_DISABLED=1
RUN corepack enable && corepack prepare pnpm@9.12.0 --activate
WORKDIR /repo

FROM base AS fetch
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm fetch --frozen-lockfile

FROM fetch AS build
COPY --link . .
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm install --frozen-lockfile --offline \
    && pnpm --filter "./packages/**" run build \
    && pnpm --filter web run build \
    && pnpm --filter api run build \
    && pnpm deploy --filter api --prod /out/api \
    && mkdir -p /out/web \
    && cp -r apps/web/.next/standalone/. /out/web/ \
    && cp -r apps/web/.next/static /out/web/apps/web/.next/static \
    && cp -r apps/web/public /out/web/apps/web/public

FROM node:${NODE_VERSION}-bookworm-slim AS web
ENV NODE_ENV=production PORT=3000 HOSTNAME=0.0.0.0
WORKDIR /app
COPY --from=build --chown=node:node /out/web ./
USER node
EXPOSE 3000
CMD ["node", "apps/web/server.js"]

FROM node:${NODE_VERSION}-bookworm-slim AS api
ENV NODE_ENV=production PORT=4000
WORKDIR /app
COPY --from=build --chown=node:node /out/api ./
# Run migrations through the entrypoint so they happen before the server
# starts accepting connections.
COPY --chmod=755 <<'EOF' /usr/local/bin/entrypoint
#!/bin/sh
set -e
node dist/migrate.js
exec "$@"
EOF
USER node
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=2s CMD ["node", "dist/healthcheck.js"]
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["node", "dist/main.js"]
