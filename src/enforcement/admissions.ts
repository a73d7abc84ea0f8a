import { LRUCache } from 'lru-cache';

/**
 * What deny-new remembers: the sessions the service has admitted (let through as a login, or found active), per
 * user. ZITADEL keeps only the latest `verifiedAt` of each factor, so a password re-check of a signed-in device looks
 * like a first login; this memory tells them apart. It is bounded, and it knows since when it has been watching:
 * a session created before that may have been admitted without the memory knowing, and is never treated as new.
 */
export interface AdmissionMemory {
  /** Which of `sessionIds` were admitted, and since when the memory covers this user (epoch ms). */
  recall(userId: string, sessionIds: readonly string[]): Promise<{ admitted: Set<string>; since: number }>;
  /** Remembers `admit` as admitted and forgets `forget` (deleted sessions). */
  update(userId: string, admit: readonly string[], forget: readonly string[]): Promise<void>;
}

export interface InMemoryAdmissionsOptions {
  /** Users remembered at most; the least recently enforced are forgotten first. */
  maxUsers?: number;
  /** A user not enforced for this long is forgotten. */
  ttlMs?: number;
  /** Sessions remembered per user at most (the oldest admissions are forgotten first). */
  maxSessionsPerUser?: number;
  now?: () => number;
}

/** 90 days: a user not seen for that long is forgotten (their sessions then count as established). */
export const ADMISSION_TTL_MS = 90 * 24 * 3600 * 1000;
export const MAX_ADMITTED_PER_USER = 1000;

/**
 * The process's own memory (without REDIS_URL). It starts watching when the process starts: after a restart, every
 * session created before is treated as established (never denied), so a login that began before the restart and
 * completes after it is let through even over the limit. A user forgotten because of the bound moves the start of
 * the watch for them to the moment they were forgotten.
 */
export class InMemoryAdmissions implements AdmissionMemory {
  readonly #users: LRUCache<string, { since: number; sessions: Map<string, number> }>;
  readonly #now: () => number;
  readonly #started: number;
  readonly #maxPerUser: number;
  /** When a user was last forgotten because of the bound: their watch starts again then. */
  #forgottenAt = 0;

  constructor(options: InMemoryAdmissionsOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#started = this.#now();
    this.#maxPerUser = options.maxSessionsPerUser ?? MAX_ADMITTED_PER_USER;
    this.#users = new LRUCache({
      max: options.maxUsers ?? 100_000,
      ttl: options.ttlMs ?? ADMISSION_TTL_MS,
      perf: { now: () => this.#now() },
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') this.#forgottenAt = this.#now();
      },
    });
  }

  /** Since when a user that is not remembered has been watched: their admissions, if any, were forgotten. */
  #sinceForUnknown(): number {
    return Math.max(this.#started, this.#forgottenAt, this.#now() - (this.#users.ttl || ADMISSION_TTL_MS));
  }

  recall(userId: string, sessionIds: readonly string[]): Promise<{ admitted: Set<string>; since: number }> {
    const user = this.#users.get(userId);
    if (!user) return Promise.resolve({ admitted: new Set(), since: this.#sinceForUnknown() });
    return Promise.resolve({ admitted: new Set(sessionIds.filter((id) => user.sessions.has(id))), since: user.since });
  }

  update(userId: string, admit: readonly string[], forget: readonly string[]): Promise<void> {
    let user = this.#users.get(userId);
    if (!user) {
      user = { since: this.#sinceForUnknown(), sessions: new Map() };
      this.#users.set(userId, user);
    } else {
      this.#users.set(userId, user); // refreshes the TTL
    }
    for (const id of forget) user.sessions.delete(id);
    const now = this.#now();
    for (const id of admit) {
      user.sessions.delete(id);
      user.sessions.set(id, now);
    }
    // Over the bound, forget the oldest admissions and watch this user afresh from now.
    if (user.sessions.size > this.#maxPerUser) {
      for (const id of user.sessions.keys()) {
        if (user.sessions.size <= this.#maxPerUser) break;
        user.sessions.delete(id);
      }
      user.since = now;
    }
    return Promise.resolve();
  }
}
