# syntax=docker/dockerfile:1
# Node 26, the Active LTS line (supported to April 2029), pinned to one release: the one .ci/run tests on (its
# NODE_VERSION; test/unit/deploy.test.ts checks they agree). Node 20 reached end of life on 2026-04-30 and is no
# longer supported.

# Build: compile TypeScript with the dev dependencies.
FROM node:26.12.1-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only.
FROM node:26.12.1-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:26.12.1-bookworm-slim
ENV NODE_ENV=production
# The V8 heap bound (NODE_OPTIONS) depends on the machine's memory: fly.toml sets it next to the VM size.
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json LICENSE ./
# The Login V2 payloads (placeholders, no secrets) that `replay --help` points at.
COPY test/fixtures/payloads ./test/fixtures/payloads
# The CLI (doctor, register, enforce ...) inside the machine: fly ssh console -C "zitadel-session-limiter doctor"
RUN chmod +x dist/cli/index.js && ln -s /app/dist/cli/index.js /usr/local/bin/zitadel-session-limiter
USER node
EXPOSE 8080 9091
CMD ["node", "dist/main.js"]
