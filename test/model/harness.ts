/**
 * A model-based harness for the enforcer under controlled interleavings (issue 10, section 8).
 *
 * What is real: the enforcer (two `SessionLimitEnforcer` instances sharing one user lock), the payload
 * interpretation of the webhook route (`interpretPayload`), its error mapping (`toServiceError`), the simulator's
 * state (sessions, projection lag until a GetSession, injected faults) and the proto conversion both ways.
 * What is replaced: gRPC. The enforcers reach the simulator's state through `ModelDirectory`, an in-process
 * `SessionDirectory` in which fast-check's scheduler decides when each call happens (the state is read or written at
 * that moment) and, separately, when its answer reaches the enforcer. Logins, re-authentications, second factors,
 * logouts, clock ticks (expiries), projection catch-ups, late and repeated webhook deliveries and injected faults
 * are steps of one scheduled sequence, interleaved by the same scheduler with the enforcers' calls.
 *
 * The invariants are checked against the test's own reference model (what each device did and when), never against
 * the enforcer's code or its decisions.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Code, ConnectError } from '@connectrpc/connect';
import type fc from 'fast-check';
import { SessionLimitEnforcer, type EnforcementResult } from '../../src/enforcement/enforcer.js';
import type { SessionRecord } from '../../src/enforcement/decision.js';
import { InMemoryAdmissions } from '../../src/enforcement/admissions.js';
import { InProcessUserLock, type UserLock } from '../../src/enforcement/user-lock.js';
import { createLogger } from '../../src/logger.js';
import { CREATE_SESSION, interpretPayload, SET_SESSION } from '../../src/payload.js';
import { SimulatorState, type SimSession } from '../../src/simulator/index.js';
import { toProtoSession } from '../../src/simulator/session-service.js';
import { toServiceError } from '../../src/error-map.js';
import { runOnce, type CallRunner, type SessionDirectory } from '../../src/enforcement/ports.js';
import { ZitadelCallError } from '../../src/zitadel/failures.js';
import { toSessionRecord } from '../../src/zitadel/session-directory.js';

export type OnLimit = 'evict-oldest' | 'deny-new';
export type FaultMethod = 'GetSession' | 'ListSessions' | 'DeleteSession';

/** One thing that happens in the world, in the order the scheduler lets it happen. */
export type Step =
  /** Login V2's first call: CreateSession with the user check (the session exists, not active), or user + password. */
  | { kind: 'begin'; user: number; device: number; withPassword: boolean; lifetimeS: number | undefined }
  /** SetSession with a credential on a session: completes a login, re-authenticates or adds a second factor. */
  | { kind: 'check'; pick: number; factor: 'password' | 'totp' }
  /** The user signs out on a device (DeleteSession by the login, not by the limiter). */
  | { kind: 'logout'; pick: number }
  /** The clock moves on (sessions with a lifetime expire). */
  | { kind: 'tick'; seconds: number }
  /** ZITADEL's projection catches up by itself. */
  | { kind: 'catch-up' }
  /** ZITADEL delivers an earlier webhook again (after other events). */
  | { kind: 'redeliver'; pick: number }
  /** The next `times` calls of `method` fail with Unavailable. */
  | { kind: 'fault'; method: FaultMethod; times: number };

export interface Scenario {
  onLimit: OnLimit;
  limit: number;
  users: number;
  steps: Step[];
  /** Which of the two enforcers each delivery goes to (cycled). */
  route: boolean[];
}

/** The documented answers of the webhook route for a payload that reached the enforcer (README, HTTP interface). */
export type Answer =
  | { status: 204; outcome: 'skipped' | EnforcementResult['outcome'] }
  | { status: 200; outcome: 'denied' }
  | { status: number; outcome: 'error'; code: string };

/** Error codes a webhook may answer for a valid payload (503s and 502s of the catalogue, README "Error codes"). */
export const DOCUMENTED_ENFORCEMENT_ERRORS = new Set(['ERR_ZITADEL_UNAVAILABLE', 'ERR_OVERLOADED', 'ERR_BUSY']);

