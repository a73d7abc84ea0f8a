import { LRUCache } from 'lru-cache';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { ActionReporter, CallRunner, SessionDirectory } from './ports.js';
import { InMemoryAdmissions, type AdmissionMemory } from './admissions.js';
import {
  chooseEvictions,
  isNewLogin,
  lastAuthenticatedAt,
  latestRecords,
  whyNotCounted,
  type CredentialFactor,
  type DecisionTrigger,
  type EvictionDecision,
  type SessionRecord,
} from './decision.js';
import { DEFAULT_POLICY, type PolicyOptions } from './policy.js';
import { FixedLimit, type LimitSourceLookup, type ResolvedLimit } from './limits.js';
import { Budget, BudgetExhaustedError, withRetries } from './retry.js';
import { InProcessUserLock, UserBusyError, type UserLock } from './user-lock.js';

export interface EnforcementResult {
  /**
   * For the triggering session: `enforced` when the user's sessions were checked (evictions may be zero), `denied`
   * when its login was refused, `session-not-found` when it no longer exists, `login-in-progress` when it has no
   * verified credential yet.
   */
  outcome: 'enforced' | 'denied' | 'session-not-found' | 'login-in-progress';
  userId?: string;
  /** Active units (sessions or devices) the user held when the decision was made, denied logins excluded. */
  active?: number;
  evicted: string[];
  pruned: string[];
  /** The triggering session, refused (deny-new). */
  denied?: string;
  /**
   * Sessions beyond the limit left for the next enforcement: beyond the per-enforcement cap, or not confirmed by a
   * re-read before the rounds ran out.
   */
  deferred: number;
  /** Nothing was deleted: `evicted`, `pruned` and `denied` say what would have been. */
  dryRun: boolean;
  /** Other webhooks of the same user answered by this same enforcement (coalesced), besides this one. */
  coalesced?: number;
}

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
  metrics?: EnforcerMetrics | undefined;
  /** For tests: the retry backoff's random source. */
  random?: () => number;
  /** deny-new: the sessions admitted before (in memory by default, in Redis with REDIS_URL). */
  admissions?: AdmissionMemory;
  /** deny-new: tolerated difference between ZITADEL's clock and ours when reading creation dates (default 1000). */
  admissionClockSkewMs?: number;
  /** Sessions evicted (each re-read, then deleted) by one enforcement at most; the rest wait for the next. */
  maxEvictionsPerEnforcement?: number;
  /** Told of every eviction, denial and prune once ZITADEL deleted the session (never in a dry run). */
  reporter?: ActionReporter | undefined;
}

/** How a webhook's login reaches the enforcer. */
export interface TriggerOptions {
  /** The credential factors this call checked (the payload's `request.checks`); undefined when unknown. */
  checked?: readonly CredentialFactor[] | undefined;
  /** When the webhook arrived (epoch ms): the enforcement budget counts from then. Default: now. */
  arrivedAt?: number | undefined;
  /** The webhook's request id: every log line of the enforcement carries it (`reqId`, and `reqIds` when coalesced). */
  requestId?: string | undefined;
}

type AuditEvent = 'session.evicted' | 'session.denied' | 'session.pruned';

interface Action {
  event: AuditEvent;
  session: SessionRecord;
  rule: 'evict-oldest' | 'deny-new' | 'prune-expired';
  extra?: Record<string, unknown>;
}

/** Where an enforcement writes its lines. */
type EnforcementLog = Pick<Logger, 'debug' | 'info' | 'warn'>;

/** What the enforcer counts (src/metrics.ts provides it with Prometheus; any counters will do). */
export interface EnforcerMetrics {
  sessionsEvicted: { inc(): void };
  sessionsPruned: { inc(): void };
  loginsDenied: { inc(): void };
  dryRunActions: { inc(labels: { action: string }): void };
  activeSessions: { observe(value: number): void };
  enforcementDuration: { startTimer(): () => unknown };
  zitadelRetries: { inc(labels: { method: string }): void };
}

