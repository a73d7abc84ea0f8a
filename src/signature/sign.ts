import { createHmac, type Hmac } from 'node:crypto';

/** The HMAC of a `v1` entry before the body: keyed with the signing key, fed `<timestamp>.`; the body bytes follow. */
export function startSignature(key: string, timestamp: number): Hmac {
  return createHmac('sha256', key).update(`${timestamp}.`);
}

/**
 * The HMAC ZITADEL puts in a `v1` entry: HMAC-SHA256 keyed with the signing key's UTF-8 bytes over
 * `<timestamp>.<raw body bytes>` (pkg/actions/signing.go in ZITADEL).
 */
export function computeSignature(key: string, timestamp: number, body: Uint8Array | string): Buffer {
  return startSignature(key, timestamp).update(body).digest();
}

export interface SignOptions {
  /** Unix seconds; defaults to now. */
  timestamp?: number;
}

/**
 * Builds a `ZITADEL-Signature` header for `body`, exactly as ZITADEL does: `t=<unix seconds>,v1=<hex>`, one `v1`
 * entry per key. Use it to sign payloads in your own tests (like Stripe's `generateTestHeaderString`).
 *
 * Sign the exact bytes you send: a re-serialised body does not match.
 */
export function signPayload(body: Uint8Array | string, keys: string | readonly string[], options: SignOptions = {}): string {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const list = typeof keys === 'string' ? [keys] : keys;
  if (list.length === 0) throw new TypeError('signPayload needs at least one signing key');
  const entries = list.map((key) => `v1=${computeSignature(key, timestamp, body).toString('hex')}`);
  return [`t=${timestamp}`, ...entries].join(',');
}
