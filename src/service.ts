import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { SessionLimitEnforcer } from './enforcement/enforcer.js';
import { isBindError, ListenError } from './listen.js';
import { createLogger } from './logger.js';
import type { PayloadOpenerPort } from './webhook.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createMetricsServer, listenMetrics } from './metrics-server.js';
import { ZitadelConnection } from './zitadel/connection.js';
import { JwtProfileToken, PersonalAccessToken, type AccessTokenSource } from './zitadel/credentials.js';
import type { RedisUserLock } from './enforcement/redis-lock.js';
import type { DeliveryOptions, EventDelivery } from './events/delivery.js';
import { createReadinessCheck } from './zitadel/readiness.js';
import { ZitadelSessionDirectory } from './zitadel/session-directory.js';

export interface Service {
  app: FastifyInstance;
  /** The cross-replica lock, with REDIS_URL. */
  lock: RedisUserLock | undefined;
  connection: ZitadelConnection;
  directory: ZitadelSessionDirectory;
  enforcer: SessionLimitEnforcer;
  metrics: Metrics;
  /** Eviction events to the applications, with EVENTS_URL (and not in a dry run). */
  events: EventDelivery | undefined;
  /**
   * Stops accepting, lets enforcements in flight finish, gives pending eviction events the rest of the shutdown
   * window (SHUTDOWN_TIMEOUT_MS), then closes the connection to ZITADEL.
   */
  close: () => Promise<void>;
}

export interface ComposeOptions {
  /** Process metrics (event loop, memory); off in tests that build many services in one process. */
  defaultMetrics?: boolean;
  pageSize?: number;
  /** ZITADEL calls started per second at most (the repair sweep's --rate). */
  maxCallsPerSecond?: number;
  /** deny-new: tolerated clock difference when telling new logins from returning ones (tests set 0). */
  admissionClockSkewMs?: number;
  /** The webhook's clock (the HMAC window) and the web key cache's; default Date.now. */
  now?: () => number;
  /** Where the instance's web keys are fetched; default `<ZITADEL_URL>/oauth/v2/keys` (tests point it elsewhere). */
  webKeysUrl?: URL;
  /** For tests: the events delivery's clock, timers, random source and outcome observer. */
  events?: Pick<DeliveryOptions, 'schedule' | 'random' | 'observe' | 'now' | 'baseDelayMs'>;
}

/** Kept from the shutdown window for what follows the events' last chance (closing ZITADEL's connection, logging). */
const SHUTDOWN_MARGIN_MS = 500;

export function credentialsFor(config: Pick<Config, 'credentials' | 'zitadelUrl'>): AccessTokenSource {
  const { credentials } = config;
  if (credentials.kind === 'personal-access-token') return new PersonalAccessToken(credentials.token);
  return new JwtProfileToken({ issuer: config.zitadelUrl.origin, key: credentials.key, privateKey: credentials.privateKey });
}

/**
 * Wires the service from its configuration: the same composition for `npm start` and the tests. Optional parts
 * (metadata limits, the Redis lock) are loaded only when configured, to keep the idle footprint small.
 */