interface ModelSession {
  id: string;
  user: string;
  device: number;
  /** Model event number of the call that gave the session its first credential (undefined: login in progress). */
  completedSeq: number | undefined;
  /** Clock time of the latest credential check (what "most recently authenticated" ranks by). */
  lastAuthAt: number | undefined;
  /** Model event number of the latest credential check. */
  lastAuthSeq: number;
  expiresAt: number | undefined;
  gone: 'logout' | 'limiter' | undefined;
  /** Model event number of its logout, if it was logged out. */
  goneSeq?: number | undefined;
  /** Answered 2xx and not denied for a webhook of this session (deny-new: the service admitted it). */
  admitted: boolean;
  /** Its completing call failed (a 503 answer fails the login call): by CreateSession or SetSession. */
  failedCompletion?: 'CreateSession' | 'SetSession' | undefined;
}

/** An enforcement's read of a session, with the model's truth at that moment (not what a stale projection said). */
interface Read {
  seq: number;
  /** Among the `limit` most recently authenticated active sessions of its user at that moment. */
  inTop: boolean;
  active: boolean;
  lastAuthAt: number | undefined;
}

interface Webhook {
  id: number;
  sessionId: string;
  user: string;
  body: string;
  /** The credential factors this call verified (the payload's request.checks). */
  checked: string[];
  /** This call gave the session its first verified credential: a login completed. */
  completes: boolean;
  method: string;
  /**
   * Ids of the sessions the user held when this call was made: active and admitted (a login whose own webhook has
   * not been answered yet has not completed for the user: its call has not returned).
   */
  heldOthersAtCall: string[];
}

interface Delivery {
  webhook: Webhook;
  enforcer: number;
  answer?: Answer;
  settled: boolean;
  /** The delivery the login call itself waited for (a restWebhook); false for a repeated delivery. */
  original: boolean;
  /** Resolves once answered. */
  done: Promise<void>;
}

/** The invariants, one name each (a failure names the one it broke). */
export type Invariant =
  | 'other-user-deleted'
  | 'login-in-progress-deleted'
  | 'evicted-within-limit-when-read'
  | 'evicted-within-limit-at-delete'
  | 'evicted-within-limit-as-read'
  | 'denied-in-evict-mode'
  | 'deny-new-deleted-admitted'
  | 'deny-new-deleted-non-trigger'
  | 'deny-new-denied-active-session'
  | 'deny-new-admitted-over-limit'
  | 'over-limit-when-quiet'
  | 'undocumented-answer'
  | 'no-answer'
  | 'final-enforcement-failed'
  | 'harness';

export interface Violation {
  invariant: Invariant;
  text: string;
}

export interface RunReport {
  violations: Violation[];
  deliveries: number;
  calls: number;
  trace: string[];
}

const T0 = Date.UTC(2026, 0, 1);
/** The delivery (webhook) each enforcer call is made for. One instance: every instance slows every promise down. */
const context = new AsyncLocalStorage<Delivery | undefined>();
const silent = createLogger('silent');
const USER_IDS = ['300000000000000501', '300000000000000502', '300000000000000503'];

/** What the webhook route does with a verified payload (src/webhook.ts), minus HTTP. */
export async function answerWebhook(enforcer: SessionLimitEnforcer, body: string): Promise<Answer> {
  const action = interpretPayload(JSON.parse(body));
  if (action.kind !== 'enforce') return { status: 204, outcome: 'skipped' };
  try {
    const result = await enforcer.enforce(action.sessionId, { checked: action.checked });
    if (result.outcome === 'denied' && !result.dryRun) return { status: 200, outcome: 'denied' };
    return { status: 204, outcome: result.outcome };
  } catch (error) {
    const mapped = toServiceError(error);
    return { status: mapped.statusCode, outcome: 'error', code: mapped.code };
  }
}

