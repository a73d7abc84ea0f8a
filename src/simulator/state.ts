import { randomBytes, type KeyObject } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import type { CredentialFactor } from '../enforcement/decision.js';

/**
 * The in-memory state of a simulated ZITADEL, with ZITADEL's semantics for what this project touches
 * (docs/zitadel-behaviour.md#session-service-v2). It is the truth the tests assert on; the gRPC services only expose it.
 */

export type Permission =
  | 'session.read'
  | 'session.write'
  | 'session.delete'
  | 'action.target.read'
  | 'action.target.write'
  | 'action.target.delete'
  | 'action.execution.read'
  | 'action.execution.write'
  | 'project.read'
  | 'project.app.read'
  | 'user.read'
  | 'org.read';
export const ALL_PERMISSIONS: readonly Permission[] = [
  'session.read',
  'session.write',
  'session.delete',
  'action.target.read',
  'action.target.write',
  'action.target.delete',
  'action.execution.read',
  'action.execution.write',
  'project.read',
  'project.app.read',
  'user.read',
  'org.read',
];
/** What Login V2's service account may do (ZITADEL's IAM_LOGIN_CLIENT, as far as sessions go). */
export const LOGIN_CLIENT_PERMISSIONS: readonly Permission[] = ['session.read', 'session.write'];

export interface SimSession {
  id: string;
  userId: string;
  loginName: string;
  organizationId: string;
  creationDate: Date;
  /**
   * The microseconds past `creationDate`'s millisecond (0..999): ZITADEL's timestamps have microseconds (PostgreSQL),
   * a Date only milliseconds. ListSessions sorts and filters on both.
   */
  creationMicros: number;
  changeDate: Date;
  sequence: bigint;
  /** When the user check was verified. */
  userVerifiedAt: Date;
  /** When each credential factor was last verified. */
  factors: Partial<Record<CredentialFactor, Date>>;
  expirationDate?: Date | undefined;
  fingerprintId?: string | undefined;
  description?: string | undefined;
  ip?: string | undefined;
  /** The session token; ZITADEL hands it to the login only. */
  token: string;
}

export interface SessionSeed {
  userId: string;
  id?: string;
  loginName?: string | undefined;
  organizationId?: string | undefined;
  creationDate?: Date;
  /** Microseconds past `creationDate`'s millisecond (0..999); default 0 when `creationDate` is given. */
  creationMicros?: number;
  factors?: Partial<Record<CredentialFactor, Date>>;
  expirationDate?: Date;
  fingerprintId?: string | undefined;
  description?: string | undefined;
  ip?: string | undefined;
}

export type SimMethod =
  | 'GetSession'
  | 'ListSessions'
  | 'DeleteSession'
  | 'CreateSession'
  | 'SetSession'
  | 'ListUserMetadata'
  | 'ListOrganizationMetadata';

/** A user the simulated login can sign in, with the secrets its checks accept. */
export interface SimUser {
  id: string;
  loginName: string;
  organizationId: string;
  password?: string | undefined;
  /** The code a TOTP check accepts. */
  totpCode?: string | undefined;
  /** The code an OTP SMS / email check accepts. */
  otpCode?: string | undefined;
  /** Whether the user has a passkey (any assertion after a challenge passes). */
  passkey?: boolean | undefined;
}

export interface UserSeed extends Partial<Omit<SimUser, 'loginName'>> {
  loginName: string;
}

/** An OIDC application's settings that decide what an eviction does to it (read by `doctor`). */
export interface SimOidcApp {
  backChannelLogoutUri?: string;
  accessTokenType?: 'bearer' | 'jwt';
  grantTypes?: ('authorization_code' | 'implicit' | 'refresh_token' | 'device_code')[];
}

/** An application of a project; `oidc` for an OIDC one. */
export interface SimApplication {
  id: string;
  projectId: string;
  name: string;
  oidc?: SimOidcApp | undefined;
}

export interface RecordedCall {
  method: SimMethod;
  /** The session the call named, if any. */
  sessionId?: string;
  /** The user a ListSessions filtered on, if any. */
  userId?: string;
  /** Page size and offset of a ListSessions. */
  limit?: number;
  offset?: number;
  code: Code | 'ok';
}

export interface Fault {
  code: Code;
  /** How many calls fail; Infinity for all until cleared. */
  times: number;
  message?: string;
}

