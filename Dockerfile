# syntax=docker/dockerfile:1
#
# One image for every entry point of the pipeline; the command picks the process:
#   node dist/src/workers/stream-worker.js      (default) X stream -> Pub/Sub, supervisor workflow
#   node dist/src/workers/batch-worker.js       Pub/Sub -> BigQuery load and data-quality workflows
#   node dist/src/dashboard/main.js             live dashboard
#   node dist/dev/x-api-standin/main.js --host 0.0.0.0 --port 8787   X API stand-in (demo, compose)
#   node dist/src/workers/setup.js              provisions topic/subscription/dataset/tables, exits
#
# glibc base on purpose: Temporal's native core (@temporalio/core-bridge) does not support Alpine/musl.
# No credentials are baked in: the X token and Temporal Cloud keys arrive as mounted Secret files or
# environment variables at run time, and Google credentials come from Workload Identity (GKE) or the
# emulators (docker-compose). See docs/deploy-gke.md.

ARG NODE_IMAGE=node:20.19.5-bookworm-slim

# --- build: compile TypeScript and prebuild the workflow bundle -----------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY dev ./dev
COPY scripts ./scripts
# `npm run build` = tsc -p tsconfig.build.json (dist/src, dist/dev, dist/scripts) and then
# dist/scripts/build-workflow-bundle.js, which writes dist/workflow-bundle.js. Static dashboard
# assets are not compiled by tsc; copy them next to the compiled dashboard when they exist.
RUN npm run build \
  && if [ -d src/dashboard/public ]; then mkdir -p dist/src/dashboard && cp -R src/dashboard/public dist/src/dashboard/public; fi \
  && test -f dist/workflow-bundle.js

# --- deps: production node_modules only -----------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime --------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: forwards SIGTERM to node (the workers drain for WORKER_SHUTDOWN_GRACE_MS) and reaps
# zombies. Debian bookworm's package, pinned.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
  && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    HEALTH_HOST=0.0.0.0 \
    LOG_FORMAT=json

WORKDIR /app
# Application files stay owned by root and read-only for the runtime user.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./

LABEL org.opencontainers.image.title="x-stream-pipeline" \
      org.opencontainers.image.description="X filtered stream -> Pub/Sub -> BigQuery, orchestrated by Temporal" \
      org.opencontainers.image.licenses="Apache-2.0"

# The `node` user of the official image (uid/gid 1000), numeric so that runAsNonRoot can verify it.
USER 1000:1000

# 9464 stream-worker health/metrics, 9465 batch-worker health/metrics, 8080 dashboard, 8787 X stand-in.
EXPOSE 9464 9465 8080 8787

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/workers/stream-worker.js"]