/** Too many enforcements run or wait (MAX_CONCURRENT_ENFORCEMENTS): this one was not started. */
export class OverloadedError extends Error {
  constructor() {
    super('too many enforcements running or waiting');
    this.name = 'OverloadedError';
  }
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
/** Default cap of evictions per enforcement: a user far over a lowered limit converges over a few logins or one sweep. */
export const DEFAULT_MAX_EVICTIONS_PER_ENFORCEMENT = 20;
/** Passes of one user in the repair sweep (`enforceUser`) while evictions are left for the next enforcement. */
const MAX_SWEEP_PASSES = 50;

interface Trigger {
  id: string;
  /** The session as read when the webhook arrived; undefined when its user was known from an earlier webhook. */
  record: SessionRecord | undefined;
  checked: readonly CredentialFactor[] | undefined;
  requestId: string | undefined;
}

/** The enforcements of one user waiting for their turn, joined by every webhook of that user arriving meanwhile. */
interface Batch {
  userId: string;
  organizationId: string | undefined;
  triggers: Trigger[];
  /** The latest deadline of its webhooks: each webhook waits for the batch at most until its own deadline. */
  deadline: number;
  /** Another enforcement of the user ran before this one (its deletes may postdate our reads). */
  waited: boolean;
  started: boolean;
  outcome: Promise<BatchOutcome>;
}

interface BatchOutcome {
  userId: string;
  decision: EvictionDecision;
  evicted: string[];
  deferred: number;
  /** The latest record of each session (to tell each trigger what became of it). */
  records: Map<string, SessionRecord>;
}

/** The batches of one user: the tail of those started or waiting, and the one that still takes joiners. */
interface UserSlot {
  tail: Promise<void>;
  waiting: Batch | undefined;
  /** Batches of the user started or waiting, not yet settled. */
  pending: number;
}

/**
 * Enforces the session limit for the user of one session: reads the session, joins the user's turn, lists the
 * user's sessions (inside the turn), decides with `chooseEvictions`, re-reads the sessions it is about to delete
 * (a re-authentication racing this enforcement must not be evicted) and deletes them (unless in dry run).
 *
 * Per user, at most one enforcement runs and at most one waits: a webhook arriving while one waits joins it and
 * gets its answer (the waiting one lists ZITADEL after that login, so it covers it). MAX_CONCURRENT_ENFORCEMENTS
 * counts these enforcements, not webhooks, so a burst of one user never sheds another user's login. Everything,
 * waits included, happens within the webhook's budget.
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
  readonly #admissions: AdmissionMemory;
  readonly #clockSkewMs: number;
  readonly #maxEvictions: number;
  readonly #reporter: ActionReporter | undefined;
  readonly #slots = new Map<string, UserSlot>();
  /** The user (and organisation) of sessions seen recently: a session's user never changes. */
  readonly #owners = new LRUCache<string, { userId: string; organizationId: string | undefined }>({ max: 10_000 });
  /** Look-ups of a triggering session in flight, shared by the webhooks that name the same session. */
  readonly #lookups = new Map<string, Promise<SessionRecord | undefined>>();
  /** Enforcements running or waiting (not webhooks: joined webhooks do not count). */
  #active = 0;

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
    this.#admissions = options.admissions ?? new InMemoryAdmissions({ now: this.#now });
    this.#clockSkewMs = options.admissionClockSkewMs ?? 1000;
    this.#maxEvictions = options.maxEvictionsPerEnforcement ?? DEFAULT_MAX_EVICTIONS_PER_ENFORCEMENT;
    this.#reporter = options.reporter;
  }

  /** Enforcements running or waiting right now. */
  get active(): number {
    return this.#active;
  }

  /** Enforces the limit for the user of `sessionId`, the session whose login triggered the webhook. */
  async enforce(sessionId: string, options: TriggerOptions = {}): Promise<EnforcementResult> {
    const budget = Budget.until((options.arrivedAt ?? this.#now()) + this.#budgetMs, this.#now);
    // A session's user never changes: a session seen before joins its user's enforcement without a look-up (a
    // retrying client's burst costs no call per webhook); that enforcement reads it again inside the turn.
    const known = this.#owners.get(sessionId);
    if (known) {
      return this.#join(known.userId, known.organizationId, { id: sessionId, record: undefined, checked: options.checked, requestId: options.requestId }, budget);
    }
    const dryRun = this.#policy.dryRun;
    // GetSession finds the user and brings ZITADEL's session projection up to date, so the list is current.
    const session = await this.#lookUp(sessionId, budget);
    if (!session) return { outcome: 'session-not-found', evicted: [], pruned: [], deferred: 0, dryRun };
    if (!session.userId || lastAuthenticatedAt(session) === undefined) {
      return { outcome: 'login-in-progress', userId: session.userId, evicted: [], pruned: [], deferred: 0, dryRun };
    }
    this.#owners.set(sessionId, { userId: session.userId, organizationId: session.organizationId });
    const trigger: Trigger = { id: sessionId, record: session, checked: options.checked, requestId: options.requestId };
    return this.#join(session.userId, session.organizationId, trigger, budget);
  }

  /**
   * Enforces the limit for one user with no triggering login (the repair sweep: `enforce --user`, `--all`): pass
   * after pass, each with its own budget, until nothing is left for a next enforcement.
   */
  async enforceUser(userId: string, organizationId?: string): Promise<EnforcementResult> {
    let total: EnforcementResult | undefined;
    for (let pass = 0; pass < MAX_SWEEP_PASSES; pass++) {
      const result = await this.#join(userId, organizationId, undefined, new Budget(this.#budgetMs, this.#now));
      // The first pass saw the user as they were: its count of active units is the one to report.
      total = total
        ? { ...result, active: total.active, evicted: [...total.evicted, ...result.evicted], pruned: [...total.pruned, ...result.pruned] }
        : result;
      const progressed = result.evicted.length + result.pruned.length > 0;
      if (result.deferred === 0 || !progressed || result.dryRun) break;
    }
    return total!;
  }

  /** Reads the triggering session; webhooks naming a session whose read is in flight share it. */
  async #lookUp(sessionId: string, budget: Budget): Promise<SessionRecord | undefined> {
    let lookup = this.#lookups.get(sessionId);
    if (!lookup) {
      lookup = this.#directory.getSession(sessionId, this.#runner(budget));
      this.#lookups.set(sessionId, lookup);
      const forget = () => this.#lookups.get(sessionId) === lookup && this.#lookups.delete(sessionId);
      lookup.then(forget, forget);
      return lookup;
    }
    // Shared with an earlier webhook (whose budget ends first): wait for it, at most for what is left of ours.
    if (!(await budget.within(lookup))) throw new BudgetExhaustedError('GetSession', 1, new Error('no time left'));
    return lookup;
  }

  /** The enforcer's logger, with `fields` on every line. */
  #tagged(fields: Record<string, unknown>): EnforcementLog {
    if (Object.keys(fields).length === 0) return this.#logger;
    const logger = this.#logger;
    return {
      debug: (object: object, message: string) => logger.debug({ ...fields, ...object }, message),
      info: (object: object, message: string) => logger.info({ ...fields, ...object }, message),
      warn: (object: object, message: string) => logger.warn({ ...fields, ...object }, message),
    } as EnforcementLog;
  }

  #runner(budget: Budget, log: Pick<Logger, 'debug'> = this.#logger): CallRunner {
    return (what, call) =>
      withRetries(what, call, {
        budget,
        callTimeoutMs: this.#callTimeoutMs,
        random: this.#random,
        onRetry: (method, attempt, delayMs, error) => {
          this.#metrics?.zitadelRetries.inc({ method });
          log.debug({ method, attempt, delayMs, err: error }, 'retrying a ZITADEL call');
        },
      });
  }

  /** Joins the user's waiting enforcement, or starts one (shed when too many run or wait), and answers for `trigger`. */
  async #join(userId: string, organizationId: string | undefined, trigger: Trigger | undefined, budget: Budget): Promise<EnforcementResult> {
    let slot = this.#slots.get(userId);
    let batch = slot?.waiting;
    if (!batch) {
      // Shed load instead of piling up work while ZITADEL is slow or down.
      if (this.#active >= this.#maxConcurrent) throw new OverloadedError();
      if (!slot) this.#slots.set(userId, (slot = { tail: Promise.resolve(), waiting: undefined, pending: 0 }));
      batch = this.#startBatch(slot, userId, organizationId, budget.deadline);
    }
    batch.deadline = Math.max(batch.deadline, budget.deadline);
    batch.organizationId ??= organizationId;
    if (trigger) batch.triggers.push(trigger);
    const joined = batch;
    const settled = joined.outcome.then(
      () => true,
      () => true,
    );
    if (!(await budget.within(settled))) {
      throw joined.started ? new BudgetExhaustedError('the enforcement', 1, new Error('no time left')) : new UserBusyError('this process');
    }
    return this.#resultFor(await joined.outcome, trigger, joined.triggers.length);
  }

  #startBatch(slot: UserSlot, userId: string, organizationId: string | undefined, deadline: number): Batch {
    const previous = slot.tail;
    const batch: Batch = { userId, organizationId, triggers: [], deadline, waited: slot.pending > 0, started: false, outcome: undefined! };
    this.#active += 1;
    slot.pending += 1;
    slot.waiting = batch;
    batch.outcome = (async () => {
      try {
        // Wait for the user's turn until the batch's deadline, which later joiners may push back meanwhile.
        let inTime = false;
        for (let until = -Infinity; !inTime && batch.deadline > until; ) {
          until = batch.deadline;
          inTime = await Budget.until(until, this.#now).within(previous);
        }
        // From here on, webhooks of the user start a new batch: this one lists after all of its triggers arrived.
        if (slot.waiting === batch) slot.waiting = undefined;
        if (!inTime) throw new UserBusyError('this process');
        batch.started = true;
        return await this.#runBatch(batch);
      } finally {
        if (slot.waiting === batch) slot.waiting = undefined;
        this.#active -= 1;
      }
    })();
    const done = batch.outcome.then(
      () => undefined,
      () => undefined,
    );
    // The next batch waits for this one and for everything before it (this one may give up before those end).
    slot.tail = Promise.all([previous, done]).then(() => {
      slot.pending -= 1;
      if (slot.pending === 0 && !slot.waiting && this.#slots.get(userId) === slot) this.#slots.delete(userId);
    });
    return batch;
  }

  #resultFor(outcome: BatchOutcome, trigger: Trigger | undefined, triggers: number): EnforcementResult {
    const { decision, userId } = outcome;
    const dryRun = this.#policy.dryRun;
    const shared = {
      userId,
      active: decision.units,
      evicted: outcome.evicted,
      pruned: decision.prune.map((session) => session.id),
      deferred: outcome.deferred,
      dryRun,
      ...(triggers > 1 ? { coalesced: triggers - 1 } : {}),
    };
    if (!trigger) return { outcome: 'enforced', ...shared };
    if (decision.deny.some((entry) => entry.session.id === trigger.id)) return { outcome: 'denied', denied: trigger.id, ...shared };
    const record = outcome.records.get(trigger.id);
    if (!record) return { outcome: 'session-not-found', ...shared };
    if (whyNotCounted(record, userId, this.#now()) === 'login-in-progress') return { outcome: 'login-in-progress', ...shared };
    return { outcome: 'enforced', ...shared };
  }

  async #runBatch(batch: Batch): Promise<BatchOutcome> {
    const { userId } = batch;
    const budget = Budget.until(batch.deadline, this.#now);
    // Every line of this enforcement names the webhooks it answers (fields on each line: no child logger).
    const ids = batch.triggers.flatMap((trigger) => (trigger.requestId ? [trigger.requestId] : []));
    const log = this.#tagged(ids.length === 0 ? {} : ids.length === 1 ? { reqId: ids[0] } : { reqId: ids[0], reqIds: ids });
    const run = this.#runner(budget, log);
    const stopTimer = this.#metrics?.enforcementDuration.startTimer();
    let undone: string[] = [];
    try {
      // The lock is waited for, and held, only for what is left of the budget.
      return await this.#lock.run(userId, budget, async (waitedElsewhere) => {
        const triggers = [...batch.triggers];
        const read = triggers.flatMap((trigger) => (trigger.record ? [trigger.record] : []));
        // Another enforcement of this user ran while we waited, several logins joined, or a login was not read yet:
        // one GetSession brings the projection up to date, so that the list reflects their writes and deletes.
        const last = triggers.at(-1);
        if (last && (batch.waited || waitedElsewhere || triggers.length > 1 || !last.record)) {
          const fresh = await this.#directory.getSession(last.id, run);
          if (fresh) read.push(fresh);
          else if (last.record) read.splice(read.indexOf(last.record), 1);
        }
        const listed = await this.#directory.listUserSessions(userId, run);
        // The repair sweep may not know the organisation: the user's sessions name it. A failed look-up throws:
        // nothing is evicted rather than applying a smaller limit than the user may have.
        const orgId = batch.organizationId ?? listed.find((session) => session.userId === userId && session.organizationId)?.organizationId;
        const limit = await this.#limits.limitFor(userId, orgId, run);
        for (const source of limit.malformed) {
          log.warn({ userId, orgId, source }, 'malformed session limit in metadata; using the next source');
        }
        // Of two records of one session (a trigger's read, and the list), the more recently changed; ties: the read.
        const records = latestRecords([...listed, ...read]);
        const classified = await this.#classify(userId, triggers, records, log);
        const { decision, deferred } = await this.#decide(userId, records, limit, classified, run, log);
        const actions = this.#actionsOf(decision);
        undone = actions.map((action) => action.session.id);
        await this.#apply(userId, decision, actions, limit, run, log, causeOf(triggers, decision));
        undone = [];
        if (this.#policy.onLimit === 'deny-new') await this.#remember(userId, decision, classified.unjudged, log);
        return { userId, decision, evicted: decision.evict.map(({ session }) => session.id), deferred, records };
      });
    } catch (error) {
      if (error instanceof EnforcementError || error instanceof UserBusyError) throw error;
      throw new EnforcementError(userId, undone, error);
    } finally {
      stopTimer?.();
    }
  }

  /**
   * deny-new: which triggers are new logins (see `isNewLogin`), and which other sessions are logins still being
   * decided by their own webhooks (not admitted, created while the memory watched, signed in within the budget):
   * those do not count yet, so that concurrent logins are decided in the order they arrive. With evict-oldest,
   * none of this matters.
   */
  async #classify(userId: string, triggers: Trigger[], records: Map<string, SessionRecord>, log: EnforcementLog) {
    const none = { triggers: [] as DecisionTrigger[], pending: new Set<string>(), unjudged: new Set<string>() };
    if (this.#policy.onLimit !== 'deny-new') return none;
    const now = this.#now();
    const mine = [...records.values()].filter((session) => whyNotCounted(session, userId, now) === undefined);
    let memory: { admitted: Set<string>; since: number };
    try {
      memory = await this.#admissions.recall(
        userId,
        mine.map((session) => session.id),
      );
    } catch (error) {
      // Without the memory nothing can be told apart: let every login through rather than log a device out.
      log.warn({ userId, err: error }, 'admission memory unreadable: no login of this user is denied this time');
      return none;
    }
    const triggerIds = new Set(triggers.map((trigger) => trigger.id));
    const watchedSince = memory.since + this.#clockSkewMs;
    // Signed in while the memory watched, never admitted, and not decided here: their own webhooks decide them.
    const unjudged = mine.filter(
      (session) => !triggerIds.has(session.id) && !memory.admitted.has(session.id) && (session.createdAt ?? 0) > watchedSince,
    );
    // Those signed in a moment ago do not count yet (their webhooks are on the way); older ones count, but are not
    // remembered as admitted: a late (or repeated) webhook of theirs is still judged as the new login it is.
    const pending = new Set(
      unjudged.filter((session) => lastAuthenticatedAt(session)! > now - this.#budgetMs - this.#clockSkewMs).map((session) => session.id),
    );
    // A trigger no longer among the records (deleted meanwhile) has nothing to decide.
    const decisionTriggers = triggers.flatMap((trigger) => {
      const session = records.get(trigger.id);
      if (!session) return [];
      const admitted = memory.admitted.has(trigger.id);
      return [{ id: trigger.id, newLogin: isNewLogin({ session, checked: trigger.checked, admitted, rememberedSince: memory.since, clockSkewMs: this.#clockSkewMs }) }];
    });
    return { triggers: decisionTriggers, pending, unjudged: new Set(unjudged.map((session) => session.id)) };
  }

  /**
   * deny-new: remembers the sessions that stay active as admitted (not the unjudged ones, which their own webhooks
   * decide), and forgets the deleted ones. In a dry run nothing is deleted: the would-be denied sessions stay
   * active, so they are remembered too (switching the dry run off must not deny their re-authentications).
   */
  async #remember(userId: string, decision: EvictionDecision, unjudged: ReadonlySet<string>, log: EnforcementLog): Promise<void> {
    const { dryRun } = this.#policy;
    const removed = dryRun ? [] : [...decision.deny.map(({ session }) => session.id), ...decision.prune.map((session) => session.id)];
    const staying = [...decision.keep, ...(dryRun ? decision.deny : [])].map(({ session }) => session.id);
    try {
      await this.#admissions.update(
        userId,
        staying.filter((id) => !unjudged.has(id)),
        removed,
      );
    } catch (error) {
      log.warn({ userId, err: error }, 'admission memory not updated: a re-authentication of these sessions may look like a new login');
    }
  }

  /**
   * Decides, then re-reads the sessions about to be deleted: one may have been re-authenticated (or deleted) since
   * the list was read. If any changed, decides again with what was read, a few rounds at most. Only sessions whose
   * latest read confirmed them are evicted, at most `maxEvictionsPerEnforcement`: the rest are left for the next
   * enforcement (and logged).
   */
  async #decide(
    userId: string,
    records: Map<string, SessionRecord>,
    limit: ResolvedLimit,
    { triggers, pending }: { triggers: DecisionTrigger[]; pending: ReadonlySet<string> },
    run: CallRunner,
    log: EnforcementLog,
  ) {
    const decideNow = () =>
      chooseEvictions({
        userId,
        sessions: records.values(),
        now: this.#now(),
        triggers,
        pending,
        policy: { ...this.#policy, limit: limit.limit, limitSource: limit.source },
      });
    // Sessions re-read and found as listed, with the order in which their reads completed: safe to evict (or to
    // count as kept) on this decision, unless another session was seen changed by a read that completed later.
    const confirmed = new Map<string, number>();
    let reads = 0;
    // The least recently authenticated first, at most the cap.
    const candidates = (decision: EvictionDecision) => decision.evict.slice(-this.#maxEvictions);
    let decision = decideNow();
    // A dry run deletes nothing and reads nothing again: it reports every would-be eviction, uncapped.
    if (this.#policy.dryRun) return { decision, deferred: 0 };
    for (let round = 0; round < MAX_VERIFY_ROUNDS; round++) {
      const unconfirmed = candidates(decision)
        .map(({ session }) => session)
        .filter((session) => !confirmed.has(session.id));
      if (unconfirmed.length === 0) break;
      // The kept sessions are read again too (in parallel): one logged out since the list (which may lag behind a
      // logout) frees its place, and a candidate must not be evicted for a session that is gone.
      const kept = decision.keep.map(({ session }) => session).filter((session) => !confirmed.has(session.id));
      let lastChange = -1;
      const parallel = pLimit(this.#deleteConcurrency);
      await Promise.all(
        [...unconfirmed, ...kept].map((listed) =>
          parallel(async () => {
            const now = await this.#directory.getSession(listed.id, run);
            const seq = reads++;
            if (!now) {
              records.delete(listed.id);
              lastChange = seq;
            } else if ((now.changedAt ?? 0) > (listed.changedAt ?? 0)) {
              records.set(now.id, now);
              lastChange = seq;
            } else {
              confirmed.set(listed.id, seq);
            }
          }),
        ),
      );
      // Decide again at the time of the reads: a kept session may have expired since the list.
      decision = decideNow();
      if (lastChange < 0) break;
      // A read that completed before a change was seen may predate that change: it confirms nothing any more.
      for (const [id, seq] of confirmed) if (seq < lastChange) confirmed.delete(id);
    }
    const wanted = decision.evict;
    const evict = candidates(decision).filter(({ session }) => confirmed.has(session.id));
    const deferred = wanted.length - evict.length;
    if (deferred > 0) {
      log.info(
        { userId, deferred, evicting: evict.length, cap: this.#maxEvictions },
        'sessions beyond the limit left for the next enforcement (over the per-enforcement cap or not confirmed by a re-read)',
      );
    }
    return { decision: { ...decision, evict }, deferred };
  }

  #actionsOf(decision: EvictionDecision): Action[] {
    return [
      ...decision.evict.map(({ session }): Action => ({ event: 'session.evicted', session, rule: 'evict-oldest', extra: { kept: decision.keep.length } })),
      ...decision.deny.map(({ session }): Action => ({ event: 'session.denied', session, rule: 'deny-new' })),
      ...decision.prune.map((session): Action => ({ event: 'session.pruned', session, rule: 'prune-expired' })),
    ];
  }

  /** Tells the reporter (if any) what was deleted; a reporter that throws must not fail the enforcement. */
  #report(action: Action, userId: string, limit: ResolvedLimit, cause: string | undefined, log: EnforcementLog): void {
    if (!this.#reporter) return;
    const { session } = action;
    try {
      this.#reporter.report({
        type: action.event,
        at: this.#now(),
        userId,
        orgId: session.organizationId,
        sessionId: session.id,
        userAgent: { description: session.userAgentDescription, fingerprintId: session.fingerprintId },
        reason: action.event === 'session.pruned' ? 'expired' : 'limit_exceeded',
        limit: limit.limit,
        limitSource: limit.source,
        ...(action.event === 'session.evicted' ? { causedBySessionId: cause } : {}),
      });
    } catch (error) {
      log.warn({ err: error, sessionId: session.id, event: action.event }, 'the action reporter failed; the session was deleted all the same');
    }
  }

  async #apply(
    userId: string,
    decision: EvictionDecision,
    actions: Action[],
    limit: ResolvedLimit,
    run: CallRunner,
    log: EnforcementLog,
    cause: string | undefined,
  ): Promise<void> {
    const { dryRun } = this.#policy;
    this.#metrics?.activeSessions.observe(decision.units);
    const audit = (action: Action) =>
      log.info(
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
    if (dryRun) {
      for (const action of actions) {
        audit(action);
        this.#metrics?.dryRunActions.inc({ action: action.event.replace('session.', '') });
      }
      return;
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
          this.#report(action, userId, limit, cause, log);
          return action.session.id;
        }),
      ),
    );
    const failed = actions.filter((_action, i) => outcomes[i]!.status === 'rejected').map((action) => action.session.id);
    if (failed.length > 0) {
      const first = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')!;
      throw new EnforcementError(userId, failed, first.reason);
    }
  }
}

/**
 * The login that caused this enforcement's evictions: the newest trigger that stays (a trigger that is itself
 * evicted or denied caused nothing); undefined without a trigger (the repair sweep).
 */
function causeOf(triggers: readonly Trigger[], decision: EvictionDecision): string | undefined {
  const kept = new Set(decision.keep.map(({ session }) => session.id));
  return triggers.findLast((trigger) => kept.has(trigger.id))?.id;
}
