import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { ServiceError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { ZitadelCallError, type CallRunner, type SessionDirectory } from '../zitadel/session-directory.js';
import { chooseEvictions, lastAuthenticatedAt, latestRecords, type CountBy, type EvictionDecision, type OnLimit, type SessionRecord } from './decision.js';
import { FixedLimit, type LimitSourceLookup, type ResolvedLimit } from './limits.js';
import { Budget, withRetries } from './retry.js';
import { InProcessUserLock, type UserLock } from './user-lock.js';

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
  /** Total time one enforcement may take, retries included (ENFORCE_BUDGET_MS). */
  budgetMs?: number;
  /** Deadline of one ZITADEL call (ZITADEL_TIMEOUT_MS); never more than what is left of the budget. */
  callTimeoutMs?: number;
  /** Enforcements running or waiting at once; beyond, requests are shed with 503 (MAX_CONCURRENT_ENFORCEMENTS). */
  maxConcurrent?: number;
  /** Serialises enforcements of one user: in-process by default, across replicas with Redis. */
  lock?: UserLock;
  /** DeleteSession calls in flight at once for one enforcement. */
  deleteConcurrency?: number;
  metrics?:
    | Pick<Metrics, 'sessionsEvicted' | 'sessionsPruned' | 'loginsDenied' | 'dryRunActions' | 'activeSessions' | 'enforcementDuration' | 'zitadelRetries'>
    | undefined;
  /** For tests: the retry backoff's random source. */
  random?: () => number;
}

type AuditEvent = 'session.evicted' | 'session.denied' | 'session.pruned';

interface Action {
  event: AuditEvent;
  session: SessionRecord;
  rule: 'evict-oldest' | 'deny-new' | 'prune-expired';
  extra?: Record<string, unknown>;
}

