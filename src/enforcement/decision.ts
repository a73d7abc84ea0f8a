/**
 * The keep/evict decision: pure, no I/O. It takes plain session data, the limit and the time, and says which
 * sessions stay, which go and why the rest do not count.
 */

export const CREDENTIAL_FACTORS = ['password', 'webAuthN', 'intent', 'totp', 'otpSms', 'otpEmail'] as const;
export type CredentialFactor = (typeof CREDENTIAL_FACTORS)[number];

/** A session as the decision sees it. Times are epoch milliseconds (fractions keep ZITADEL's microseconds). */
export interface SessionRecord {
  id: string;
  /** `factors.user.id`; undefined when the session has no user yet. */
  userId: string | undefined;
  organizationId?: string | undefined;
  createdAt: number | undefined;
  /** Undefined: the session never expires. */
  expiresAt: number | undefined;
  /** When each credential factor was verified; a missing entry was never verified. */
  verifiedAt: Partial<Record<CredentialFactor, number>>;
  fingerprintId?: string | undefined;
}

export type NotCountedReason = 'expired' | 'login-in-progress' | 'other-user';

export interface RankedSession {
  session: SessionRecord;
  /** The latest verification of any credential factor. */
  authenticatedAt: number;
}

export interface EvictionDecision {
  /** Active sessions that stay, most recently authenticated first. */
  keep: RankedSession[];
  /** Active sessions beyond the limit, most recently authenticated first. */
  evict: RankedSession[];
  /** Sessions that are not active and therefore neither counted nor touched. */
  notCounted: { session: SessionRecord; reason: NotCountedReason }[];
}

/** The latest credential verification of a session, or undefined when it has none (a login in progress). */
export function lastAuthenticatedAt(session: SessionRecord): number | undefined {
  let latest: number | undefined;
  for (const factor of CREDENTIAL_FACTORS) {
    const at = session.verifiedAt[factor];
    if (at !== undefined && (latest === undefined || at > latest)) latest = at;
  }
  return latest;
}

/** Why a session does not count against the user's limit, or undefined when it is active. */
export function whyNotCounted(session: SessionRecord, userId: string, now: number): NotCountedReason | undefined {
  if (session.userId !== userId) return 'other-user';
  if (lastAuthenticatedAt(session) === undefined) return 'login-in-progress';
  if (session.expiresAt !== undefined && session.expiresAt <= now) return 'expired';
  return undefined;
}

/** Compares numeric ZITADEL ids as numbers (shorter is smaller), anything else as text. */
function compareIds(a: string, b: string): number {
  if (a.length !== b.length && /^\d+$/.test(a) && /^\d+$/.test(b)) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Orders most recently authenticated first; ties go to the later creation date, then the greater id, so every
 * replica and every arrival order reaches the same ranking.
 */
export function compareRecency(a: RankedSession, b: RankedSession): number {
  return (
    b.authenticatedAt - a.authenticatedAt ||
    (b.session.createdAt ?? 0) - (a.session.createdAt ?? 0) ||
    compareIds(b.session.id, a.session.id)
  );
}

export interface DecisionInput {
  userId: string;
  sessions: Iterable<SessionRecord>;
  limit: number;
  now: number;
}

/**
 * Keeps the `limit` most recently authenticated active sessions of `userId` and evicts the other active ones.
 * Expired sessions, logins in progress and other users' sessions are never counted and never evicted. A
 * session given twice counts once, as its last record (so a fresh read can follow a possibly stale list).
 */
export function chooseEvictions({ userId, sessions, limit, now }: DecisionInput): EvictionDecision {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be an integer >= 1, got ${limit}`);
  const latest = new Map<string, SessionRecord>();
  for (const session of sessions) latest.set(session.id, session);
  const ranked: RankedSession[] = [];
  const notCounted: EvictionDecision['notCounted'] = [];
  for (const session of latest.values()) {
    const reason = whyNotCounted(session, userId, now);
    if (reason) notCounted.push({ session, reason });
    else ranked.push({ session, authenticatedAt: lastAuthenticatedAt(session)! });
  }
  ranked.sort(compareRecency);
  return { keep: ranked.slice(0, limit), evict: ranked.slice(limit), notCounted };
}
