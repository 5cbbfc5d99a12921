# syntax=docker/dockerfile:1
# The audit log service. Node 24 runs the TypeScript sources directly (type
# stripping), so the service has no build step: install production
# dependencies, copy the sources, run src/main.ts.
# The web console (console/ -> console/dist) is built in a stage of its own:
# Vite and Preact are dev dependencies and stay out of the service's image.
FROM node:24-slim AS console
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY console ./console
COPY gen ./gen
COPY scripts/build-console.mjs ./scripts/
RUN node scripts/build-console.mjs --force

FROM node:24-slim

WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    AUDITLOG_DATA_DIR=/app/.data

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .
COPY --from=console /build/console/dist ./console/dist
RUN mkdir -p /app/.data && chown node:node /app/.data

USER node
EXPOSE 8080
# GET /healthz answers 200 once the service is ready (see docker-compose.yml).
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node, not npm start: signals (SIGTERM from `docker stop`) reach the service directly.
CMD ["node", "src/main.ts"]
