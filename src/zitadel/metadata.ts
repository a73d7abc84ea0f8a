import { Code, ConnectError, type Client, type Transport } from '@connectrpc/connect';
import { createClientFor } from '@zitadel/client';

import { OrganizationService } from '@zitadel/proto/zitadel/org/v2beta/org_service_pb.js';
import { UserService } from '@zitadel/proto/zitadel/user/v2/user_service_pb.js';
import { readMetadataLimit, resolveLimit, type LimitSourceLookup, type MetadataLimit, type ResolvedLimit } from '../enforcement/limits.js';
import { runOnce, ZitadelCallError, type CallRunner } from './session-directory.js';

interface CacheEntry {
  value: Promise<MetadataLimit>;
  expiresAt: number;
}

/**
 * Limits from user metadata, then organisation metadata, then SESSION_LIMIT. Each look-up is cached for
 * `cacheSeconds` so that a burst of logins does not multiply API calls. A failed look-up is not cached and fails
 * the enforcement: never apply a smaller limit than the user may have.
 */
export class MetadataLimits implements LimitSourceLookup {
  readonly #users: Client<typeof UserService>;
  readonly #orgs: Client<typeof OrganizationService>;
  readonly #key: string;
  readonly #fallback: number;
  readonly #cacheMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();

  constructor(transport: Transport, options: { key: string; fallback: number; cacheSeconds: number; now?: () => number }) {
    this.#users = createClientFor(UserService)(transport);
    this.#orgs = createClientFor(OrganizationService)(transport);
    this.#key = options.key;
    this.#fallback = options.fallback;
    this.#cacheMs = options.cacheSeconds * 1000;
    this.#now = options.now ?? Date.now;
  }

  async limitFor(userId: string, organizationId: string | undefined, run: CallRunner = runOnce): Promise<ResolvedLimit> {
    const user = await this.#cached(`user:${userId}`, () => run('ListUserMetadata', (timeoutMs) => this.#userMetadata(userId, timeoutMs)));
    if (user.kind === 'limit') return resolveLimit(user, { kind: 'absent' }, this.#fallback);
    const org = organizationId
      ? await this.#cached(`org:${organizationId}`, () => run('ListOrganizationMetadata', (timeoutMs) => this.#orgMetadata(organizationId, timeoutMs)))
      : { kind: 'absent' as const };
    return resolveLimit(user, org, this.#fallback);
  }

  #cached(key: string, load: () => Promise<MetadataLimit>): Promise<MetadataLimit> {
    const now = this.#now();
    const hit = this.#cache.get(key);
    if (hit && hit.expiresAt > now) return hit.value;
    if (this.#cache.size > 10_000) this.#evictExpired(now);
    const value = load();
    if (this.#cacheMs > 0) this.#cache.set(key, { value, expiresAt: now + this.#cacheMs });
    value.catch(() => this.#cache.delete(key));
    return value;
  }

  #evictExpired(now: number): void {
    for (const [key, entry] of this.#cache) if (entry.expiresAt <= now) this.#cache.delete(key);
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
