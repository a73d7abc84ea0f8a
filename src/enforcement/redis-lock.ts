import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Budget } from './retry.js';
import { InProcessUserLock, UserBusyError, type UserLock } from './user-lock.js';

// Deletes the key only if it still holds our token: a lock that expired and was taken by another replica is
// never released by us.
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

export interface RedisLockOptions {
  url: string;
  logger: Logger;
  /** Counted each time an enforcement runs without the cross-replica lock. */
  onFallback?: () => void;
  keyPrefix?: string;
  /** How long the lock outlives the enforcement budget, in case the holder dies. */
  expiryMarginMs?: number;
}

/**
 * The per-user turn across replicas: first the in-process queue (one attempt per user per process), then a Redis
 * lock (SET NX PX with a random token, expiry above the enforcement budget, released only by its owner). When Redis
 * is unreachable, enforcement goes on without the cross-replica lock rather than blocking logins; /readyz and the
 * log say so.
 */
export class RedisUserLock implements UserLock {
  readonly redis: Redis;
  readonly #local = new InProcessUserLock();
  readonly #logger: Logger;
  readonly #onFallback: (() => void) | undefined;
  readonly #prefix: string;
  readonly #marginMs: number;
  /** Why Redis is not usable right now, or undefined when it is. */
  problem: string | undefined = 'not connected yet';
  #lastWarning = 0;
  #closing = false;

  constructor(options: RedisLockOptions) {
    this.#logger = options.logger;
    this.#onFallback = options.onFallback;
    this.#prefix = options.keyPrefix ?? 'zitadel-session-limiter:user:';
    this.#marginMs = options.expiryMarginMs ?? 5000;
    this.redis = new Redis(options.url, {
      lazyConnect: false,
      // Fail fast while disconnected (the fallback takes over) instead of queueing commands.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      commandTimeout: 1000,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
    this.redis.on('ready', () => this.#recovered());
    // The error text of ioredis names host and port, never the password of the URL.
    this.redis.on('error', (error: Error) => this.#unusable(`Redis error: ${error.message}`));
    this.redis.on('end', () => this.#unusable('Redis connection closed'));
  }

  #recovered(): void {
    if (this.problem) this.#logger.info('Redis connected: enforcements are serialised across replicas');
    this.problem = undefined;
    if (this.#probe) clearInterval(this.#probe);
    this.#probe = undefined;
    for (const listener of this.#onRecovered) listener();
  }

  readonly #onRecovered: (() => void)[] = [];
  /** While Redis fails: a PING a second, so that recovery is noticed without waiting for the next login. */
  #probe: NodeJS.Timeout | undefined;

  /** Called each time Redis answers again after failing (e.g. to restart what its outage left undone). */
  onRecovered(listener: () => void): void {
    this.#onRecovered.push(listener);
  }

  /** False while Redis is known to fail (the last command failed and none succeeded since): skip it, fail fast. */
  get usable(): boolean {
    return this.problem === undefined;
  }

  #unusable(problem: string): void {
    this.problem = problem;
    if (this.#closing) return;
    this.#probe ??= setInterval(() => {
      if (this.redis.status === 'ready') this.redis.ping().then(() => this.#recovered(), () => undefined);
    }, 1000).unref();
    const now = Date.now();
    if (now - this.#lastWarning > 60_000) {
      this.#lastWarning = now;
      this.#logger.warn({ problem }, 'Redis unreachable: enforcing without the cross-replica lock');
    }
  }

  run<T>(userId: string, budget: Budget, task: (waited: boolean) => Promise<T>): Promise<T> {
    return this.#local.run(userId, budget, async (waitedLocally) => {
      const key = `${this.#prefix}${userId}`;
      const token = randomBytes(16).toString('hex');
      let acquired: number | undefined;
      let waited = waitedLocally;
      try {
        acquired = await this.#acquire(key, token, budget, () => (waited = true));
      } catch (error) {
        this.#unusable(`Redis error: ${(error as Error).message}`);
        this.#onFallback?.();
        // The SET may have reached Redis although the client gave up on it: release our token, if it is there,
        // so that the other replicas are not kept waiting for its expiry.
        void this.redis.eval(RELEASE, 1, key, token).catch(() => undefined);
        return task(waited);
      }
      if (acquired === undefined) throw new UserBusyError('another replica');
      try {
        return await task(waited);
      } finally {
        // Every call of the task ends by the budget's deadline, which is expiryMarginMs before the lock's expiry;
        // an event loop stalled longer than that would let another replica in: say so.
        if (Date.now() >= acquired) this.#logger.error({ userId }, 'the Redis lock expired while held: another replica may have enforced at the same time');
        await this.redis.eval(RELEASE, 1, key, token).catch((error: Error) => this.#unusable(`Redis error: ${error.message}`));
      }
    });
  }

  /**
   * Tries to take the lock until the budget's deadline; the expiry is what is left of the budget at each attempt,
   * plus the margin. Returns when the lock expires (epoch ms), or undefined when the deadline came first.
   */
  async #acquire(key: string, token: string, budget: Budget, onWait: () => void): Promise<number | undefined> {
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      const left = budget.remaining();
      if (left <= 0) return undefined;
      const expiresAt = Date.now() + left + this.#marginMs;
      const answer = await this.redis.set(key, token, 'PX', left + this.#marginMs, 'NX');
      // Redis answers again (after a stall that raised no reconnect): it is usable.
      if (this.problem) this.#recovered();
      if (answer === 'OK') return expiresAt;
      onWait();
      const pause = delay / 2 + Math.random() * (delay / 2);
      if (pause >= budget.remaining()) return undefined;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  /** Waits until Redis is connected, at most `timeoutMs`; false when it is not (enforcement then falls back). */
  async ready(timeoutMs: number): Promise<boolean> {
    if (this.redis.status === 'ready') return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.redis.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.redis.once('ready', onReady);
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#probe) clearInterval(this.#probe);
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