/** An enforcement failed part-way: who, at which step, and what it left undone (for the log line). */
export class EnforcementError extends Error {
  readonly userId: string | undefined;
  readonly undone: string[];
  override readonly cause: unknown;
  constructor(userId: string | undefined, undone: string[], cause: unknown) {
    super(`enforcement for user ${userId ?? '(unknown)'} failed: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'EnforcementError';
    this.userId = userId;
    this.undone = undone;
    this.cause = cause;
  }
}

/** Rounds of "verify the sessions about to be deleted, decide again if one changed" before deleting. */
const MAX_VERIFY_ROUNDS = 3;

/**
 * Enforces the session limit for the user of one session: reads the session, resolves the user's limit, lists the
 * user's sessions (inside the user's turn), decides with `chooseEvictions`, re-reads the sessions it is about to
 * delete (a re-authentication racing this enforcement must not be evicted) and deletes them (unless in dry run).
 * Every ZITADEL call is retried within the enforcement's budget.
 */
export class SessionLimitEnforcer {
  readonly #directory: SessionDirectory;
  readonly #limits: LimitSourceLookup;
  readonly #policy: PolicyOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #budgetMs: number;
  readonly #callTimeoutMs: number;
  readonly #maxConcurrent: number;
  readonly #lock: UserLock;
  readonly #deleteConcurrency: number;
  readonly #metrics: EnforcerOptions['metrics'];
  readonly #random: () => number;
  #inFlight = 0;

  constructor(options: EnforcerOptions) {
    this.#directory = options.directory;
    this.#limits = typeof options.limits === 'number' ? new FixedLimit(options.limits) : options.limits;
    this.#policy = { ...DEFAULT_POLICY, ...options.policy };
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#budgetMs = options.budgetMs ?? 5000;
    this.#callTimeoutMs = options.callTimeoutMs ?? 5000;
    this.#maxConcurrent = options.maxConcurrent ?? 256;
    this.#lock = options.lock ?? new InProcessUserLock();
    this.#deleteConcurrency = options.deleteConcurrency ?? 8;
    this.#metrics = options.metrics;
    this.#random = options.random ?? Math.random;
  }

  /** Enforces the limit for the user of `sessionId`, the session whose login triggered the webhook. */
  async enforce(sessionId: string): Promise<EnforcementResult> {
    return this.#bounded(async (run, budget) => {
      // GetSession finds the user and brings ZITADEL's session projection up to date, so the list is current.
      const session = await this.#directory.getSession(sessionId, run);
      const dryRun = this.#policy.dryRun;
      if (!session) return { outcome: 'session-not-found', evicted: [], pruned: [], dryRun };
      if (!session.userId || lastAuthenticatedAt(session) === undefined) {
        return { outcome: 'login-in-progress', userId: session.userId, evicted: [], pruned: [], dryRun };
      }
      return this.#enforceUser(session.userId, session.organizationId, run, budget, session);
    });
  }

  /** Enforces the limit for one user with no triggering login (the repair sweep: `enforce --user`, `--all`). */
  async enforceUser(userId: string, organizationId?: string): Promise<EnforcementResult> {
    return this.#bounded((run, budget) => this.#enforceUser(userId, organizationId, run, budget, undefined));
  }

  async #bounded(work: (run: CallRunner, budget: Budget) => Promise<EnforcementResult>): Promise<EnforcementResult> {
    // Shed load instead of piling up work while ZITADEL is slow or down.
    if (this.#inFlight >= this.#maxConcurrent) throw new ServiceError('ERR_OVERLOADED');
    this.#inFlight += 1;
    const stopTimer = this.#metrics?.enforcementDuration.startTimer();
    const budget = new Budget(this.#budgetMs, this.#now);
    const run: CallRunner = (what, call) =>
      withRetries(what, call, {
        budget,
        callTimeoutMs: this.#callTimeoutMs,
        codeOf: (error) => (error instanceof ZitadelCallError ? error.grpcCode : undefined),
        random: this.#random,
        onRetry: (method, attempt, delayMs, error) => {
          this.#metrics?.zitadelRetries.inc({ method });
          this.#logger.debug({ method, attempt, delayMs, err: error }, 'retrying a ZITADEL call');
        },
      });
    try {
      return await work(run, budget);
    } finally {
      this.#inFlight -= 1;
      stopTimer?.();
    }
  }

  async #enforceUser(userId: string, organizationId: string | undefined, run: CallRunner, budget: Budget, trigger: SessionRecord | undefined) {
    let undone: string[] = [];
    try {
      // The lock may be waited for, and is held, only for what is left of the budget.
      return await this.#lock.run(userId, budget.remaining(), async (waited) => {
        // Another enforcement of this user ran while we waited: read again so that the list reflects its deletes.
        const fresh = trigger && waited ? await this.#directory.getSession(trigger.id, run) : trigger;
        const listed = await this.#directory.listUserSessions(userId, run);
        // The repair sweep may not know the organisation: the user's sessions name it. A failed look-up throws:
        // nothing is evicted rather than applying a smaller limit than the user may have.
        const orgId = organizationId ?? listed.find((session) => session.userId === userId && session.organizationId)?.organizationId;
        const limit = await this.#limits.limitFor(userId, orgId, run);
        for (const source of limit.malformed) {
          this.#logger.warn({ userId, orgId, source }, 'malformed session limit in metadata; using the next source');
        }
        const decision = await this.#decide(userId, fresh ? [...listed, fresh] : listed, limit, trigger?.id, run);
        const actions = this.#actionsOf(decision);
        undone = actions.map((action) => action.session.id);
        const result = await this.#apply(userId, decision, actions, limit, run);
        undone = [];
        return result;
      });
    } catch (error) {
      if (error instanceof EnforcementError) throw error;
      throw new EnforcementError(userId, undone, error);
    }
  }

  /**
   * Decides, then re-reads the sessions about to be deleted: one may have been re-authenticated (or deleted) since
   * the list was read. If any changed, decides again with what was read. A few rounds at most.
   */
  async #decide(userId: string, sessions: SessionRecord[], limit: ResolvedLimit, triggerId: string | undefined, run: CallRunner) {
    // Of two records of one session (the trigger read before the lock, and the list), the more recently changed.
    const records = latestRecords(sessions);
    const verified = new Set<string>();
    for (let round = 0; ; round++) {
      const decision = chooseEvictions({
        userId,
        sessions: records.values(),
        now: this.#now(),
        triggerId,
        policy: { ...this.#policy, limit: limit.limit, limitSource: limit.source },
      });
      const toCheck = decision.evict.map(({ session }) => session).filter((session) => !verified.has(session.id));
      if (toCheck.length === 0 || round >= MAX_VERIFY_ROUNDS || this.#policy.dryRun) return decision;
      let changed = false;
      await Promise.all(
        toCheck.map(async (listed) => {
          verified.add(listed.id);
          const now = await this.#directory.getSession(listed.id, run);
          if (!now) {
            records.delete(listed.id);
            changed = true;
          } else if ((now.changedAt ?? 0) > (listed.changedAt ?? 0)) {
            records.set(now.id, now);
            changed = true;
          }
        }),
      );
      if (!changed) return decision;
    }
  }

  #actionsOf(decision: EvictionDecision): Action[] {
    return [
      ...decision.evict.map(({ session }): Action => ({ event: 'session.evicted', session, rule: 'evict-oldest', extra: { kept: decision.keep.length } })),
      ...(decision.deny ? [{ event: 'session.denied', session: decision.deny.session, rule: 'deny-new' } satisfies Action] : []),
      ...decision.prune.map((session): Action => ({ event: 'session.pruned', session, rule: 'prune-expired' })),
    ];
  }

  async #apply(userId: string, decision: EvictionDecision, actions: Action[], limit: ResolvedLimit, run: CallRunner): Promise<EnforcementResult> {
    const { dryRun } = this.#policy;
    this.#metrics?.activeSessions.observe(decision.units);
    const audit = (action: Action) =>
      this.#logger.info(
        {
          event: action.event,
          userId,
          orgId: action.session.organizationId,
          sessionId: action.session.id,
          rule: action.rule,
          limit: limit.limit,
          limitSource: limit.source,
          countBy: this.#policy.countBy,
          dryRun,
          ...action.extra,
        },
        dryRun ? `dry run: would have applied ${action.event}` : action.event,
      );
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
        audit(action);
        this.#metrics?.dryRunActions.inc({ action: action.event.replace('session.', '') });
      }
      return result;
    }

    const parallel = pLimit(this.#deleteConcurrency);
    const outcomes = await Promise.allSettled(
      actions.map((action) =>
        parallel(async () => {
          await this.#directory.deleteSession(action.session.id, run);
          audit(action);
          if (action.event === 'session.evicted') this.#metrics?.sessionsEvicted.inc();
          else if (action.event === 'session.pruned') this.#metrics?.sessionsPruned.inc();
          else this.#metrics?.loginsDenied.inc();
          return action.session.id;
        }),
      ),
    );
    const failed = actions.filter((_action, i) => outcomes[i]!.status === 'rejected').map((action) => action.session.id);
    if (failed.length > 0) {
      const first = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')!;
      throw new EnforcementError(userId, failed, first.reason);
    }
    return result;
  }
}
