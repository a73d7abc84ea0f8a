import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { FixedLimit, type LimitSourceLookup } from '../zitadel/metadata.js';
import type { SessionDirectory } from '../zitadel/session-directory.js';
import { chooseEvictions, lastAuthenticatedAt, type CountBy, type EvictionDecision, type OnLimit, type SessionRecord } from './decision.js';
import type { ResolvedLimit } from './limits.js';
import { PerKeyQueue } from './per-key-queue.js';

export interface EnforcementResult {
  /** `enforced` when the user's sessions were checked (evictions may be zero); `denied` when the login was refused. */
  outcome: 'enforced' | 'denied' | 'session-not-found' | 'login-in-progress';
  userId?: string;
  /** Active units (sessions or devices) the user held when the decision was made. */
  active?: number;
  evicted: string[];
  pruned: string[];
  /** The triggering session, refused (deny-new). */
  denied?: string;
  /** Nothing was deleted: `evicted`, `pruned` and `denied` say what would have been. */
  dryRun: boolean;
}

/** The policies that are the same for every user (the limit may come from metadata). */
export interface PolicyOptions {
  countBy: CountBy;
  onLimit: OnLimit;
  dryRun: boolean;
  pruneExpired: boolean;
}

export const DEFAULT_POLICY: PolicyOptions = { countBy: 'session', onLimit: 'evict-oldest', dryRun: false, pruneExpired: false };

export interface EnforcerOptions {
  directory: SessionDirectory;
  /** SESSION_LIMIT, or a metadata-backed lookup. */
  limits: LimitSourceLookup | number;
  policy?: Partial<PolicyOptions>;
  logger: Logger;
  /** Current time in milliseconds; injectable for tests. */
  now?: () => number;
  /** DeleteSession calls in flight at once for one enforcement. */
  deleteConcurrency?: number;
  metrics?: Pick<Metrics, 'sessionsEvicted' | 'sessionsPruned' | 'loginsDenied' | 'dryRunActions' | 'activeSessions' | 'enforcementDuration'> | undefined;
}

type AuditEvent = 'session.evicted' | 'session.denied' | 'session.pruned';

/**
 * Enforces the session limit for the user of one session: reads the session, resolves the user's limit, lists the
 * user's sessions, decides with `chooseEvictions` and deletes what the decision says (unless in dry run).
 */
export class SessionLimitEnforcer {
  readonly #directory: SessionDirectory;
  readonly #limits: LimitSourceLookup;
  readonly #policy: PolicyOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #deleteConcurrency: number;
  readonly #queue = new PerKeyQueue();
  readonly #metrics: EnforcerOptions['metrics'];

  constructor(options: EnforcerOptions) {
    this.#directory = options.directory;
    this.#limits = typeof options.limits === 'number' ? new FixedLimit(options.limits) : options.limits;
    this.#policy = { ...DEFAULT_POLICY, ...options.policy };
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
    const dryRun = this.#policy.dryRun;
    // GetSession finds the user and brings ZITADEL's session projection up to date, so the list is current.
    const session = await this.#directory.getSession(sessionId);
    if (!session) return { outcome: 'session-not-found', evicted: [], pruned: [], dryRun };
    if (!session.userId || lastAuthenticatedAt(session) === undefined) {
      return { outcome: 'login-in-progress', userId: session.userId, evicted: [], pruned: [], dryRun };
    }
    const userId = session.userId;
    // A failed look-up throws: nothing is evicted rather than applying a smaller limit than the user may have.
    const limit = await this.#limits.limitFor(userId, session.organizationId);
    for (const source of limit.malformed) {
      this.#logger.warn({ userId, orgId: session.organizationId, source }, 'malformed session limit in metadata; using the next source');
    }
    return this.#queue.run(userId, async (waited) => {
      // Another enforcement of this user ran while we waited: read again so that the list reflects its deletes.
      const fresh = waited ? await this.#directory.getSession(sessionId) : session;
      const listed = await this.#directory.listUserSessions(userId);
      const decision = chooseEvictions({
        userId,
        sessions: fresh ? [...listed, fresh] : listed,
        now: this.#now(),
        triggerId: sessionId,
        policy: { ...this.#policy, limit: limit.limit, limitSource: limit.source },
      });
      return this.#apply(userId, decision, limit);
    });
  }

  async #apply(userId: string, decision: EvictionDecision, limit: ResolvedLimit): Promise<EnforcementResult> {
    const { dryRun } = this.#policy;
    this.#metrics?.activeSessions.observe(decision.units);
    const audit = (event: AuditEvent, session: SessionRecord, rule: string, extra: Record<string, unknown> = {}) =>
      this.#logger.info(
        {
          event,
          userId,
          orgId: session.organizationId,
          sessionId: session.id,
          rule,
          limit: limit.limit,
          limitSource: limit.source,
          countBy: this.#policy.countBy,
          dryRun,
          ...extra,
        },
        dryRun ? `dry run: would have applied ${event}` : event,
      );
    const actions: { event: AuditEvent; session: SessionRecord; rule: string; extra?: Record<string, unknown> }[] = [
      ...decision.evict.map(({ session }) => ({ event: 'session.evicted' as const, session, rule: 'evict-oldest', extra: { kept: decision.keep.length } })),
      ...(decision.deny ? [{ event: 'session.denied' as const, session: decision.deny.session, rule: 'deny-new' }] : []),
      ...decision.prune.map((session) => ({ event: 'session.pruned' as const, session, rule: 'prune-expired' })),
    ];
    const result: EnforcementResult = {
      outcome: decision.deny ? 'denied' : 'enforced',
      userId,
      active: decision.units,
      evicted: decision.evict.map(({ session }) => session.id),
      pruned: decision.prune.map((session) => session.id),
      denied: decision.deny?.session.id,
      dryRun,
    };
    if (dryRun) {
      for (const action of actions) {
        audit(action.event, action.session, action.rule, action.extra);
        this.#metrics?.dryRunActions.inc({ action: action.event.replace('session.', '') });
      }
      return result;
    }

    const parallel = pLimit(this.#deleteConcurrency);
    const outcomes = await Promise.allSettled(
      actions.map((action) =>
        parallel(async () => {
          await this.#directory.deleteSession(action.session.id);
          audit(action.event, action.session, action.rule, action.extra);
          if (action.event === 'session.evicted') this.#metrics?.sessionsEvicted.inc();
          else if (action.event === 'session.pruned') this.#metrics?.sessionsPruned.inc();
          else this.#metrics?.loginsDenied.inc();
        }),
      ),
    );
    const failures = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failures.length > 0) {
      this.#logger.error(
        { userId, done: actions.length - failures.length, failed: failures.length, err: failures[0]!.reason },
        'some deletions failed; the user may hold more sessions than the limit until the next login',
      );
      throw failures[0]!.reason;
    }
    return result;
  }
}
