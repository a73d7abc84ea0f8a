import { Code, ConnectError, type Client, type Transport } from '@connectrpc/connect';
import { createClientFor } from '@zitadel/client';
import { LRUCache } from 'lru-cache';

import { OrganizationService } from '@zitadel/proto/zitadel/org/v2beta/org_service_pb.js';
import { UserService } from '@zitadel/proto/zitadel/user/v2/user_service_pb.js';
import { readMetadataLimit, resolveLimit, type LimitSourceLookup, type MetadataLimit, type ResolvedLimit } from '../enforcement/limits.js';
import { runOnce, type CallRunner, type DirectoryMethod } from '../enforcement/ports.js';
import { ZitadelCallError } from './failures.js';

export interface MetadataLimitsOptions {
  key: string;
  fallback: number;
  /** LIMIT_CACHE_SECONDS: how long a look-up is reused; 0: never cached (each caller looks up). */
  cacheSeconds: number;
  /** The deadline of a look-up itself (ZITADEL_TIMEOUT_MS), whoever waits for it. */
  callTimeoutMs?: number;
  /** Users and organisations remembered at most (least recently used go first). */
  maxEntries?: number;
  now?: () => number;
}

/**
 * Limits from user metadata, then organisation metadata, then SESSION_LIMIT. Each look-up is cached for
 * `cacheSeconds` so that a burst of logins does not multiply API calls. A failed look-up is not cached and fails
 * the enforcement: never apply a smaller limit than the user may have.
 *
 * A look-up is shared by every caller that asks while it runs, so it belongs to none of them: it runs with its own
 * deadline, and each caller waits for it at most the time its own budget gives it (its `run`). A caller that gives
 * up does not cancel it for the others.
 */
export class MetadataLimits implements LimitSourceLookup {
  readonly #users: Client<typeof UserService>;
  readonly #orgs: Client<typeof OrganizationService>;
  readonly #key: string;
  readonly #fallback: number;
  readonly #callTimeoutMs: number;
  /** Look-ups in flight or done, by `user:ID` / `org:ID`; undefined when LIMIT_CACHE_SECONDS is 0. */
  readonly #cache: LRUCache<string, Promise<MetadataLimit>> | undefined;

  constructor(transport: Transport, options: MetadataLimitsOptions) {
    this.#users = createClientFor(UserService)(transport);
    this.#orgs = createClientFor(OrganizationService)(transport);
    this.#key = options.key;
    this.#fallback = options.fallback;
    this.#callTimeoutMs = options.callTimeoutMs ?? 5000;
    const now = options.now;
    this.#cache =
      options.cacheSeconds > 0
        ? new LRUCache({
            max: options.maxEntries ?? 10_000,
            ttl: options.cacheSeconds * 1000,
            // Exact expiry (no debounced clock), on the given clock when there is one.
            ttlResolution: 0,
            ...(now ? { perf: { now } } : {}),
          })
        : undefined;
  }

  async limitFor(userId: string, organizationId: string | undefined, run: CallRunner = runOnce): Promise<ResolvedLimit> {
    const user = await this.#lookUp('ListUserMetadata', `user:${userId}`, (timeoutMs) => this.#userMetadata(userId, timeoutMs), run);
    if (user.kind === 'limit') return resolveLimit(user, { kind: 'absent' }, this.#fallback);
    const org = organizationId
      ? await this.#lookUp('ListOrganizationMetadata', `org:${organizationId}`, (timeoutMs) => this.#orgMetadata(organizationId, timeoutMs), run)
      : { kind: 'absent' as const };
    return resolveLimit(user, org, this.#fallback);
  }

  /** The caller's wait for the shared look-up, as one call of its `run`: bounded by what its budget gives it. */
  #lookUp(method: DirectoryMethod, key: string, load: (timeoutMs: number) => Promise<MetadataLimit>, run: CallRunner): Promise<MetadataLimit> {
    return run(method, (timeoutMs) => waitAtMost(this.#shared(key, load), timeoutMs, method));
  }

  #shared(key: string, load: (timeoutMs: number) => Promise<MetadataLimit>): Promise<MetadataLimit> {
    const cache = this.#cache;
    const hit = cache?.get(key);
    if (hit) return hit;
    const value = load(this.#callTimeoutMs);
    if (cache) {
      cache.set(key, value);
      // Only this look-up's own entry: a newer one may have replaced it (it expired, or was evicted) meanwhile.
      value.catch(() => {
        if (cache.peek(key, { allowStale: true }) === value) cache.delete(key);
      });
    }
    return value;
  }

  async #userMetadata(userId: string, timeoutMs: number | undefined): Promise<MetadataLimit> {
    try {
      const { metadata } = await this.#users.listUserMetadata(
        { userId, filters: [{ filter: { case: 'keyFilter', value: { key: this.#key } } }] },
        { timeoutMs },
      );
      return readMetadataLimit(metadata.find((entry) => entry.key === this.#key)?.value);
    } catch (error) {
      if (ConnectError.from(error).code === Code.NotFound) return { kind: 'absent' };
      throw new ZitadelCallError('ListUserMetadata', error);
    }
  }

  async #orgMetadata(organizationId: string, timeoutMs: number | undefined): Promise<MetadataLimit> {
    try {
      const { metadata } = await this.#orgs.listOrganizationMetadata(
        { organizationId, filter: [{ query: { case: 'keyQuery', value: { key: this.#key } } }] },
        { timeoutMs },
      );
      return readMetadataLimit(metadata.find((entry) => entry.key === this.#key)?.value);
    } catch (error) {
      if (ConnectError.from(error).code === Code.NotFound) return { kind: 'absent' };
      throw new ZitadelCallError('ListOrganizationMetadata', error);
    }
  }
}

/**
 * Waits for `value` at most `timeoutMs` (undefined: as long as it takes). Giving up is a DeadlineExceeded of the
 * call, which the caller's retries may wait on again while its budget lasts; `value` itself goes on.
 */
function waitAtMost<T>(value: Promise<T>, timeoutMs: number | undefined, method: DirectoryMethod): Promise<T> {
  if (timeoutMs === undefined) return value;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new ZitadelCallError(method, new ConnectError(`gave up waiting after ${timeoutMs} ms`, Code.DeadlineExceeded))),
      timeoutMs,
    );
  });
  return Promise.race([value, timeout]).finally(() => clearTimeout(timer));
}
