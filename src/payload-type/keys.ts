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
/** Whether a value looks like PEM itself rather than a file path. */
export function looksLikePem(value: string): boolean {
  return value.includes('-----BEGIN ');
}

export function keyFingerprint(key: KeyObject): string {
  const der = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
}

const BEGIN_LINE = /-----BEGIN ([A-Z0-9 ]+)-----/y;
const WHITESPACE = /\s*/y;

/** 1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st. */
export function ordinal(n: number): string {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
  return `${n}${suffix}`;
}

const article = (word: string) => (/^[AEIOU]/i.test(word) ? 'an' : 'a');

/**
 * The PEM blocks of `pem` with their labels. Nothing but complete blocks and whitespace may be there: a block cut short
 * (a BEGIN line without its END line, e.g. a rotation's second key copied in part) or any other text is refused, never
 * skipped, so that a key is never silently left out.
 */
function pemBlocks(pem: string): { block: string; label: string; which: string }[] {
  const total = pem.split('-----BEGIN ').length - 1;
  const nth = (n: number) => (total > 1 ? `the ${ordinal(n)} PEM block` : 'the PEM block');
  const blocks: { block: string; label: string; which: string }[] = [];
  let position = 0;
  for (;;) {
    WHITESPACE.lastIndex = position;
    WHITESPACE.exec(pem);
    position = WHITESPACE.lastIndex;
    if (position === pem.length) return blocks;
    BEGIN_LINE.lastIndex = position;
    const begin = BEGIN_LINE.exec(pem);
    if (!begin) {
      const where = blocks.length === 0 ? `before ${nth(1)}` : `after ${nth(blocks.length)}`;
      throw new PayloadKeyError(`there is text ${where} that is not PEM: keep only the PEM blocks, each from its -----BEGIN ...----- to its -----END ...----- line`);
    }
    const label = begin[1]!;
    const which = nth(blocks.length + 1);
    const endLine = `-----END ${label}-----`;
    const end = pem.indexOf(endLine, BEGIN_LINE.lastIndex);
    const nextBegin = pem.indexOf('-----BEGIN ', BEGIN_LINE.lastIndex);
    if (end === -1 || (nextBegin !== -1 && nextBegin < end)) {
      throw new PayloadKeyError(`${which} has no END line (${endLine}): it was cut short; copy the key whole`);
    }
    position = end + endLine.length;
    blocks.push({ block: pem.slice(begin.index, position), label, which });
  }
}

/**
 * Every PEM block of `text` as a payload key: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`;
 * RSA or EC (what ZITADEL encrypts to). `\n` written as two characters (a one-line environment value) is accepted.
 * Anything besides complete PEM blocks and whitespace is refused. Throws `PayloadKeyError` naming what is wrong and
 * what to give instead; messages complete "ZITADEL_PAYLOAD_KEYS: ...".
 */
export function parsePayloadKeys(text: string): PayloadKey[] {
  const pem = text.includes('\n') ? text : text.replace(/\\n/g, '\n');
  if (!pem.includes('-----BEGIN ')) {
    throw new PayloadKeyError('it holds no PEM block: give the private key as PEM, from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----');
  }
  return pemBlocks(pem).map(({ block, label, which }) => {
    const decrypt = 'give it unencrypted, e.g. openssl pkey -in key.pem -out key-plain.pem (it asks for the passphrase)';
    if (label === 'ENCRYPTED PRIVATE KEY') throw new PayloadKeyError(`${which} is encrypted (ENCRYPTED PRIVATE KEY): ${decrypt}`);
    if (!ACCEPTED_LABELS.has(label)) {
      throw new PayloadKeyError(`${which} is ${article(label)} ${label}: give the unencrypted private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)`);
    }
    if (/^Proc-Type:\s*4,\s*ENCRYPTED/m.test(block)) throw new PayloadKeyError(`${which} is encrypted (Proc-Type: 4,ENCRYPTED): ${decrypt}`);
    let key: KeyObject;
    try {
      key = createPrivateKey(block);
    } catch {
      throw new PayloadKeyError(`${which} is not a readable private key: check that it was copied whole`);
    }
    const type = key.asymmetricKeyType;
    if (type !== 'rsa' && type !== 'ec') {
      throw new PayloadKeyError(`${which} is ${article(String(type))} ${String(type)} key: ZITADEL encrypts payloads to RSA or EC keys only`);
    }
    const curve = type === 'ec' ? CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''] : undefined;
    if (type === 'ec' && !curve) throw new PayloadKeyError(`${which} is an EC key on a curve JOSE does not use: use P-256`);
    return { key, type, curve, fingerprint: keyFingerprint(key) };
  });
}
