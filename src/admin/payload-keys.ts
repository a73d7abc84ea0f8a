import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { CompactEncrypt, CompactSign, generateKeyPair } from 'jose';
import { describeFetchFailure } from '../net-failure.js';
import { keyFingerprint } from '../payload-type/keys.js';
import { signPayload } from '../signature/sign.js';
import type { CheckResult } from './endpoint-check.js';

/**
 * The keys of a JWE target (docs/zitadel-behaviour.md#payload-types-json-jwt-jwe): ZITADEL encrypts each payload to
 * the target's active public key; the service opens it with the private key (ZITADEL_PAYLOAD_KEYS). Generated here
 * with node:crypto, never written by hand.
 */
export type KeyType = 'ec' | 'rsa';
export const KEY_TYPES: readonly KeyType[] = ['ec', 'rsa'];

/**
 * RSA keys are 2048 bits: ZITADEL's own default web key size, and the largest whose private operation stays within
 * the ~1 ms of CPU per webhook issue #12 allows (bench row 8 measures it; RSA 3072 costs about three times as much).
 * EC P-256 (the default) is 128-bit strong and cheaper still.
 */
export const RSA_BITS = 2048;

export interface GeneratedPayloadKey {
  type: KeyType;
  /** PKCS#8 `PRIVATE KEY`: what ZITADEL_PAYLOAD_KEYS takes. Handed over once, never logged. */
  privateKeyPem: string;
  /** PKIX `PUBLIC KEY`: what AddPublicKey takes. */
  publicKeyPem: string;
  /** As ZITADEL shows it: `SHA256:<unpadded base64 of SHA-256 over the DER>`. */
  fingerprint: string;
}

export function generatePayloadKey(type: KeyType): GeneratedPayloadKey {
  const { privateKey, publicKey } =
    type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: RSA_BITS }) : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    type,
    privateKeyPem: String(privateKey.export({ type: 'pkcs8', format: 'pem' })),
    publicKeyPem: String(publicKey.export({ type: 'spki', format: 'pem' })),
    fingerprint: keyFingerprint(privateKey),
  };
}

/** The fingerprint of a PEM public key, computed here rather than trusted from an answer; undefined if unreadable. */
export function publicKeyFingerprint(pem: string): string | undefined {
  try {
    const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
    return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
  } catch {
    return undefined;
  }
}

/** Whether a PEM public key is RSA or EC (the next key of a rotation is of the same kind by default). */
export function publicKeyType(pem: string): KeyType | undefined {
  try {
    const type = createPublicKey(pem).asymmetricKeyType;
    return type === 'rsa' || type === 'ec' ? type : undefined;
  } catch {
    return undefined;
  }
}

/** A compact JWE as ZITADEL builds one for `publicKeyPem` (key id `keyId`), whose inner JWS is signed by a throwaway key. */
export async function probeJwe(publicKeyPem: string, keyId: string): Promise<string> {
  const publicKey = createPublicKey(publicKeyPem);
  const alg = publicKey.asymmetricKeyType === 'rsa' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
  const { privateKey } = await generateKeyPair('ES256');
  const payload = JSON.stringify({ fullMethod: '/zitadel_session_limiter.Doctor/PayloadKeyProbe', request: {}, response: {} });
  const jws = await new CompactSign(new TextEncoder().encode(payload))
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'session-limiter-probe' })
    .sign(privateKey);
  return new CompactEncrypt(new TextEncoder().encode(jws))
    .setProtectedHeader({ alg, enc: 'A256GCM', kid: keyId, typ: 'JWT', cty: 'JWT' })
    .encrypt(publicKey);
}

/**
 * Proves that the service at `endpoint` opens a payload encrypted to `publicKeyPem`: a JWE to that key whose inner JWS
 * is signed by a throwaway key (so the service can never act on it), HMAC-signed with the target's signing key.
 * The service answers, in its order of checks: `401 ERR_SIGNATURE_MISMATCH` (the signing key), `400 ERR_PAYLOAD_TYPE`
 * (not in jwe mode), `401 ERR_PAYLOAD_UNDECRYPTABLE` (no key of ZITADEL_PAYLOAD_KEYS opens it), and otherwise, the
 * JWE opened, `401 ERR_PAYLOAD_SIGNATURE` for the throwaway signature: that one is the PASS. The probe is counted
 * once as that rejection in the service's metrics and may be logged as one.
 */
export async function checkPayloadKey(endpoint: string, signingKey: string, publicKeyPem: string, keyId: string): Promise<CheckResult> {
  const check = 'payload key';
  const body = await probeJwe(publicKeyPem, keyId);
  let status: number;
  let code: string;
  try {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, signingKey) },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    status = response.status;
    code = /"error":"(\w+)"/.exec(await response.text())?.[1] ?? '';
  } catch (error) {
    return { status: 'FAIL', check, detail: describeFetchFailure(endpoint, error) };
  }
  const answered = `${endpoint} answered ${status} ${code}`.trimEnd();
  if (status === 401 && code === 'ERR_PAYLOAD_SIGNATURE') {
    return { status: 'PASS', check, detail: `${answered}: the service opened a payload encrypted to key ${keyId} (the probe's throwaway inner signature is refused by design)` };
  }
  const why =
    status === 401 && code === 'ERR_PAYLOAD_UNDECRYPTABLE'
      ? `no key of the service's ZITADEL_PAYLOAD_KEYS opens a payload encrypted to key ${keyId}: add its private key there (next to the current one) and deploy`
      : status === 400 && code === 'ERR_PAYLOAD_TYPE'
        ? 'the service is not in jwe mode: set ZITADEL_PAYLOAD_TYPE=jwe (with ZITADEL_PAYLOAD_KEYS) and deploy'
        : status === 401 && code === 'ERR_SIGNATURE_MISMATCH'
          ? "the service does not accept the target's signing key: check ZITADEL_SIGNING_KEYS"
          : 'expected 401 ERR_PAYLOAD_SIGNATURE from a service that opens it';
  return { status: 'FAIL', check, detail: `${answered}: ${why}` };
}
