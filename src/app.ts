import { randomBytes } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from './config.js';
import { ServiceError, type ErrorCode } from './errors.js';
import type { Metrics } from './metrics.js';
import { answerClientError } from './http-client-errors.js';
import { createMetricsCollector } from './metrics-server.js';
import { toServiceError } from './error-map.js';
import { earlyRefusal } from './early-refusal.js';
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
  /** Bounds on slow clients and open connections (REQUEST_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS, MAX_CONNECTIONS). */
  limits?: ServerLimits;
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** Whether the request announces a body (which a route that does not read it leaves unread on the connection). */
const hasBody = (request: FastifyRequest) =>
  request.headers['transfer-encoding'] !== undefined || (request.headers['content-length'] ?? '0') !== '0';

const REQUEST_ID_PREFIX = randomBytes(4).toString('hex');
let requestCount = 0;

/** Builds the HTTP app without listening, so tests can `inject` and `main` can `listen`. */
export function buildApp(options: AppOptions): FastifyInstance {
  const limits = options.limits ?? DEFAULT_SERVER_LIMITS;
  const { logger } = options;
  const app = Fastify({
    // pino's Logger and Fastify's logger type differ in generics only; without the assertion Fastify's instance type
    // is inferred with pino's Logger and no longer matches FastifyInstance.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    loggerInstance: logger as FastifyBaseLogger,
    // One line per webhook is written by the route itself, with its outcome; fastify's own two lines add nothing.
    logController: new LogController({ disableRequestLogging: true }),
    // A request that trickles in (headers or body) must not hold a socket for ever. Node checks its open requests
    // every `connectionsCheckingInterval` (30 s by default, which let a trickled body live for 90 s): check every
    // second, and give the headers the same deadline as the whole request.
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, limits.requestTimeoutMs),
    },
    // Malformed requests are answered here, never logged: Node's error carries the raw bytes (password included).
    clientErrorHandler: (error, socket) => answerClientError(error, socket, logger),
    // A URL the router cannot decode: our shape, and the URL is not logged.
    frameworkErrors: (_error, _request, reply) => void send(reply, 'ERR_BAD_REQUEST'),
    // While closing, new requests are answered by the onRequest hook below, in our shape.
    return503OnClosing: false,
    // Request ids that stay unique across replicas and restarts (a random prefix per process, then a counter):
    // every line of one webhook carries its id as `reqId` (the handled line, its audit lines, its errors).
    genReqId: () => `${REQUEST_ID_PREFIX}-${(++requestCount).toString(36)}`,
    // No child logger per request (the lines add `reqId` themselves): a flood of forged requests should cost as
    // little as possible.
    childLoggerFactory: (logger) => logger,
  });
  app.server.maxConnections = limits.maxConnections;
  let lastDropWarning = -Infinity;
  app.server.on('drop', () => {
    // At most one line a minute: a flood of connections must not flood the log too.
    if (Date.now() - lastDropWarning < 60_000) return;
    lastDropWarning = Date.now();
    logger.warn({ maxConnections: limits.maxConnections }, 'connection refused: MAX_CONNECTIONS connections are open (logged once a minute)');
  });

  /** Answers with a catalogue error in our shape; closes the connection when the request's body was not read. */
  function send(reply: FastifyReply, code: ErrorCode, headers: Record<string, string> = {}) {
    const error = new ServiceError(code);
    if (hasBody(reply.request)) reply.header('connection', 'close');
    return reply.code(error.statusCode).headers(headers).type('application/json').send(error.body());
  }

  // While closing, answer what is in flight with "Connection: close": a keep-alive connection left open by a client
  // would otherwise hold the shutdown until its idle timeout.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  // Unknown routes and methods are answered before anything reads the body: only the webhook route reads one
  // (its plugin has its own parser), so the root instance has no content-type parser at all.
  app.removeAllContentTypeParsers();
  app.addHook('onRequest', (request, reply, done) => {
    if (closing) return void send(reply, 'ERR_SHUTTING_DOWN');
    if (request.is404) return void notFound(request, reply);
    done();
  });
  const notFound = (request: FastifyRequest, reply: FastifyReply) => {
    const url = request.url.split('?', 1)[0]!;
    const allowed = METHODS.filter((method) => app.hasRoute({ method, url }));
    return allowed.length > 0 ? send(reply, 'ERR_METHOD_NOT_ALLOWED', { allow: allowed.join(', ') }) : send(reply, 'ERR_NOT_FOUND');
  };
  app.setErrorHandler((error, request, reply) => {
    const serviceError = toServiceError(error);
    if (serviceError.statusCode >= 500) request.log.error({ reqId: request.id, err: error, code: serviceError.code }, 'request failed');
    return send(reply, serviceError.code);
  });

  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));

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

  // A forged webhook whose signature header alone condemns it is refused before its body is read (issue 15).
  const now = options.now ?? Date.now;
  app.addHook('onRoute', earlyRefusal({ signatureToleranceSeconds: options.signatureToleranceSeconds, now }));
  app.register(webhookRoutes, {
    enforcer: options.enforcer,
    signingKeys: options.signingKeys,
    signatureToleranceSeconds: options.signatureToleranceSeconds,
    denyMessage: options.denyMessage,
    payloadType: options.payloadType,
    payloadOpener: options.payloadOpener,
    budgetMs: options.budgetMs,
    now,
    metrics,
  });

  app.setNotFoundHandler(notFound);

  return app;
}