/**
 * When ListSessions sees writes. A lag in milliseconds (the default, `DEFAULT_PROJECTION_LAG_MS`): a write becomes
 * visible on its own after the lag, as ZITADEL's projection catches up within moments; `'until-read'`: only after
 * a GetSession (a projection that never catches up by itself, the worst case); `'immediate'`. In every mode a
 * GetSession brings the projection up to date at once, as ZITADEL's does.
 */
export type ProjectionMode = 'until-read' | 'immediate' | number;

export const DEFAULT_PROJECTION_LAG_MS = 100;

/** A write waiting to reach the projection: at `visibleAt` (epoch ms; Infinity: only with a GetSession). */
interface PendingWrite {
  visibleAt: number;
  /** The session written; undefined: anything (the whole state). */
  sessionId: string | undefined;
  /** What the write left (null: deleted), as of the write; undefined when only a GetSession applies it. */
  snapshot?: SimSession | null | Map<string, SimSession>;
}

/** mulberry32: a small seeded PRNG, so that a failing seed reproduces the same orders of ties. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class SimulatorState {
  readonly sessions = new Map<string, SimSession>();
  readonly calls: RecordedCall[] = [];
  /**
   * Run after each successful call, before it answers: lets a test order events exactly (e.g. a re-authentication
   * right after an enforcement's ListSessions), instead of relying on the wall clock.
   */
  readonly afterCall: ((call: RecordedCall) => void | Promise<void>)[] = [];
  readonly tokens = new Map<string, Set<Permission>>();
  /** The user id behind each token: the API caller ZITADEL names in execution payloads (`userID`). */
  readonly tokenOwners = new Map<string, string>();
  readonly users = new Map<string, SimUser>();
  /** Service-account keys for the JWT profile grant: keyId → public key, user and permissions. */
  readonly serviceKeys = new Map<string, { userId: string; publicKey: KeyObject; permissions: Set<Permission> }>();
  /** When tokens issued by /oauth/v2/token expire (epoch ms); personal access tokens never do. */
  readonly tokenExpiry = new Map<string, number>();
  accessTokenLifetimeSeconds = 3600;
  /** How many times /oauth/v2/token was called. */
  tokenRequests = 0;
  readonly instanceId = '300000000000000001';
  /** IdP intents a CreateSession may check: id → { token, userId }. */
  readonly idpIntents = new Map<string, { token: string; userId: string }>();
  /** Metadata by user id and by organisation id: key → value (UTF-8). */
  readonly userMetadata = new Map<string, Map<string, string>>();
  readonly orgMetadata = new Map<string, Map<string, string>>();
  readonly projects = new Map<string, { id: string; name: string; organizationId: string }>();
  readonly applications = new Map<string, SimApplication>();
  /** Sessions that asked for a WebAuthN challenge (a passkey check needs one first). */
  readonly webAuthNChallenges = new Set<string>();
  projectionMode: ProjectionMode;
  /** Added before every call answers, per method or for all (`'*'`). */
  latencyMs: Partial<Record<SimMethod | '*', number>> = {};
  now: () => Date;
  /** The seed of the order of ties in ListSessions: give it back (`seed` option) to reproduce a run. */
  readonly seed: number;
  /** Seeded random numbers in [0, 1): the order of ties. */
  readonly random: () => number;

  /** What ListSessions reads: a copy of the sessions as of the last projection update. */
  #projection = new Map<string, SimSession>();
  /** Writes not yet in the projection, in the order they were made. */
  #pending: PendingWrite[] = [];
  #faults = new Map<SimMethod | '*', Fault>();
  #nextId = 300_000_000_000_001_000n;
  #sequence = 0n;
  /** With the real clock: the last creation time handed out, to count microseconds within a millisecond. */
  #lastCreation = { ms: 0, micros: 0 };
  readonly #fixedClock: boolean;

  constructor(options: { projectionMode?: ProjectionMode; now?: () => Date; seed?: number } = {}) {
    this.projectionMode = options.projectionMode ?? DEFAULT_PROJECTION_LAG_MS;
    this.#fixedClock = options.now !== undefined;
    this.now = options.now ?? (() => new Date());
    this.seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    this.random = seededRandom(this.seed);
  }

  /**
   * A creation time with microseconds. With an injected clock (`now`), exactly its time (so a test can create
   * sessions with identical timestamps); with the real clock, sessions created within one millisecond get
   * successive microseconds, as ZITADEL's timestamps mostly differ.
   */
  creationTime(): { date: Date; micros: number } {
    const date = this.now();
    if (this.#fixedClock) return { date, micros: 0 };
    const ms = date.getTime();
    const micros = ms === this.#lastCreation.ms ? Math.min(this.#lastCreation.micros + 1, 999) : 0;
    this.#lastCreation = { ms, micros };
    return { date, micros };
  }

  newId(): string {
    return String(this.#nextId++);
  }

  nextSequence(): bigint {
    return ++this.#sequence;
  }

  /** The permissions of a bearer token, or undefined when it is unknown or expired. */
  permissionsOf(token: string | undefined): Set<Permission> | undefined {
    if (token === undefined) return undefined;
    const expiry = this.tokenExpiry.get(token);
    if (expiry !== undefined && expiry <= this.now().getTime()) return undefined;
    return this.tokens.get(token);
  }

  /** Registers a bearer token with its permissions; its owner is the caller named in execution payloads. */
  addToken(token: string, permissions: Iterable<Permission>, ownerId = this.newId()): void {
    this.tokens.set(token, new Set(permissions));
    this.tokenOwners.set(token, ownerId);
  }

  addUser(seed: UserSeed): SimUser {
    const user: SimUser = { id: seed.id ?? this.newId(), organizationId: seed.organizationId ?? '300000000000000002', ...seed };
    this.users.set(user.id, user);
    return user;
  }

  findUser(search: { userId?: string; loginName?: string }): SimUser | undefined {
    if (search.userId !== undefined) return this.users.get(search.userId);
    const name = search.loginName?.toLowerCase();
    return [...this.users.values()].find((user) => user.loginName.toLowerCase() === name);
  }

  /** Adds an application (an OIDC one when `oidc` is given) to a project, created by name when new. */
  addApplication(init: { projectName: string; name: string; oidc?: SimOidcApp }): SimApplication {
    let project = [...this.projects.values()].find((p) => p.name === init.projectName);
    if (!project) {
      project = { id: this.newId(), name: init.projectName, organizationId: '300000000000000002' };
      this.projects.set(project.id, project);
    }
    const app: SimApplication = { id: this.newId(), projectId: project.id, name: init.name, oidc: init.oidc };
    this.applications.set(app.id, app);
    return app;
  }

  /** An IdP intent that a CreateSession for `userId` may check, as after a successful external login. */
  addIdpIntent(userId: string): { idpIntentId: string; idpIntentToken: string } {
    const idpIntentId = this.newId();
    const idpIntentToken = randomBytes(16).toString('base64url');
    this.idpIntents.set(idpIntentId, { token: idpIntentToken, userId });
    return { idpIntentId, idpIntentToken };
  }

  /** Adds a session as if a login had written it (it reaches ListSessions per the projection mode). */
  seedSession(seed: SessionSeed): SimSession {
    const created = seed.creationDate ? { date: seed.creationDate, micros: seed.creationMicros ?? 0 } : this.creationTime();
    const creationDate = created.date;
    if (!Number.isInteger(created.micros) || created.micros < 0 || created.micros > 999) {
      throw new RangeError('creationMicros must be a whole number of microseconds between 0 and 999');
    }
    const session: SimSession = {
      id: seed.id ?? this.newId(),
      userId: seed.userId,
      loginName: seed.loginName ?? `user-${seed.userId}@example.com`,
      organizationId: seed.organizationId ?? '300000000000000002',
      creationDate,
      creationMicros: created.micros,
      changeDate: creationDate,
      sequence: this.nextSequence(),
      userVerifiedAt: creationDate,
      factors: { ...seed.factors },
      expirationDate: seed.expirationDate,
      fingerprintId: seed.fingerprintId,
      description: seed.description,
      ip: seed.ip,
      token: randomBytes(24).toString('base64url'),
    };
    this.sessions.set(session.id, session);
    this.written(session.id);
    return session;
  }

  /**
   * Stamps `factors` as verified now (a login step, or a re-authentication), with a new expiry if given, a new
   * sequence and a new token, as ZITADEL's SetSession does. Callers outside a gRPC call must call `written()`.
   */
  verify(session: SimSession, factors: readonly CredentialFactor[], expirationDate?: Date): void {
    const now = this.now();
    for (const factor of factors) session.factors[factor] = now;
    session.expirationDate = expirationDate ?? session.expirationDate;
    session.changeDate = now;
    session.sequence = this.nextSequence();
    session.token = randomBytes(24).toString('base64url');
  }

  /** A password re-check on an existing session, written as ZITADEL would (visible per the projection mode). */
  reauthenticate(sessionId: string, factor: CredentialFactor = 'password'): void {
    const session = this.sessions.get(sessionId);
    if (!session) throw new Error(`no session ${sessionId}`);
    this.verify(session, [factor]);
    this.written(sessionId);
  }

  terminate(sessionId: string): void {
    if (this.sessions.delete(sessionId)) this.written(sessionId);
  }

  /**
   * Call after every write (of `sessionId`, or of anything when not given): makes it visible to ListSessions
   * according to the projection mode.
   */
  written(sessionId?: string): void {
    const mode = this.projectionMode;
    if (mode === 'immediate') {
      this.#pending.push({ visibleAt: -Infinity, sessionId });
      return this.syncProjection();
    }
    if (mode === 'until-read') return void this.#pending.push({ visibleAt: Infinity, sessionId });
    // Visible on its own after the lag (judged by `now`, so an injected clock decides), as it was when written.
    const session = sessionId === undefined ? undefined : this.sessions.get(sessionId);
    const snapshot =
      sessionId === undefined
        ? new Map([...this.sessions].map(([id, s]) => [id, structuredClone(s)]))
        : session
          ? structuredClone(session)
          : null;
    this.#pending.push({ visibleAt: this.now().getTime() + mode, sessionId, snapshot });
  }

  /** Applies every write since the last update to the projection, as ZITADEL's GetSession does. */
  syncProjection(): void {
    if (this.#pending.some((write) => write.sessionId === undefined)) return this.updateProjection();
    for (const { sessionId } of this.#pending) {
      const session = this.sessions.get(sessionId!);
      if (session) this.#projection.set(sessionId!, structuredClone(session));
      else this.#projection.delete(sessionId!);
    }
    this.#pending = [];
  }

  /** Rebuilds the whole projection from the sessions (also picks up changes a test made to them directly). */
  updateProjection(): void {
    this.#projection = new Map([...this.sessions].map(([id, s]) => [id, structuredClone(s)]));
    this.#pending = [];
  }

  /** The sessions ListSessions sees right now (possibly stale): the projection, with the writes whose lag passed. */
  projectedSessions(): SimSession[] {
    const now = this.now().getTime();
    // In order, up to the first write not yet due: a projection applies events in the order they happened.
    let due = 0;
    while (due < this.#pending.length && this.#pending[due]!.visibleAt <= now) {
      const { sessionId, snapshot } = this.#pending[due]!;
      if (snapshot instanceof Map) this.#projection = snapshot;
      else if (snapshot) this.#projection.set(sessionId!, snapshot);
      else this.#projection.delete(sessionId!);
      due += 1;
    }
    if (due > 0) this.#pending = this.#pending.slice(due);
    return [...this.#projection.values()];
  }

  setUserMetadata(userId: string, key: string, value: string): void {
    const metadata = this.userMetadata.get(userId) ?? new Map<string, string>();
    metadata.set(key, value);
    this.userMetadata.set(userId, metadata);
  }

  setOrgMetadata(organizationId: string, key: string, value: string): void {
    const metadata = this.orgMetadata.get(organizationId) ?? new Map<string, string>();
    metadata.set(key, value);
    this.orgMetadata.set(organizationId, metadata);
  }

  /** Waits the latency configured for `method` (or for every method). */
  async simulateLatency(method: SimMethod): Promise<void> {
    const delay = this.latencyMs[method] ?? this.latencyMs['*'] ?? 0;
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  }

  /** Makes the next `times` calls of `method` (or of every method: `'*'`) fail with `code`. */
  injectFault(method: SimMethod | '*', fault: Fault): void {
    this.#faults.set(method, { ...fault });
  }

  clearFaults(): void {
    this.#faults.clear();
  }

  /** The fault the next call of `method` must fail with, if any; consumes one of its `times`. */
  takeFault(method: SimMethod): Fault | undefined {
    for (const key of [method, '*'] as const) {
      const fault = this.#faults.get(key);
      if (fault && fault.times > 0) {
        fault.times -= 1;
        if (fault.times === 0) this.#faults.delete(key);
        return fault;
      }
    }
    return undefined;
  }

  /** Sessions that a login would consider active now (verified credential, not expired). */
  activeSessionsOf(userId: string): SimSession[] {
    const now = this.now().getTime();
    return [...this.sessions.values()].filter(
      (s) =>
        s.userId === userId &&
        Object.keys(s.factors).length > 0 &&
        (s.expirationDate === undefined || s.expirationDate.getTime() > now),
    );
  }

  /** Lets go of the writes still waiting for the projection. */
  dispose(): void {
    this.#pending = [];
  }
}
