import type { Redis } from 'ioredis';
import { ADMISSION_TTL_MS, MAX_ADMITTED_PER_USER, type AdmissionMemory } from './enforcement/admissions.js';

export interface RedisAdmissionsOptions {
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
 * `recall` fails and the enforcer denies no login of that user (it cannot tell new from returning).
 */
export class RedisAdmissions implements AdmissionMemory {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(redis: Redis, options: RedisAdmissionsOptions = {}) {
    this.#redis = redis;
    this.#prefix = options.keyPrefix ?? 'zitadel-session-limiter:admitted:';
    this.#ttlMs = options.ttlMs ?? ADMISSION_TTL_MS;
    this.#max = options.maxSessionsPerUser ?? MAX_ADMITTED_PER_USER;
    this.#now = options.now ?? Date.now;
  }

  /** When the memory started watching (set once, by the first replica that asks). */
  async #started(): Promise<number> {
    const key = `${this.#prefix}since`;
    const now = String(this.#now());
    await this.#redis.set(key, now, 'NX');
    return Number((await this.#redis.get(key)) ?? now);
  }

  async recall(userId: string, sessionIds: readonly string[]): Promise<{ admitted: Set<string>; since: number }> {
    const key = `${this.#prefix}u:${userId}`;
    const values = await this.#redis.hmget(key, 'since', ...sessionIds.map((id) => `s:${id}`));
    const admitted = new Set(sessionIds.filter((_id, i) => values[i + 1] !== null));
    const userSince = values[0];
    if (userSince !== null && userSince !== undefined) return { admitted, since: Number(userSince) };
    // Not remembered: never seen since the watch started, or forgotten after the TTL.
    return { admitted, since: Math.max(await this.#started(), this.#now() - this.#ttlMs) };
  }

  async update(userId: string, admit: readonly string[], forget: readonly string[]): Promise<void> {
    const key = `${this.#prefix}u:${userId}`;
    const since = (await this.recall(userId, [])).since;
    await this.#redis.eval(UPDATE, 1, key, String(this.#now()), String(this.#ttlMs), String(this.#max), String(admit.length), String(since), ...admit, ...forget);
  }
}
