import { compactDecrypt, compactVerify, decodeProtectedHeader, importJWK, type JWK, type KeyLike } from 'jose';
import { PayloadRefusedError } from './failures.js';
import { bodyForm, type PayloadType } from './form.js';
import type { PayloadKey } from './keys.js';

/**
 * Opens a JWT or JWE payload (docs/zitadel-behaviour.md#payload-types-json-jwt-jwe) into the JSON bytes the payload
 * reader parses: decrypt (JWE), then verify the JWS against the instance's web keys. Pure but for the web key port,
 * which the edge fills with the JWKS adapter (src/zitadel/web-keys.ts). The HMAC and the form check come first, in
 * the webhook: nothing here runs for a forged request or a body of the wrong type.
 */

/** The port for the instance's public web keys (`<ZITADEL_URL>/oauth/v2/keys`). */
export interface WebKeySource {
  /**
   * The web key with this kid, or undefined when the instance has none (after at most one refetch). Throws
   * `WebKeysUnavailableError` when the keys cannot be fetched and none cached fits. `deadline`: epoch ms (Date.now's
   * clock) after which the caller stops waiting.
   */
  webKey(kid: string, deadline: number): Promise<JWK | undefined>;
}

/** Asymmetric signatures only: never `none`, never `HS*` (a shared secret anyone with the HMAC key would hold). */
export const SIGNATURE_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** What ZITADEL encrypts with: RSA-OAEP-256 to an RSA key, ECDH-ES+A256KW to an EC key; content A256GCM. */
export const KEY_MANAGEMENT_ALGORITHMS = ['RSA-OAEP-256', 'ECDH-ES+A256KW'];
export const CONTENT_ENCRYPTION_ALGORITHMS = ['A256GCM'];

const KEY_TYPE_OF: Record<string, PayloadKey['type']> = { 'RSA-OAEP-256': 'rsa', 'ECDH-ES+A256KW': 'ec' };
/** Bound on the kid -> key memo (kids come from bodies, though only HMAC-signed, decryptable ones). */
const MEMO_LIMIT = 64;

const refuseSignature = (detail: string) => new PayloadRefusedError('signature', detail);
const refuseDecryption = (detail: string) => new PayloadRefusedError('undecryptable', detail);

export interface PayloadOpenerOptions {
  type: Exclude<PayloadType, 'json'>;
  /** ZITADEL_PAYLOAD_KEYS (jwe). */
  keys?: readonly PayloadKey[];
  webKeys: WebKeySource;
}

export class PayloadOpener {
  readonly type: Exclude<PayloadType, 'json'>;
  readonly #keys: readonly PayloadKey[];
  readonly #webKeys: WebKeySource;
  /** The payload key that opened a JWE with this kid before: tried first. */
  readonly #keyOfKid = new Map<string, PayloadKey>();
  /** Imported web keys, per JWK object (a refetch brings new objects) and alg. */
  readonly #imported = new WeakMap<JWK, Map<string, KeyLike | Uint8Array>>();

  constructor(options: PayloadOpenerOptions) {
    this.type = options.type;
    this.#keys = options.keys ?? [];
    this.#webKeys = options.webKeys;
    if (this.type === 'jwe' && this.#keys.length === 0) throw new RangeError('jwe needs at least one payload key');
  }

  /** The execution payload's JSON bytes from a body of the configured form; throws `PayloadRefusedError`. */
  async open(body: string, deadline: number): Promise<Uint8Array> {
    const jws = this.type === 'jwe' ? await this.decrypt(body) : body;
    return this.verify(jws, deadline);
  }

  /** The plaintext of a compact JWE, which must be a compact JWS (ZITADEL nests: cty JWT). */
  async decrypt(jwe: string): Promise<string> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(jwe);
    } catch {
      throw refuseDecryption('its protected header is not readable');
    }
    const type = typeof header.alg === 'string' ? KEY_TYPE_OF[header.alg] : undefined;
    if (!type || header.enc !== 'A256GCM') {
      throw refuseDecryption('only RSA-OAEP-256 or ECDH-ES+A256KW with A256GCM are accepted, as ZITADEL encrypts');
    }
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const crv = (header.epk as { crv?: unknown } | undefined)?.crv;
    const remembered = kid === undefined ? undefined : this.#keyOfKid.get(kid);
    const fitting = this.#keys.filter((key) => key.type === type && (type !== 'ec' || key.curve === crv));
    const candidates = remembered && fitting.includes(remembered) ? [remembered, ...fitting.filter((key) => key !== remembered)] : fitting;
    for (const candidate of candidates) {
      let plaintext: Uint8Array;
      try {
        ({ plaintext } = await compactDecrypt(jwe, candidate.key, {
          keyManagementAlgorithms: KEY_MANAGEMENT_ALGORITHMS,
          contentEncryptionAlgorithms: CONTENT_ENCRYPTION_ALGORITHMS,
        }));
      } catch {
        continue;
      }
      if (kid !== undefined && remembered !== candidate) {
        if (this.#keyOfKid.size >= MEMO_LIMIT) this.#keyOfKid.clear();
        this.#keyOfKid.set(kid, candidate);
      }
      if (bodyForm(plaintext) !== 'jwt') {
        throw refuseSignature('the JWE opened but holds no signed JWT; ZITADEL always signs the payload before encrypting it');
      }
      return new TextDecoder().decode(plaintext);
    }
    throw refuseDecryption(
      `none of the ${this.#keys.length} key(s) of ZITADEL_PAYLOAD_KEYS opens it: add the private key of the target's active public key`,
    );
  }

  /** The payload of a compact JWS signed by a current instance web key. */
  async verify(jws: string, deadline: number): Promise<Uint8Array> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(jws);
    } catch {
      throw refuseSignature('its protected header is not readable');
    }
    const { alg, kid } = header;
    // Checked before any key is looked up: `none` or `HS256` costs no JWKS fetch.
    if (typeof alg !== 'string' || !SIGNATURE_ALGORITHMS.includes(alg)) {
      throw refuseSignature('only asymmetric signatures by an instance web key are accepted (RS*, PS*, ES*, EdDSA)');
    }
    if (typeof kid !== 'string' || kid === '') throw refuseSignature('it names no web key (kid); ZITADEL always sets one');
    const jwk = await this.#webKeys.webKey(kid, deadline);
    if (!jwk) throw refuseSignature('no current web key of the instance has its kid');
    const key = await this.#importWebKey(jwk, alg);
    try {
      const { payload } = await compactVerify(jws, key, { algorithms: SIGNATURE_ALGORITHMS });
      return payload;
    } catch {
      throw refuseSignature('its signature does not verify with the instance web key it names');
    }
  }

  async #importWebKey(jwk: JWK, alg: string): Promise<KeyLike | Uint8Array> {
    let byAlg = this.#imported.get(jwk);
    if (!byAlg) this.#imported.set(jwk, (byAlg = new Map<string, KeyLike | Uint8Array>()));
    let key = byAlg.get(alg);
    if (!key) {
      // A public key of another type (kty) than the alg needs, or one marked for encryption, cannot verify.
      if (jwk.use !== undefined && jwk.use !== 'sig') throw refuseSignature('the web key it names is not a signing key');
      if (jwk.alg !== undefined && jwk.alg !== alg) throw refuseSignature('the web key it names is for another algorithm');
      try {
        key = await importJWK({ ...jwk, d: undefined, p: undefined, q: undefined, dp: undefined, dq: undefined, qi: undefined }, alg);
      } catch {
        throw refuseSignature('the web key it names does not fit its algorithm');
      }
      byAlg.set(alg, key);
    }
    return key;
  }
}
