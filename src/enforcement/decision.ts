/**
 * The keep/evict decision: pure, no I/O. It takes plain session data, the policy and the time, and says which
 * sessions stay, which go (evicted, denied, pruned) and why the rest do not count.
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
  /** When ZITADEL last changed the session: of two records of one session, the later change wins. */
  changedAt?: number | undefined;
  /** Undefined: the session never expires. */
  expiresAt: number | undefined;
  /** When each credential factor was verified; a missing entry was never verified. */
  verifiedAt: Partial<Record<CredentialFactor, number>>;
  /** `userAgent.fingerprintId`: Login V2 sets it from a cookie, so it names a browser / device. */
  fingerprintId?: string | undefined;
  /** `userAgent.description` (e.g. the browser's User-Agent header): for people, never for decisions. */
  userAgentDescription?: string | undefined;
}

export type NotCountedReason = 'expired' | 'login-in-progress' | 'other-user';
export type Limit = number | 'unlimited';
export type LimitSource = 'default' | 'user-metadata' | 'org-metadata';
export type CountBy = 'session' | 'device';
export type OnLimit = 'evict-oldest' | 'deny-new';

/** The rules that apply to one user; every field but `limit` has today's behaviour as its default. */
export interface Policy {
  limit: Limit;
  limitSource?: LimitSource;
  /** `device`: sessions sharing a fingerprint are one device and count once. */
  countBy?: CountBy;
  /** `deny-new`: over the limit, the triggering login is refused instead of evicting older ones. */
  onLimit?: OnLimit;
  /** Also delete the user's expired sessions, at most `pruneLimit` per decision. */
  pruneExpired?: boolean;
  pruneLimit?: number;
}

export interface RankedSession {
  session: SessionRecord;
  /** The latest verification of any credential factor. */
  authenticatedAt: number;
}

