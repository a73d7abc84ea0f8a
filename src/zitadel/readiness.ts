import { Code, ConnectError } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { ZitadelConnection } from './connection.js';
import type { SessionDirectory } from '../enforcement/ports.js';
import { UNAVAILABLE_CODES } from './failures.js';

/**
 * What /readyz says about ZITADEL: `ok`, or why not. Stable codes, documented in README: /readyz is on the public
 * port, so it never carries an address, a port or an error text (the log does).
 */
export type ZitadelCheck = 'ok' | 'unreachable' | 'timeout' | 'unauthenticated' | 'permission-denied' | 'refused';
/** What /readyz says about Redis (with REDIS_URL): `ok`, or why enforcement runs without the cross-replica lock. */
export type RedisCheck = 'ok' | 'not-connected' | 'unauthenticated' | 'failing';

export interface Readiness {
  /** ZITADEL answers: enforcement can work. */
  ready: boolean;
  checks: { zitadel?: ZitadelCheck; redis?: RedisCheck };
}

export interface ReadinessOptions {
  connection: Pick<ZitadelConnection, 'lastAnswerAt' | 'lastFailure'>;
  directory: Pick<SessionDirectory, 'getSession'>;
  /** Where the details of a failure go (rate-limited), since the answer carries only the code. */
  logger?: Pick<Logger, 'warn'>;
  /** ZITADEL counts as up when it answered within this window. */
  freshMs?: number;
  now?: () => number;
  /** With REDIS_URL: the lock, whose `problem` says why Redis is not usable (its own warning logs the detail). */
  redis?: { problem: string | undefined; redis?: { status: string } } | undefined;
}

/** How often the same failure of ZITADEL is logged at most. */
const LOG_EVERY_MS = 60_000;

/**
 * /readyz: ready when ZITADEL answered within `freshMs`. Otherwise it asks ZITADEL itself (a GetSession of an id
 * that does not exist: NotFound proves ZITADEL and the token work) at most once per few seconds. Redis, when
 * configured, only degrades readiness: enforcement goes on without the cross-replica lock.
 */
export function createReadinessCheck(options: ReadinessOptions): () => Promise<Readiness> {
  const freshMs = options.freshMs ?? 60_000;
  const now = options.now ?? Date.now;
  const zitadel = zitadelCheck(options, freshMs, now);
  return async () => {
    const checks: Readiness['checks'] = { zitadel: await zitadel() };
    if (options.redis) checks.redis = redisCheck(options.redis);
    return { ready: checks.zitadel === 'ok', checks };
  };
}

/** The code for a failed probe of ZITADEL, from the gRPC code of the failure. */
export function zitadelCheckOf(code: Code): Exclude<ZitadelCheck, 'ok'> {
  if (code === Code.Unauthenticated) return 'unauthenticated';
  if (code === Code.PermissionDenied) return 'permission-denied';
  if (code === Code.DeadlineExceeded) return 'timeout';
  if (UNAVAILABLE_CODES.has(code)) return 'unreachable';
  return 'refused';
}

function redisCheck(lock: NonNullable<ReadinessOptions['redis']>): RedisCheck {
  const { problem } = lock;
  if (problem === undefined) return 'ok';
  if (/NOAUTH|WRONGPASS|invalid password|invalid username-password/i.test(problem)) return 'unauthenticated';
  if (lock.redis && lock.redis.status !== 'ready') return 'not-connected';
  return lock.redis ? 'failing' : 'not-connected';
}

function zitadelCheck(options: ReadinessOptions, freshMs: number, now: () => number): () => Promise<ZitadelCheck> {
  let probe: Promise<ZitadelCheck> | undefined;
  let probedAt = 0;
  let logged: { reason: ZitadelCheck; at: number } | undefined;
  const log = (reason: ZitadelCheck, error: unknown) => {
    if (logged && logged.reason === reason && now() - logged.at < LOG_EVERY_MS) return;
    logged = { reason, at: now() };
    const detail = error instanceof Error ? error.message : String(error);
    options.logger?.warn(
      { dependency: 'zitadel', reason, detail, lastFailure: options.connection.lastFailure },
      `/readyz: ZITADEL not ready (${reason})`,
    );
  };
  return async () => {
    const last = options.connection.lastAnswerAt;
    if (last !== undefined && now() - last < freshMs) return 'ok';
    if (!probe || now() - probedAt > 5_000) {
      probedAt = now();
      probe = options.directory.getSession('readiness-probe-000000').then(
        () => 'ok' as const,
        (error: unknown) => {
          const reason = zitadelCheckOf((error as { grpcCode?: Code }).grpcCode ?? ConnectError.from(error).code);
          log(reason, error);
          return reason;
        },
      );
    }
    return probe;
  };
}
