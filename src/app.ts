import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ServiceError } from './errors.js';
import type { Metrics } from './metrics.js';
import { createMetricsCollector } from './metrics-server.js';
import { webhookRoutes, type WebhookOptions } from './webhook.js';
import type { Readiness } from './zitadel/readiness.js';

export interface AppOptions extends Omit<WebhookOptions, 'now' | 'metrics'> {
  logger: Logger;
  now?: () => number;
  metrics?: Metrics;
  /** Serve GET /metrics on this app (false when a separate metrics port serves it). */
  exposeMetrics?: boolean;
  /** /readyz; without it the app is ready as soon as it runs. */
  readiness?: () => Promise<Readiness>;
}

/** Builds the HTTP app without listening, so tests can `inject` and `main` can `listen`. */
export function buildApp(options: AppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // One line per webhook is written by the route itself, with its outcome; fastify's own two lines add nothing.
    logController: new LogController({ disableRequestLogging: true }),
    // Signing keys rotate; a request that hangs should not hold a socket for ever.
    requestTimeout: 30_000,
    // No child logger per request: the route writes one line per webhook with what matters (session, user,
    // outcome), and a flood of forged requests should cost as little as possible.
    childLoggerFactory: (logger) => logger,
  });

  // While closing, answer what is in flight with "Connection: close": a keep-alive connection left open by a client
  // would otherwise hold the shutdown until its idle timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    // Public: which dependency fails and a stable code (README), never an address or an error text (those are logged).
    const readiness: Readiness = options.readiness ? await options.readiness() : { ready: true, checks: {} };
    const degraded = Object.values(readiness.checks).some((check) => check !== 'ok');
    const status = !readiness.ready ? 'not ready' : degraded ? 'degraded' : 'ready';
    return reply.code(readiness.ready ? 200 : 503).send({ status, checks: readiness.checks });
  });

  const { metrics } = options;
  if (metrics && options.exposeMetrics !== false) {
    // Public here (no METRICS_PORT): a failing collection answers 500 without its error text, and is logged.
    const collect = createMetricsCollector(metrics.registry, options.logger);
    app.get('/metrics', async (_request, reply) => {
      const answer = await collect();
      return reply.code(answer.status).type(answer.contentType).send(answer.body);
    });
  }

  app.register(webhookRoutes, {
    enforcer: options.enforcer,
    signingKeys: options.signingKeys,
    signatureToleranceSeconds: options.signatureToleranceSeconds,
    denyMessage: options.denyMessage,
    now: options.now ?? Date.now,
    metrics,
  });

  app.setNotFoundHandler((_request, reply) => {
    const error = new ServiceError('ERR_NOT_FOUND');
    return reply.code(error.statusCode).send(error.toJSON());
  });

  return app;
}