export interface EvictionDecision {
  /** Active sessions that stay, most recently authenticated first. */
  keep: RankedSession[];
  /** Active sessions beyond the limit (evict-oldest), most recently authenticated first. */
  evict: RankedSession[];
  /** The triggering new logins refused because they would exceed the limit (deny-new), in arrival order. */
  deny: RankedSession[];
  /** Expired sessions of the user to delete (pruneExpired), oldest expiry first, at most pruneLimit. */
  prune: SessionRecord[];
  /** Sessions that are not active and therefore not counted (and not touched unless pruned). */
  notCounted: { session: SessionRecord; reason: NotCountedReason }[];
  /** Active units (sessions, or devices with countBy device) the user held, the triggering one included. */
  units: number;
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

/** One record per session: of two records of one session, the more recently changed (ties: the one given last). */
export function latestRecords(sessions: Iterable<SessionRecord>): Map<string, SessionRecord> {
  const latest = new Map<string, SessionRecord>();
  for (const session of sessions) {
    const known = latest.get(session.id);
    if (!known || (session.changedAt ?? 0) >= (known.changedAt ?? 0)) latest.set(session.id, session);
  }
  return latest;
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

/** A device (sessions sharing a fingerprint) or, without a fingerprint or with countBy session, one session. */
interface Unit {
  sessions: RankedSession[];
}

function groupUnits(ranked: RankedSession[], countBy: CountBy): Unit[] {
  if (countBy === 'session') return ranked.map((session) => ({ sessions: [session] }));
  const devices = new Map<string, Unit>();
  const units: Unit[] = [];
  for (const entry of ranked) {
    const fingerprint = entry.session.fingerprintId;
    if (fingerprint === undefined) {
      units.push({ sessions: [entry] });
      continue;
    }
    let device = devices.get(fingerprint);
    if (!device) {
      device = { sessions: [] };
      devices.set(fingerprint, device);
      units.push(device);
    }
    device.sessions.push(entry);
  }
  return units;
}

/** A session whose login or re-authentication triggered the decision. */
export interface DecisionTrigger {
  id: string;
  /**
   * True when this call completed the session's login (its first verified credential) and the service never
   * admitted it before: deny-new may refuse it. False for a re-authentication or a further factor: never denied.
   */
  newLogin: boolean;
}

export interface DecisionInput {
  userId: string;
  sessions: Iterable<SessionRecord>;
  now: number;
  policy: Policy;
  /**
   * The sessions whose logins triggered the decision, in arrival order: deny-new decides on each new login in that
   * order; evict-oldest ignores them on purpose.
   */
  triggers?: readonly DecisionTrigger[] | undefined;
  /**
   * deny-new: sessions whose login completed a moment ago and is still being decided by its own webhook (not admitted
   * yet, not among `triggers`): they do not count against the triggers, which may have completed first.
   */
  pending?: ReadonlySet<string> | undefined;
}

const DEFAULT_PRUNE_LIMIT = 100;

/**
 * Applies the policy to the user's sessions.
 * - evict-oldest (default): keep the `limit` most recently authenticated units, evict every session of the rest.
 *   The triggering session is not special: in whatever order concurrent webhooks arrive, the end state is the
 *   `limit` most recently authenticated units.
 * - deny-new: a new login (see `DecisionTrigger.newLogin`) is denied when the user already holds `limit` or more
 *   other active units, whatever the creation times; new logins are taken in arrival order, each admitted one
 *   counting for the next; `pending` logins (decided by their own webhooks) do not count yet. A new login on a device that already counts (countBy device) adds no unit. Nothing else
 *   is ever denied or evicted: a session that was active before (a re-authentication, a second factor) stays
 *   even when the user holds more than the limit (after the limit was lowered).
 * Expired sessions, logins in progress and other users' sessions are never counted; only expired sessions of the
 * user are ever pruned. A session given twice counts once, as its most recently changed record (ties: the one
 * given last), so a GetSession read before a list can never override a newer listed state.
 */
export function chooseEvictions({ userId, sessions, now, policy, triggers = [], pending }: DecisionInput): EvictionDecision {
  const { limit, countBy = 'session', onLimit = 'evict-oldest' } = policy;
  if (limit !== 'unlimited' && (!Number.isInteger(limit) || limit < 1)) {
    throw new RangeError(`limit must be an integer >= 1 or "unlimited", got ${limit}`);
  }
  const latest = latestRecords(sessions);
  const ranked: RankedSession[] = [];
  const notCounted: EvictionDecision['notCounted'] = [];
  for (const session of latest.values()) {
    const reason = whyNotCounted(session, userId, now);
    if (reason) notCounted.push({ session, reason });
    else ranked.push({ session, authenticatedAt: lastAuthenticatedAt(session)! });
  }
  ranked.sort(compareRecency);

  const prune = policy.pruneExpired
    ? notCounted
        .filter((entry) => entry.reason === 'expired')
        .map((entry) => entry.session)
        .sort((a, b) => (a.expiresAt ?? 0) - (b.expiresAt ?? 0) || compareIds(a.id, b.id))
        .slice(0, policy.pruneLimit ?? DEFAULT_PRUNE_LIMIT)
    : [];
  // Units keep the recency order of their most recent session (groupUnits preserves the order it is given).
  const units = groupUnits(ranked, countBy);
  const decision: EvictionDecision = { keep: ranked, evict: [], deny: [], prune, notCounted, units: units.length };
  if (limit === 'unlimited') return decision;

  if (onLimit === 'deny-new') {
    const denied = denyNewLogins(ranked, units, limit, triggers, pending ?? new Set());
    if (denied.length === 0) return decision;
    const refused = new Set(denied);
    return { ...decision, keep: ranked.filter((entry) => !refused.has(entry)), deny: denied, units: units.length - denied.length };
  }
  if (units.length <= limit) return decision;

  const kept = units.slice(0, limit).flatMap((unit) => unit.sessions);
  const evicted = units.slice(limit).flatMap((unit) => unit.sessions);
  return { ...decision, keep: kept.sort(compareRecency), evict: evicted.sort(compareRecency) };
}

/**
 * deny-new: the units that existed before the triggering logins count; each new login, in arrival order, is
 * admitted while fewer than `limit` units are held (and then counts), or when its device already counts.
 */
function denyNewLogins(
  ranked: RankedSession[],
  units: Unit[],
  limit: number,
  triggers: readonly DecisionTrigger[],
  pending: ReadonlySet<string>,
): RankedSession[] {
  const newLogins = new Set(triggers.filter((trigger) => trigger.newLogin).map((trigger) => trigger.id));
  if (newLogins.size === 0) return [];
  const unitOf = new Map<string, Unit>();
  for (const unit of units) for (const entry of unit.sessions) unitOf.set(entry.session.id, unit);
  const established = (entry: RankedSession) => !newLogins.has(entry.session.id) && !pending.has(entry.session.id);
  const counted = new Set(units.filter((unit) => unit.sessions.some(established)));
  const denied: RankedSession[] = [];
  const seen = new Set<string>();
  for (const { id } of triggers) {
    if (!newLogins.has(id) || seen.has(id)) continue;
    seen.add(id);
    const unit = unitOf.get(id);
    const entry = ranked.find((candidate) => candidate.session.id === id);
    // Not active (deleted meanwhile, expired, or not yet signed in): nothing to admit or deny.
    if (!unit || !entry) continue;
    if (counted.has(unit)) continue;
    if (counted.size < limit) counted.add(unit);
    else denied.push(entry);
  }
  return denied;
}

/** What the service knows about a triggering session, to tell a new login from a returning one. */
export interface LoginEvidence {
  /** The session as read after this call. */
  session: SessionRecord;
  /**
   * The credential factors this call checked (from the payload's `request.checks`); undefined when unknown, in
   * which case only the admission memory can tell.
   */
  checked: readonly CredentialFactor[] | undefined;
  /** The service admitted this session before (remembered in memory or Redis). */
  admitted: boolean;
  /**
   * Since when the admission memory covers this user (epoch ms); a session created before it may have been
   * admitted without the memory knowing. Undefined: nothing is remembered.
   */
  rememberedSince: number | undefined;
  /** Tolerated difference between ZITADEL's clock and ours, in ms. */
  clockSkewMs: number;
}

/**
 * True when this call completed the session's login: it has no credential verified by an earlier call, the service
 * never admitted it, and it was created while the admission memory was watching (so an earlier admission would be
 * remembered). Every doubt counts as "not new": deny-new must never log out a device that was signed in.
 */
export function isNewLogin({ session, checked, admitted, rememberedSince, clockSkewMs }: LoginEvidence): boolean {
  if (admitted || checked === undefined || rememberedSince === undefined) return false;
  // A factor verified that this call did not check was verified by an earlier call: the session was active.
  for (const factor of CREDENTIAL_FACTORS) {
    if (session.verifiedAt[factor] !== undefined && !checked.includes(factor)) return false;
  }
  if (session.createdAt === undefined) return false;
  return session.createdAt > rememberedSince + clockSkewMs;
}
