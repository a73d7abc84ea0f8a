import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import { EnforcementError, type SessionLimitEnforcer } from './enforcement/enforcer.js';
import { isConfigurationError, signatureRefusal, toServiceError } from './error-map.js';
import { ServiceError } from './errors.js';
import type { Metrics } from './metrics.js';
import { interpretPayload } from './payload.js';
import { checkSignature } from './signature/verify.js';
import { PayloadTypeMismatchError } from './payload-type/failures.js';
import { bodyForm, type PayloadType } from './payload-type/form.js';

import { BODY_LIMIT_BYTES, LARGE_BODY_MAX_BYTES, LARGE_BODY_POOL_BYTES, WEBHOOK_PATH } from './routes.js';
import { bodyReader } from './body-reader.js';

export interface WebhookOptions {
  enforcer: Pick<SessionLimitEnforcer, 'enforce'>;
  signingKeys: readonly string[];
  signatureToleranceSeconds: number;
  now: () => number;
  metrics?: Metrics | undefined;
  /** Shown to a user whose login is denied (ON_LIMIT=deny-new). */
  denyMessage?: string | undefined;
  /** ZITADEL_PAYLOAD_TYPE (default json). */
  payloadType?: PayloadType | undefined;
  /** Opens JWT/JWE bodies into the payload's JSON (required unless json); see src/payload-type/open.ts. */
  payloadOpener?: PayloadOpenerPort | undefined;
  /** The enforcement budget (ENFORCE_BUDGET_MS): how long opening a JWT/JWE may wait for the instance's web keys. */
  budgetMs?: number | undefined;
}

/** What the webhook needs of a payload opener: the JSON bytes of a JWT/JWE body, or a refusal. */
export interface PayloadOpenerPort {
  open(body: string, deadline: number): Promise<Uint8Array>;
}

/**
 * POST /webhooks/zitadel. Encapsulated so that only this route keeps the body as raw bytes: the signature covers
 * the exact bytes ZITADEL sent, so we verify first and parse after.
 */