/** One run of a scenario under one schedule; returns what the reference model found wrong. */
export interface RunOptions {
  /** One lock per enforcer (two replicas); default: one in-process lock shared by both. */
  locks?: [UserLock, UserLock];
  /**
   * Over real gRPC: the enforcers use this directory (a `ZitadelSessionDirectory` connected to a simulator) and the
   * run uses that simulator's state (reset first). Reads and deletes are then observed in the simulator's
   * `afterCall` hook, where the call has read or written the state, and cannot be told apart per webhook.
   */
  grpc?: { state: SimulatorState; directory: SessionDirectory };
}

export async function runScenario(scenario: Scenario, s: fc.Scheduler, options: RunOptions = {}): Promise<RunReport> {
  let clock = T0;
  let seq = 0;
  const state = options.grpc?.state ?? new SimulatorState({ projectionMode: 'until-read', now: () => new Date(clock) });
  if (options.grpc) {
    state.sessions.clear();
    state.calls.length = 0;
    state.afterCall.length = 0;
    state.clearFaults();
    state.updateProjection();
    state.projectionMode = 'until-read';
    state.now = () => new Date(clock);
  }
  const violations: Violation[] = [];
  const broke = (invariant: Invariant, text: string) => violations.push({ invariant, text });
  /** The user of the final repair enforcement under way, if any. */
  let repairing: string | undefined;
  const trace: string[] = [];
  const note = (line: string) => trace.push(`${seq}: ${line}`);
  const users = USER_IDS.slice(0, scenario.users);
  for (const id of users) state.addUser({ id, loginName: `${id}@example.com`, password: 'pw', totpCode: '123456' });

  // ---- the reference model -------------------------------------------------------------------------------------
  const model = new Map<string, ModelSession>();
  const order: string[] = [];
  const isActive = (m: ModelSession) =>
    m.completedSeq !== undefined && m.gone === undefined && (m.expiresAt === undefined || m.expiresAt > clock);
  const activeOf = (user: string) => [...model.values()].filter((m) => m.user === user && isActive(m));
  /** The `limit` most recently authenticated active sessions of `user`, now. */
  // Ties in authentication time go to the later created session (ids grow with creation here), as the README's
  // total order says: either could be kept, but every replica must agree, and so must the model.
  const byRecency = (a: { id: string; lastAuthAt?: number | undefined }, b: { id: string; lastAuthAt?: number | undefined }) =>
    b.lastAuthAt! - a.lastAuthAt! || (BigInt(b.id) > BigInt(a.id) ? 1 : -1);
  const topOf = (user: string) =>
    new Set(
      activeOf(user)
        .sort(byRecency)
        .slice(0, scenario.limit)
        .map((m) => m.id),
    );

  // ---- what each enforcement read, for "when last read" ----------------------------------------------------------
  /**
   * Per delivery: session id → the model event of the enforcement's latest read of that session, and whether the
   * session was then, by the model, among the `limit` most recently authenticated active sessions of its user.
   */
  const lastRead = new Map<Delivery | undefined, Map<string, Read>>();
  const markRead = (ids: Iterable<string>) => {
    const delivery = context.getStore();
    const reads = lastRead.get(delivery) ?? new Map<string, Read>();
    lastRead.set(delivery, reads);
    const tops = new Map<string, Set<string>>();
    for (const id of ids) {
      const m = model.get(id);
      if (!m) continue;
      const top = tops.get(m.user) ?? topOf(m.user);
      tops.set(m.user, top);
      reads.set(id, { seq, inTop: top.has(id), active: isActive(m), lastAuthAt: m.lastAuthAt });
    }
    seq += 1;
  };
  /** The deleting enforcement's latest read of a session (any enforcement's latest, if it is not known). */
  const latestRead = (delivery: Delivery | undefined, id: string) => {
    const own = lastRead.get(delivery)?.get(id);
    if (own) return own;
    let latest: Read | undefined;
    for (const reads of lastRead.values()) {
      const read = reads.get(id);
      if (read && (!latest || read.seq > latest.seq)) latest = read;
    }
    return latest;
  };

  let calls = 0;
  const record = (session: SimSession): SessionRecord => toSessionRecord(toProtoSession(session));
  const fault = (method: FaultMethod) => {
    const injected = state.takeFault(method);
    if (injected) throw new ZitadelCallError(method, new ConnectError(injected.message ?? 'simulated outage', injected.code));
  };
  /** The scheduler decides when the call reaches ZITADEL (`op` runs then, synchronously) and when it answers. */
  const scheduled = async <T>(label: string, op: () => T): Promise<T> => {
    const who = context.getStore()?.webhook.id;
    await s.schedule(Promise.resolve(), `#${who} call ${label}`);
    calls += 1;
    let result: T;
    try {
      result = op();
    } catch (error) {
      note(`#${who} ${label} failed`);
      await s.schedule(Promise.resolve(), `#${who} fail ${label}`);
      throw error;
    }
    return s.schedule(Promise.resolve(result), `#${who} answer ${label}`);
  };

  const inProcess: SessionDirectory = {
    getSession: (sessionId: string, run: CallRunner = runOnce) =>
      run('GetSession', () =>
        scheduled(`GetSession ${sessionId}`, () => {
          fault('GetSession');
          state.syncProjection();
          const session = state.sessions.get(sessionId);
          markRead([sessionId]);
          return session ? record(session) : undefined;
        }),
      ),
    listUserSessions: (userId: string, run: CallRunner = runOnce) =>
      run('ListSessions', () =>
        scheduled(`ListSessions ${userId}`, () => {
          fault('ListSessions');
          const listed = state.projectedSessions().filter((session) => session.userId === userId);
          markRead(listed.map((session) => session.id));
          return listed.map(record);
        }),
      ),
    deleteSession: (sessionId: string, run: CallRunner = runOnce) =>
      run('DeleteSession', () =>
        scheduled(`DeleteSession ${sessionId}`, () => {
          fault('DeleteSession');
          checkDeletion(sessionId);
          state.terminate(sessionId);
        }),
      ),
  };

  /** Over gRPC: the scheduler decides when each call leaves and when its answer reaches the enforcer. */
  const overGrpc = (real: SessionDirectory): SessionDirectory => {
    const via = async <T>(label: string, call: () => Promise<T>): Promise<T> => {
      await s.schedule(Promise.resolve(), `call ${label}`);
      calls += 1;
      let result: T;
      try {
        result = await call();
      } catch (error) {
        await s.schedule(Promise.resolve(), `fail ${label}`);
        throw error;
      }
      return s.schedule(Promise.resolve(result), `answer ${label}`);
    };
    const once = (timeoutMs: number | undefined): CallRunner => (_what, call) => call(timeoutMs);
    return {
      getSession: (sessionId, run = runOnce) => run('GetSession', (timeoutMs) => via(`GetSession ${sessionId}`, () => real.getSession(sessionId, once(timeoutMs)))),
      listUserSessions: (userId, run = runOnce) =>
        run('ListSessions', (timeoutMs) => via(`ListSessions ${userId}`, () => real.listUserSessions(userId, once(timeoutMs)))),
      deleteSession: (sessionId, run = runOnce) =>
        run('DeleteSession', (timeoutMs) => via(`DeleteSession ${sessionId}`, () => real.deleteSession(sessionId, once(timeoutMs)))),
    };
  };
  if (options.grpc) {
    // The state was read or written when the hook runs; the model is checked then.
    state.afterCall.push((call) => {
      if (call.code !== 'ok') return;
      if (call.method === 'GetSession' && call.sessionId) markRead([call.sessionId]);
      else if (call.method === 'ListSessions' && call.userId) {
        markRead(state.projectedSessions().filter((session) => session.userId === call.userId).map((session) => session.id));
      } else if (call.method === 'DeleteSession' && call.sessionId && model.get(call.sessionId)?.gone !== 'logout') {
        checkDeletion(call.sessionId);
      }
    });
  }
  const directory = options.grpc ? overGrpc(options.grpc.directory) : inProcess;

  /** Checked at the moment the limiter's DeleteSession reaches ZITADEL. */
  function checkDeletion(sessionId: string) {
    const delivery = context.getStore();
    const m = model.get(sessionId);
    const who = delivery ? `webhook #${delivery.webhook.id} (trigger ${delivery.webhook.sessionId})` : 'an enforcement';
    note(`${who} deletes ${sessionId}`);
    if (!m || m.gone) return;
    if (delivery && m.user !== delivery.webhook.user) broke('other-user-deleted', `${who} deleted ${sessionId} of another user (${m.user})`);
    // Not attributable to one webhook (over gRPC): some webhook or repair of that user must be under way.
    const userBusy = repairing === m.user || [...inFlight].some(([id, n]) => n > 0 && model.get(id)?.user === m.user);
    if (!delivery && !userBusy) broke('other-user-deleted', `${sessionId} of ${m.user} deleted while no enforcement of that user ran`);
    if (m.completedSeq === undefined) broke('login-in-progress-deleted', `${who} deleted ${sessionId}, a login in progress`);
    if (scenario.onLimit === 'evict-oldest') {
      const read = latestRead(delivery, sessionId);
      // The issue's invariant: not among the `limit` most recently authenticated when the enforcement last read it.
      if (read?.inTop) {
        broke(
          'evicted-within-limit-when-read',
          `${who} deleted ${sessionId}, which was among the ${scenario.limit} most recently authenticated active ` +
            `sessions of its user when it last read it (event ${read.seq})`,
        );
      }
      // What the enforcement could know: every session of the user as it truly was when this enforcement last read
      // it. Changes after those reads (a logout, a re-authentication) are the window no read can close; a stale
      // projection is not (the truth at the read counts, not what the list showed).
      const known = [...(lastRead.get(delivery) ?? new Map<string, Read>())]
        .filter(([id, r]) => r.active && model.get(id)?.user === m.user)
        .sort(([idA, a], [idB, b]) => byRecency({ id: idA, lastAuthAt: a.lastAuthAt }, { id: idB, lastAuthAt: b.lastAuthAt }))
        .slice(0, scenario.limit)
        .map(([id]) => id);
      if (known.includes(sessionId)) {
        broke(
          'evicted-within-limit-as-read',
          `${who} deleted ${sessionId}, among the ${scenario.limit} most recently authenticated active sessions of its ` +
            `user by the truth at this enforcement's own reads (${known.join(', ')})`,
        );
      }
      // The strict form: not among them at the moment of deletion, but for the documented window (README, Races):
      // a change after the enforcement's last reads: a re-authentication of the session, or a session the
      // enforcement read as active and counted that was logged out or expired since.
      const loggedOutSinceRead = [...model.values()].some((o) => {
        if (o.user !== m.user || o.id === sessionId || isActive(o)) return false;
        const r = latestRead(delivery, o.id);
        return r !== undefined && r.active && (o.gone === undefined || (o.gone === 'logout' && (o.goneSeq ?? -1) > r.seq));
      });
      if (topOf(m.user).has(sessionId) && m.lastAuthSeq < (read?.seq ?? Infinity) && !loggedOutSinceRead) {
        broke(
          'evicted-within-limit-at-delete',
          `${who} deleted ${sessionId}, among the ${scenario.limit} most recently authenticated active sessions of its ` +
            `user at the moment of deletion and not re-authenticated since its last read (last authenticated at event ` +
            `${m.lastAuthSeq}, read at event ${read?.seq})`,
        );
      }
    } else {
      if (m.admitted) broke('deny-new-deleted-admitted', `deny-new: ${who} deleted ${sessionId}, a session it had admitted before`);
      // Coalesced webhooks of one user are decided by one enforcement: any of their triggers may be denied by it.
      if (!(inFlight.get(sessionId) ?? 0)) {
        broke('deny-new-deleted-non-trigger', `deny-new: ${who} deleted ${sessionId}, the trigger of no webhook waiting for its answer`);
      }
    }
    m.gone = 'limiter';
    seq += 1;
  }

  // ---- two enforcers, one lock ---------------------------------------------------------------------------------
  const shared = new InProcessUserLock();
  // deny-new's memory of admitted sessions, shared like the Redis one of two replicas. It has watched since before
  // the run began (a memory that starts later treats older sessions as established: tested elsewhere).
  clock = T0 - 60_000;
  const admissions = new InMemoryAdmissions({ now: () => clock, maxUsers: 16 });
  clock = T0;
  const locks = options.locks ?? [shared, shared];
  const enforcers = locks.map(
    (lock) =>
      new SessionLimitEnforcer({
        directory,
        limits: scenario.limit,
        policy: { onLimit: scenario.onLimit },
        logger: silent,
        now: () => clock,
        budgetMs: 20_000,
        lock,
        admissions,
        // Retries at once (no backoff): the scheduler, not the wall clock, orders them.
        random: () => 0,
      }),
  );

  // ---- deliveries ----------------------------------------------------------------------------------------------
  const webhooks: Webhook[] = [];
  const deliveries: Delivery[] = [];
  /** Session id → deliveries of a webhook for it that reached the service and are not answered yet. */
  const inFlight = new Map<string, number>();
  let route = 0;
  const deliver = (webhook: Webhook, original: boolean) => {
    let answered!: () => void;
    const delivery: Delivery = {
      webhook,
      enforcer: scenario.route[route++ % scenario.route.length] ? 1 : 0,
      settled: false,
      original,
      done: new Promise<void>((resolve) => (answered = resolve)),
    };
    deliveries.push(delivery);
    void (async () => {
      // Webhooks arrive late: the scheduler decides when.
      await s.schedule(Promise.resolve(), `deliver #${webhook.id} (${webhook.sessionId})`);
      inFlight.set(webhook.sessionId, (inFlight.get(webhook.sessionId) ?? 0) + 1);
      const answer = await context.run(delivery, () => answerWebhook(enforcers[delivery.enforcer]!, webhook.body));
      inFlight.set(webhook.sessionId, inFlight.get(webhook.sessionId)! - 1);
      delivery.answer = answer;
      delivery.settled = true;
      note(`#${webhook.id} answered ${JSON.stringify(answer)}`);
      onAnswer(delivery);
      answered();
    })();
  };

  function onAnswer(delivery: Delivery) {
    const { webhook, answer } = delivery;
    const m = model.get(webhook.sessionId)!;
    const label = `webhook #${webhook.id} (${webhook.completes ? 'login completing' : 'session already active'}, ${webhook.sessionId})`;
    if (!answer) return;
    if (answer.outcome === 'error') {
      if (delivery.original && webhook.completes && !m.admitted) m.failedCompletion = webhook.method === CREATE_SESSION ? 'CreateSession' : 'SetSession';
      if (!DOCUMENTED_ENFORCEMENT_ERRORS.has(answer.code)) broke('undocumented-answer', `${label} answered an undocumented ${answer.status} ${answer.code}`);
      return;
    }
    if (answer.outcome === 'denied') {
      if (scenario.onLimit !== 'deny-new') broke('denied-in-evict-mode', `${label} was denied in evict mode`);
      else if (!webhook.completes) broke('deny-new-denied-active-session', `deny-new: ${label} was denied: a re-authentication or second factor is never denied`);
      else if (m.admitted) broke('deny-new-denied-active-session', `deny-new: ${label} was denied after it had been admitted`);
      return;
    }
    if (answer.outcome === 'enforced') {
      // (A trigger that expired meanwhile holds nothing: letting it through costs no slot.)
      if (scenario.onLimit === 'deny-new' && webhook.completes && !m.admitted && isActive(m)) {
        const stillHeld = webhook.heldOthersAtCall.filter((id) => isActive(model.get(id)!));
        if (stillHeld.length >= scenario.limit) {
          broke(
            'deny-new-admitted-over-limit',
            `deny-new: ${label} was admitted although the user held ${stillHeld.length} other admitted active sessions ` +
              `when it completed (and still at the answer): ${stillHeld.join(', ')}; limit ${scenario.limit}`,
          );
        }
      }
      m.admitted = true;
    }
  }

  // ---- the world's steps ---------------------------------------------------------------------------------------
  const payload = (method: string, sessionId: string, checks: Record<string, unknown>) =>
    JSON.stringify({
      fullMethod: method,
      instanceID: state.instanceId,
      request: method === SET_SESSION ? { sessionId, checks } : { checks },
      response: method === CREATE_SESSION ? { sessionId, sessionToken: 'x' } : { sessionToken: 'x' },
    });
  const emit = (method: string, m: ModelSession, factors: string[], completes: boolean, others: string[]) => {
    const checks: Record<string, unknown> = method === CREATE_SESSION ? { user: { loginName: `${m.user}@example.com` } } : {};
    for (const factor of factors) checks[factor] = factor === 'password' ? { password: 'pw' } : { code: '123456' };
    const webhook: Webhook = {
      id: webhooks.length,
      sessionId: m.id,
      user: m.user,
      body: payload(method, m.id, checks),
      checked: factors,
      completes,
      method,
      heldOthersAtCall: others,
    };
    webhooks.push(webhook);
    deliver(webhook, true);
  };

  const exec = (step: Step) => {
    clock += 1000;
    seq += 1;
    switch (step.kind) {
      case 'begin': {
        const user = users[step.user % users.length]!;
        const others = activeOf(user)
          .filter((other) => other.admitted)
          .map((other) => other.id);
        const session = state.seedSession({
          userId: user,
          loginName: `${user}@example.com`,
          fingerprintId: `device-${step.user}-${step.device}`,
          expirationDate: step.lifetimeS === undefined ? undefined : new Date(clock + step.lifetimeS * 1000),
        });
        const m: ModelSession = {
          id: session.id,
          user,
          device: step.device,
          completedSeq: undefined,
          lastAuthAt: undefined,
          lastAuthSeq: -1,
          expiresAt: session.expirationDate?.getTime(),
          gone: undefined,
          admitted: false,
        };
        if (step.withPassword) {
          state.verify(session, ['password']);
          state.written(session.id);
          Object.assign(m, { completedSeq: seq, lastAuthAt: clock, lastAuthSeq: seq });
        }
        model.set(m.id, m);
        order.push(m.id);
        note(`begin ${m.id} for ${user}${step.withPassword ? ' with password' : ''}`);
        emit(CREATE_SESSION, m, step.withPassword ? ['password'] : [], step.withPassword, others);
        return;
      }
      case 'check': {
        const m = pick(step.pick);
        // ZITADEL refuses checks on a terminated or expired session.
        if (!m || m.gone || (m.expiresAt !== undefined && m.expiresAt <= clock)) return;
        // After a failed login call, the login has no token of a failed CreateSession; after a failed SetSession it
        // can only retry that step (the password), not go on to a second factor.
        if (m.failedCompletion === 'CreateSession' || (m.failedCompletion === 'SetSession' && step.factor !== 'password')) return;
        const session = state.sessions.get(m.id);
        if (!session) return;
        const others = activeOf(m.user)
          .filter((other) => other.id !== m.id && other.admitted)
          .map((other) => other.id);
        // A login completes with its first verified credential; under deny-new also with a retry after its
        // completing call failed (a 503 fails the login; the session was never admitted).
        const completes = m.completedSeq === undefined || (scenario.onLimit === 'deny-new' && !m.admitted);
        state.verify(session, [step.factor]);
        state.written(session.id);
        Object.assign(m, { lastAuthAt: clock, lastAuthSeq: seq, completedSeq: m.completedSeq ?? seq });
        note(`${step.factor} on ${m.id}${completes ? ' (login completes)' : ''}`);
        emit(SET_SESSION, m, [step.factor === 'password' ? 'password' : 'totp'], completes, others);
        return;
      }
      case 'logout': {
        const m = pick(step.pick);
        if (!m || m.gone) return;
        m.gone = 'logout';
        m.goneSeq = seq;
        state.terminate(m.id);
        note(`logout ${m.id}`);
        return;
      }
      case 'tick':
        clock += step.seconds * 1000;
        note(`tick ${step.seconds}s`);
        return;
      case 'catch-up':
        state.syncProjection();
        note('projection catches up');
        return;
      case 'redeliver': {
        if (webhooks.length === 0) return;
        const webhook = webhooks[step.pick % webhooks.length]!;
        note(`redeliver #${webhook.id}`);
        deliver(webhook, false);
        return;
      }
      case 'fault':
        state.injectFault(step.method, { code: Code.Unavailable, times: step.times });
        note(`fault ${step.method} x${step.times}`);
        return;
    }
  };
  const pick = (n: number) => (order.length === 0 ? undefined : model.get(order[n % order.length]!));

  // The world's steps, one after another; the scheduler decides when each happens relative to the enforcers' calls.
  let stepsDone = false;
  void (async () => {
    for (const [i, step] of scenario.steps.entries()) {
      // deny-new needs a restWebhook target (interruptOnError): ZITADEL answers a login call only after its
      // webhook, so the login's next call on that session comes after that answer. (evict-oldest also works with
      // restAsync: its webhooks may arrive any time later.)
      if (scenario.onLimit === 'deny-new' && step.kind === 'check') {
        const id = pick(step.pick)?.id;
        await Promise.all(deliveries.filter((d) => d.original && d.webhook.sessionId === id).map((d) => d.done));
      }
      await s.schedule(Promise.resolve(), `step ${i} ${step.kind}`);
      exec(step);
    }
    stepsDone = true;
  })();
  await settle(s, () => stepsDone && deliveries.every((delivery) => delivery.settled), () => {
    broke('no-answer', `${deliveries.filter((d) => !d.settled).map((d) => `webhook #${d.webhook.id}`).join(', ')} never answered`);
  });

  // ---- quiet -------------------------------------------------------------------------------------------------
  // Quiet: every webhook was delivered and answered, faults are over and ZITADEL's projection has caught up (real
  // ZITADEL's does within moments). A user one of whose webhooks failed gets one final enforcement (the repair sweep
  // `enforce --user`, or their next login): a failed webhook promised nothing.
  state.clearFaults();
  state.syncProjection();
  const failedUsers = new Set(deliveries.filter((d) => d.answer?.outcome === 'error').map((d) => d.webhook.user));
  if (scenario.onLimit === 'evict-oldest') {
    for (const user of failedUsers) {
      repairing = user;
      const repair = context.run(undefined, () => enforcers[0]!.enforceUser(user)).then(
        () => undefined,
        (error: unknown) => broke('final-enforcement-failed', `the final enforcement of ${user} failed: ${(error as Error).message}`),
      );
      let done = false;
      void repair.then(() => (done = true));
      await settle(s, () => done, () => broke('no-answer', `the final enforcement of ${user}`));
    }
  }
  for (const user of users) {
    const held = activeOf(user);
    // deny-new cannot remove what a failed webhook left (a 503 fails the login in ZITADEL, but its session stays).
    const promised = scenario.onLimit === 'evict-oldest' || !failedUsers.has(user);
    if (promised && held.length > scenario.limit) {
      broke('over-limit-when-quiet', `quiet: ${user} holds ${held.length} active sessions (${held.map((m) => m.id).join(', ')}), limit ${scenario.limit}`);
    }
  }
  // The model and ZITADEL agree on what is active (a check of the harness itself).
  for (const user of users) {
    const inZitadel = state.activeSessionsOf(user).map((session) => session.id).sort();
    const inModel = activeOf(user).map((m) => m.id).sort();
    if (inZitadel.join() !== inModel.join()) broke('harness', `model ${inModel.join()} != simulator ${inZitadel.join()} for ${user}`);
  }
  if (!options.grpc) state.dispose();
  return { violations, deliveries: deliveries.length, calls, trace };
}

/**
 * Lets the scheduler run until `done()`: releases scheduled tasks in its random order; when nothing is scheduled but
 * work is still pending (a retry waits for a zero-delay timer), yields to the event loop. `hang` is called when
 * nothing is scheduled and nothing moves for many turns.
 */
async function settle(s: fc.Scheduler, done: () => boolean, hang: () => void): Promise<void> {
  let idleTurns = 0;
  while (!done()) {
    if (s.count() > 0) {
      idleTurns = 0;
      await s.waitIdle();
      continue;
    }
    if (++idleTurns > 200) return hang();
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}
