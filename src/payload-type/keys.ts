import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

/**
 * ZITADEL_PAYLOAD_KEYS: the private keys of the target's public keys, as PEM. Pure: parses text it is given (the
 * configuration reads the file). Errors name the block by its position and its PEM label, never any key material.
 */
export interface PayloadKey {
  key: KeyObject;
  type: 'rsa' | 'ec';
  /** The JOSE curve name of an EC key (P-256, P-384, P-521). */
  curve: string | undefined;
  /** As ZITADEL shows a target key: `SHA256:` + unpadded base64 of SHA-256 over the public key's DER (PKIX). */
  fingerprint: string;
}

export class PayloadKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadKeyError';
  }
}

const ACCEPTED_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);
const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** Whether a value looks like PEM itself rather than a file path. */
export function looksLikePem(value: string): boolean {
  return value.includes('-----BEGIN ');
}

export function keyFingerprint(key: KeyObject): string {
  const der = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Every PEM block of `text` as a payload key: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`;
 * RSA or EC (what ZITADEL encrypts to). `\n` written as two characters (a one-line environment value) is accepted.
 * Throws `PayloadKeyError` naming what is wrong and what to give instead.
 */
export function parsePayloadKeys(text: string): PayloadKey[] {
  const pem = text.includes('\n') ? text : text.replace(/\\n/g, '\n');
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.length === 0) {
    throw new PayloadKeyError('holds no complete PEM block: give the private key as PEM, from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----');
  }
  return blocks.map(([block, label], index) => {
    const which = blocks.length > 1 ? `PEM block ${index + 1}` : 'the PEM block';
    if (!ACCEPTED_LABELS.has(label!)) {
      throw new PayloadKeyError(`${which} is a ${label}: give the unencrypted private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)`);
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(block);
    } catch {
      throw new PayloadKeyError(`${which} is not a readable private key: check that it was copied whole`);
    }
    const type = key.asymmetricKeyType;
    if (type !== 'rsa' && type !== 'ec') {
      throw new PayloadKeyError(`${which} is an ${String(type)} key: ZITADEL encrypts payloads to RSA or EC keys only`);
    }
    const curve = type === 'ec' ? CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''] : undefined;
    if (type === 'ec' && !curve) throw new PayloadKeyError(`${which} is an EC key on a curve JOSE does not use: use P-256`);
    return { key, type, curve, fingerprint: keyFingerprint(key) };
  });
}
