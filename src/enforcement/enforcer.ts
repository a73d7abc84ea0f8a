import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { SessionDirectory } from '../zitadel/session-directory.js';
import { chooseEvictions, lastAuthenticatedAt, type SessionRecord } from './decision.js';
import { PerKeyQueue } from './per-key-queue.js';

export interface EnforcementResult {
  /** What happened: `enforced` when the user's sessions were checked (evictions may be zero). */
  outcome: 'enforced' | 'session-not-found' | 'login-in-progress';
  userId?: string;
  /** Active sessions seen, kept and evicted. */
  active?: number;
  kept?: number;
  evicted: string[];
}

export interface EnforcerOptions {
  directory: SessionDirectory;
  limit: number;
  logger: Logger;
  /** Current time in milliseconds; injectable for tests. */
  now?: () => number;
  /** DeleteSession calls in flight at once for one enforcement. */
  deleteConcurrency?: number;
  metrics?: Pick<Metrics, 'sessionsEvicted' | 'activeSessions' | 'enforcementDuration'> | undefined;
}

/**
 * Enforces the session limit for the user of one session: reads the session, lists the user's sessions,
 * decides with `chooseEvictions` and deletes the least recently authenticated ones beyond the limit.
 */
export class SessionLimitEnforcer {
  readonly #directory: SessionDirectory;
  readonly #limit: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #deleteConcurrency: number;
  readonly #queue = new PerKeyQueue();
  readonly #metrics: EnforcerOptions['metrics'];

  constructor(options: EnforcerOptions) {
    this.#directory = options.directory;
    this.#limit = options.limit;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#deleteConcurrency = options.deleteConcurrency ?? 8;
    this.#metrics = options.metrics;
  }

  async enforce(sessionId: string): Promise<EnforcementResult> {
    const stopTimer = this.#metrics?.enforcementDuration.startTimer();
    try {
      return await this.#enforce(sessionId);
    } finally {
      stopTimer?.();
    }
  }

  async #enforce(sessionId: string): Promise<EnforcementResult> {
    // GetSession finds the user and brings ZITADEL's session projection up to date, so the list is current.
    const session = await this.#directory.getSession(sessionId);
    if (!session) return { outcome: 'session-not-found', evicted: [] };
    if (!session.userId || lastAuthenticatedAt(session) === undefined) {
      return { outcome: 'login-in-progress', userId: session.userId, evicted: [] };
    }
    const userId = session.userId;
    return this.#queue.run(userId, async (waited) => {
      // Another enforcement of this user ran while we waited: read again so that the list reflects its deletes.
      const fresh = waited ? await this.#directory.getSession(sessionId) : session;
      const listed = await this.#directory.listUserSessions(userId);
      return this.#evict(userId, fresh ? [...listed, fresh] : listed);
    });
  }

  async #evict(userId: string, sessions: SessionRecord[]): Promise<EnforcementResult> {
    const decision = chooseEvictions({ userId, sessions, limit: this.#limit, now: this.#now() });
    const kept = decision.keep.length;
    const active = kept + decision.evict.length;
    this.#metrics?.activeSessions.observe(active);
    const limit = pLimit(this.#deleteConcurrency);
    const results = await Promise.allSettled(
      decision.evict.map(({ session }) =>
        limit(async () => {
          await this.#directory.deleteSession(session.id);
          this.#metrics?.sessionsEvicted.inc();
          this.#logger.info(
            { event: 'session.evicted', userId, orgId: session.organizationId, sessionId: session.id, kept, limit: this.#limit },
            'evicted the least recently authenticated session beyond the limit',
          );
          return session.id;
        }),
      ),
    );
    const evicted = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure) {
      this.#logger.error(
        { userId, evicted: evicted.length, failed: results.length - evicted.length, err: failure.reason },
        'some evictions failed; the user may hold more sessions than the limit until the next login',
      );
      throw failure.reason;
    }
    return { outcome: 'enforced', userId, active, kept, evicted };
  }
}