export const webhookRoutes: FastifyPluginCallback<WebhookOptions> = (app: FastifyInstance, options, done) => {
  app.removeAllContentTypeParsers();
  // Bodies whose signature the reader verified as they streamed in (issue 15); the handler verifies all others.
  const verified = new WeakSet<Buffer>();
  const signature = { keys: options.signingKeys, toleranceSeconds: options.signatureToleranceSeconds, now: options.now, verified };
  app.addContentTypeParser('application/json', bodyReader({ admitted: BODY_LIMIT_BYTES, max: LARGE_BODY_MAX_BYTES, pool: LARGE_BODY_POOL_BYTES }, signature));

  const payloadType = options.payloadType ?? 'json';
  const opener = options.payloadOpener;
  if (payloadType !== 'json' && !opener) throw new RangeError(`ZITADEL_PAYLOAD_TYPE=${payloadType} needs a payload opener`);

  // Label children are looked up once per (outcome, code), not hashed on every request.
  const counters = new Map<string, { inc(): void }>();
  const count = (outcome: string, code = '') => {
    const metrics = options.metrics;
    if (!metrics) return;
    const key = `${outcome}/${code}`;
    let counter = counters.get(key);
    if (!counter) counters.set(key, (counter = metrics.webhookRequests.labels(outcome, code)));
    counter.inc();
  };
  // Anyone can send rejected requests: log each at debug, and a warning at most once a minute per code, so that a
  // wrong key is seen without a flood of forged requests flooding the logs (the metric counts them all).
  const lastWarned = new Map<string, number>();

  /**
   * Answers a refused or shed request: counted, logged at debug (a warning once a minute per code, so that neither
   * a flood of forged requests nor an overload floods the logs), with a cached body.
   */
  const reject = (serviceError: ServiceError, request: FastifyRequest, reply: FastifyReply) => {
    count(serviceError.code === 'ERR_OVERLOADED' ? 'shed' : serviceError.code === 'ERR_BUSY' ? 'busy' : 'rejected', serviceError.code);
    const now = options.now();
    const warn = now - (lastWarned.get(serviceError.code) ?? -Infinity) >= 60_000;
    if (warn) lastWarned.set(serviceError.code, now);
    request.log[warn ? 'warn' : 'debug']({ reqId: request.id, code: serviceError.code, statusCode: serviceError.statusCode }, 'webhook rejected');
    return reply.code(serviceError.statusCode).type('application/json').send(serviceError.body());
  };

  app.setErrorHandler((error, request, reply) => {
    const serviceError = toServiceError(error);
    // Shed and busy answers come in bursts (one user's flood, an overload): rate-limited like refusals.
    if (serviceError.statusCode < 500 || serviceError.code === 'ERR_OVERLOADED' || serviceError.code === 'ERR_BUSY') {
      return reject(serviceError, request, reply);
    }
    count('failed', serviceError.code);
    // These errors carry no request data: the log names the user, the failed call and what was left undone.
    const enforcement = error instanceof EnforcementError ? error : undefined;
    const cause = enforcement?.cause ?? error;
    const configuration = isConfigurationError(cause);
    request.log.error(
      {
        reqId: request.id,
        err: cause,
        code: serviceError.code,
        userId: enforcement?.userId,
        undone: enforcement?.undone,
        configurationError: configuration || undefined,
      },
      configuration
        ? 'configuration error: ZITADEL refused the call; check the token and its roles (doctor), it is not retried'
        : 'webhook failed; the limit may not hold for this user until the next login',
    );
    return reply.code(serviceError.statusCode).type('application/json').send(serviceError.body());
  });

  app.post(WEBHOOK_PATH, async (request, reply) => {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (!verified.has(body)) {
      const header = request.headers['zitadel-signature'];
      const verdict = checkSignature({
        body,
        header: Array.isArray(header) ? header.join(',') : header,
        keys: options.signingKeys,
        toleranceSeconds: options.signatureToleranceSeconds,
        now: options.now(),
      });
      if (!verdict.valid) return reject(signatureRefusal(verdict), request, reply);
    }

    // Then the body's form (cheap, no key involved), then the JWE key and the instance's web keys, then the JSON.
    const form = bodyForm(body);
    if (form !== payloadType && !(payloadType === 'json' && form === 'other')) throw new PayloadTypeMismatchError(form, payloadType);
    let json: Uint8Array = body;
    // The enforcement's budget counts from here when a JWT/JWE had to be opened first (the JWKS may be fetched).
    let arrivedAt: number | undefined;
    if (payloadType !== 'json') {
      arrivedAt = Date.now();
      json = await opener!.open(body.toString('latin1'), arrivedAt + (options.budgetMs ?? 5000));
    }
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'));
    } catch {
      throw new ServiceError('ERR_BODY_NOT_JSON');
    }
    const action = interpretPayload(payload);
    if (action.kind === 'ignore') {
      count('ignored');
      request.log.debug({ reqId: request.id, outcome: 'ignored', method: action.method }, 'webhook for a method this service does not handle');
    } else if (action.kind === 'skip') {
      count('skipped');
      request.log.debug({ reqId: request.id, outcome: 'skipped', sessionId: action.sessionId }, 'no credential verified in this call');
    } else {
      const result = await options.enforcer.enforce(action.sessionId, { checked: action.checked, requestId: request.id, ...(arrivedAt ? { arrivedAt } : {}) });
      const acted = result.evicted.length + result.pruned.length + (result.denied ? 1 : 0) > 0;
      const handled = result.outcome === 'enforced' || result.outcome === 'denied';
      count(result.dryRun && acted ? 'dry-run' : handled ? result.outcome : 'skipped');
      request.log.info(
        {
          reqId: request.id,
          outcome: result.outcome,
          sessionId: action.sessionId,
          userId: result.userId,
          active: result.active,
          evicted: result.evicted.length,
          pruned: result.pruned.length,
          denied: result.denied !== undefined,
          dryRun: result.dryRun,
          deferred: result.deferred || undefined,
          coalesced: result.coalesced,
        },
        'webhook handled',
      );
      if (result.outcome === 'denied' && !result.dryRun) {
        // ZITADEL turns this into a failed login (restWebhook with interruptOnError; docs/zitadel-behaviour.md#forwarded-errors-interruptonerror-and-no-retries).
        return reply.code(200).send({ forwardedStatusCode: 403, forwardedErrorMessage: options.denyMessage ?? 'session limit reached' });
      }
    }
    return reply.code(204).send();
  });
  done();
};
