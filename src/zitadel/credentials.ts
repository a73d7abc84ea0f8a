import { createPrivateKey, type KeyObject } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { z } from 'zod';
import { describeFetchFailure } from '../net-failure.js';
import { readSmallTextFile, SmallFileError } from '../small-file.js';

/** Where the bearer token for ZITADEL calls comes from. */
export interface AccessTokenSource {
  /** A valid access token; may fetch a new one, waiting for it at most until `signal` aborts (the call's deadline). */
  token(signal?: AbortSignal): Promise<string>;
}

/** Waits for `promise`, but rejects as DeadlineExceeded once `signal` aborts (the promise goes on for others). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  const expired = () => new ConnectError('the call\'s deadline passed while waiting for an access token from /oauth/v2/token', Code.DeadlineExceeded);
  if (signal.aborted) return Promise.reject(expired());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(expired());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** A personal access token: valid until revoked. */
export class PersonalAccessToken implements AccessTokenSource {
  readonly #token: string;
  constructor(token: string) {
    this.#token = token;
  }
  token(): Promise<string> {
    return Promise.resolve(this.#token);
  }
}

/** ZITADEL's service-account key file (Console → Service User → Keys → JSON). */
export interface ServiceAccountKey {
  type: string;
  keyId: string;
  key: string;
  userId: string;
}

const keyFileSchema = z.object({
  type: z.string().optional().default('serviceaccount'),
  keyId: z.string().min(1),
  key: z.string().min(1),
  userId: z.string().min(1),
});

/**
 * Reads a key file: the value is either the JSON itself (convenient as a Fly secret) or a path to it. Throws a
 * message that names the problem, never the key.
 */
export function readServiceAccountKey(value: string): { key: ServiceAccountKey; privateKey: KeyObject } {
  let text = value.trim();
  if (!text.startsWith('{')) {
    try {
      text = readSmallTextFile(text);
    } catch (error) {
      if (!(error instanceof SmallFileError)) throw error;
      const what = error.code === undefined ? error.message : 'cannot be read';
      throw new Error(`${what}: give the path of the JSON key file from ZITADEL, or its content`, { cause: error });
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('is not JSON: use the key file ZITADEL downloads for a service user (type JSON)');
  }
  const parsed = keyFileSchema.safeParse(json);
  if (!parsed.success) throw new Error('needs keyId, key and userId: use the key file ZITADEL downloads for a service user');
  let privateKey: KeyObject;
  try {
    // ZITADEL's key files hold a PKCS#1 RSA key ("BEGIN RSA PRIVATE KEY"); createPrivateKey reads PKCS#1 and PKCS#8.
    privateKey = createPrivateKey(parsed.data.key);
  } catch {
    throw new Error('holds no readable private key');
  }
  return { key: parsed.data, privateKey };
}

export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const ZITADEL_API_SCOPE = 'openid urn:zitadel:iam:org:project:id:zitadel:aud';

export interface JwtProfileOptions {
  /** ZITADEL's base URL: the token endpoint is `<issuer>/oauth/v2/token` and the JWT audience is the issuer. */
  issuer: string;
  key: ServiceAccountKey;
  privateKey: KeyObject;
  /** Refresh this long before the token expires. */
  refreshMarginMs?: number;
  now?: () => number;
}

/**
 * The JWT profile grant: signs a JWT with the service account's key (kid = keyId, iss = sub = userId,
 * aud = issuer) and exchanges it at /oauth/v2/token. The token is cached and refreshed before it expires; callers
 * that arrive during a refresh share it.
 */
export class JwtProfileToken implements AccessTokenSource {
  readonly #options: Required<Omit<JwtProfileOptions, 'now'>> & { now: () => number };
  #current: { token: string; refreshAt: number } | undefined;
  #pending: Promise<string> | undefined;

  constructor(options: JwtProfileOptions) {
    this.#options = { refreshMarginMs: 60_000, now: Date.now, ...options, issuer: options.issuer.replace(/\/+$/, '') };
  }

  token(signal?: AbortSignal): Promise<string> {
    const current = this.#current;
    if (current && this.#options.now() < current.refreshAt) return Promise.resolve(current.token);
    // One fetch for every caller, with its own timeout: it is not bound to the budget of whoever asked first.
    this.#pending ??= this.#fetch().finally(() => (this.#pending = undefined));
    return signal ? untilAborted(this.#pending, signal) : this.#pending;
  }

  async #fetch(): Promise<string> {
    const { issuer, key, privateKey, now } = this.#options;
    const issuedAt = Math.floor(now() / 1000);
    // jose is loaded on the first token fetch: a service configured with a personal access token never needs it.
    const { SignJWT } = await import('jose');
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: key.keyId })
      .setIssuer(key.userId)
      .setSubject(key.userId)
      .setAudience(issuer)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + 3600)
      .sign(privateKey);
    let response: Response;
    try {
      response = await fetch(`${issuer}/oauth/v2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, scope: ZITADEL_API_SCOPE, assertion }),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      // As a gRPC status, so that a failed token fetch reads like the call it blocked: unreachable → 503.
      throw new ConnectError(`ZITADEL's token endpoint: ${describeFetchFailure(`${issuer}/oauth/v2/token`, error)}`, Code.Unavailable);
    }
    const body = (await response.json().catch(() => ({}))) as { access_token?: unknown; expires_in?: unknown; error?: unknown };
    if (!response.ok || typeof body.access_token !== 'string') {
      const overloaded = response.status === 429 || response.status >= 500;
      throw new ConnectError(
        `ZITADEL refused the key file's JWT at /oauth/v2/token (${response.status} ${typeof body.error === 'string' ? body.error : ''}): ` +
          (overloaded ? 'ZITADEL is overloaded or failing; try again' : 'check that the key is active and belongs to the service user'),
        overloaded ? Code.Unavailable : Code.Unauthenticated,
      );
    }
    const lifetimeMs = (typeof body.expires_in === 'number' ? body.expires_in : 3600) * 1000;
    // Refresh a margin before expiry, but never later than halfway through a short-lived token.
    const margin = Math.min(this.#options.refreshMarginMs, lifetimeMs / 2);
    this.#current = { token: body.access_token, refreshAt: now() + lifetimeMs - margin };
    return body.access_token;
  }
}
