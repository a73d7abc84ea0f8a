# syntax=docker/dockerfile:1
# Build: compile TypeScript with the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The CLI (doctor, register, enforce ...) inside the machine: fly ssh console -C "zitadel-session-limiter doctor"
RUN chmod +x dist/cli/index.js && ln -s /app/dist/cli/index.js /usr/local/bin/zitadel-session-limiter
USER node
EXPOSE 8080 9091
CMD ["node", "dist/main.js"]
