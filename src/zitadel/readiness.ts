import { Code, ConnectError } from '@connectrpc/connect';
import type { ZitadelConnection } from './connection.js';
import type { SessionDirectory } from './session-directory.js';

export interface Readiness {
  ready: boolean;
  reason: string;
  /** Ready, but running without something that should be there (Redis): enforcement goes on, less safely. */
  degraded?: string | undefined;
}

export interface ReadinessOptions {
  connection: Pick<ZitadelConnection, 'lastAnswerAt' | 'lastFailure'>;
  directory: Pick<SessionDirectory, 'getSession'>;
  /** ZITADEL counts as up when it answered within this window. */
  freshMs?: number;
  now?: () => number;
  /** With REDIS_URL: the lock, whose `problem` says why Redis is not usable. */
  redis?: { problem: string | undefined } | undefined;
}

/**
 * /readyz: ready when ZITADEL answered within `freshMs`. Otherwise it asks ZITADEL itself (a GetSession of an id
 * that does not exist: NotFound proves ZITADEL and the token work) at most once per few seconds.
 */
export function createReadinessCheck(options: ReadinessOptions): () => Promise<Readiness> {
  const freshMs = options.freshMs ?? 60_000;
  const now = options.now ?? Date.now;
  const zitadel = zitadelReadiness(options, freshMs, now);
  return async () => {
    const readiness = await zitadel();
    const problem = options.redis?.problem;
    return problem ? { ...readiness, degraded: `${problem}: enforcing without the cross-replica lock` } : readiness;
  };
}

function zitadelReadiness(options: ReadinessOptions, freshMs: number, now: () => number): () => Promise<Readiness> {
  let probe: Promise<Readiness> | undefined;
  let probedAt = 0;
  return async () => {
    const last = options.connection.lastAnswerAt;
    if (last !== undefined && now() - last < freshMs) return { ready: true, reason: 'ZITADEL answered recently' };
    if (!probe || now() - probedAt > 5_000) {
      probedAt = now();
      probe = options.directory.getSession('readiness-probe-000000').then(
        () => ({ ready: true, reason: 'ZITADEL answered' }),
        (error: unknown) => {
          const code = (error as { grpcCode?: Code }).grpcCode ?? ConnectError.from(error).code;
          if (code === Code.Unauthenticated) return { ready: false, reason: 'ZITADEL rejected the token (Unauthenticated)' };
          if (code === Code.PermissionDenied) return { ready: false, reason: 'the token lacks session.read (PermissionDenied)' };
          return { ready: false, reason: `ZITADEL did not answer: ${Code[code]} (${options.connection.lastFailure ?? 'no call yet'})` };
        },
      );
    }
    return probe;
  };
}
