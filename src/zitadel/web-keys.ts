import type { JWK } from 'jose';
import { z } from 'zod';
import { WebKeysUnavailableError } from '../payload-type/failures.js';
import type { WebKeySource } from '../payload-type/open.js';

/**
 * The instance's public web keys, fetched from `<ZITADEL_URL>/oauth/v2/keys` (the OIDC discovery's jwks_uri) the
 * first time a JWT or JWE payload needs one: a service with ZITADEL_PAYLOAD_TYPE=json never fetches them.
 *
 * - Cached for the response's `Cache-Control: max-age`, bounded to 1 minute .. 24 hours (no max-age, `no-cache` or
 *   `no-store`: 1 minute), so a key ZITADEL removes stops verifying within the bound.
 * - A kid not in the cache triggers one refetch, at most one per 5 seconds (a rotated web key is accepted within
 *   seconds; a flood of made-up kids costs ZITADEL one request per 5 seconds); concurrent misses share one fetch.
 *   A kid unknown within those 5 seconds (a web key ZITADEL activated right after our fetch) waits for the next
 *   allowed refetch when that leaves at least 1 second of the caller's budget (for the fetch and the enforcement),
 *   and is refused at once otherwise (with the default 5 s budget: a key activated 1 s or more after our fetch): refusing it
 *   would fail the login on a target with interruptOnError. The waiters share that one refetch; the request was
 *   HMAC-verified before it got here, so only a holder of the signing key can make one wait.
 * - Unreachable (network, timeout, non-200, not a JWKS): `WebKeysUnavailableError`, unless a cached key (even
 *   expired) has the kid: then it is used, so a ZITADEL hiccup does not fail logins. Failed fetches are spaced by
 *   5 seconds too.
 * - Uses Node's fetch: TLS trusts what Node trusts (NODE_EXTRA_CA_CERTS).
 */
export interface InstanceWebKeysOptions {
  url: URL;
  /** Deadline of one fetch (ZITADEL_TIMEOUT_MS). */
  timeoutMs: number;
  /** The cache's clock; default Date.now. */
  now?: () => number;
  minCacheMs?: number;
  maxCacheMs?: number;
  refetchIntervalMs?: number;
  /** Called after each fetch (the metric session_limiter_jwks_fetches_total). */
  onFetch?: (outcome: 'ok' | 'failed') => void;
  /** Waits this many ms of the cache's clock (for the next allowed refetch); default a timer. */
  sleep?: (ms: number) => Promise<void>;
}

const jwksSchema = z.object({ keys: z.array(z.looseObject({ kty: z.string(), kid: z.string().optional(), use: z.string().optional() })) });

export const WEB_KEYS_PATH = '/oauth/v2/keys';

/**
 * What a wait for the next allowed refetch must leave of the webhook's budget: the fetch itself and the enforcement's
 * few ZITADEL calls (tens of ms as a rule) must still fit, else waiting only turns a refusal into a timeout.
 */
export const WAIT_RESERVE_MS = 1000;

/** `<ZITADEL_URL>/oauth/v2/keys`, keeping a path prefix of ZITADEL_URL. */
export function webKeysUrl(zitadelUrl: URL): URL {
  return new URL(`${zitadelUrl.href.replace(/\/+$/, '')}${WEB_KEYS_PATH}`);
}

/** Seconds of `max-age` in a Cache-Control header, or undefined when it allows no caching or says nothing. */
export function maxAgeSeconds(cacheControl: string | null): number | undefined {
  if (!cacheControl || /(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)/i.test(cacheControl)) return undefined;
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?\s*(?:,|$)/i.exec(cacheControl);
  return match ? Number(match[1]) : undefined;
}

