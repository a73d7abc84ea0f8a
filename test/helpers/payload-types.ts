import { readFileSync } from 'node:fs';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CompactEncrypt, CompactSign, exportJWK, type JWK } from 'jose';

/**
 * ZITADEL's payload-type conformance vectors (test/fixtures/zitadel-payload-type-vectors.json, built with go-jose
 * exactly as ZITADEL's internal/execution/execution.go does) and a builder for more bodies of the same shape.
 */
export interface PayloadVector {
  name: string;
  payloadType: 'json' | 'jwt' | 'jwe';
  body: string;
  signatureHeader: string;
  valid: boolean;
  why: string;
}
export interface PayloadVectors {
  cases: PayloadVector[];
  instanceJwks: { keys: JWK[] };
  payloadBase64: string;
  signingKey: string;
  targetKeys: { keyId: string; privateKeyPem: string; publicKeyPem: string }[];
  timestamp: number;
}

export const VECTORS_FILE = new URL('../fixtures/zitadel-payload-type-vectors.json', import.meta.url);
export const vectors = JSON.parse(readFileSync(VECTORS_FILE, 'utf8')) as PayloadVectors;
export const vector = (name: string): PayloadVector => {
  const found = vectors.cases.find((entry) => entry.name === name);
  if (!found) throw new Error(`no vector ${name}`);
  return found;
};
/** A moment one second after the vectors were signed (their HMAC timestamp). */
export const VECTORS_NOW = vectors.timestamp * 1000 + 1000;

/** An instance web key: its private half signs, its public JWK goes into the JWKS. */
export interface WebKey {
  kid: string;
  alg: string;
  privateKey: KeyObject;
  jwk: JWK;
}

export async function webKey(kid: string, alg: 'RS256' | 'ES256' | 'EdDSA' = 'RS256'): Promise<WebKey> {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const jwk = { ...(await exportJWK(createPublicKey(privateKey))), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, jwk };
}

/** A target key pair, as `register --payload-type jwe` makes one: PKCS#8 private PEM, the public key. */
export function targetKey(type: 'ec' | 'rsa'): { privatePem: string; publicKey: KeyObject } {
  const { privateKey, publicKey } = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey };
}

/** A JWT body as ZITADEL builds it: the payload JSON signed by a web key (typ JWT, kid). */
export function signedBody(payload: string | Uint8Array, key: Pick<WebKey, 'kid' | 'alg' | 'privateKey'>, header: Record<string, unknown> = {}): Promise<string> {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  return new CompactSign(bytes).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
}

/** A JWE body as ZITADEL builds it: `inner` (the JWS) encrypted to the target's public key (A256GCM, cty JWT). */
export function encryptedBody(inner: string, publicKey: KeyObject, kid: string): Promise<string> {
  const alg = publicKey.asymmetricKeyType === 'rsa' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
  return new CompactEncrypt(new TextEncoder().encode(inner)).setProtectedHeader({ alg, enc: 'A256GCM', kid, typ: 'JWT', cty: 'JWT' }).encrypt(publicKey);
}
