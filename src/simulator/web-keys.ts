import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CompactSign, exportJWK, type JWK } from 'jose';

/**
 * The instance's web keys (ZITADEL's `WebKeyService`): the keys that sign ID tokens and, since v4.8, the JWT and
 * JWE payloads of Actions v2 targets. Every key's public half is served at `/oauth/v2/keys` (active or not, so a
 * receiver can verify across a rotation); the active one signs (docs/zitadel-behaviour.md#payload-types-json-jwt-jwe).
 */

/** RS256 (RSA 2048, ZITADEL's default) or ES256 (ECDSA P-256, which operators may create). */
export type WebKeyAlgorithm = 'RS256' | 'ES256';

export interface SimWebKey {
  kid: string;
  alg: WebKeyAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export class WebKeys {
  readonly keys: SimWebKey[] = [];
  #active: SimWebKey | undefined;
  readonly #newId: () => string;

  constructor(newId: () => string, alg: WebKeyAlgorithm = 'RS256') {
    this.#newId = newId;
    this.add(alg);
  }

  /** Generates a key of `alg` and publishes it; `activate` (default) makes it the signing key at once. */
  add(alg: WebKeyAlgorithm = 'RS256', options: { activate?: boolean } = {}): SimWebKey {
    const pair = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key: SimWebKey = { kid: this.#newId(), alg, ...pair };
    this.keys.push(key);
    if (options.activate ?? true) this.#active = key;
    return key;
  }

  /** Makes a published key the signing key. */
  activate(kid: string): SimWebKey {
    const key = this.keys.find((candidate) => candidate.kid === kid);
    if (!key) throw new Error(`no web key ${kid}`);
    this.#active = key;
    return key;
  }

  /** Unpublishes an inactive key (ZITADEL refuses to delete the active one). */
  remove(kid: string): void {
    if (this.#active?.kid === kid) throw new Error(`web key ${kid} is active; activate another one first`);
    const index = this.keys.findIndex((key) => key.kid === kid);
    if (index >= 0) this.keys.splice(index, 1);
  }

  get active(): SimWebKey {
    return this.#active!;
  }

  /** The JWKS as `/oauth/v2/keys` serves it (ZITADEL's field order: use, kty, kid, [crv,] alg, key material). */
  async jwks(): Promise<{ keys: JWK[] }> {
    const keys = await Promise.all(
      this.keys.map(async (key) => {
        const { kty, n, e, crv, x, y } = await exportJWK(key.publicKey);
        return key.alg === 'RS256' ? { use: 'sig', kty, kid: key.kid, alg: key.alg, n, e } : { use: 'sig', kty, kid: key.kid, crv, alg: key.alg, x, y };
      }),
    );
    return { keys };
  }

  /** A compact JWS over exactly `payload`'s bytes with the active key (`alg`, `kid`, `typ: JWT`, like go-jose's). */
  async sign(payload: string): Promise<string> {
    const key = this.active;
    return new CompactSign(Buffer.from(payload, 'utf8')).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
  }
}