export async function composeService(config: Config, logger: Logger, options: ComposeOptions = {}): Promise<Service> {
  const metrics = createMetrics({ defaultMetrics: options.defaultMetrics });
  const credentials = credentialsFor(config);
  const connection = new ZitadelConnection({
    baseUrl: config.zitadelUrl,
    credentials,
    timeoutMs: config.zitadelTimeoutMs,
    maxInFlight: config.maxZitadelCalls,
    maxCallsPerSecond: options.maxCallsPerSecond,
    observe: (method, result, seconds) => {
      metrics.zitadelCalls.inc({ method, result });
      // A call that never left the MAX_ZITADEL_CALLS queue took no time in ZITADEL.
      if (result !== 'QueueTimeout') metrics.zitadelCallDuration.observe({ method }, seconds);
    },
  });
  const lock = config.redisUrl
    ? new (await import('./enforcement/redis-lock.js')).RedisUserLock({ url: config.redisUrl, logger, onFallback: () => metrics.lockFallbacks.inc() })
    : undefined;
  const directory = new ZitadelSessionDirectory(connection.transport, { pageSize: options.pageSize });
  const limits = config.limitMetadataKey
    ? new (await import('./zitadel/metadata.js')).MetadataLimits(connection.transport, {
        key: config.limitMetadataKey,
        fallback: config.sessionLimit,
        cacheSeconds: config.limitCacheSeconds,
        callTimeoutMs: config.zitadelTimeoutMs,
      })
    : config.sessionLimit;
  // deny-new remembers admitted sessions: in Redis with REDIS_URL (replicas and restarts agree), else in memory.
  const admissions =
    config.policy.onLimit === 'deny-new' && lock
      ? new (await import('./enforcement/redis-admissions.js')).RedisAdmissions(lock.redis, { usable: () => lock.usable })
      : undefined;
  if (admissions && lock) lock.onRecovered(() => void admissions.recovered().catch(() => undefined));
  // Loaded only when configured; a dry run deletes nothing, so it tells the applications nothing.
  const events =
    config.events && !config.policy.dryRun
      ? new (await import('./events/delivery.js')).EventDelivery({ ...config.events, logger, metrics, ...options.events })
      : undefined;
  const enforcer = new SessionLimitEnforcer({
    directory,
    admissions,
    admissionClockSkewMs: options.admissionClockSkewMs,
    limits,
    policy: config.policy,
    logger,
    metrics,
    lock,
    budgetMs: config.enforceBudgetMs,
    callTimeoutMs: config.zitadelTimeoutMs,
    maxConcurrent: config.maxConcurrentEnforcements,
    reporter: events,
  });
  // JWT/JWE payloads: the opener and the JWKS adapter are loaded only then (json needs neither).
  let payloadOpener: PayloadOpenerPort | undefined;
  if (config.payloadType !== 'json') {
    const [{ PayloadOpener }, { InstanceWebKeys, webKeysUrl }] = await Promise.all([import('./payload-type/open.js'), import('./zitadel/web-keys.js')]);
    const webKeys = new InstanceWebKeys({
      url: options.webKeysUrl ?? webKeysUrl(config.zitadelUrl),
      timeoutMs: config.zitadelTimeoutMs,
      now: options.now,
      onFetch: (outcome) => metrics.jwksFetches.inc({ outcome }),
    });
    payloadOpener = new PayloadOpener({ type: config.payloadType, keys: config.payloadKeys, webKeys });
  }
  const readiness = createReadinessCheck({ connection, directory, redis: lock, logger });
  metrics.reportReadiness(readiness);
  const app = buildApp({
    logger,
    ...(options.now ? { now: options.now } : {}),
    payloadType: config.payloadType,
    payloadOpener,
    budgetMs: config.enforceBudgetMs,
    enforcer,
    metrics,
    signingKeys: config.signingKeys,
    signatureToleranceSeconds: config.signatureToleranceSeconds,
    denyMessage: config.denyMessage,
    readiness,
    exposeMetrics: config.metricsPort === undefined,
    limits: config.server,
  });
  return {
    app,
    lock,
    connection,
    directory,
    enforcer,
    metrics,
    events,
    async close() {
      const deadline = Date.now() + config.shutdownTimeoutMs - SHUTDOWN_MARGIN_MS;
      try {
        await app.close();
        // After the enforcements in flight: their evictions are queued by now.
        await events?.shutdown(deadline);
      } finally {
        connection.close();
        await lock?.close();
      }
    },
  };
}

/**
 * Starts the service from the environment, the way `npm start`, `zitadel-session-limiter serve` and the container
 * do. A bad configuration ends the process with exit code 1 and one line per problem. SIGTERM / SIGINT stop it
 * gracefully: no new requests, enforcements in flight finish (within SHUTDOWN_TIMEOUT_MS), exit 0.
 */
export async function runService(env: Record<string, string | undefined> = process.env): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`config error: ${problem}\n`);
    process.stderr.write('See the configuration table in README.md.\n');
    process.exit(1);
  }
  const { config, warnings } = loaded;
  const logger = createLogger(config.logLevel);
  for (const warning of warnings) logger.warn(warning);
  const service = await composeService(config, logger);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down: finishing enforcements in flight');
    const deadline = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'enforcements still in flight at the shutdown deadline; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    try {
      await service.close();
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
    logger.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  // With REDIS_URL, give Redis a moment to connect before the first webhook (it falls back without the lock).
  if (service.lock && !(await service.lock.ready(2000))) logger.warn('Redis is not reachable yet: enforcing without the cross-replica lock until it is');
  if (config.metricsPort !== undefined) {
    // /metrics apart from the public port, for Fly's scraper on the private network. Bound first: a port that is
    // taken stops the service before it takes webhooks.
    const metricsServer = createMetricsServer(service.metrics.registry, logger);
    await listenMetrics(metricsServer, config.metricsPort, config.host);
    metricsServer.unref();
  }
  try {
    await service.app.listen({ port: config.port, host: config.host });
  } catch (error) {
    throw isBindError(error) ? new ListenError('PORT', config.port, config.host, error) : error;
  }
  logger.info(
    {
      limit: config.sessionLimit,
      limitMetadataKey: config.limitMetadataKey,
      ...config.policy,
      zitadel: config.zitadelUrl.origin,
      credentials: config.credentials.kind,
      redis: config.redisUrl !== undefined,
      keys: config.signingKeys.length,
      payloadType: config.payloadType,
      payloadKeys: config.payloadType === 'jwe' ? config.payloadKeys.map((key) => key.fingerprint) : undefined,
    },
    'zitadel-session-limiter ready',
  );
}
