import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ServiceError } from './errors.js';
import { webhookRoutes, type WebhookOptions } from './webhook.js';

export interface AppOptions extends Omit<WebhookOptions, 'now'> {
  logger: Logger;
  now?: () => number;
}

/** Builds the HTTP app without listening, so tests can `inject` and `main` can `listen`. */
export function buildApp(options: AppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // One line per webhook is written by the route itself, with its outcome; fastify's own two lines add nothing.
    logController: new LogController({ disableRequestLogging: true }),
    // Behind Fly's proxy: trust X-Forwarded-For from it for the logged client address.
    trustProxy: true,
    // Signing keys rotate; a request that hangs should not hold a socket for ever.
    requestTimeout: 30_000,
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.register(webhookRoutes, {
    enforcer: options.enforcer,
    signingKeys: options.signingKeys,
    signatureToleranceSeconds: options.signatureToleranceSeconds,
    now: options.now ?? Date.now,
  });

  app.setNotFoundHandler((_request, reply) => {
    const error = new ServiceError('ERR_NOT_FOUND');
    return reply.code(error.statusCode).send(error.toJSON());
  });

  return app;
}
