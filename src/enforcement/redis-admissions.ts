import type { Redis } from 'ioredis';
import { ADMISSION_TTL_MS, MAX_ADMITTED_PER_USER, type AdmissionMemory } from './admissions.js';

export interface RedisAdmissionsOptions {
  /** False while Redis is known to fail (the lock's last command failed): fail at once instead of waiting. */
  usable?: () => boolean;
  keyPrefix?: string;
  ttlMs?: number;
  maxSessionsPerUser?: number;
  now?: () => number;
}

// Adds the admitted ids with their time, removes the forgotten ones, keeps the hash bounded (the oldest admissions
// go, and the user's watch then starts afresh: `since` moves to now), and refreshes the expiry. One script: atomic,
// so two replicas never interleave their updates of one user.
const UPDATE = `
local key, now, ttl, max = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local nadmit = tonumber(ARGV[4])
if redis.call('hexists', key, 'since') == 0 then redis.call('hset', key, 'since', ARGV[5]) end
for i = 1, nadmit do redis.call('hset', key, 's:' .. ARGV[5 + i], now) end
for i = 6 + nadmit, #ARGV do redis.call('hdel', key, 's:' .. ARGV[i]) end
local size = redis.call('hlen', key) - 1
if size > max then
  local all = redis.call('hgetall', key)
  local entries = {}
  for i = 1, #all, 2 do
    if all[i] ~= 'since' then table.insert(entries, { all[i], tonumber(all[i + 1]) }) end
  end
  table.sort(entries, function(a, b) return a[2] < b[2] end)
  for i = 1, size - max do redis.call('hdel', key, entries[i][1]) end
  redis.call('hset', key, 'since', now)
end
redis.call('pexpire', key, ttl)
return size
`;

/**
 * The admission memory in Redis (with REDIS_URL): every replica and every restart sees the same admissions. The
 * watch starts when the memory is first used (a key `<prefix>since`, set once); a user's hash expires after the
 * TTL without enforcement, after which their sessions created before count as established. When Redis is down,
 * `recall` fails and the enforcer denies no login of that user (it cannot tell new from returning); an update lost
 * then moves the start of the watch to the moment Redis answers again.
 */
export class RedisAdmissions implements AdmissionMemory {
  readonly #redis: Redis;
  readonly #usable: () => boolean;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  /** An update was lost (Redis failed): the watch must start again once Redis answers. */
  #lost = false;

  constructor(redis: Redis, options: RedisAdmissionsOptions = {}) {
    this.#redis = redis;
    this.#usable = options.usable ?? (() => true);
    this.#prefix = options.keyPrefix ?? 'zitadel-session-limiter:admitted:';
    this.#ttlMs = options.ttlMs ?? ADMISSION_TTL_MS;
    this.#max = options.maxSessionsPerUser ?? MAX_ADMITTED_PER_USER;
    this.#now = options.now ?? Date.now;
  }

  #check(): void {
    if (!this.#usable()) throw new Error('Redis is failing: the admission memory is skipped');
  }

  /**
   * When the memory started watching (set once, by the first replica that asks), moved to now after this process
   * lost an update: admissions made while Redis failed are not remembered, so every session created before Redis
   * answered again counts as established (the same as a restart without Redis).
   */
  /** Redis answers again: if an update was lost meanwhile, start the watch afresh now (at most once per outage). */
  async recovered(): Promise<void> {
    if (!this.#lost) return;
    await this.#redis.set(`${this.#prefix}since`, String(this.#now()));
    this.#lost = false;
  }

  async #started(): Promise<number> {
    const key = `${this.#prefix}since`;
    const now = String(this.#now());
    if (this.#lost) {
      await this.#redis.set(key, now);
      this.#lost = false;
      return Number(now);
    }
    await this.#redis.set(key, now, 'NX');
    return Number((await this.#redis.get(key)) ?? now);
  }

  async recall(userId: string, sessionIds: readonly string[]): Promise<{ admitted: Set<string>; since: number }> {
    this.#check();
    const key = `${this.#prefix}u:${userId}`;
    const values = await this.#redis.hmget(key, 'since', ...sessionIds.map((id) => `s:${id}`));
    const admitted = new Set(sessionIds.filter((_id, i) => values[i + 1] !== null));
    const started = await this.#started();
    const userSince = values[0];
    // A user not remembered was never seen since the watch started, or was forgotten after the TTL.
    const since = userSince !== null && userSince !== undefined ? Number(userSince) : this.#now() - this.#ttlMs;
    return { admitted, since: Math.max(started, since) };
  }

  async update(userId: string, admit: readonly string[], forget: readonly string[]): Promise<void> {
    try {
      this.#check();
      const key = `${this.#prefix}u:${userId}`;
      const since = (await this.recall(userId, [])).since;
      await this.#redis.eval(UPDATE, 1, key, String(this.#now()), String(this.#ttlMs), String(this.#max), String(admit.length), String(since), ...admit, ...forget);
    } catch (error) {
      this.#lost = true;
      throw error;
    }
  }
}
