import type { LimitSource, SessionRecord } from './decision.js';

/**
 * What the enforcement needs from the outside, in its own words: the session directory (implemented over ZITADEL's
 * gRPC API in src/zitadel/), how each call is run (deadline and retries), and how a call can fail. Adapters
 * implement these and translate their protocol's errors into `DirectoryError`, once.
 */

/** The calls the enforcement makes, by name (for retries, logs and metrics). */
export type DirectoryMethod = 'GetSession' | 'ListSessions' | 'DeleteSession' | 'ListUserMetadata' | 'ListOrganizationMetadata';

/**
 * How each call is run: the runner gets the call and gives it its deadline (undefined: the adapter's default). The
 * enforcer's runner retries within its budget; the default runs the call once.
 */
export type CallRunner = <T>(what: DirectoryMethod, call: (timeoutMs: number | undefined) => Promise<T>) => Promise<T>;
export const runOnce: CallRunner = (_what, call) => call(undefined);

/** The three session calls enforcement needs, in plain data. The seam between the logic and ZITADEL. */
export interface SessionDirectory {
  /** Reads one session (and brings the directory's session list up to date); undefined when it does not exist. */
  getSession(sessionId: string, run?: CallRunner): Promise<SessionRecord | undefined>;
  /** Every session of the user, all pages (each page one call). */
  listUserSessions(userId: string, run?: CallRunner): Promise<SessionRecord[]>;
  /** Terminates a session; succeeds for an unknown or already terminated one (idempotent). */
  deleteSession(sessionId: string, run?: CallRunner): Promise<void>;
}

/**
 * How a call failed, transport-neutral:
 * - `unavailable`: the directory could not be reached, timed out or was overloaded (the limit could not be enforced);
 * - `misconfigured`: our credentials, permissions or request are wrong (fix the configuration; retrying cannot help);
 * - `refused`: the directory refused the call for another reason.
 * ("Not found" is no failure: reads answer undefined, deletes succeed.)
 */
export type FailureKind = 'unavailable' | 'misconfigured' | 'refused';

/** A failed directory call: which call, how it failed, and whether trying again may help. Carries no request data. */
export class DirectoryError extends Error {
  readonly method: DirectoryMethod;
  readonly kind: FailureKind;
  /** Worth retrying within the enforcement's budget (a transient failure). */
  readonly retryable: boolean;

  constructor(method: DirectoryMethod, kind: FailureKind, retryable: boolean, message: string) {
    super(message);
    this.name = 'DirectoryError';
    this.method = method;
    this.kind = kind;
    this.retryable = retryable;
  }
}

/**
 * What an enforcement did to a session, for whoever wants to tell the applications (the events adapter in
 * src/events/). Only ids and the device's user agent: never a credential. Reported after ZITADEL confirmed the delete,
 * never in a dry run.
 */
export interface EnforcementAction {
  type: 'session.evicted' | 'session.denied' | 'session.pruned';
  /** When the session was deleted (epoch ms). */
  at: number;
  userId: string;
  orgId: string | undefined;
  sessionId: string;
  /** The session's `userAgent.description` and `userAgent.fingerprintId`, so the app can name the device. */
  userAgent: { description: string | undefined; fingerprintId: string | undefined };
  /** Machine-readable: `limit_exceeded` (evicted, denied) or `expired` (pruned). */
  reason: 'limit_exceeded' | 'expired';
  limit: number | 'unlimited';
  limitSource: LimitSource;
  /** session.evicted: the login (session id) whose sign-in pushed the user over the limit; undefined in a sweep. */
  causedBySessionId?: string | undefined;
}

/**
 * Where the enforcer reports its actions. `report` must return at once and never throw: the webhook's answer does
 * not wait for it (delivery, if any, happens later).
 */
export interface ActionReporter {
  report(action: EnforcementAction): void;
}