export class InstanceWebKeys implements WebKeySource {
  readonly #url: URL;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #minCacheMs: number;
  readonly #maxCacheMs: number;
  readonly #refetchIntervalMs: number;
  readonly #onFetch: ((outcome: 'ok' | 'failed') => void) | undefined;
  #keys: Map<string, JWK> | undefined;
  #expiresAt = -Infinity;
  #lastAttemptAt = -Infinity;
  #lastFailure: WebKeysUnavailableError | undefined;
  #inFlight: Promise<void> | undefined;
  /** The refetch waited for by kids unknown within the refetch interval. */
  #scheduled: Promise<void> | undefined;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(options: InstanceWebKeysOptions) {
    this.#url = options.url;
    this.#timeoutMs = options.timeoutMs;
    this.#now = options.now ?? Date.now;
    this.#minCacheMs = options.minCacheMs ?? 60_000;
    this.#maxCacheMs = options.maxCacheMs ?? 86_400_000;
    this.#refetchIntervalMs = options.refetchIntervalMs ?? 5_000;
    this.#onFetch = options.onFetch;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async webKey(kid: string, deadline: number): Promise<JWK | undefined> {
    const cached = this.#keys?.get(kid);
    if (cached && this.#now() < this.#expiresAt) return cached;
    if (!this.#inFlight) {
      const wait = this.#lastAttemptAt + this.#refetchIntervalMs - this.#now();
      if (wait > 0) {
        // Too soon after the last fetch: answer from what is known...
        if (cached) return cached;
        if (this.#lastFailure) throw this.#lastFailure;
        // ...or, for a kid unknown to a fetch that succeeded, wait for the next allowed one if the budget allows.
        if (wait + WAIT_RESERVE_MS > deadline - Date.now()) return undefined;
        this.#scheduled ??= this.#sleep(wait).then(() => {
          this.#scheduled = undefined;
          return this.#refetchIfDue();
        });
        await withDeadline(this.#scheduled, deadline);
        return this.#keys?.get(kid);
      }
      void this.#startFetch();
    }
    try {
      await withDeadline(this.#inFlight!, deadline);
    } catch (error) {
      if (cached) return cached;
      throw error;
    }
    return this.#keys?.get(kid) ?? cached;
  }

  #startFetch(): Promise<void> {
    return (this.#inFlight = this.#fetch().finally(() => (this.#inFlight = undefined)));
  }

  /** After a wait: join a fetch under way, start the one now allowed, or none if one happened meanwhile. */
  #refetchIfDue(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    if (this.#now() - this.#lastAttemptAt >= this.#refetchIntervalMs) return this.#startFetch();
    return Promise.resolve();
  }

  async #fetch(): Promise<void> {
    this.#lastAttemptAt = this.#now();
    try {
      const response = await fetch(this.#url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.#timeoutMs) }).catch((error: unknown) => {
        const timedOut = (error as { name?: string }).name === 'TimeoutError';
        throw new WebKeysUnavailableError(
          timedOut ? `GET ${WEB_KEYS_PATH} timed out (ZITADEL_TIMEOUT_MS)` : `GET ${WEB_KEYS_PATH} failed: ZITADEL is not reachable (check ZITADEL_URL, and NODE_EXTRA_CA_CERTS for a private CA)`,
          { cause: error },
        );
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new WebKeysUnavailableError(`GET ${WEB_KEYS_PATH} answered HTTP ${response.status}`);
      }
      const parsed = jwksSchema.safeParse(await response.json().catch(() => undefined));
      if (!parsed.success) throw new WebKeysUnavailableError(`GET ${WEB_KEYS_PATH} did not answer a JWKS`);
      const keys = new Map<string, JWK>();
      for (const key of parsed.data.keys) if (key.kid && (key.use === undefined || key.use === 'sig')) keys.set(key.kid, key);
      const maxAge = maxAgeSeconds(response.headers.get('cache-control'));
      this.#keys = keys;
      this.#expiresAt = this.#now() + Math.min(this.#maxCacheMs, Math.max(this.#minCacheMs, (maxAge ?? 0) * 1000));
      this.#lastFailure = undefined;
      this.#onFetch?.('ok');
    } catch (error) {
      this.#lastFailure = error instanceof WebKeysUnavailableError ? error : new WebKeysUnavailableError(`GET ${WEB_KEYS_PATH} failed`, { cause: error });
      this.#onFetch?.('failed');
      throw this.#lastFailure;
    }
  }
}

/** Waits for `promise` until `deadline` (epoch ms, Date.now's clock); then the caller stops waiting (the fetch goes on). */
function withDeadline(promise: Promise<void>, deadline: number): Promise<void> {
  const remaining = deadline - Date.now();
  if (remaining === Infinity) return promise;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new WebKeysUnavailableError(`GET ${WEB_KEYS_PATH} did not answer within the webhook's budget (ENFORCE_BUDGET_MS)`)),
      Math.max(0, remaining),
    );
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
